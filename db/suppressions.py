"""The suppression list: recipients who opted out, per tenant and number."""

from __future__ import annotations

import uuid

from db import Conn, Row
from db.sql import Queries

_q = Queries("suppressions")

ALL_NUMBERS = "*"


async def add(conn: Conn, *, tenant_id: uuid.UUID, recipient: str, number: str, source: str) -> Row:
    row = await _q.one(
        conn, "add", tenant_id=tenant_id, recipient=recipient, number=number, source=source
    )
    assert row is not None
    return row


async def remove(
    conn: Conn, *, tenant_id: uuid.UUID, recipient: str, number: str | None
) -> list[Row]:
    return await _q.all(conn, "remove", tenant_id=tenant_id, recipient=recipient, number=number)


async def opt_in(conn: Conn, *, tenant_id: uuid.UUID, recipient: str, number: str) -> list[Row]:
    return await _q.all(conn, "opt_in", tenant_id=tenant_id, recipient=recipient, number=number)


async def list_entries(
    conn: Conn,
    *,
    tenant_id: uuid.UUID,
    recipient: str | None,
    after_recipient: str | None,
    after_number: str | None,
    limit: int,
) -> list[Row]:
    return await _q.all(
        conn,
        "list",
        tenant_id=tenant_id,
        recipient=recipient,
        after_recipient=after_recipient,
        after_number=after_number,
        limit=limit,
    )
