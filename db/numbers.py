"""Numbers and sender ids that tenants own."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from db import Conn, Row
from db.sql import Queries

_q = Queries("numbers")


async def add_number(conn: Conn, *, tenant_id: uuid.UUID, number: str) -> Row | None:
    """The new row; None when the number is owned already."""
    return await _q.one(conn, "add_number", tenant_id=tenant_id, number=number)


async def get_number(conn: Conn, *, number: str) -> Row | None:
    return await _q.one(conn, "get_number", number=number)


async def list_numbers(conn: Conn, *, tenant_id: uuid.UUID) -> list[Row]:
    return await _q.all(conn, "list_numbers", tenant_id=tenant_id)


async def delete_number(conn: Conn, *, tenant_id: uuid.UUID, number: str) -> bool:
    return await _q.one(conn, "delete_number", tenant_id=tenant_id, number=number) is not None


async def find_owner(conn: Conn, *, numbers: Sequence[str]) -> Row | None:
    """The owning tenant's row (and the matching ``number``), trying ``numbers`` in order."""
    return await _q.one(conn, "find_owner", numbers=list(numbers))
