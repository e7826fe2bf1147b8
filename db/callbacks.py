"""The webhook outbox: status callbacks and inbound messages for tenants."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from db import Conn, Row
from db.sql import Queries, json_rows

_q = Queries("callbacks")


async def claim(conn: Conn, *, limit: int, lease_seconds: float) -> list[Row]:
    return await _q.all(conn, "claim", limit=limit, lease_seconds=lease_seconds)


async def finish(conn: Conn, *, attempts: Sequence[Mapping[str, Any]]) -> int:
    """Record attempts: each with id, created_at, outcome, status_code, error,
    next_attempt_at and latency_ms."""
    return await _q.run(conn, "finish", attempts=json_rows(attempts))


async def list_for_tenant(
    conn: Conn,
    *,
    tenant_id: uuid.UUID,
    before_created_at: datetime | None,
    before_id: uuid.UUID | None,
    limit: int,
) -> list[Row]:
    return await _q.all(
        conn,
        "list_for_tenant",
        tenant_id=tenant_id,
        before_created_at=before_created_at,
        before_id=before_id,
        limit=limit,
    )


async def enqueue(
    conn: Conn,
    *,
    tenant_id: uuid.UUID,
    message_id: uuid.UUID,
    url: str,
    payload: Mapping[str, Any],
    kind: str,
) -> None:
    await _q.run(
        conn,
        "enqueue",
        tenant_id=tenant_id,
        message_id=message_id,
        url=url,
        payload=Jsonb(dict(payload)),
        kind=kind,
    )
