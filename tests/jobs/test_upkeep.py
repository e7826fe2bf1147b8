"""Upkeep: the jobs of a dead worker do not stay `doing` forever."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from core.dispatch import DispatchConfig
from jobs.app import create_app
from jobs.context import WorkerDeps
from jobs.scheduler import ProcrastinateScheduler, tier_lock
from jobs.upkeep import recover_stalled_jobs
from jobs.upstreams import DatabaseUpstreams
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
        await conn.execute(
            "UPDATE procrastinate_jobs SET status = 'doing', worker_id = %s WHERE id = %s",
            (worker_id, upkeep),
        )
        async with httpx.AsyncClient() as http:
            deps = WorkerDeps(
                settings=settings,
                pool=pool,
                upstreams=DatabaseUpstreams(settings, sink=_no_receipts),
                scheduler=ProcrastinateScheduler(),
                dispatch=DispatchConfig(),
                http=http,
            )
            assert await recover_stalled_jobs(app, deps) == 2
    finally:
        await app.close_async()
    cursor = await conn.execute(
        "SELECT task_name, status FROM procrastinate_jobs ORDER BY task_name"
    )
    jobs = [(row["task_name"], row["status"]) for row in await cursor.fetchall()]
    # The upkeep job runs again; the dead turn is gone and a new one waits, so the
    # tenant's queued message will still be sent.
    assert jobs == [("smsgw.dispatch", "todo"), ("smsgw.ensure_partitions", "todo")]
