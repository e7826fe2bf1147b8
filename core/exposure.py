"""Exposure controls, the admin side (issue 25): geo permissions and the operator's
high-risk countries, spend caps and alert settings, the operator's pumping limits per
country, and suspensions (listed, lifted). The accept enforces them inside its one
statement (smsgw_accept_v7, smsgw_accept_sends_v4, smsgw_accept_one_v4); core/pumping.py
suspends; core/alerts.py tells.

Each change is a function taking ``conn``, run inside its handler's transaction, so that
a record of it (an audit row) can be written beside it in the same transaction.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec
import phonenumbers
import structlog

from core import alerts, submission
from core.errors import FieldError, InvalidRequest, NotFound
from core.webhook_policy import DestinationPolicy
from db import Conn, Row
from db import dispatch as dispatch_db
from db import exposure as exposure_db

log = structlog.get_logger("smsgw.exposure")

# Caps and thresholds in micro-units: 10^15 is a billion units, more than any account.
MAX_MONEY = 10**15


class GeoPermissions(msgspec.Struct, frozen=True, kw_only=True):
    # None: every country but the operator's high-risk ones not enabled for the tenant.
    countries: list[str] | None
    high_risk_enabled: list[str]
    # The operator's high-risk countries (off unless enabled).
    high_risk: list[str]
    updated_at: datetime | None = None


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    daily_spend_cap: int | None
    monthly_spend_cap: int | None
    # Spent (held or captured: released holds given back) in the current UTC day and month.
    day_spent: int
    month_spent: int
    alerts_url: str | None
    low_balance_threshold: int | None
    spend_alert_percents: list[int]


class Suspension(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    tenant_id: uuid.UUID
    country: str
    # The rate prefix (E.164 digits) whose numbers broke the limit; "" for all of it.
    prefix: str
    suspended_at: datetime
    until: datetime
    cause: dict[str, Any]
    active: bool
    lifted_at: datetime | None = None
    lifted_by: str | None = None


def _countries(values: list[str], field: str, errors: list[FieldError]) -> list[str]:
    """ISO 3166 alpha-2 codes phonenumbers knows (a country a number can be in)."""
    for i, code in enumerate(values):
        if not isinstance(code, str) or code not in phonenumbers.SUPPORTED_REGIONS:
            errors.append(FieldError(f"{field}[{i}]", "must be an ISO 3166 alpha-2 code (GB)"))
    return sorted(set(values))


async def get_geo_permissions(conn: Conn, *, tenant_id: uuid.UUID) -> GeoPermissions:
    row = await exposure_db.get_geo_permissions(conn, tenant_id=tenant_id)
    if row is None:
        raise NotFound("No tenant has this id.")
    return GeoPermissions(
        countries=row["countries"],
        high_risk_enabled=row["high_risk_enabled"],
        high_risk=row["high_risk"],
        updated_at=row["updated_at"],
    )


async def set_geo_permissions(
    conn: Conn,
    *,
    tenant_id: uuid.UUID,
    countries: list[str] | None,
    high_risk_enabled: list[str],
) -> GeoPermissions:
    """Replace the tenant's geo permissions: ``countries`` None for every country (but
    the high-risk ones), or the list; ``high_risk_enabled`` the operator's high-risk
    countries this tenant may send to."""
    errors: list[FieldError] = []
    listed = None if countries is None else _countries(countries, "countries", errors)
    enabled = _countries(high_risk_enabled, "high_risk_enabled", errors)
    if errors:
        raise InvalidRequest("The geo permissions are not valid.", errors)
    found = await exposure_db.set_geo_permissions(
        conn, tenant_id=tenant_id, countries=listed, high_risk_enabled=enabled
    )
    if not found:
        raise NotFound("No tenant has this id.")
    log.info("geo_permissions.set", tenant_id=str(tenant_id), countries=listed, enabled=enabled)
    return await get_geo_permissions(conn, tenant_id=tenant_id)


async def get_high_risk_countries(conn: Conn) -> list[str]:
    return await exposure_db.high_risk_countries(conn)


async def set_high_risk_countries(conn: Conn, *, countries: list[str]) -> list[str]:
    """Replace the operator's high-risk countries (off for every tenant not enabled)."""
    errors: list[FieldError] = []
    listed = _countries(countries, "countries", errors)
    if errors:
        raise InvalidRequest("The high-risk countries are not valid.", errors)
    await exposure_db.set_high_risk_countries(conn, countries=listed)
    log.info("high_risk_countries.set", countries=listed)
    return listed


