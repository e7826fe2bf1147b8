"""Failed authentication attempts, counted per client address."""

from __future__ import annotations

from db import Conn
from db.sql import Queries

_q = Queries("auth")


async def record_failure(conn: Conn, *, client: str, window_seconds: float) -> tuple[int, float]:
    """(failures in the current window, seconds until it ends)."""
    row = await _q.one(conn, "record_failure", client=client, window_seconds=window_seconds)
    assert row is not None
    return int(row["failures"]), float(row["seconds_left"])


async def purge_failures(conn: Conn, *, window_seconds: float) -> int:
    return await _q.run(conn, "purge_failures", window_seconds=window_seconds)
