"""The status-callback outbox."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from db import Conn, Row
from db.sql import Queries

_q = Queries("callbacks")


async def claim(conn: Conn, *, limit: int, lease_seconds: float) -> list[Row]:
    return await _q.all(conn, "claim", limit=limit, lease_seconds=lease_seconds)


async def finish(conn: Conn, *, results: Mapping[str, Sequence[Any]]) -> int:
    return await _q.run(conn, "finish", **results)
