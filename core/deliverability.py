"""Delivery analytics per destination country and provider, and the alert on a drop.

The report reads smsgw_usage_by_route_v3 (the daily route cube for whole days, hourly
rollups at the window's edges, raw messages after the rollups' newest fold mark):
outcomes, the delivery rate (delivered of the messages whose fate is known: delivered, undelivered,
failed, expired) and p50/p95 of accept-to-sent and sent-to-delivered latency, from the
rollups' buckets of the folded hours (a quantile is reported as the upper bound of the
bucket it falls in; None past the last bound; the raw messages after the last folded
hour count in the rates, not in the quantiles).

Every 15 minutes the worker judges each (country, provider): the rate of the last
closed hour against the 7 days before it. It fires when the hour had at least
``delivery_alert_min_messages`` known outcomes (and the week as many), and its rate is
below the week's by ``delivery_alert_margin`` or more (0.10: 95% -> 85% fires). A change
(firing, resolved) is written to the operator's event log and logged; /metrics exports
the judged rates and the alert (smsgw_delivery_rate, smsgw_delivery_alert), which the
shipped Prometheus rule (ops/compose/alerts.yml) turns into an alert.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

import msgspec
import structlog
from psycopg_pool import AsyncConnectionPool

from core import cursors
from core.errors import FieldError, InvalidRequest
from core.reports import window
from core.settings import Settings
from db import Conn, Row
from db import deliverability as deliverability_db

log = structlog.get_logger("smsgw.deliverability")

# The rollups' latency buckets (ms): smsgw_rollup_bounds_v1().
BOUNDS = (100, 250, 500, 1000, 2000, 5000, 10000, 30000, 60000, 300000, 1800000)
BASELINE = timedelta(days=7)
Period = Literal["day", "hour", "window"]
PERIODS: tuple[str, ...] = ("day", "hour", "window")


class DeliverabilityRow(msgspec.Struct, frozen=True, kw_only=True):
    period: str
    country: str
    provider: str
    messages: int
    delivered: int
    undelivered: int
    failed: int
    expired: int
    awaiting_receipt: int
    delivery_rate: float | None
    sent_p50_ms: int | None
    sent_p95_ms: int | None
    delivered_p50_ms: int | None
    delivered_p95_ms: int | None


class DeliverabilityReport(msgspec.Struct, frozen=True, kw_only=True):
    from_: datetime = msgspec.field(name="from")
    to: datetime
    period: Period
    rows: list[DeliverabilityRow]
    next_cursor: str | None


class Alert(msgspec.Struct, frozen=True, kw_only=True):
    country: str
    provider: str
    hour_known: int
    hour_rate: float | None
    week_known: int
    week_rate: float | None
    firing: bool
    since: datetime | None


class Event(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    at: datetime
    kind: str
    detail: dict[str, object]


class EventsPage(msgspec.Struct, frozen=True, kw_only=True):
    events: list[Event]
    next_cursor: str | None


def quantile(buckets: list[int] | None, q: float) -> int | None:
    """The upper bound (ms) of the bucket holding the q-quantile; None when there is
    nothing to rank or it lies past the last bound."""
    total = sum(buckets or [])
    if not buckets or not total:
        return None
    rank, seen = q * total, 0
    for index, count in enumerate(buckets):
        seen += count
        if seen >= rank:
            return BOUNDS[index] if index < len(BOUNDS) else None
    return None


def _rate(delivered: int, known: int) -> float | None:
    return round(delivered / known, 6) if known else None


def _row(r: Row) -> DeliverabilityRow:
    known = r["delivered"] + r["undelivered"] + r["failed"] + r["expired"]
    return DeliverabilityRow(
        period=r["period"],
        country=r["country"],
        provider=r["provider"],
        messages=r["messages"],
        delivered=r["delivered"],
        undelivered=r["undelivered"],
        failed=r["failed"],
        expired=r["expired"],
        awaiting_receipt=r["awaiting_receipt"],
        delivery_rate=_rate(r["delivered"], known),
        sent_p50_ms=quantile(r["sent_latency"], 0.5),
        sent_p95_ms=quantile(r["sent_latency"], 0.95),
        delivered_p50_ms=quantile(r["delivery_latency"], 0.5),
        delivered_p95_ms=quantile(r["delivery_latency"], 0.95),
    )


def _text(value: str | None, field: str) -> str | None:
    if value is not None and ("\x00" in value or len(value) > 100):
        raise InvalidRequest(
            "The request parameters are not valid.",
            [FieldError(field, "must be at most 100 characters, without NUL")],
        )
    return value


async def report(
    conn: Conn,
    *,
    from_: str | None,
    to: str | None,
    period: str | None,
    country: str | None = None,
    provider: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> DeliverabilityReport:
    """Delivery rate and latency per (period, country, provider)."""
    chosen = period or "day"
    if chosen not in PERIODS:
        raise InvalidRequest(
            "The request parameters are not valid.",
            [FieldError("period", "must be one of day, hour, window")],
        )
    span = window(from_, to)
    size = cursors.size(limit, default=500, maximum=5000)
    after = cursors.decode(cursor, tuple[str, str, str]) if cursor else None
    rows = await deliverability_db.report(
        conn,
        starts=span.starts,
        ends=span.ends,
        period=chosen,
        country=_text(country, "country"),
        provider=_text(provider, "provider"),
        limit=size + 1,
        after=after,
    )
    page, next_cursor = cursors.page(
        rows, size, item=_row, key=lambda row: (row.period, row.country, row.provider)
    )
    return DeliverabilityReport(
        from_=span.starts,
        to=span.ends,
        period=chosen,  # type: ignore[arg-type]
        rows=page,
        next_cursor=next_cursor,
    )


def judge(
    rates: Row, previous: Alert | None, *, at: datetime, margin: float, min_messages: int
) -> Alert:
    """One (country, provider)'s alert state from its last hour against its week."""
    hour_rate = _rate(rates["hour_delivered"], rates["hour_known"])
    week_rate = _rate(rates["week_delivered"], rates["week_known"])
    firing = (
        hour_rate is not None
        and week_rate is not None
        and rates["hour_known"] >= min_messages
        and rates["week_known"] >= min_messages
        and week_rate - hour_rate >= margin
    )
    since = (previous.since if previous and previous.firing else at) if firing else None
    return Alert(
        country=rates["country"],
        provider=rates["provider"],
        hour_known=rates["hour_known"],
        hour_rate=hour_rate,
        week_known=rates["week_known"],
        week_rate=week_rate,
        firing=firing,
        since=since,
    )


