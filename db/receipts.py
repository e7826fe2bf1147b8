"""The receipts inbox."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from db import Conn, Row
from db.sql import Queries, json_rows

_q = Queries("receipts")


async def record(conn: Conn, *, receipts: Sequence[Mapping[str, Any]]) -> int:
    return await _q.run(conn, "record", receipts=json_rows(receipts))


async def any_due(conn: Conn) -> bool:
    row = await _q.one(conn, "any_due")
    return bool(row and row["any_due"])


async def apply_due(conn: Conn, *, limit: int, horizon_seconds: int) -> Row:
    row = await _q.one(conn, "apply_due", limit=limit, horizon_seconds=horizon_seconds)
    assert row is not None
    return row
