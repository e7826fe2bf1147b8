"""Runs a procrastinate worker with the gateway's dependencies."""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from core.settings import Settings
from db.pool import open_pool
from jobs.app import MAINTENANCE_QUEUE, QUEUES, create_app
from jobs.context import WorkerDeps

log = structlog.get_logger("smsgw.worker")


async def run_worker(
    settings: Settings,
    *,
    queues: Sequence[str] = (*QUEUES, MAINTENANCE_QUEUE),
    name: str = "worker",
    install_signal_handlers: bool = True,
) -> None:
    """Work ``queues`` until SIGINT/SIGTERM; in-flight jobs finish before it returns."""
    pool = await open_pool(
        settings.database_url,
        min_size=1,
        max_size=settings.worker_concurrency + 4,
        name=f"smsgw-{name}",
    )
    app = create_app()
    try:
        await app.open_async(pool)
        deps = WorkerDeps(settings=settings, pool=pool)
        log.info("worker.started", queues=list(queues), concurrency=settings.worker_concurrency)
        await app.run_worker_async(
            queues=list(queues),
            name=name,
            concurrency=settings.worker_concurrency,
            additional_context={"deps": deps},
            install_signal_handlers=install_signal_handlers,
            # Finished jobs are deleted: the messages table, not procrastinate's, is
            # the record of what was sent.
            delete_jobs="successful",
            fetch_job_polling_interval=1.0,
        )
    finally:
        await app.close_async()
        await pool.close()
        log.info("worker.stopped")
