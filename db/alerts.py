"""The alerts job's reads and the state that makes each crossing told once."""

from __future__ import annotations

import uuid
from datetime import date

from db import Conn, Row
from db.sql import Queries

_q = Queries("alerts")


async def alert_candidates(conn: Conn) -> list[Row]:
    return await _q.all(conn, "alert_candidates")


async def save_state(
    conn: Conn,
    *,
    tenant_id: uuid.UUID,
    balance_low: bool,
    spend_day: date,
    day_percent: int,
    spend_month: date,
    month_percent: int,
) -> None:
    await _q.run(
        conn,
        "save_state",
        tenant_id=tenant_id,
        balance_low=balance_low,
        spend_day=spend_day,
        day_percent=day_percent,
        spend_month=spend_month,
        month_percent=month_percent,
    )


async def below_threshold(conn: Conn) -> int:
    row = await _q.one(conn, "below_threshold")
    assert row is not None
    return int(row["n"])
