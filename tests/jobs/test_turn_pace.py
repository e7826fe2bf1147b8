"""Turn pacing: while a tier's turns come back small, its next turn starts a gap after
the last claim, so it carries what arrived meanwhile. The turn waits as a scheduled job,
which any worker takes when it is due: no running job sleeps, so a worker killed
meanwhile strands nothing. A quiet tier, and a tier whose turns are full, do not wait."""

from __future__ import annotations

from datetime import datetime

from core import delivery
from core.dispatch import DispatchConfig
from jobs.scheduler import DISPATCH_TASK
from tests import support, workers

GAP_MS = 1000
GAP = GAP_MS / 1000

SENDING_AT = (
    "SELECT m.created_at AS accepted, e.at AS sending FROM messages m"
    " JOIN message_events e ON e.message_id = m.id AND e.status = 'sending'"
    " WHERE m.id = %s"
)
TIER_JOBS = (
    "SELECT status, scheduled_at, scheduled_at > now() AS later FROM procrastinate_jobs"
    " WHERE queueing_lock = 'dispatch:tier:standard' AND status IN ('todo', 'doing')"
)


async def _sending(conn, message_id: str) -> dict[str, datetime] | None:
    cursor = await conn.execute(SENDING_AT, (message_id,))
    return await cursor.fetchone()


async def _send(api, tenant) -> str:
    response = await support.send(api, tenant)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


async def test_a_small_turn_spaces_the_next_one_which_waits_as_a_scheduled_job(
    api, conn, settings, admin_headers
):
    first = await support.make_tenant(api, admin_headers, credit=10_000_000, name="first")
    second = await support.make_tenant(api, admin_headers, credit=10_000_000, name="second")
    async with workers.in_process(settings, dispatch_turn_gap_ms=GAP_MS):
        # A quiet tier: the first message goes at once, in a turn of one tenant.
        one = await _send(api, first)
        one_at = await workers.eventually(lambda: _sending(conn, one))
        assert (one_at["sending"] - one_at["accepted"]).total_seconds() < GAP / 2

        # A tenant new to the queue right after that turn: its accept queues the tier's
        # next turn for the gap's end, and nothing runs until then.
        await workers.eventually(lambda: _no_turn_running(conn))
        two = await _send(api, second)
        cursor = await conn.execute(TIER_JOBS)
        waiting = await cursor.fetchall()
        assert [(job["status"], job["later"]) for job in waiting] == [("todo", True)]
        two_at = await workers.eventually(lambda: _sending(conn, two))
        # A gap after the first turn claimed (a little before its `sending` event), and
        # no later than the gap plus a worker's poll (half the gap) and some slack.
        waited = (two_at["sending"] - one_at["sending"]).total_seconds()
        assert GAP - 0.2 <= waited <= GAP * 1.5 + 0.3

        # The tier then stays quiet for longer than the gap: the next message goes at once.
        await workers.eventually(lambda: _tier_quiet_since(conn, two_at["sending"]))
        three = await _send(api, first)
        three_at = await workers.eventually(lambda: _sending(conn, three))
        assert (three_at["sending"] - three_at["accepted"]).total_seconds() < GAP / 2
    assert await support.violations(conn) == []


async def _no_turn_running(conn) -> bool:
    cursor = await conn.execute(TIER_JOBS)
    return all(job["status"] != "doing" for job in await cursor.fetchall())


async def _tier_quiet_since(conn, since: datetime) -> bool:
    cursor = await conn.execute(
        "SELECT now() - %s::timestamptz > make_interval(secs => %s) AS quiet", (since, GAP * 1.1)
    )
    return bool((await cursor.fetchone())["quiet"])


async def test_full_turns_are_not_spaced_and_tenants_beyond_a_turn_get_the_next(
    api, conn, settings, admin_headers
):
    tenants = [
        await support.make_tenant(api, admin_headers, credit=10_000_000, name=f"t{i}")
        for i in range(3)
    ]
    ids = [await _send(api, tenant) for tenant in tenants]
    # A turn serves one tenant: each turn is full, and the next one starts at once. (Each
    # turn drains its tenant, and still queues the next for the tenants left waiting.)
    async with workers.in_process(
        settings, dispatch_turn_gap_ms=GAP_MS, dispatch_tenants_per_turn=1
    ):
        times = [await workers.eventually(lambda i=i: _sending(conn, i)) for i in ids]
    sending = sorted(t["sending"] for t in times)
    assert (sending[-1] - sending[0]).total_seconds() < GAP


async def test_a_turn_that_finds_nobody_due_queues_the_next_for_the_earliest_due(
    api, conn, pool, tenant
):
    sent = await support.send(api, tenant)
    assert sent.status_code == 202, sent.text
    # The tenant is due only later (a retry's backoff, say), and the turn queued for it
    # earlier runs now: it finds nobody due.
    await conn.execute("UPDATE dispatch_queue SET due_at = now() + interval '30 seconds'")
    await conn.execute("DELETE FROM procrastinate_jobs")
    report = await delivery.dispatch_turn(
        pool, tier="standard", upstreams=None, task=DISPATCH_TASK, config=DispatchConfig()
    )
    assert report.tenants == 0
    cursor = await conn.execute(
        "SELECT j.status, j.scheduled_at = q.due_at AS at_due FROM procrastinate_jobs j,"
        " dispatch_queue q WHERE j.queueing_lock = 'dispatch:tier:standard'"
    )
    assert [(job["status"], job["at_due"]) for job in await cursor.fetchall()] == [("todo", True)]