async def get_limits(conn: Conn, *, tenant_id: uuid.UUID) -> Limits:
    row = await exposure_db.get_limits(conn, tenant_id=tenant_id)
    if row is None:
        raise NotFound("No tenant has this id.")
    return Limits(
        daily_spend_cap=row["daily_spend_cap"],
        monthly_spend_cap=row["monthly_spend_cap"],
        day_spent=row["day_spent"],
        month_spent=row["month_spent"],
        alerts_url=row["alerts_url"],
        low_balance_threshold=row["low_balance_threshold"],
        spend_alert_percents=sorted(int(p) for p in row["spend_alert_percents"]),
    )


def _money(value: Any, field: str, errors: list[FieldError]) -> None:
    if value is None or value is msgspec.UNSET:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_MONEY:
        errors.append(FieldError(field, "must be null or an integer of micro-units, 0 to 10^15"))


def check_limits(
    *,
    daily_spend_cap: Any = msgspec.UNSET,
    monthly_spend_cap: Any = msgspec.UNSET,
    low_balance_threshold: Any = msgspec.UNSET,
    alerts_url: Any = msgspec.UNSET,
    spend_alert_percents: Any = msgspec.UNSET,
    destinations: DestinationPolicy,
) -> None:
    """Refuse bad limits (422 naming each field) before anything is written."""
    errors: list[FieldError] = []
    _money(daily_spend_cap, "daily_spend_cap", errors)
    _money(monthly_spend_cap, "monthly_spend_cap", errors)
    _money(low_balance_threshold, "low_balance_threshold", errors)
    if isinstance(alerts_url, str):
        submission.check_url(alerts_url, errors, "alerts_url")
    if spend_alert_percents is not msgspec.UNSET:
        if not isinstance(spend_alert_percents, list) or not 1 <= len(spend_alert_percents) <= 10:
            errors.append(FieldError("spend_alert_percents", "must list 1 to 10 percentages"))
        else:
            for i, p in enumerate(spend_alert_percents):
                if isinstance(p, bool) or not isinstance(p, int) or not 1 <= p <= 100:
                    errors.append(
                        FieldError(f"spend_alert_percents[{i}]", "must be between 1 and 100")
                    )
    if errors:
        raise InvalidRequest("The change is not valid.", errors)
    if isinstance(alerts_url, str):
        submission.check_destination(alerts_url, destinations, "alerts_url")


async def set_limits(
    conn: Conn,
    *,
    tenant_id: uuid.UUID,
    daily_spend_cap: int | msgspec.UnsetType | None = msgspec.UNSET,
    monthly_spend_cap: int | msgspec.UnsetType | None = msgspec.UNSET,
    low_balance_threshold: int | msgspec.UnsetType | None = msgspec.UNSET,
    alerts_url: str | msgspec.UnsetType | None = msgspec.UNSET,
    spend_alert_percents: list[int] | msgspec.UnsetType = msgspec.UNSET,
    destinations: DestinationPolicy,
) -> Limits:
    """Change a tenant's spend caps (None: none), low-balance threshold, alerts URL or
    spend alert shares; absent (UNSET) ones stay. The caps hold from the next accept."""
    check_limits(
        daily_spend_cap=daily_spend_cap,
        monthly_spend_cap=monthly_spend_cap,
        low_balance_threshold=low_balance_threshold,
        alerts_url=alerts_url,
        spend_alert_percents=spend_alert_percents,
        destinations=destinations,
    )
    found = await exposure_db.set_caps(
        conn,
        tenant_id=tenant_id,
        set_daily=daily_spend_cap is not msgspec.UNSET,
        daily=None if isinstance(daily_spend_cap, msgspec.UnsetType) else daily_spend_cap,
        set_monthly=monthly_spend_cap is not msgspec.UNSET,
        monthly=None if isinstance(monthly_spend_cap, msgspec.UnsetType) else monthly_spend_cap,
    )
    found = found and await exposure_db.set_alert_settings(
        conn,
        tenant_id=tenant_id,
        set_url=alerts_url is not msgspec.UNSET,
        alerts_url=None if isinstance(alerts_url, msgspec.UnsetType) else alerts_url,
        set_threshold=low_balance_threshold is not msgspec.UNSET,
        threshold=(
            None if isinstance(low_balance_threshold, msgspec.UnsetType) else low_balance_threshold
        ),
        percents=(
            None
            if isinstance(spend_alert_percents, msgspec.UnsetType)
            else sorted(set(spend_alert_percents))
        ),
    )
    if not found:
        raise NotFound("No tenant has this id.")
    return await get_limits(conn, tenant_id=tenant_id)


