"""The accept transaction: the hold, the message row and the dispatch enqueue commit
together, credit never goes negative under concurrency, and the enqueue costs a queue
row per tenant and one waiting turn per tier, not a job per message."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from tests import support
from tests.support import VALID_TO, assert_problem

PRICE = 7_900


async def dispatch_jobs(conn) -> list[dict]:
    cursor = await conn.execute(
        "SELECT queueing_lock, status, queue_name, scheduled_at FROM procrastinate_jobs ORDER BY id"
    )
    return await cursor.fetchall()


async def queued_tenants(conn) -> dict[str, str]:
    cursor = await conn.execute("SELECT tenant_id::text AS tenant, tier FROM dispatch_queue")
    return {row["tenant"]: row["tier"] for row in await cursor.fetchall()}


async def test_200_concurrent_sends_against_credit_for_50(api, admin_headers, conn):
    tenant = await support.make_tenant(api, admin_headers, credit=50 * PRICE)
    responses = await asyncio.gather(*(support.send(api, tenant) for _ in range(200)))
    statuses = [r.status_code for r in responses]
    assert statuses.count(202) == 50, statuses
    assert statuses.count(402) == 150, statuses
    for response in responses:
        if response.status_code == 402:
            assert_problem(response, 402, "insufficient_credit")
    assert len({r.json()["id"] for r in responses if r.status_code == 202}) == 50
    assert await support.balance(api, tenant) == {
        "available": 0,
        "held": 50 * PRICE,
        "captured": 0,
        "currency": "USD",
    }
    counts = await support.stored(conn)
    assert counts["messages"] == 50
    assert counts["ledger_message_entries"] == 50
    assert counts["procrastinate_jobs"] == 1
    cursor = await conn.execute("SELECT min(available) AS low FROM balances")
    assert (await cursor.fetchone())["low"] >= 0
    assert await support.violations(conn) == []


async def test_concurrent_sends_of_two_tenants_do_not_mix(api, admin_headers, conn):
    one = await support.make_tenant(api, admin_headers, credit=10 * PRICE, name="one")
    two = await support.make_tenant(api, admin_headers, credit=5 * PRICE, name="two")
    responses = await asyncio.gather(
        *(support.send(api, one) for _ in range(20)), *(support.send(api, two) for _ in range(20))
    )
    assert [r.status_code for r in responses[:20]].count(202) == 10
    assert [r.status_code for r in responses[20:]].count(202) == 5
    assert (await support.balance(api, one))["held"] == 10 * PRICE
    assert (await support.balance(api, two))["held"] == 5 * PRICE
    assert await queued_tenants(conn) == {one.id: "standard", two.id: "standard"}
    locks = [job["queueing_lock"] for job in await dispatch_jobs(conn)]
    assert locks == ["dispatch:tier:standard"]


async def test_one_waiting_turn_per_tier_whatever_the_volume(api, admin_headers, conn):
    tenant = await support.make_tenant(api, admin_headers, credit=10_000_000, tier="vip")
    assert await dispatch_jobs(conn) == []
    for _ in range(5):
        assert (await support.send(api, tenant)).status_code == 202
    batch = await api.post(
        "/v1/messages/batch",
        json={"messages": [{"to": VALID_TO, "body": str(i)} for i in range(20)]},
        headers=tenant.headers,
    )
    assert batch.status_code == 202
    await asyncio.gather(*(support.send(api, tenant) for _ in range(10)))
    jobs = await dispatch_jobs(conn)
    assert len(jobs) == 1, jobs
    job = jobs[0]
    assert job["queueing_lock"] == "dispatch:tier:vip"
    assert job["status"] == "todo"
    assert job["queue_name"] == "vip"
    assert await queued_tenants(conn) == {tenant.id: "vip"}
    assert (await support.stored(conn))["messages"] == 35


async def test_dispatch_job_queue_is_the_tenant_tier(api, admin_headers, conn):
    for tier in ("standard", "premium", "vip"):
        tenant = await support.make_tenant(api, admin_headers, credit=PRICE, tier=tier, name=tier)
        assert (await support.send(api, tenant)).status_code == 202
    queues = {job["queueing_lock"]: job["queue_name"] for job in await dispatch_jobs(conn)}
    assert sorted(queues.values()) == ["premium", "standard", "vip"]


async def test_a_scheduled_send_waits_and_a_due_send_brings_the_job_forward(
    api, admin_headers, conn
):
    tenant = await support.make_tenant(api, admin_headers, credit=10_000_000)
    send_at = datetime.now(UTC) + timedelta(days=1)
    scheduled = await support.send(api, tenant, send_at=send_at.isoformat())
    assert scheduled.status_code == 202
    [job] = await dispatch_jobs(conn)
    assert job["status"] == "todo"
    # Nothing is due before send_at: the job is not scheduled earlier than that.
    assert job["scheduled_at"] is not None
    assert job["scheduled_at"] >= send_at - timedelta(seconds=1)
    # A message due now: the same job, now due at once.
    assert (await support.send(api, tenant)).status_code == 202
    [job] = await dispatch_jobs(conn)
    assert job["scheduled_at"] is None or job["scheduled_at"] <= datetime.now(UTC)


async def test_nothing_is_enqueued_when_nothing_is_accepted(api, admin_headers, conn):
    poor = await support.make_tenant(api, admin_headers, credit=PRICE - 1)
    assert_problem(await support.send(api, poor), 402, "insufficient_credit")
    assert_problem(await support.send(api, poor, to="+1"), 422, "invalid_request")
    batch = await api.post(
        "/v1/messages/batch",
        json={"messages": [{"to": VALID_TO, "body": "x"}]},
        headers=poor.headers,
    )
    assert_problem(batch, 402, "insufficient_credit")
    assert await support.stored(conn) == support.NOTHING_STORED
    assert (await support.balance(api, poor))["available"] == PRICE - 1


async def test_every_accepted_message_is_held_once_at_its_price(api, tenant, conn):
    bodies = ["short", "a" * 161, "ж" * 71, "😀" * 100]
    for body in bodies:
        assert (await support.send(api, tenant, body=body)).status_code == 202
    cursor = await conn.execute(
        "SELECT m.segments, m.price, e.kind, e.amount FROM messages m"
        " JOIN ledger_message_entries e ON e.message_id = m.id ORDER BY m.created_at, m.id"
    )
    rows = await cursor.fetchall()
    assert [(r["segments"], r["kind"], r["amount"]) for r in rows] == [
        (1, "hold", PRICE),
        (2, "hold", 2 * PRICE),
        (2, "hold", 2 * PRICE),
        (4, "hold", 4 * PRICE),
    ]
    assert (await support.balance(api, tenant))["held"] == 9 * PRICE


async def test_a_send_that_loses_the_last_credit_to_a_concurrent_one_leaves_nothing(
    api, admin_headers, conn, pool
):
    """A single send looks at the balance unlocked and holds last: when
    another send takes the last credit in between, it is a 402 and its rows are undone."""
    tenant = await support.make_tenant(api, admin_headers, credit=PRICE)
    async with pool.connection() as first, first.transaction():
        # The first send holds the balance row (its accept is not committed yet).
        await first.execute("SELECT 1 FROM balances WHERE tenant_id = %s FOR UPDATE", (tenant.id,))
        second = asyncio.create_task(support.send(api, tenant))
        for _ in range(200):  # until the second send waits for the row
            cursor = await conn.execute(
                "SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            )
            if (await cursor.fetchone())["n"]:
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the second send never waited for the balance row")
        await first.execute(
            "SELECT accepted FROM smsgw_accept_one_v3(%s, NULL, 'standard', NULL, true,"
            " gen_random_uuid(), now(), 'queued', %s, NULL, 'first', 'GSM-7', 1::smallint,"
            " NULL, NULL, NULL, NULL, now() + interval '1 day', NULL, NULL, NULL, 'US', NULL,"
            " false, NULL, NULL)",
            (tenant.id, VALID_TO),
        )
    assert_problem(await second, 402, "insufficient_credit")
    counts = await support.stored(conn)
    assert counts["messages"] == 1
    assert counts["ledger_message_entries"] == 1
    assert (await support.balance(api, tenant))["held"] == PRICE
    assert await support.violations(conn) == []
