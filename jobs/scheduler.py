"""The accept side of dispatch: make sure a tenant's queued messages have a job coming.

One waiting dispatch job per tenant, keyed by procrastinate's queueing lock, carries all
of that tenant's queued messages; so most accepts find the job already waiting, insert
nothing into procrastinate_jobs and send no NOTIFY (DESIGN.md, "Throughput design").
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import procrastinate
from procrastinate.exceptions import AlreadyEnqueued

from db import Conn
from db import jobs as jobs_db

DISPATCH_TASK = "smsgw.dispatch"


def queueing_lock(tenant_id: object) -> str:
    return f"dispatch:{tenant_id}"


class ProcrastinateScheduler:
    def __init__(self, app: procrastinate.App) -> None:
        self._task = app.tasks[DISPATCH_TASK]

    async def ensure(
        self, conn: Conn, *, tenant_id: uuid.UUID, tier: str, due_at: datetime
    ) -> None:
        await ensure_dispatch(conn, self._task, tenant_id=tenant_id, tier=tier, due_at=due_at)


async def ensure_dispatch(
    conn: Conn,
    task: procrastinate.tasks.Task,  # type: ignore[type-arg]
    *,
    tenant_id: object,
    tier: str,
    due_at: datetime,
) -> None:
    """A dispatch job for the tenant will run no later than ``due_at``.

    The caller holds the tenant's balance row lock (taken by the hold or the settle), so
    this check and the dispatcher's own "anything left?" check cannot interleave.
    """
    lock = queueing_lock(tenant_id)
    now = datetime.now(UTC)
    run_at = due_at if due_at > now else None
    waiting = await jobs_db.pending_job(conn, queueing_lock=lock)
    if waiting is not None:
        scheduled_at = waiting["scheduled_at"]
        if scheduled_at is not None and (run_at is None or scheduled_at > run_at):
            await jobs_db.bring_forward(conn, id=waiting["id"], scheduled_at=run_at)
        return
    try:
        # A savepoint: if another transaction enqueued the same lock meanwhile, only
        # the savepoint rolls back and the accept goes on.
        async with conn.transaction():
            await task.configure(
                connection=conn, queueing_lock=lock, queue=tier, schedule_at=run_at
            ).defer_async(tenant_id=str(tenant_id))
    except AlreadyEnqueued:
        pass
