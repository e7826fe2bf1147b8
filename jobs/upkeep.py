"""Periodic upkeep on the maintenance queue: partitions ahead of time, expired
idempotency keys, lapsed claims, stalled jobs, the dispatch safety net, long inbound
messages whose missing parts never came, pumping protection, tenants' alerts and the
index of the search by recipient."""

from __future__ import annotations

import procrastinate
import structlog
from procrastinate import jobs as procrastinate_jobs

from core import (
    alerts,
    console,
    deliverability,
    delivery,
    inbound,
    pumping,
    recipient_index,
    rollups,
)
from db import auth as auth_db
from db import idempotency as idempotency_db
from db import inbound as inbound_db
from db import partitions as partitions_db
from jobs import callbacks
from jobs.context import WorkerDeps, deps_of
from jobs.scheduler import DISPATCH_TASK

log = structlog.get_logger("smsgw.upkeep")

# A worker whose heartbeat is this old is gone; its running jobs are stalled.
STALLED_AFTER = 60.0
# How long an inbound message's provider id is remembered against repeats.
INBOUND_SEEN_SECONDS = 7 * 24 * 3600


# Closed, not retried, when their worker dies: another may already wait under the same
# queueing lock, and a retry would be a second waiting job under it (the lock's unique
# index refuses that, and the whole recovery with it). A dispatch turn's messages come
# back through lease recovery; a callbacks run's through their leases, and the next full
# batch asks for the run again.
CLOSED_WHEN_STALLED = frozenset({DISPATCH_TASK, callbacks.MORE_TASK})


async def recover_stalled_jobs(
    app: procrastinate.App, deps: WorkerDeps, *, seconds_since_heartbeat: float = STALLED_AFTER
) -> int:
    """Jobs of a worker that died (no heartbeat) are retried, but for those
    CLOSED_WHEN_STALLED; after a dispatch turn, the safety net is run."""
    manager = app.job_manager
    stalled = list(await manager.get_stalled_jobs(seconds_since_heartbeat=seconds_since_heartbeat))
    for job in stalled:
        assert job.id is not None
        if job.task_name in CLOSED_WHEN_STALLED:
            await manager.finish_job_by_id_async(
                job_id=job.id, status=procrastinate_jobs.Status.FAILED, delete_job=True
            )
        else:
            await manager.retry_job(job)
        log.warning("jobs.stalled_job_recovered", job_id=job.id, task=job.task_name)
    if any(job.task_name == DISPATCH_TASK for job in stalled):
        await delivery.wake_stranded(deps.pool, task=deps.scheduler.task)
    return len(stalled)


