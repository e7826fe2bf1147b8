"""The status-callback outbox."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from psycopg.types.json import Jsonb

from db import Conn, Row
from db.sql import Queries

_q = Queries("callbacks")


async def claim(conn: Conn, *, limit: int, lease_seconds: float) -> list[Row]:
    return await _q.all(conn, "claim", limit=limit, lease_seconds=lease_seconds)


async def finish(conn: Conn, *, results: Mapping[str, Any]) -> int:
    return await _q.run(conn, "finish", **results)


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
