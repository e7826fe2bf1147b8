"""Hourly rollups of messages: the statements of the folding job."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from db import Conn, Row
from db.sql import Queries

_q = Queries("rollups")


async def due_hours(
    conn: Conn,
    *,
    at: datetime,
    lookback_days: int,
    settle_hours: int,
    refresh_minutes: int,
    limit: int,
) -> list[Row]:
    """Closed hours to fold, oldest first, each with whether it is settled (an hour the
    open hour's folds left partial is due as soon as it closes)."""
    return await _q.all(
        conn,
        "due_hours",
        at=at,
        lookback_days=lookback_days,
        settle_hours=settle_hours,
        refresh_minutes=refresh_minutes,
        limit=limit,
    )


async def fold_hour(conn: Conn, *, hour: datetime, settled: bool, full: bool = False) -> bool:
    """Bring the hour's rollups up to its messages: the first fold (or ``full``) from all
    of them, a refold from those that were still pending; True if final."""
    row = await _q.one(conn, "fold_hour", hour=hour, settled=settled, full=full)
    assert row is not None
    return bool(row["final"])


async def fold_open_hour(conn: Conn, *, through: datetime) -> None:
    """Add the messages of the hour in progress created from its fold mark to
    ``through`` (an instant of that hour) to its rollups, and move the mark there."""
    await _q.one(conn, "fold_open_hour", through=through)


async def messages_in(conn: Conn, *, hours: Sequence[datetime]) -> int:
    row = await _q.one(conn, "messages_in", hours=list(hours))
    return int(row["n"]) if row else 0


async def drop_old(conn: Conn, *, retention_days: int) -> int:
    """Hourly rollups and daily cubes older than the retention, and those days' share of
    the weekly and monthly cubes; the caller's transaction holds all of it (the cubes'
    trigger is quiet for it)."""
    await conn.execute(_q["quiet_retention"])
    cursor = await conn.execute(_q["drop_old"], {"retention_days": retention_days})
    await conn.execute(_q["drop_old_periods"], {"retention_days": retention_days})
    await conn.execute(_q["drop_emptied_periods"])
    await conn.execute(_q["drop_old_days"], {"retention_days": retention_days})
    return cursor.rowcount


async def frontier(conn: Conn) -> datetime | None:
    """Where the rollups end and reports' raw tail starts: the newest fold mark (inside
    the open hour while its folds keep up); None before the first fold."""
    row = await _q.one(conn, "frontier")
    assert row is not None
    result: datetime | None = row["frontier"]
    return result
