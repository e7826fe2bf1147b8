"""Reads and nudges of procrastinate's job table that procrastinate has no API for."""

from __future__ import annotations

from datetime import datetime

from db import Conn, Row
from db.sql import Queries

_q = Queries("jobs")


async def pending_job(conn: Conn, *, queueing_lock: str) -> Row | None:
    return await _q.one(conn, "pending_job", queueing_lock=queueing_lock)


async def bring_forward(conn: Conn, *, id: int, scheduled_at: datetime | None) -> None:
    await _q.run(conn, "bring_forward", id=id, scheduled_at=scheduled_at)
