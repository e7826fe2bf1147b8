"""The pumping job's statements: tallies drained, counters folded, breaches judged,
suspensions made, ended and enforced on queued messages."""

from __future__ import annotations

import uuid

from db import Conn, Row
from db.sql import Queries

_q = Queries("pumping")


async def drain_tallies(conn: Conn) -> int:
    """The accepts' tally rows added into the hourly counters; how many counters moved."""
    return await _q.run(conn, "drain_tallies")


async def fold_counts(conn: Conn) -> int:
    return await _q.run(conn, "fold_counts")


async def breaches(conn: Conn, *, floor: int, multiple: float) -> list[Row]:
    return await _q.all(conn, "breaches", floor=floor, multiple=multiple)


async def suspend(
    conn: Conn,
    *,
    tenant_id: uuid.UUID,
    country: str,
    prefix: str,
    cool_off_seconds: float,
    cause: str,
) -> Row | None:
    """The new suspension; None when the destination is suspended already."""
    return await _q.one(
        conn,
        "suspend",
        tenant_id=tenant_id,
        country=country,
        prefix=prefix,
        cool_off_seconds=cool_off_seconds,
        cause=cause,
    )


async def expire(conn: Conn) -> list[Row]:
    return await _q.all(conn, "expire")


async def hold_back(conn: Conn) -> list[uuid.UUID]:
    """Held-back messages' tenants (one per message)."""
    return [row["tenant_id"] for row in await _q.all(conn, "hold_back")]


async def active_count(conn: Conn) -> int:
    row = await _q.one(conn, "active_count")
    assert row is not None
    return int(row["n"])
