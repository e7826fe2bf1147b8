"""Delivery analytics and the deliverability alerts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from db import Conn, Row
from db.sql import Queries, json_rows

_q = Queries("deliverability")


async def report(
    conn: Conn,
    *,
    starts: datetime,
    ends: datetime,
    period: str,
    country: str | None,
    provider: str | None,
    limit: int,
    after: tuple[str, str, str] | None,
) -> list[Row]:
    return await _q.all(
        conn,
        "report",
        prepare=False,
        starts=starts,
        ends=ends,
        period=period,
        country=country,
        provider=provider,
        limit=limit,
        after_period=after[0] if after else None,
        after_country=after[1] if after else None,
        after_provider=after[2] if after else None,
    )


async def rates(conn: Conn, *, starts: datetime, recent: datetime, ends: datetime) -> list[Row]:
    """Delivered and known per (country, provider): in [recent, ends) and [starts, recent)."""
    return await _q.all(conn, "rates", prepare=False, starts=starts, recent=recent, ends=ends)


async def alerts(conn: Conn) -> list[Row]:
    return await _q.all(conn, "alerts")


async def save_alerts(conn: Conn, *, at: datetime, alerts: list[dict[str, Any]]) -> None:
    await _q.run(conn, "save_alerts", at=at, alerts=json_rows(alerts))


async def add_event(conn: Conn, *, at: datetime, kind: str, detail: str) -> None:
    await _q.run(conn, "add_event", at=at, kind=kind, detail=detail)


async def events(conn: Conn, *, kind: str | None, before_id: int | None, limit: int) -> list[Row]:
    return await _q.all(conn, "events", kind=kind, before_id=before_id, limit=limit)