def register(app: procrastinate.App, *, queue: str) -> None:
    @app.periodic(cron="*/10 * * * *", periodic_id="partitions")
    @app.task(name="smsgw.ensure_partitions", queue=queue, pass_context=True)
    async def ensure_partitions(context: procrastinate.JobContext, timestamp: int) -> None:
        deps = deps_of(context)
        async with deps.pool.connection() as conn, conn.transaction():
            created = await partitions_db.ensure_partitions(
                conn, days_ahead=deps.settings.partitions_ahead_days
            )
        if created:
            log.info("partitions.created", partitions=created)

    @app.periodic(cron="17 * * * *", periodic_id="retention")
    @app.task(name="smsgw.drop_old_partitions", queue=queue, pass_context=True)
    async def drop_old_partitions(context: procrastinate.JobContext, timestamp: int) -> None:
        deps = deps_of(context)
        # Every closed hour is folded before its raw messages can go.
        await rollups.fold_due(deps.pool, deps.settings)
        await rollups.drop_old(deps.pool, deps.settings)
        async with deps.pool.connection() as conn, conn.transaction():
            days = await partitions_db.drop_partitions(
                conn, retention_days=deps.settings.retention_days
            )
        for day in days:
            event = "partitions.dropped" if day["dropped"] else "partitions.kept"
            log.info(event, day=str(day["day"]), detail=day["detail"])
        # Failed jobs are kept three days for inspection, then removed (successful ones
        # are deleted as they finish).
        await context.app.job_manager.delete_old_jobs(nb_hours=72, include_failed=True)

    # Every 20 s (off the other jobs' whole seconds): the closed hours that are due (an
    # hour just closed among them, at once), then the hour in progress up to a mark
    # SMSGW_ROLLUP_OPEN_LAG_SECONDS behind the clock in whole SMSGW_ROLLUP_OPEN_STEP_SECONDS,
    # so that reports read a minute or two of raw messages. The open hour waits while
    # closed hours are left to fold.
    @app.periodic(cron="* * * * * 2-59/20", periodic_id="rollups")
    @app.task(name="smsgw.fold_rollups", queue=queue, pass_context=True)
    async def fold_rollups(context: procrastinate.JobContext, timestamp: int) -> None:
        deps = deps_of(context)
        if await rollups.fold_due(deps.pool, deps.settings) < rollups.HOURS_PER_RUN:
            await rollups.fold_open(deps.pool, deps.settings)

    @app.periodic(cron="*/15 * * * *", periodic_id="deliverability")
    @app.task(name="smsgw.judge_deliverability", queue=queue, pass_context=True)
    async def judge_deliverability(context: procrastinate.JobContext, timestamp: int) -> None:
        deps = deps_of(context)
        await deliverability.evaluate(deps.pool, deps.settings)

    @app.periodic(cron="*/5 * * * *", periodic_id="idempotency")
    @app.task(name="smsgw.purge_idempotency_keys", queue=queue, pass_context=True)
    async def purge_idempotency_keys(context: procrastinate.JobContext, timestamp: int) -> None:
        deps = deps_of(context)
        async with deps.pool.connection() as conn:
            keys = await idempotency_db.purge_keys(
                conn, ttl_seconds=deps.settings.idempotency_ttl_seconds
            )
            # Providers retry an inbound webhook for hours, not a week.
            seen = await inbound_db.purge_seen(conn, seconds=INBOUND_SEEN_SECONDS)
            failures = await auth_db.purge_failures(
                conn, window_seconds=deps.settings.auth_failures_window_seconds
            )
            sessions = await console.purge_expired(conn)
        if keys or seen or failures or sessions:
            log.info(
                "upkeep.purged",
                idempotency_keys=keys,
                inbound_seen=seen,
                auth_failures=failures,
                console_sessions_and_links=sessions,
            )

    @app.periodic(cron="* * * * * */5", periodic_id="inbound-parts")
    @app.task(name="smsgw.flush_inbound_parts", queue=queue, pass_context=True)
    async def flush_inbound_parts(context: procrastinate.JobContext, timestamp: int) -> None:
        deps = deps_of(context)
        await inbound.flush_stale(
            deps.pool,
            older_than_seconds=deps.settings.inbound_parts_timeout_seconds,
            scheduler=deps.scheduler,
        )

    @app.periodic(cron="* * * * * */5", periodic_id="leases")
    @app.task(name="smsgw.recover_leases", queue=queue, pass_context=True)
    async def recover_leases(context: procrastinate.JobContext, timestamp: int) -> None:
        deps = deps_of(context)
        await delivery.recover_leases(deps.pool, task=deps.scheduler.task)

    @app.periodic(cron="* * * * * */10", periodic_id="safety-net")
    @app.task(name="smsgw.wake_stranded_tenants", queue=queue, pass_context=True)
    async def wake_stranded_tenants(context: procrastinate.JobContext, timestamp: int) -> None:
        deps = deps_of(context)
        await delivery.wake_stranded(deps.pool, task=deps.scheduler.task)

    @app.periodic(cron="* * * * * */15", periodic_id="stalled-jobs")
    @app.task(name="smsgw.retry_stalled_jobs", queue=queue, pass_context=True)
    async def retry_stalled_jobs(context: procrastinate.JobContext, timestamp: int) -> None:
        await recover_stalled_jobs(context.app, deps_of(context))

    # Off the whole seconds where the other periodic jobs start (7, 17, ... and 23, 53).
    @app.periodic(cron="* * * * * 7-59/10", periodic_id="pumping")
    @app.task(name="smsgw.watch_pumping", queue=queue, pass_context=True)
    async def watch_pumping(context: procrastinate.JobContext, timestamp: int) -> None:
        # Suspends destinations over their hourly limit, ends cooled-off suspensions,
        # holds back queued messages of suspended ones (core/pumping.py).
        deps = deps_of(context)
        await pumping.watch(deps.pool, deps.settings, task=deps.scheduler.task)

    @app.periodic(cron="* * * * * 23-59/30", periodic_id="alerts")
    @app.task(name="smsgw.check_alerts", queue=queue, pass_context=True)
    async def check_alerts(context: procrastinate.JobContext, timestamp: int) -> None:
        # balance.low and spend.threshold crossings, once each (core/alerts.py).
        await alerts.check_crossings(deps_of(context).pool)

    @app.periodic(cron="* * * * * 41", periodic_id="recipient-index")
    @app.task(name="smsgw.index_recipients", queue=queue, pass_context=True)
    async def index_recipients(context: procrastinate.JobContext, timestamp: int) -> None:
        # The search by recipient's index, a minute at a time (core/recipient_index.py).
        await recipient_index.index_closed_minutes(deps_of(context).pool)

    del watch_pumping, check_alerts, index_recipients
    del ensure_partitions, drop_old_partitions, fold_rollups, purge_idempotency_keys, recover_leases
    del wake_stranded_tenants, retry_stalled_jobs, flush_inbound_parts, judge_deliverability
