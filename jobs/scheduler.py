"""The accept side of dispatch: make sure a tenant's queued messages have a job coming.

One waiting dispatch job per tenant, keyed by procrastinate's queueing lock, carries all
of that tenant's queued messages; so most accepts find the job already waiting, insert
nothing into procrastinate_jobs and send no NOTIFY (DESIGN.md, "Throughput design").
The rule itself is SQL (smsgw_ensure_dispatch_v1), so an accept applies it inside its
single database call and a dispatcher applies the same one.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from db import Conn
from db import jobs as jobs_db

DISPATCH_TASK = "smsgw.dispatch"


def queueing_lock(tenant_id: object) -> str:
    # Must match smsgw_ensure_dispatch_v1 and the queries that look the job up.
    return f"dispatch:{tenant_id}"


class ProcrastinateScheduler:
    """The DispatchScheduler of core.accept: dispatch turns are DISPATCH_TASK jobs on
    the tenant's tier queue."""

    task = DISPATCH_TASK

    async def ensure(
        self, conn: Conn, *, tenant_id: uuid.UUID, tier: str, due_at: datetime
    ) -> None:
        await jobs_db.ensure_dispatch(
            conn, tenant_id=tenant_id, queue=tier, task=self.task, due=due_at
        )


async def follow_tier(conn: Conn, *, tenant_id: uuid.UUID, tier: str) -> None:
    """After a tier change: the tenant's waiting dispatch job moves to the new tier's
    queue, so the change takes effect now, not after the turn already queued."""
    await jobs_db.move_waiting_job(conn, queueing_lock=queueing_lock(tenant_id), queue=tier)
