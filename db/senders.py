"""Sender IDs registered for tenants, the sender rules of destination countries and a
tenant's sender policy (the accept reads them in smsgw_sender_v1)."""

from __future__ import annotations

import uuid

from db import Conn, Row
from db.sql import Queries

_q = Queries("senders")


async def upsert_sender_id(
    conn: Conn, *, tenant_id: uuid.UUID, sender_id: str, countries: list[str] | None, status: str
) -> Row:
    row = await _q.one(
        conn,
        "upsert_sender_id",
        tenant_id=tenant_id,
        sender_id=sender_id,
        countries=countries,
        status=status,
    )
    assert row is not None
    return row


async def list_sender_ids(conn: Conn, *, tenant_id: uuid.UUID) -> list[Row]:
    return await _q.all(conn, "list_sender_ids", tenant_id=tenant_id)


async def delete_sender_id(conn: Conn, *, tenant_id: uuid.UUID, sender_id: str) -> bool:
    return (
        await _q.one(conn, "delete_sender_id", tenant_id=tenant_id, sender_id=sender_id) is not None
    )


async def upsert_rule(
    conn: Conn,
    *,
    country: str,
    alphanumeric: str,
    numeric_allowed: bool,
    default_sender: str | None,
    source: str | None,
) -> Row:
    row = await _q.one(
        conn,
        "upsert_rule",
        country=country,
        alphanumeric=alphanumeric,
        numeric_allowed=numeric_allowed,
        default_sender=default_sender,
        source=source,
    )
    assert row is not None
    return row


async def list_rules(conn: Conn) -> list[Row]:
    return await _q.all(conn, "list_rules")


async def get_rule(conn: Conn, *, country: str) -> Row | None:
    return await _q.one(conn, "get_rule", country=country)


async def delete_rule(conn: Conn, *, country: str) -> bool:
    return await _q.one(conn, "delete_rule", country=country) is not None


async def set_sender_policy(conn: Conn, *, tenant_id: uuid.UUID, policy: str) -> Row | None:
    return await _q.one(conn, "set_sender_policy", tenant_id=tenant_id, policy=policy)
