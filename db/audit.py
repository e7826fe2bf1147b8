"""The audit trail: one row per change of settings, never updated or deleted."""

from __future__ import annotations

import uuid
from datetime import datetime

from db import Conn, Row
from db.sql import Queries

_q = Queries("audit")


async def insert_event(
    conn: Conn,
    *,
    actor_kind: str,
    actor_id: str | None,
    address: str | None,
    tenant_id: uuid.UUID | None,
    action: str,
    target: str,
    before: str | None,
    after: str | None,
) -> Row:
    """``before`` and ``after`` are JSON text (already masked)."""
    row = await _q.one(
        conn,
        "insert_event",
        actor_kind=actor_kind,
        actor_id=actor_id,
        address=address,
        tenant_id=tenant_id,
        action=action,
        target=target,
        before=before,
        after=after,
    )
    assert row is not None
    return row


async def list_events(
    conn: Conn,
    *,
    tenant_id: uuid.UUID | None,
    from_: datetime | None,
    to: datetime | None,
    action: str | None,
    after_at: datetime | None,
    after_id: int | None,
    limit: int,
) -> list[Row]:
    return await _q.all(
        conn,
        "list_events",
        tenant_id=tenant_id,
        since=from_,
        until=to,
        action=action,
        after_at=after_at,
        after_id=after_id,
        limit=limit,
    )
