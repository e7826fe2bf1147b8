"""The margin report: revenue (what tenants' messages captured), the cost of the routes
that sent them, and the difference, over a window of whole hours (the reports' rollups,
core/reports.py's window). Its revenue equals the ledger's captures."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from core.errors import FieldError, InvalidRequest
from core.reports import window
from db import Conn
from db import reports as reports_db

MarginGroupBy = Literal["day", "hour", "tenant", "country", "provider", "status"]
MARGIN_GROUP_BY: tuple[str, ...] = ("day", "hour", "tenant", "country", "provider", "status")


class MarginRow(msgspec.Struct, frozen=True, kw_only=True):
    # The day, tenant id, ISO 3166 country (ZZ: unknown) or provider.
    key: str | None
    currency: str
    messages: int
    segments: int
    # Captured (what tenants paid), what the routes cost, and the difference.
    revenue: int
    cost: int
    margin: int


class MarginReport(msgspec.Struct, frozen=True, kw_only=True):
    from_: datetime = msgspec.field(name="from")
    to: datetime
    group_by: MarginGroupBy
    rows: list[MarginRow]


async def margin(
    conn: Conn, *, from_: str | None, to: str | None, group_by: str | None
) -> MarginReport:
    """Revenue, cost and margin of the messages captured in a window (created in it and
    accepted by a provider), by day, tenant, destination country or provider, per
    currency. The revenue of all rows equals the ledger's captures for those messages."""
    grouping = group_by or "day"
    if grouping not in MARGIN_GROUP_BY:
        raise InvalidRequest(
            "The request parameters are not valid.",
            [FieldError("group_by", "must be one of day, hour, tenant, country, provider, status")],
        )
    span = window(from_, to)
    rows = await reports_db.margin(conn, starts=span.starts, ends=span.ends, group_by=grouping)
    return MarginReport(
        from_=span.starts,
        to=span.ends,
        group_by=grouping,  # type: ignore[arg-type]
        rows=[
            MarginRow(
                key=r["key"],
                currency=r["currency"],
                messages=r["messages"],
                segments=r["segments"],
                revenue=r["revenue"],
                cost=r["cost"],
                margin=r["margin"],
            )
            for r in rows
        ],
    )
