"""Geo permissions, spend caps, alert settings, suspensions and the operator's pumping
limits (the accept reads them inside its statement; these are the admin side)."""

from __future__ import annotations

import uuid
from datetime import datetime

from db import Conn, Row
from db.sql import Queries

_q = Queries("exposure")


async def get_geo_permissions(conn: Conn, *, tenant_id: uuid.UUID) -> Row | None:
    return await _q.one(conn, "get_geo_permissions", tenant_id=tenant_id)


async def set_geo_permissions(
    conn: Conn, *, tenant_id: uuid.UUID, countries: list[str] | None, high_risk_enabled: list[str]
) -> bool:
    row = await _q.one(
        conn,
        "set_geo_permissions",
        tenant_id=tenant_id,
        countries=countries,
        high_risk_enabled=high_risk_enabled,
    )
    return row is not None


async def high_risk_countries(conn: Conn) -> list[str]:
    return [row["country"] for row in await _q.all(conn, "high_risk_countries")]


async def set_high_risk_countries(conn: Conn, *, countries: list[str]) -> None:
    await _q.run(conn, "set_high_risk_countries", countries=countries)


async def get_limits(conn: Conn, *, tenant_id: uuid.UUID) -> Row | None:
    return await _q.one(conn, "get_limits", tenant_id=tenant_id)


async def set_caps(
    conn: Conn,
    *,
    tenant_id: uuid.UUID,
    set_daily: bool,
    daily: int | None,
    set_monthly: bool,
    monthly: int | None,
) -> bool:
    row = await _q.one(
        conn,
        "set_caps",
        tenant_id=tenant_id,
        set_daily=set_daily,
        daily=daily,
        set_monthly=set_monthly,
        monthly=monthly,
    )
    return row is not None


async def set_alert_settings(
    conn: Conn,
    *,
    tenant_id: uuid.UUID,
    set_url: bool,
    alerts_url: str | None,
    set_threshold: bool,
    threshold: int | None,
    percents: list[int] | None,
) -> bool:
    row = await _q.one(
        conn,
        "set_alert_settings",
        tenant_id=tenant_id,
        set_url=set_url,
        alerts_url=alerts_url,
        set_threshold=set_threshold,
        threshold=threshold,
        percents=percents,
    )
    return row is not None


async def list_suspensions(
    conn: Conn, *, tenant_id: uuid.UUID | None, all: bool, limit: int
) -> list[Row]:
    return await _q.all(conn, "list_suspensions", tenant_id=tenant_id, all=all, limit=limit)


async def lift(conn: Conn, *, id: uuid.UUID, tenant_id: uuid.UUID | None, by: str) -> Row | None:
    return await _q.one(conn, "lift", id=id, tenant_id=tenant_id, by=by)


async def release_held(
    conn: Conn,
    *,
    tenant_id: uuid.UUID,
    country: str,
    prefix: str,
    until: datetime,
) -> int:
    return await _q.run(
        conn, "release_held", tenant_id=tenant_id, country=country, prefix=prefix, until=until
    )


async def enqueue_alert(conn: Conn, *, tenant_id: uuid.UUID, payload: str) -> Row | None:
    """The alert into the callbacks outbox; None when the tenant has no alerts_url."""
    return await _q.one(conn, "enqueue_alert", tenant_id=tenant_id, payload=payload)


async def pumping_limits(conn: Conn) -> list[Row]:
    return await _q.all(conn, "pumping_limits")


async def set_pumping_limit(conn: Conn, *, country: str, hourly_limit: int) -> Row:
    row = await _q.one(conn, "set_pumping_limit", country=country, hourly_limit=hourly_limit)
    assert row is not None
    return row


async def delete_pumping_limit(conn: Conn, *, country: str) -> bool:
    return await _q.one(conn, "delete_pumping_limit", country=country) is not None