def _alert(row: Row) -> Alert:
    return Alert(
        country=row["country"],
        provider=row["provider"],
        hour_known=row["hour_known"],
        hour_rate=row["hour_rate"],
        week_known=row["week_known"],
        week_rate=row["week_rate"],
        firing=row["firing"],
        since=row["since"],
    )


async def evaluate(
    pool: AsyncConnectionPool[Conn], settings: Settings, *, at: datetime | None = None
) -> list[Alert]:
    """Judge every (country, provider) with traffic in the last 7 days and an hour, save
    the states, and log and record each change; returns the alerts firing now."""
    clock = at or datetime.now(UTC)
    hour = clock.replace(minute=0, second=0, microsecond=0)
    recent = hour - timedelta(hours=1)
    async with pool.connection() as conn, conn.transaction():
        previous = {
            (r["country"], r["provider"]): _alert(r) for r in await deliverability_db.alerts(conn)
        }
        judged = [
            judge(
                r,
                previous.get((r["country"], r["provider"])),
                at=clock,
                margin=settings.delivery_alert_margin,
                min_messages=settings.delivery_alert_min_messages,
            )
            for r in await deliverability_db.rates(
                conn, starts=recent - BASELINE, recent=recent, ends=hour
            )
        ]
        await deliverability_db.save_alerts(
            conn, at=clock, alerts=[msgspec.structs.asdict(a) for a in judged]
        )
        for alert in judged:
            before = previous.get((alert.country, alert.provider))
            was_firing = before is not None and before.firing
            if alert.firing == was_firing:
                continue
            kind = "delivery_rate.dropped" if alert.firing else "delivery_rate.recovered"
            detail = msgspec.json.encode(
                {
                    "country": alert.country,
                    "provider": alert.provider,
                    "hour": recent,
                    "hour_rate": alert.hour_rate,
                    "hour_known": alert.hour_known,
                    "week_rate": alert.week_rate,
                    "week_known": alert.week_known,
                    "margin": settings.delivery_alert_margin,
                }
            ).decode()
            await deliverability_db.add_event(conn, at=clock, kind=kind, detail=detail)
            log.warning(
                kind,
                country=alert.country,
                provider=alert.provider,
                hour_rate=alert.hour_rate,
                week_rate=alert.week_rate,
            )
    return [a for a in judged if a.firing]


async def events(
    conn: Conn, *, kind: str | None, limit: int | None, cursor: str | None
) -> EventsPage:
    """The operator's event log, newest first."""
    size = cursors.size(limit, default=100, maximum=500)
    before = cursors.decode(cursor, int) if cursor else None
    rows = await deliverability_db.events(
        conn, kind=_text(kind, "kind"), before_id=before, limit=size + 1
    )
    page, next_cursor = cursors.page(
        rows,
        size,
        item=lambda r: Event(id=r["id"], at=r["at"], kind=r["kind"], detail=r["detail"]),
        key=lambda event: event.id,
    )
    return EventsPage(events=page, next_cursor=next_cursor)


async def alerts(conn: Conn) -> list[Alert]:
    """The last judged state of every (country, provider)."""
    return [_alert(r) for r in await deliverability_db.alerts(conn)]
