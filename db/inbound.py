"""Inbound messages: parts waiting for their siblings, whole messages, and the ids of
those already taken."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from db import Conn, Row
from db.sql import Queries

_q = Queries("inbound")


async def mark_seen(conn: Conn, *, provider: str, provider_message_id: str) -> bool:
    """True the first time; False for a message id this provider already gave us."""
    row = await _q.one(
        conn, "mark_seen", provider=provider, provider_message_id=provider_message_id
    )
    return row is not None


async def purge_seen(conn: Conn, *, seconds: int) -> int:
    return await _q.run(conn, "purge_seen", seconds=seconds)


async def lock_group(conn: Conn, *, key: str) -> None:
    await _q.run(conn, "lock_group", key=key)


async def insert_part(conn: Conn, **part: Any) -> None:
    await _q.run(conn, "insert_part", **part)


async def group_parts(
    conn: Conn,
    *,
    tenant_id: uuid.UUID,
    provider: str,
    from_number: str,
    to_number: str,
    reference: int,
    total: int,
) -> list[Row]:
    return await _q.all(
        conn,
        "group_parts",
        tenant_id=tenant_id,
        provider=provider,
        from_number=from_number,
        to_number=to_number,
        reference=reference,
        total=total,
    )


async def delete_parts(conn: Conn, *, ids: Sequence[int]) -> None:
    await _q.run(conn, "delete_parts", ids=list(ids))


async def stale_groups(conn: Conn, *, seconds: float, limit: int) -> list[Row]:
    return await _q.all(conn, "stale_groups", seconds=seconds, limit=limit)


async def insert_message(conn: Conn, **message: Any) -> None:
    await _q.run(conn, "insert_message", **message)


async def get_message(
    conn: Conn, *, tenant_id: uuid.UUID, id: uuid.UUID, received_at: datetime
) -> Row | None:
    return await _q.one(conn, "get_message", tenant_id=tenant_id, id=id, received_at=received_at)


async def list_messages(
    conn: Conn,
    *,
    tenant_id: uuid.UUID,
    to_number: str | None,
    created_after: datetime | None,
    created_before: datetime | None,
    before_created_at: datetime | None,
    before_id: uuid.UUID | None,
    limit: int,
) -> list[Row]:
    return await _q.all(
        conn,
        "list_messages",
        tenant_id=tenant_id,
        to_number=to_number,
        created_after=created_after,
        created_before=created_before,
        before_created_at=before_created_at,
        before_id=before_id,
        limit=limit,
    )
