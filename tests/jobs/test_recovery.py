"""Workers die; messages do not get lost or billed twice."""

from __future__ import annotations

import signal
import uuid

from core import delivery
from core.retry import Backoff
from db import dispatch as dispatch_db
from jobs.scheduler import DISPATCH_TASK, tier_lock
from providers.base import Accepted
from tests import support, workers


async def test_sigkill_mid_batch_loses_nothing_and_bills_once(api, conn, db_url, tenant):
    await support.send_batch(api, tenant, 40)
    # The first worker claims everything, then hangs in the provider and is killed.
    with workers.process(db_url, simulator_latency_ms=60_000, lease_seconds=2) as first:
        await workers.eventually(
            lambda: support.count(
                conn, "SELECT count(*) AS n FROM messages WHERE status = 'sending'"
            ),
            timeout=30,
        )
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    assert (
        await support.count(conn, "SELECT count(*) AS n FROM messages WHERE status = 'sending'")
        == 40
    )

    with workers.process(db_url, lease_seconds=2):

        async def all_delivered():
            return (
                await support.count(
                    conn, "SELECT count(*) AS n FROM messages WHERE status = 'delivered'"
                )
                == 40
            )

        await workers.eventually(all_delivered, timeout=60)

    assert await support.count(conn, "SELECT count(*) AS n FROM messages WHERE attempts = 2") == 40
    assert (
        await support.count(
            conn,
            "SELECT count(*) AS n FROM message_events WHERE error_code = 'lease_expired'",
        )
        == 40
    )
    assert (
        await support.count(
            conn, "SELECT count(*) AS n FROM ledger_message_entries WHERE kind = 'capture'"
        )
        == 40
    )
    assert (await support.balance(api, tenant))["captured"] == 40 * 7_900


async def test_sigterm_lets_the_batch_finish_and_settle(api, conn, db_url, tenant):
    await support.send_batch(api, tenant, 20)
    with workers.process(db_url, simulator_latency_ms=1_500) as worker:
        await workers.eventually(
            lambda: support.count(
                conn, "SELECT count(*) AS n FROM messages WHERE status = 'sending'"
            ),
            timeout=30,
        )
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
    assert (
        await support.count(conn, "SELECT count(*) AS n FROM messages WHERE status = 'sending'")
        == 0
    )
    assert (
        await support.count(
            conn, "SELECT count(*) AS n FROM messages WHERE status IN ('sent', 'delivered')"
        )
        == 20
    )
    assert (await support.balance(api, tenant))["captured"] == 20 * 7_900


async def test_a_repeated_or_stale_settle_never_bills_twice(api, conn, pool, tenant):
    sent = await support.send(api, tenant)
    message_id = uuid.UUID(sent.json()["id"])

    async def claim(lease_seconds):
        async with conn.transaction():
            tenants = await dispatch_db.turn_tenants(conn, tier="standard", limit=10)
            rows = await dispatch_db.claim_candidates(conn, tenants=tenants, per_tenant=10)
            return await dispatch_db.mark_sending(
                conn,
                keys=[(r["created_at"], r["id"]) for r in rows],
                providers=["simulator"] * len(rows),
                lease_seconds=lease_seconds,
            )

    first_claim = await claim(lease_seconds=0)
    assert [row["id"] for row in first_claim] == [message_id]
    # The worker "dies"; its lease lapses and the message is claimed again.
    await delivery.recover_leases(pool, task=DISPATCH_TASK)
    second_claim = await claim(lease_seconds=60)
    assert second_claim[0]["attempts"] == 2

    def plan(rows):
        return delivery.plan_settlement(
            rows, [Accepted("upstream-1")], backoff=Backoff(), now=second_claim[0]["created_at"]
        ).rows

    for rows in (second_claim, second_claim, first_claim):  # settle, repeat, stale
        async with conn.transaction():
            await dispatch_db.settle(conn, results=plan(rows))

    assert (
        await support.count(
            conn, "SELECT count(*) AS n FROM ledger_message_entries WHERE kind = 'capture'"
        )
        == 1
    )
    balance = await support.balance(api, tenant)
    assert balance["captured"] == 7_900
    assert balance["held"] == 0


async def test_a_tenant_whose_queue_row_and_turn_were_lost_is_found_and_served(
    api, conn, pool, settings, tenant
):
    sent = await support.send(api, tenant)
    # Whatever lost them (an operator's DELETE, a bug), the message itself is still
    # queued: the safety net queues its tenant and a turn of its tier again.
    await conn.execute("DELETE FROM dispatch_queue")
    await conn.execute("DELETE FROM procrastinate_jobs")
    assert await delivery.wake_stranded(pool, task=DISPATCH_TASK) == 1
    assert await support.count(conn, "SELECT count(*) AS n FROM dispatch_queue") == 1
    turns = "SELECT count(*) AS n FROM procrastinate_jobs WHERE queueing_lock = %s"
    assert await support.count(conn, turns, tier_lock("standard")) == 1
    async with workers.in_process(settings):
        await workers.eventually(
            lambda: support.count(
                conn,
                "SELECT count(*) AS n FROM messages WHERE id = %s AND sent_at IS NOT NULL",
                sent.json()["id"],
            )
        )
