"""Tenants and their API keys."""

from __future__ import annotations

import uuid
from datetime import time

from db import Conn, Row
from db.sql import Queries

_q = Queries("tenants")


async def insert_tenant(
    conn: Conn,
    *,
    id: uuid.UUID,
    name: str,
    tier: str,
    rate_limit_mps: int | None,
    price_per_segment: int,
    currency: str,
    webhook_secret: str,
) -> Row:
    row = await _q.one(
        conn,
        "insert_tenant",
        id=id,
        name=name,
        tier=tier,
        rate_limit_mps=rate_limit_mps,
        price_per_segment=price_per_segment,
        currency=currency,
        webhook_secret=webhook_secret,
    )
    assert row is not None
    await _q.run(conn, "insert_balance", tenant_id=id)
    return row


async def get_tenant(conn: Conn, *, id: uuid.UUID) -> Row | None:
    return await _q.one(conn, "get_tenant", id=id)


async def insert_api_key(
    conn: Conn, *, id: uuid.UUID, tenant_id: uuid.UUID, prefix: str, secret_sha256: bytes
) -> Row:
    row = await _q.one(
        conn,
        "insert_api_key",
        id=id,
        tenant_id=tenant_id,
        prefix=prefix,
        secret_sha256=secret_sha256,
    )
    assert row is not None
    return row


async def revoke_api_key(conn: Conn, *, id: uuid.UUID) -> Row | None:
    """The key (id, tenant_id, revoked_at) when a live key was revoked now."""
    return await _q.one(conn, "revoke_api_key", id=id)


async def lock_tenant(conn: Conn, *, id: uuid.UUID) -> None:
    await _q.run(conn, "lock_tenant", id=id)


async def api_key_exists(conn: Conn, *, id: uuid.UUID) -> bool:
    return await _q.one(conn, "api_key_exists", id=id) is not None


async def find_api_key(conn: Conn, *, prefix: str) -> Row | None:
    return await _q.one(conn, "find_api_key", prefix=prefix)


async def update_tenant(
    conn: Conn,
    *,
    id: uuid.UUID,
    tier: str | None,
    set_rate: bool,
    rate_limit_mps: int | None,
    price_per_segment: int | None,
    set_inbound_url: bool = False,
    inbound_url: str | None = None,
    set_help_reply: bool = False,
    help_reply: str | None = None,
    inbound_format: str | None = None,
    smart_encoding: bool | None = None,
    set_quiet_hours: bool = False,
    quiet_hours_start: time | None = None,
    quiet_hours_end: time | None = None,
) -> bool:
    row = await _q.one(
        conn,
        "update_tenant",
        id=id,
        tier=tier,
        set_rate=set_rate,
        rate_limit_mps=rate_limit_mps,
        price_per_segment=price_per_segment,
        set_inbound_url=set_inbound_url,
        inbound_url=inbound_url,
        set_help_reply=set_help_reply,
        help_reply=help_reply,
        inbound_format=inbound_format,
        smart_encoding=smart_encoding,
        set_quiet_hours=set_quiet_hours,
        quiet_hours_start=quiet_hours_start,
        quiet_hours_end=quiet_hours_end,
    )
    return row is not None


async def set_webhook_secret(conn: Conn, *, id: uuid.UUID, webhook_secret: str) -> bool:
    return (
        await _q.one(conn, "set_webhook_secret", id=id, webhook_secret=webhook_secret) is not None
    )
