"""Daily partitions of the partitioned tables."""

from __future__ import annotations

from db import Conn
from db.sql import Queries

_q = Queries("partitions")


async def ensure_partitions(conn: Conn, *, days_ahead: int) -> int:
    """Create yesterday's to ``days_ahead`` days ahead's partitions where missing."""
    row = await _q.one(conn, "ensure_partitions", days_ahead=days_ahead + 1)
    assert row is not None
    return int(row["created"])
