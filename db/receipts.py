"""The receipts inbox."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from db import Conn, Row
from db.message_keys import targets
from db.sql import Queries, json_rows

_q = Queries("receipts")


async def record(conn: Conn, *, receipts: Sequence[Mapping[str, Any]]) -> int:
    return await _q.run(conn, "record", receipts=json_rows(receipts))


async def match(
    conn: Conn, *, receipts: Sequence[Mapping[str, Any]], horizon_seconds: int
) -> list[Row]:
    """``receipts``: ord, provider, provider_message_id; rows: ord, created_at, id."""
    return await _q.all(
        conn, "match", receipts=json_rows(receipts), horizon_seconds=horizon_seconds
    )


async def take_due(conn: Conn, *, limit: int, horizon_seconds: int) -> list[Row]:
    return await _q.all(conn, "take_due", limit=limit, horizon_seconds=horizon_seconds)


async def apply_matched(conn: Conn, *, receipts: Sequence[Mapping[str, Any]]) -> int:
    """``receipts``: created_at, id (the message), new_status, error_code, occurred_at."""
    return await _q.run(
        conn,
        "apply_matched",
        receipts=json_rows(receipts),
        **targets([(r["created_at"], r["id"]) for r in receipts]),
        prepare=False,
    )


async def consume(conn: Conn, *, ids: Sequence[int]) -> int:
    return await _q.run(conn, "consume", ids=list(ids))


async def postpone(conn: Conn, *, ids: Sequence[int]) -> int:
    return await _q.run(conn, "postpone", ids=list(ids))
