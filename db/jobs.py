"""The dispatch-job rule (smsgw_ensure_dispatch_v1) and a nudge procrastinate has no API for."""

from __future__ import annotations

import uuid
from datetime import datetime

from db import Conn
from db.sql import Queries

_q = Queries("jobs")


async def ensure_dispatch(
    conn: Conn, *, tenant_id: uuid.UUID, queue: str, task: str, due: datetime
) -> str:
    """What it took: waiting (a job was there), brought_forward, deferred or raced."""
    row = await _q.one(
        conn, "ensure_dispatch", tenant_id=tenant_id, queue=queue, task=task, due=due
    )
    assert row is not None
    return str(row["action"])


async def move_waiting_job(conn: Conn, *, queueing_lock: str, queue: str) -> bool:
    return (
        await _q.one(conn, "move_waiting_job", queueing_lock=queueing_lock, queue=queue) is not None
    )
