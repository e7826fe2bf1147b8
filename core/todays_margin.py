"""Today's margin on the operator's dashboard: revenue, cost and margin since midnight
UTC per currency, and the destinations sold at a loss (issue 23).

Read from the hourly rollups alone, up to the end of the folded hours: the dashboard
polls every second, and the raw messages of the hour in progress (millions at peak)
would be a scan each time. The page says until when the figures run.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec

from db import Conn
from db import reports as reports_db
from db import rollups as rollups_db

# The loss-making destinations shown, the worst first.
LOSSES_SHOWN = 5


class CurrencyMargin(msgspec.Struct, frozen=True, kw_only=True):
    currency: str
    messages: int
    revenue: int
    cost: int
    margin: int


class LossMakingDestination(msgspec.Struct, frozen=True, kw_only=True):
    # ISO 3166 alpha-2 (ZZ: unknown).
    country: str
    currency: str
    messages: int
    revenue: int
    cost: int
    margin: int


class TodaysMargin(msgspec.Struct, frozen=True, kw_only=True):
    since: datetime
    # The end of the folded hours; None when no hour of today is folded yet.
    until: datetime | None
    totals: list[CurrencyMargin]
    losses: list[LossMakingDestination]


async def todays_margin(conn: Conn, *, now: datetime) -> TodaysMargin:
    """Money captured today (UTC) and what its routes cost, per currency, with the
    destinations whose cost exceeded their revenue; ``now`` is the clock."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    frontier = await rollups_db.frontier(conn)
    # Whole folded hours only: the rollups of the hour in progress reach a mark that the
    # next fold moves, and a window must end at an hour.
    if frontier is not None:
        frontier = frontier.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    if frontier is None or frontier <= midnight:
        return TodaysMargin(since=midnight, until=None, totals=[], losses=[])
    until = min(frontier, midnight + timedelta(days=1))
    rows = await reports_db.margin(conn, starts=midnight, ends=until, group_by="country")
    totals: dict[str, list[int]] = {}
    for row in rows:
        sums = totals.setdefault(row["currency"], [0, 0, 0])
        sums[0] += row["messages"]
        sums[1] += row["revenue"]
        sums[2] += row["cost"]
    losses = sorted((r for r in rows if r["margin"] < 0), key=lambda r: r["margin"])
    return TodaysMargin(
        since=midnight,
        until=until,
        totals=[
            CurrencyMargin(
                currency=currency,
                messages=messages,
                revenue=revenue,
                cost=cost,
                margin=revenue - cost,
            )
            for currency, (messages, revenue, cost) in sorted(totals.items())
        ],
        losses=[
            LossMakingDestination(
                country=r["key"] or "ZZ",
                currency=r["currency"],
                messages=r["messages"],
                revenue=r["revenue"],
                cost=r["cost"],
                margin=r["margin"],
            )
            for r in losses[:LOSSES_SHOWN]
        ],
    )
