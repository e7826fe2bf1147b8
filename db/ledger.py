"""Credits, balances and the ledger invariant."""

from __future__ import annotations

import uuid

from db import Conn, Row
from db.sql import Queries

_q = Queries("ledger")


async def insert_credit(conn: Conn, *, tenant_id: uuid.UUID, amount: int, reference: str) -> bool:
    """Append a credit entry; False when this tenant already used ``reference``."""
    return (
        await _q.one(conn, "insert_credit", tenant_id=tenant_id, amount=amount, reference=reference)
        is not None
    )


async def add_credit(conn: Conn, *, tenant_id: uuid.UUID, amount: int) -> Row | None:
    return await _q.one(conn, "add_credit", tenant_id=tenant_id, amount=amount)


async def get_balance(conn: Conn, *, tenant_id: uuid.UUID) -> Row | None:
    return await _q.one(conn, "get_balance", tenant_id=tenant_id)


async def violations(conn: Conn) -> list[Row]:
    return await _q.all(conn, "violations")
