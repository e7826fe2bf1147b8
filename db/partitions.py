"""Daily partitions of the partitioned tables."""

from __future__ import annotations

from db import Conn, Row
from db.sql import Queries

_q = Queries("partitions")


async def ensure_partitions(conn: Conn, *, days_ahead: int) -> int:
    """Create yesterday's to ``days_ahead`` days ahead's partitions where missing."""
    row = await _q.one(conn, "ensure_partitions", days_ahead=days_ahead + 1)
    assert row is not None
    return int(row["created"])


async def drop_partitions(conn: Conn, *, retention_days: int) -> list[Row]:
    """Drop days older than ``retention_days`` (ledger rolled up first); a day with
    unsettled messages is kept and reported."""
    return await _q.all(conn, "drop_partitions", retention_days=retention_days)
