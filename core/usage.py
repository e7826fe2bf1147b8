"""Usage across tenants for operators, from the rollups (daily cubes for whole days,
hourly rows at a window's edges, raw messages after the last folded hour): the admin
usage report (by day, hour or the whole window; by tenant, country, provider or status)
and the billing export (rollups by tenant and day as CSV, streamed).

Revenue is captured money (sent, delivered, undelivered: the ledger's captures), cost
what the routes that sent those messages cost; both in micro-units of the tenant's
currency, never added across currencies.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from typing import Literal

import msgspec
from psycopg_pool import AsyncConnectionPool

from core import cursors
from core.errors import FieldError, InvalidRequest
from core.reports import window
from db import Conn, Row
from db import reports as reports_db

Period = Literal["day", "hour", "window"]
PERIODS: tuple[str, ...] = ("day", "hour", "window")
UsageGroupBy = Literal["tenant", "country", "provider", "status"]
USAGE_GROUP_BY: tuple[str, ...] = ("tenant", "country", "provider", "status")
BILLING_COLUMNS = ("day", "tenant_id", "currency", "messages", "segments", "revenue", "cost")


class UsageLine(msgspec.Struct, frozen=True, kw_only=True):
    # YYYY-MM-DD, YYYY-MM-DDTHH:00:00Z, or "" for the whole window.
    period: str
    # Tenant id, ISO 3166 country (ZZ: unknown), provider ("" : never sent) or status.
    key: str
    currency: str
    messages: int
    segments: int
    revenue: int
    cost: int


class AdminUsageReport(msgspec.Struct, frozen=True, kw_only=True):
    from_: str = msgspec.field(name="from")
    to: str
    period: Period
    group_by: UsageGroupBy
    rows: list[UsageLine]
    next_cursor: str | None


def _choice(value: str | None, default: str, allowed: tuple[str, ...], field: str) -> str:
    chosen = value or default
    if chosen not in allowed:
        raise InvalidRequest(
            "The request parameters are not valid.",
            [FieldError(field, "must be one of " + ", ".join(allowed))],
        )
    return chosen


def _line(row: Row) -> UsageLine:
    return UsageLine(
        period=row["period"],
        key=row["key"],
        currency=row["currency"],
        messages=row["messages"],
        segments=row["segments"],
        revenue=row["revenue"],
        cost=row["cost"],
    )


async def admin_usage(
    conn: Conn,
    *,
    from_: str | None,
    to: str | None,
    period: str | None,
    group_by: str | None,
    limit: int | None = None,
    cursor: str | None = None,
) -> AdminUsageReport:
    """Messages, segments, revenue and cost across tenants, per period and key."""
    chosen_period = _choice(period, "day", PERIODS, "period")
    grouping = _choice(group_by, "tenant", USAGE_GROUP_BY, "group_by")
    span = window(from_, to)
    size = cursors.size(limit, default=500, maximum=5000)
    after = cursors.decode(cursor, tuple[str, str, str]) if cursor else None
    rows = await reports_db.admin_usage(
        conn,
        starts=span.starts,
        ends=span.ends,
        period=chosen_period,
        group_by=grouping,
        limit=size + 1,
        after=after,
    )
    page, next_cursor = cursors.page(
        rows, size, item=_line, key=lambda line: (line.period, line.key, line.currency)
    )
    return AdminUsageReport(
        from_=span.starts.isoformat().replace("+00:00", "Z"),
        to=span.ends.isoformat().replace("+00:00", "Z"),
        period=chosen_period,  # type: ignore[arg-type]
        group_by=grouping,  # type: ignore[arg-type]
        rows=page,
        next_cursor=next_cursor,
    )


async def billing_csv(
    pool: AsyncConnectionPool[Conn], *, from_: str | None, to: str | None
) -> AsyncIterator[bytes]:
    """Rollups by tenant and day as CSV (header first), for billing. Validates the window
    before the first byte, then yields the body in chunks read from a server-side cursor."""
    span = window(from_, to)

    async def body() -> AsyncIterator[bytes]:
        yield _csv_line(BILLING_COLUMNS)
        async with pool.connection() as conn, conn.transaction():
            rows = reports_db.stream_billing(conn, starts=span.starts, ends=span.ends)
            chunk: list[bytes] = []
            async for row in rows:
                chunk.append(_csv_line([row[c] for c in BILLING_COLUMNS]))
                if len(chunk) >= 1000:
                    yield b"".join(chunk)
                    chunk = []
            if chunk:
                yield b"".join(chunk)

    return body()


def _csv_line(values: object) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(values)  # type: ignore[arg-type]
    return out.getvalue().encode()
