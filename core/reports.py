"""Reports: usage per tenant, and across tenants for operators.

Every report reads a window of whole hours (default the last 30 days, at most 397: 13
months): the daily cubes for its whole UTC days, the hourly cubes (a tenant's: its
hourly rollups) for its partial days at either edge and for reports by hour, and the
raw messages after the rollups' newest fold mark, a minute or so behind the clock while
the hour in progress is folded as it goes (``smsgw_usage_v4`` for a tenant,
``smsgw_usage_by_tenant_v3`` and ``smsgw_usage_by_route_v3`` across tenants;
core/rollups.py), so a long window reads cube rows, not messages nor hourly rows; lists
are paginated. The dashboard's live table (``live_top_tenants``, the last 60 s) stays
on raw messages: a range of the newest partition's primary key, small at any rate. The
caller passes a connection of the reporting pool: a replica when one is configured.

``spent`` is money captured: a message's hold is captured when a provider accepts it
(``sent``), and stays captured whether the receipt then says ``delivered`` or
``undelivered`` (the upstream charged for it). Messages still held (``scheduled``,
``queued``, ``sending``) or released (``failed``, ``expired``, ``canceled``) spent
nothing. So the ``spent`` of every message equals the ledger's captures for it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

import msgspec

from core import cursors
from core.errors import FieldError, InvalidRequest
from db import Conn, Row
from db import reports as reports_db

MAX_WINDOW_DAYS = 397
DEFAULT_WINDOW_DAYS = 30
GroupBy = Literal["day", "hour", "status", "provider", "country"]
GROUP_BY: tuple[str, ...] = ("day", "hour", "status", "provider", "country")


class Window(msgspec.Struct, frozen=True):
    starts: datetime
    ends: datetime


class UsageRow(msgspec.Struct, frozen=True, kw_only=True):
    key: str | None
    messages: int
    segments: int
    spent: int


class UsageReport(msgspec.Struct, frozen=True, kw_only=True):
    from_: datetime = msgspec.field(name="from")
    to: datetime
    group_by: GroupBy
    currency: str
    rows: list[UsageRow]


class TenantVolume(msgspec.Struct, frozen=True, kw_only=True):
    tenant_id: uuid.UUID
    name: str
    tier: str
    currency: str
    messages: int
    segments: int
    spent: int


class TopTenantsReport(msgspec.Struct, frozen=True, kw_only=True):
    from_: datetime = msgspec.field(name="from")
    to: datetime
    rows: list[TenantVolume]
    next_cursor: str | None


class DeliveryRow(msgspec.Struct, frozen=True, kw_only=True):
    provider: str
    country: str
    messages: int
    delivered: int
    undelivered: int
    failed: int
    expired: int
    awaiting_receipt: int
    in_progress: int
    # delivered / (delivered + undelivered + failed + expired): the share delivered of
    # the messages whose fate is known; None while none is.
    delivery_rate: float | None


class DeliveryReport(msgspec.Struct, frozen=True, kw_only=True):
    from_: datetime = msgspec.field(name="from")
    to: datetime
    rows: list[DeliveryRow]
    next_cursor: str | None


class SpendRow(msgspec.Struct, frozen=True, kw_only=True):
    tier: str
    currency: str
    tenants: int
    messages: int
    segments: int
    spent: int


class SpendReport(msgspec.Struct, frozen=True, kw_only=True):
    from_: datetime = msgspec.field(name="from")
    to: datetime
    rows: list[SpendRow]


class LiveTenant(msgspec.Struct, frozen=True, kw_only=True):
    tenant_id: uuid.UUID
    name: str
    tier: str
    messages: int


def _bound(raw: str, field: str, *, end: bool) -> datetime:
    """A date is a whole UTC day (``to=2025-01-31`` includes the 31st); a timestamp
    must carry its UTC offset."""
    text = raw.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            midnight = datetime.combine(day, time(0), tzinfo=UTC)
            return midnight + timedelta(days=1) if end else midnight
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(
            "The report window is not valid.",
            [FieldError(field, "must be a date (YYYY-MM-DD) or an RFC 3339 timestamp")],
        ) from None
    if moment.tzinfo is None:
        raise InvalidRequest(
            "The report window is not valid.",
            [FieldError(field, "a timestamp needs a UTC offset, e.g. 2025-01-31T12:00:00Z")],
        )
    return moment.astimezone(UTC)


def window(from_: str | None, to: str | None, *, now: datetime | None = None) -> Window:
    """The window of a report, widened to whole hours (see ``exact_window``)."""
    span = exact_window(from_, to, now=now)
    return _checked(Window(_hour_floor(span.starts), _hour_ceil(span.ends)))


def exact_window(from_: str | None, to: str | None, *, now: datetime | None = None) -> Window:
    """The window of a report: ``from`` inclusive, ``to`` exclusive (a date ``to`` takes
    in that whole day). Defaults: until now, from 30 days before ``to``. Report windows
    widen it to whole hours (``from`` down, ``to`` up): rollups are hourly."""
    now = now or datetime.now(UTC)
    ends = _bound(to, "to", end=True) if to else now
    starts = _bound(from_, "from", end=False) if from_ else ends - timedelta(DEFAULT_WINDOW_DAYS)
    if ends <= starts:
        raise InvalidRequest(
            "The report window is not valid.", [FieldError("to", "must be after `from`")]
        )
    return _checked(Window(starts, ends))


def _checked(span: Window) -> Window:
    if span.ends - span.starts > timedelta(days=MAX_WINDOW_DAYS):
        raise InvalidRequest(
            "The report window is too large.",
            [FieldError("from", f"the window may span at most {MAX_WINDOW_DAYS} days")],
        )
    return span


def _hour_floor(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _hour_ceil(moment: datetime) -> datetime:
    floor = _hour_floor(moment)
    return floor if floor == moment else floor + timedelta(hours=1)


def _usage_row(row: Row) -> UsageRow:
    return UsageRow(
        key=row["key"], messages=row["messages"], segments=row["segments"], spent=row["spent"]
    )


async def tenant_usage(
    conn: Conn,
    *,
    tenant_id: uuid.UUID,
    currency: str,
    from_: str | None,
    to: str | None,
    group_by: str | None,
) -> UsageReport:
    """A tenant's messages, segments and money spent in a window, by day, status,
    provider or destination country. Rows are bounded by construction: at most 93 days,
    9 statuses, the providers in use, or the countries."""
    grouping = group_by or "day"
    if grouping not in GROUP_BY:
        raise InvalidRequest(
            "The request parameters are not valid.",
            [FieldError("group_by", "must be one of day, hour, status, provider, country")],
        )
    span = window(from_, to)
    rows = await reports_db.tenant_usage(
        conn, tenant_id=tenant_id, starts=span.starts, ends=span.ends, group_by=grouping
    )
    return UsageReport(
        from_=span.starts,
        to=span.ends,
        group_by=grouping,  # type: ignore[arg-type]
        currency=currency,
        rows=[_usage_row(r) for r in rows],
    )


async def tenant_usage_by_day_and_country(
    conn: Conn, *, tenant_id: uuid.UUID, currency: str, from_: str | None, to: str | None
) -> tuple[UsageReport, UsageReport]:
    """``tenant_usage`` by day and by country, from one statement: the console's charts
    and their table read the messages not yet in rollups once, not twice."""
    span = window(from_, to)
    rows = await reports_db.tenant_usage_by_day_and_country(
        conn, tenant_id=tenant_id, starts=span.starts, ends=span.ends
    )
    reports = []
    for grouping, column in (("day", "day"), ("country", "country")):
        sums: dict[str, list[int]] = {}
        for row in rows:
            total = sums.setdefault(row[column], [0, 0, 0])
            total[0] += row["messages"]
            total[1] += row["segments"]
            total[2] += row["spent"]
        reports.append(
            UsageReport(
                from_=span.starts,
                to=span.ends,
                group_by=grouping,  # type: ignore[arg-type]
                currency=currency,
                rows=[
                    UsageRow(key=key, messages=n, segments=segments, spent=spent)
                    for key, (n, segments, spent) in sorted(sums.items())
                ],
            )
        )
    return reports[0], reports[1]


async def top_tenants(
    conn: Conn,
    *,
    from_: str | None,
    to: str | None,
    limit: int | None = None,
    cursor: str | None = None,
) -> TopTenantsReport:
    """Tenants by number of messages in the window, busiest first."""
    span = window(from_, to)
    size = cursors.size(limit, default=20, maximum=100)
    after = cursors.decode(cursor, tuple[int, uuid.UUID]) if cursor else None
    rows = await reports_db.top_tenants(
        conn,
        starts=span.starts,
        ends=span.ends,
        limit=size + 1,
        after_messages=after[0] if after else None,
        after_tenant_id=after[1] if after else None,
    )
    page, next_cursor = cursors.page(
        rows, size, item=_tenant_volume, key=lambda row: (row.messages, row.tenant_id)
    )
    return TopTenantsReport(from_=span.starts, to=span.ends, rows=page, next_cursor=next_cursor)


def _tenant_volume(row: Row) -> TenantVolume:
    return TenantVolume(
        tenant_id=row["tenant_id"],
        name=row["name"],
        tier=row["tier"],
        currency=row["currency"],
        messages=row["messages"],
        segments=row["segments"],
        spent=row["spent"],
    )


def _delivery_row(row: Row) -> DeliveryRow:
    return DeliveryRow(
        provider=row["provider"],
        country=row["country"],
        messages=row["messages"],
        delivered=row["delivered"],
        undelivered=row["undelivered"],
        failed=row["failed"],
        expired=row["expired"],
        awaiting_receipt=row["awaiting_receipt"],
        in_progress=row["in_progress"],
        delivery_rate=delivery_rate(row),
    )


def delivery_rate(row: Row) -> float | None:
    known = row["delivered"] + row["undelivered"] + row["failed"] + row["expired"]
    return round(row["delivered"] / known, 6) if known else None


async def delivery(
    conn: Conn,
    *,
    from_: str | None,
    to: str | None,
    provider: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> DeliveryReport:
    """Delivery outcomes per provider and destination country (ISO 3166 code from the
    number's dialing prefix; ZZ when unknown), largest volume first."""
    span = window(from_, to)
    size = cursors.size(limit, default=100, maximum=500)
    if provider is not None and "\x00" in provider:
        raise InvalidRequest(
            "The request parameters are not valid.",
            [FieldError("provider", "must not contain NUL")],
        )
    after = cursors.decode(cursor, tuple[int, str, str]) if cursor else None
    rows = await reports_db.delivery(
        conn,
        starts=span.starts,
        ends=span.ends,
        provider=provider,
        limit=size + 1,
        after_messages=after[0] if after else None,
        after_provider=after[1] if after else None,
        after_country=after[2] if after else None,
    )
    page, next_cursor = cursors.page(
        rows, size, item=_delivery_row, key=lambda row: (row.messages, row.provider, row.country)
    )
    return DeliveryReport(from_=span.starts, to=span.ends, rows=page, next_cursor=next_cursor)


async def spend_by_tier(conn: Conn, *, from_: str | None, to: str | None) -> SpendReport:
    """Money spent per tier and currency (never added across currencies)."""
    span = window(from_, to)
    rows = await reports_db.spend_by_tier(conn, starts=span.starts, ends=span.ends)
    return SpendReport(
        from_=span.starts,
        to=span.ends,
        rows=[
            SpendRow(
                tier=r["tier"],
                currency=r["currency"],
                tenants=r["tenants"],
                messages=r["messages"],
                segments=r["segments"],
                spent=r["spent"],
            )
            for r in rows
        ],
    )


def uuid7_floor(moment: datetime) -> uuid.UUID:
    """The smallest UUIDv7 of ``moment``'s millisecond: ids at or after it sort after."""
    return uuid.UUID(int=(int(moment.timestamp() * 1000) & 0xFFFF_FFFF_FFFF) << 80)


async def live_top_tenants(
    conn: Conn, *, seconds: float = 60.0, limit: int = 10, now: datetime | None = None
) -> list[LiveTenant]:
    """The tenants that sent most in the last ``seconds`` (the dashboard's view)."""
    after = (now or datetime.now(UTC)) - timedelta(seconds=seconds)
    rows = await reports_db.recent_top_tenants(
        conn, after=after, after_id=uuid7_floor(after), limit=limit
    )
    return [
        LiveTenant(tenant_id=r["tenant_id"], name=r["name"], tier=r["tier"], messages=r["messages"])
        for r in rows
    ]
