"""Runs a procrastinate worker with the gateway's dependencies."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Coroutine, Sequence
from typing import Any

import psycopg
import psycopg_pool
import structlog
from procrastinate.exceptions import ConnectorException

from core import inbound, receipts, webhook_policy
from core.dispatch import BreakerConfig, DispatchConfig
from core.retry import Backoff
from core.settings import Settings
from db.pool import open_pool
from jobs.app import QUEUES, TIER_QUEUES, create_app
from jobs.context import WorkerDeps
from jobs.scheduler import ProcrastinateScheduler
from jobs.upstreams import DatabaseUpstreams
from jobs.webhook_transport import webhook_client

log = structlog.get_logger("smsgw.worker")


def polling_interval(settings: Settings) -> float:
    """How long an idle worker waits before it looks for jobs that came due. A paced
    dispatch turn is a job scheduled a turn gap ahead, and its insert's NOTIFY woke the
    workers before it was due: half a gap keeps the turn's start within that of its
    time. A retry's turn comes due the same way, within a second."""
    if settings.dispatch_turn_gap_ms <= 0:
        return 1.0
    return min(1.0, max(0.05, settings.dispatch_turn_gap_ms / 2000))


def dispatch_config(settings: Settings) -> DispatchConfig:
    return DispatchConfig(
        batch_size=settings.dispatch_batch_size,
        tenants_per_turn=settings.dispatch_tenants_per_turn,
        lease_seconds=settings.lease_seconds,
        turn_gap_seconds=settings.dispatch_turn_gap_ms / 1000,
        backoff=Backoff(
            base_seconds=settings.retry_base_seconds,
            cap_seconds=settings.retry_cap_seconds,
            jitter=settings.retry_jitter,
        ),
        breaker=BreakerConfig(
            window_seconds=settings.breaker_window_seconds,
            min_requests=settings.breaker_min_requests,
            error_rate=settings.breaker_error_rate,
            cooldown_seconds=settings.breaker_cooldown_seconds,
            probes=settings.breaker_probes,
        ),
    )


async def run_worker(
    settings: Settings,
    *,
    queues: Sequence[str] = QUEUES,
    name: str = "worker",
    install_signal_handlers: bool = True,
) -> None:
    """Work ``queues`` until SIGINT/SIGTERM. On either signal, jobs already running
    (a dispatch turn mid-batch included) finish and settle before it returns."""
    pool = await open_pool(
        settings.database_url,
        min_size=1,
        max_size=settings.worker_concurrency * 2 + 4,
        name=f"smsgw-{name}",
        prepared_statements=settings.db_prepared_statements,
    )
    # LISTEN on the database itself: through a transaction-mode pooler it would hear
    # nothing (jobs would still be fetched, at the polling interval).
    app = create_app(listen_conninfo=settings.direct_url)
    scheduler = ProcrastinateScheduler()
    upstreams = DatabaseUpstreams(
        settings, receipts.sink_for(pool), inbound=inbound.sink_for(pool, scheduler)
    )
    http = webhook_client(webhook_policy.policy(settings.webhook_allowed_networks))
    keeper: asyncio.Task[None] | None = None
    try:
        await app.open_async(pool)
        deps = WorkerDeps(
            settings=settings,
            pool=pool,
            upstreams=upstreams,
            scheduler=scheduler,
            dispatch=dispatch_config(settings),
            http=http,
        )
        log.info("worker.started", queues=list(queues), concurrency=settings.worker_concurrency)
        if set(queues) & set(TIER_QUEUES):
            # A worker that sends keeps its upstreams (SMPP binds) up from the start.
            keeper = asyncio.create_task(upstreams.keep_current(pool), name="upstreams")
        # Signals are ours, not procrastinate's: it also stops its worker by itself when
        # a side task (the LISTEN connection, the heartbeat) loses the database, and
        # returns as after a signal; only a signal may end the process.
        stop_requested = asyncio.Event()
        if install_signal_handlers:
            loop = asyncio.get_running_loop()

            def on_signal() -> None:
                # The first signal stops gracefully; a second one gets the default
                # action (as with procrastinate's own handlers).
                for signum in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(signum)
                stop_requested.set()

            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, on_signal)
        while not stop_requested.is_set():
            try:
                await _run_until_stopped(
                    app.run_worker_async(
                        queues=list(queues),
                        name=name,
                        concurrency=settings.worker_concurrency,
                        additional_context={"deps": deps},
                        install_signal_handlers=False,
                        # Finished jobs are deleted: the messages table, not
                        # procrastinate's, is the record of what was sent.
                        delete_jobs="successful",
                        fetch_job_polling_interval=polling_interval(settings),
                    ),
                    stop_requested,
                )
                if stop_requested.is_set():
                    break
                log.warning("worker.loop_stopped", detail="procrastinate stopped; starting again")
            except ConnectorException as exc:
                # procrastinate stops its worker when the database cannot be reached;
                # a primary failover takes tens of seconds. Start again once it answers
                # (running jobs were settled or left to their leases).
                if not isinstance(
                    exc.__cause__, psycopg.OperationalError | psycopg_pool.PoolTimeout
                ):
                    raise
                log.warning("worker.database_lost", error=type(exc.__cause__).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop_requested.wait(), timeout=1.0)
    finally:
        if keeper is not None:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
        await app.close_async()
        await upstreams.close()
        await http.close()
        await pool.close()
        log.info("worker.stopped")


async def _run_until_stopped(run: Coroutine[Any, Any, None], stop_requested: asyncio.Event) -> None:
    """Runs procrastinate's worker until it returns or ``stop_requested`` is set; then it
    is cancelled, which procrastinate takes as a graceful stop: running jobs finish and
    settle first. Cancelling the caller stops it the same way."""
    worker = asyncio.create_task(run, name="procrastinate worker")
    stop = asyncio.create_task(stop_requested.wait())
    try:
        await asyncio.wait({worker, stop}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
        raise
    finally:
        stop.cancel()
    if not worker.done():
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
        return
    await worker
