"""The statements behind /metrics and the dashboard (see db/queries/observability.sql)."""

from __future__ import annotations

from db import Conn, Row
from db.sql import Queries

_q = Queries("observability")


async def message_counters(conn: Conn) -> list[Row]:
    return await _q.all(conn, "message_counters")


async def fold_message_counters(conn: Conn) -> int:
    row = await _q.one(conn, "fold_message_counters")
    return int(row["folded"]) if row else 0


async def queue_depth(conn: Conn, *, cap: int) -> list[Row]:
    return await _q.all(conn, "queue_depth", cap=cap)


async def in_flight(conn: Conn, *, cap: int) -> int:
    row = await _q.one(conn, "in_flight", cap=cap)
    return int(row["sending"]) if row else 0


async def ledger_totals(conn: Conn) -> list[Row]:
    return await _q.all(conn, "ledger_totals")


async def jobs(conn: Conn) -> list[Row]:
    return await _q.all(conn, "jobs")


async def callbacks_due(conn: Conn, *, cap: int) -> int:
    row = await _q.one(conn, "callbacks_due", cap=cap)
    return int(row["due"]) if row else 0


async def receipts_waiting(conn: Conn, *, cap: int) -> int:
    row = await _q.one(conn, "receipts_waiting", cap=cap)
    return int(row["waiting"]) if row else 0


async def primary_wal_lsn(conn: Conn) -> str:
    row = await _q.one(conn, "primary_wal")
    assert row is not None
    return str(row["lsn"])


async def standbys(conn: Conn) -> list[Row]:
    return await _q.all(conn, "standbys")


async def in_recovery(conn: Conn) -> bool:
    row = await _q.one(conn, "in_recovery")
    return bool(row and row["in_recovery"])


async def replica_position(conn: Conn) -> Row:
    row = await _q.one(conn, "replica_position")
    assert row is not None
    return row
