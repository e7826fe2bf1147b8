"""Idempotency keys: the first 202 answer per (tenant, key)."""

from __future__ import annotations

import uuid

from psycopg.types.json import Jsonb

from db import Conn, Row
from db.sql import Queries

_q = Queries("idempotency")


async def claim_key(
    conn: Conn,
    *,
    tenant_id: uuid.UUID,
    key: str,
    request_sha256: bytes,
    response: object,
    ttl_seconds: int,
) -> bool:
    """Store the answer under ``key``; False when a live entry already holds the key."""
    row = await _q.one(
        conn,
        "claim_key",
        tenant_id=tenant_id,
        key=key,
        request_sha256=request_sha256,
        response=Jsonb(response),
        ttl_seconds=ttl_seconds,
    )
    return row is not None


async def set_response(conn: Conn, *, tenant_id: uuid.UUID, key: str, response: object) -> None:
    """Replace the stored answer of a key claimed in this transaction."""
    await _q.run(conn, "set_response", tenant_id=tenant_id, key=key, response=Jsonb(response))


async def get_key(conn: Conn, *, tenant_id: uuid.UUID, key: str) -> Row | None:
    return await _q.one(conn, "get_key", tenant_id=tenant_id, key=key)


async def purge_keys(conn: Conn, *, ttl_seconds: int) -> int:
    return await _q.run(conn, "purge_keys", ttl_seconds=ttl_seconds)
