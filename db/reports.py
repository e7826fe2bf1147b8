"""Report queries (run on the reporting pool: a replica when one is configured)."""

from __future__ import annotations

import uuid
from datetime import datetime

from db import Conn, Row
from db.sql import Queries

_q = Queries("reports")

USAGE_QUERIES = {
    "day": "tenant_usage_by_day",
    "status": "tenant_usage_by_status",
    "provider": "tenant_usage_by_provider",
    "country": "tenant_usage_by_country",
}


async def tenant_usage(
    conn: Conn, *, tenant_id: uuid.UUID, starts: datetime, ends: datetime, group_by: str
) -> list[Row]:
    return await _q.all(
        conn, USAGE_QUERIES[group_by], tenant_id=tenant_id, starts=starts, ends=ends
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
        starts=starts,
        ends=ends,
        provider=provider,
        limit=limit,
        after_messages=after_messages,
        after_provider=after_provider,
        after_country=after_country,
    )


async def spend_by_tier(conn: Conn, *, starts: datetime, ends: datetime) -> list[Row]:
    return await _q.all(conn, "spend_by_tier", starts=starts, ends=ends)


async def margin(conn: Conn, *, starts: datetime, ends: datetime, group_by: str) -> list[Row]:
    return await _q.all(conn, "margin", starts=starts, ends=ends, group_by=group_by)
