"""The Twilio facade: accounts, and pages of its message list (outbound and inbound)."""

from __future__ import annotations

import uuid
from datetime import datetime

from db import Conn, Row
from db.sql import Queries

_q = Queries("twilio")


async def put_account(
    conn: Conn, *, tenant_id: uuid.UUID, account_sid: str, token_sha256: bytes, auth_token: str
) -> Row:
    row = await _q.one(
        conn,
        "put_account",
        tenant_id=tenant_id,
        account_sid=account_sid,
        token_sha256=token_sha256,
        auth_token=auth_token,
    )
    assert row is not None
    return row


async def find_account(conn: Conn, *, account_sid: str) -> Row | None:
    return await _q.one(conn, "find_account", account_sid=account_sid)


async def first_number(conn: Conn, *, tenant_id: uuid.UUID) -> str | None:
    row = await _q.one(conn, "first_number", tenant_id=tenant_id)
    return None if row is None else str(row["number"])


async def page(
    conn: Conn,
    *,
    table: str,
    newer: bool,
    tenant_id: uuid.UUID,
    to: str | None,
    from_number: str | None,
    since: datetime | None,
    until: datetime | None,
    cursor_at: datetime | None,
    cursor_id: uuid.UUID | None,
    limit: int,
) -> list[Row]:
    """Rows of ``table`` ('outbound' or 'inbound') older than the cursor, newest first,
    or (``newer``) newer than it, oldest first."""
    name = f"{table}_{'newer' if newer else 'older'}"
    return await _q.all(
        conn,
        name,
        tenant_id=tenant_id,
        to=to,
        from_number=from_number,
        since=since,
        until=until,
        cursor_at=cursor_at,
        cursor_id=cursor_id,
        limit=limit,
    )
