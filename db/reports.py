"""Report queries (run on the reporting pool: a replica when one is configured)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime

from db import Conn, Row
from db.sql import Queries

_q = Queries("reports")

# Every report but the live one reads the daily cubes for the window's whole days, the
# hourly rollups at its edges and the raw messages after the last folded hour
# (smsgw_usage_v2 and v3, smsgw_usage_by_tenant_v2, smsgw_usage_by_route_v2), unprepared: the
# window and the grouping decide the plan. By tenant across tenants reads the tenants'
# cube; by country, provider, status or period the routes' cube.


async def tenant_usage(
    conn: Conn, *, tenant_id: uuid.UUID, starts: datetime, ends: datetime, group_by: str
) -> list[Row]:
    return await _q.all(
        conn,
        "tenant_usage",
        prepare=False,
        tenant_id=tenant_id,
        starts=starts,
        ends=ends,
        group_by=group_by,
    )


async def tenant_usage_by_day_and_country(
    conn: Conn, *, tenant_id: uuid.UUID, starts: datetime, ends: datetime
) -> list[Row]:
    return await _q.all(
        conn,
        "tenant_usage_by_day_and_country",
        prepare=False,
        tenant_id=tenant_id,
        starts=starts,
        ends=ends,
    )


async def top_tenants(
    conn: Conn,
    *,
    starts: datetime,
    ends: datetime,
    limit: int,
    after_messages: int | None = None,
    after_tenant_id: uuid.UUID | None = None,
) -> list[Row]:
    return await _q.all(
        conn,
        "top_tenants",
        prepare=False,
        starts=starts,
        ends=ends,
        limit=limit,
        after_messages=after_messages,
        after_tenant_id=after_tenant_id,
    )


async def recent_top_tenants(
    conn: Conn, *, after: datetime, after_id: uuid.UUID, limit: int
) -> list[Row]:
    return await _q.all(conn, "recent_top_tenants", after=after, after_id=after_id, limit=limit)


async def delivery(
    conn: Conn,
    *,
    starts: datetime,
    ends: datetime,
    provider: str | None,
    limit: int,
    after_messages: int | None = None,
    after_provider: str | None = None,
    after_country: str | None = None,
) -> list[Row]:
    return await _q.all(
        conn,
        "delivery",
        prepare=False,
        starts=starts,
        ends=ends,
        provider=provider,
        limit=limit,
        after_messages=after_messages,
        after_provider=after_provider,
        after_country=after_country,
    )


async def spend_by_tier(conn: Conn, *, starts: datetime, ends: datetime) -> list[Row]:
    return await _q.all(conn, "spend_by_tier", prepare=False, starts=starts, ends=ends)


async def margin(conn: Conn, *, starts: datetime, ends: datetime, group_by: str) -> list[Row]:
    name = "margin_by_tenant" if group_by == "tenant" else "margin"
    return await _q.all(conn, name, prepare=False, starts=starts, ends=ends, group_by=group_by)


async def admin_usage(
    conn: Conn,
    *,
    starts: datetime,
    ends: datetime,
    period: str,
    group_by: str,
    limit: int | None,
    after: tuple[str, str, str] | None = None,
) -> list[Row]:
    return await _q.all(
        conn,
        "admin_usage_by_tenant" if group_by == "tenant" else "admin_usage",
        prepare=False,
        starts=starts,
        ends=ends,
        period=period,
        group_by=group_by,
        limit=limit,
        after_period=after[0] if after else None,
        after_key=after[1] if after else None,
        after_currency=after[2] if after else None,
    )


async def stream_billing(conn: Conn, *, starts: datetime, ends: datetime) -> AsyncIterator[Row]:
    """Rollups by tenant and day, read by a server-side cursor: the caller's transaction
    must be open while it is iterated."""
    async with conn.cursor(name="billing") as cursor:
        cursor.itersize = 2000
        await cursor.execute(_q["billing"], {"starts": starts, "ends": ends})
        async for row in cursor:
            yield row
