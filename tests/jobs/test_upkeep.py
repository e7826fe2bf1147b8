"""Upkeep: the jobs of a dead worker do not stay `doing` forever."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core import delivery, webhook_policy
from core.dispatch import DispatchConfig
from jobs.app import create_app
from jobs.context import WorkerDeps
from jobs.scheduler import DISPATCH_TASK, ProcrastinateScheduler, tier_lock
from jobs.upkeep import recover_stalled_jobs
from jobs.upstreams import DatabaseUpstreams
from jobs.webhook_transport import webhook_client
from tests import support


async def _no_receipts(receipts):
    return None


async def test_stalled_jobs_of_a_dead_worker_are_recovered(api, conn, pool, settings, tenant):
    await support.send(api, tenant)  # leaves a waiting turn of the tenant's tier
    app = create_app()
    await app.open_async(pool)
    try:
        # A worker that stopped sending heartbeats an hour ago, with two running jobs:
        # the turn of the tenant's tier and an upkeep job.
        cursor = await conn.execute(
            "INSERT INTO procrastinate_workers (last_heartbeat) VALUES (%s) RETURNING id",
            (datetime.now(UTC) - timedelta(hours=1),),
        )
        worker_id = (await cursor.fetchone())["id"]
        await conn.execute(
            "UPDATE procrastinate_jobs SET status = 'doing', worker_id = %s"
            " WHERE queueing_lock = %s",
            (worker_id, tier_lock("standard")),
        )
        upkeep = await app.tasks["smsgw.ensure_partitions"].defer_async(timestamp=0)
        # A callbacks run of slot 1, and the next one already waiting under its lock.
        more = app.tasks["smsgw.deliver_more_callbacks"]
        slot = "callbacks:more:1"
        running = await more.configure(queueing_lock=slot, lock=slot).defer_async(slot=1)
        await conn.execute(
            "UPDATE procrastinate_jobs SET status = 'doing', worker_id = %s WHERE id = ANY(%s)",
            (worker_id, [upkeep, running]),
        )
        await more.configure(queueing_lock=slot, lock=slot).defer_async(slot=1)
        policy = webhook_policy.policy(settings.webhook_allowed_networks)
        async with webhook_client(policy) as http:
            deps = WorkerDeps(
                settings=settings,
                pool=pool,
                upstreams=DatabaseUpstreams(settings, sink=_no_receipts),
                scheduler=ProcrastinateScheduler(),
                dispatch=DispatchConfig(),
                http=http,
            )
            assert await recover_stalled_jobs(app, deps) == 3
    finally:
        await app.close_async()
    cursor = await conn.execute(
        "SELECT task_name, status FROM procrastinate_jobs ORDER BY task_name"
    )
    jobs = [(row["task_name"], row["status"]) for row in await cursor.fetchall()]
    # The upkeep job runs again; the dead turn is gone and a new one waits, so the
    # tenant's queued message will still be sent; so is the dead callbacks run, whose
    # successor waits (a retry would have made two waiting under one queueing lock).
    assert jobs == [
        ("smsgw.deliver_more_callbacks", "todo"),
        ("smsgw.dispatch", "todo"),
        ("smsgw.ensure_partitions", "todo"),
    ]


async def test_a_tier_whose_turn_died_with_its_worker_gets_a_new_one(api, conn, pool, tenant):
    """The safety net does not wait for the stalled-job recovery (a minute after the
    crash) when a tier's only turn was running in a worker that stopped beating."""
    await support.send(api, tenant)  # queues the tenant and a turn of its tier
    cursor = await conn.execute(
        "INSERT INTO procrastinate_workers (last_heartbeat) VALUES (%s), (now()) RETURNING id",
        (datetime.now(UTC) - timedelta(seconds=45),),
    )
    dead, alive = [row["id"] for row in await cursor.fetchall()]
    turn = "UPDATE procrastinate_jobs SET status = 'doing', worker_id = %s WHERE queueing_lock = %s"
    # Running in a live worker: that turn will recount the tier; nothing to do.
    await conn.execute(turn, (alive, tier_lock("standard")))
    assert await delivery.wake_stranded(pool, task=DISPATCH_TASK) == 0
    # Running in a worker silent for 45 s: a new turn is queued beside it.
    await conn.execute(turn, (dead, tier_lock("standard")))
    assert await delivery.wake_stranded(pool, task=DISPATCH_TASK) == 1
    cursor = await conn.execute(
        "SELECT status, worker_id FROM procrastinate_jobs WHERE queueing_lock = %s ORDER BY id",
        (tier_lock("standard"),),
    )
    assert [(r["status"], r["worker_id"]) for r in await cursor.fetchall()] == [
        ("doing", dead),
        ("todo", None),
    ]
    assert await support.violations(conn) == []
