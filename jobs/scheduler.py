"""The accept side of dispatch: queued work reaches a tier's dispatch turn.

A tenant with scheduled or queued messages has a row in ``dispatch_queue``; each tier
has at most one waiting dispatch job (procrastinate queueing lock
``dispatch:tier:<tier>``, queue = the tier), and a turn serves many tenants. So most
accepts find their tenant queued and a turn waiting, insert nothing into
procrastinate_jobs and send no NOTIFY (DESIGN.md, "Throughput design"). The rule itself
is SQL (smsgw_queue_tenant_v1, smsgw_requeue_tenants_v1), applied by an
accept inside its single database call and by a dispatcher at the end of its claim.
"""

from __future__ import annotations

import uuid

from db import Conn
from db import dispatch as dispatch_db

DISPATCH_TASK = "smsgw.dispatch"


def tier_lock(tier: str) -> str:
    # Must match smsgw_ensure_tier_turn_v1.
    return f"dispatch:tier:{tier}"


class ProcrastinateScheduler:
    """The DispatchScheduler of core.accept: dispatch turns are DISPATCH_TASK jobs on
    the tier's queue."""

    task = DISPATCH_TASK


async def follow_tier(conn: Conn, *, tenant_id: uuid.UUID) -> None:
    """After a tier change, inside its transaction: the tenant's queued work moves to
    the new tier's turns now, not after a turn of the old tier."""
    await dispatch_db.requeue_tenants(
        conn, due_again={tenant_id: None}, task=DISPATCH_TASK, back_of_line=False
    )
