"""The statements behind `smsgw doctor` (see db/queries/doctor.sql)."""

from __future__ import annotations

from db import Conn, Row
from db.sql import Queries

_q = Queries("doctor")


async def partitions(conn: Conn) -> Row | None:
    return await _q.one(conn, "partitions")


async def workers(conn: Conn, *, alive_seconds: float) -> Row:
    row = await _q.one(conn, "workers", alive_seconds=alive_seconds)
    assert row is not None
    return row


async def waiting_jobs(conn: Conn) -> list[Row]:
    return await _q.all(conn, "waiting_jobs")


async def server_version(conn: Conn) -> str:
    row = await _q.one(conn, "server_version")
    assert row is not None
    return str(row["version"])