def _suspension(row: Row) -> Suspension:
    now = datetime.now(UTC)
    active = row.get("active")
    return Suspension(
        id=row["id"],
        tenant_id=row["tenant_id"],
        country=row["country"],
        prefix=row["prefix"],
        suspended_at=row["suspended_at"],
        until=row["until"],
        cause=row["cause"],
        active=bool(active)
        if active is not None
        else (row["lifted_at"] is None and row["until"] > now),
        lifted_at=row["lifted_at"],
        lifted_by=row["lifted_by"],
    )


async def list_suspensions(
    conn: Conn, *, tenant_id: uuid.UUID | None, include_ended: bool = False, limit: int = 500
) -> list[Suspension]:
    """Suspensions, newest first: active ones, or every one kept with ``include_ended``;
    of one tenant, or of all (``tenant_id`` None, the operator's view)."""
    rows = await exposure_db.list_suspensions(
        conn, tenant_id=tenant_id, all=include_ended, limit=limit
    )
    return [_suspension(row) for row in rows]


async def lift(
    conn: Conn, *, suspension_id: uuid.UUID, tenant_id: uuid.UUID | None, by: str, task: str
) -> Suspension:
    """Lift an active suspension (``tenant_id``: the tenant's own only): sends to the
    destination are accepted again, the messages it held back are due now, and the
    tenant is told (destination.lifted)."""
    row = await exposure_db.lift(conn, id=suspension_id, tenant_id=tenant_id, by=by)
    if row is None:
        raise NotFound("No active suspension has this id.")
    released = await exposure_db.release_held(
        conn,
        tenant_id=row["tenant_id"],
        country=row["country"],
        prefix=row["prefix"],
        until=row["until"],
    )
    if released:
        await dispatch_db.requeue_tenants(
            conn,
            due_again={row["tenant_id"]: datetime.min.replace(tzinfo=UTC)},
            task=task,
            back_of_line=False,
        )
    await alerts.tell(
        conn,
        tenant_id=row["tenant_id"],
        event=alerts.DESTINATION_LIFTED,
        data=alerts.suspension_data(row),
    )
    log.info("destination.lifted", tenant_id=str(row["tenant_id"]), by=by, released=released)
    return _suspension(row)


async def set_pumping_limit(conn: Conn, *, country: str, hourly_limit: int) -> Row:
    """The operator's hourly limit for ``country`` (instead of the learned one)."""
    errors: list[FieldError] = []
    _countries([country], "country", errors)
    if isinstance(hourly_limit, bool) or not 1 <= hourly_limit <= 10**9:
        errors.append(FieldError("hourly_limit", "must be between 1 and 10^9"))
    if errors:
        raise InvalidRequest(
            "The limit is not valid.",
            [FieldError("country", e.detail) if e.field == "country[0]" else e for e in errors],
        )
    return await exposure_db.set_pumping_limit(conn, country=country, hourly_limit=hourly_limit)


async def pumping_limits(conn: Conn) -> list[Row]:
    return await exposure_db.pumping_limits(conn)


async def delete_pumping_limit(conn: Conn, *, country: str) -> None:
    known = country in phonenumbers.SUPPORTED_REGIONS
    if not known or not await exposure_db.delete_pumping_limit(conn, country=country):
        raise NotFound("No limit is set for this country.")
