"""Periodic upkeep: partitions ahead of time, expired idempotency keys."""

from __future__ import annotations

import procrastinate

from db import idempotency as idempotency_db
from db import partitions as partitions_db
from jobs.context import deps_of


def register(app: procrastinate.App, *, queue: str) -> None:
    @app.periodic(cron="*/10 * * * *", periodic_id="partitions")
    @app.task(name="smsgw.ensure_partitions", queue=queue, pass_context=True)
    async def ensure_partitions(context: procrastinate.JobContext, timestamp: int) -> None:
        deps = deps_of(context)
        async with deps.pool.connection() as conn:
            await partitions_db.ensure_partitions(
                conn, days_ahead=deps.settings.partitions_ahead_days
            )

    @app.periodic(cron="*/5 * * * *", periodic_id="idempotency")
    @app.task(name="smsgw.purge_idempotency_keys", queue=queue, pass_context=True)
    async def purge_idempotency_keys(context: procrastinate.JobContext, timestamp: int) -> None:
        deps = deps_of(context)
        async with deps.pool.connection() as conn:
            await idempotency_db.purge_keys(conn, ttl_seconds=deps.settings.idempotency_ttl_seconds)

    _ = (ensure_partitions, purge_idempotency_keys)
