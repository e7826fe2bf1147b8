"""The operator's exposure controls (issue 25) in the console: a tenant's spend caps and
geo permissions (a part of the tenant's page), the destinations suspended by pumping
protection (lift one), and the operator's alerts and event log (read only). Each change
calls the `core/changes.py` function its API twin calls, in a transaction of its own:
`PATCH /v1/admin/tenants/{id}` (caps), `PUT .../geo-permissions`,
`DELETE /v1/admin/suspensions/{id}`."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template

from app.console import forms
from app.console.web import PREFIX, console_actor, form_fields, operator_guard, page
from app.deps import provide_reporting_conn, services
from core import changes, deliverability, exposure
from core.errors import FieldError, InvalidRequest
from db import Conn

HERE = f"{PREFIX}/operator"
EVENTS_PAGE = 50


async def tenant_exposure(conn: Conn, tenant_id: uuid.UUID) -> dict[str, Any]:
    """What the tenant's page shows of its exposure: its caps and what it spent this UTC
    day and month, its geo permissions, and its active suspensions."""
    return {
        "limits": await exposure.get_limits(conn, tenant_id=tenant_id),
        "geo": await exposure.get_geo_permissions(conn, tenant_id=tenant_id),
        "suspensions": await exposure.list_suspensions(conn, tenant_id=tenant_id),
    }


def _tenant_filter(raw: str | None) -> uuid.UUID | None:
    if not raw:
        return None
    try:
        return uuid.UUID(raw.strip())
    except ValueError:
        raise InvalidRequest(
            "The filter is not valid.", [FieldError("tenant", "must be a tenant id (UUID)")]
        ) from None


class OperatorExposureConsole(Controller):
    path = HERE
    guards = [operator_guard]
    include_in_schema = False
    dependencies = {"reporting": Provide(provide_reporting_conn)}

    @post("/tenants/{tenant_id:str}/caps")
    async def set_caps(
        self,
        request: Request[Any, Any, Any],
        state: State,
        conn: NamedDependency[Conn],
        tenant_id: FromPath[str],
    ) -> Redirect:
        """As `PATCH /v1/admin/tenants/{id}` with `daily_spend_cap` and
        `monthly_spend_cap` (typed in currency units; empty: no cap)."""
        fields = await form_fields(request)
        tenant = forms.an_id(tenant_id, "tenant")
        daily = forms.optional_money(fields, "daily_spend_cap")
        monthly = forms.optional_money(fields, "monthly_spend_cap")
        async with conn.transaction():
            await changes.set_limits(
                conn,
                console_actor(request),
                tenant_id=tenant,
                destinations=services(state).destinations,
                daily_spend_cap=daily,
                monthly_spend_cap=monthly,
            )
        return Redirect(f"{HERE}/tenants/{tenant}?saved=caps#exposure", status_code=303)

    @post("/tenants/{tenant_id:str}/geo-permissions")
    async def set_geo_permissions(
        self,
        request: Request[Any, Any, Any],
        conn: NamedDependency[Conn],
        tenant_id: FromPath[str],
    ) -> Redirect:
        """As `PUT /v1/admin/tenants/{id}/geo-permissions`: `scope` all (every country
        but the high-risk ones not enabled) or listed (only `countries`; none listed:
        nowhere)."""
        fields = await form_fields(request)
        tenant = forms.an_id(tenant_id, "tenant")
        listed = fields.get("scope") == "listed"
        async with conn.transaction():
            await changes.set_geo_permissions(
                conn,
                console_actor(request),
                tenant_id=tenant,
                countries=forms.countries(fields, "countries") if listed else None,
                high_risk_enabled=forms.countries(fields, "high_risk_enabled"),
            )
        return Redirect(f"{HERE}/tenants/{tenant}?saved=geo#exposure", status_code=303)

    @get("/suspensions")
    async def suspensions(
        self,
        request: Request[Any, Any, Any],
        conn: NamedDependency[Conn],
        tenant: FromQuery[str | None] = None,
        ended: FromQuery[bool] = False,
    ) -> Template:
        """As `GET /v1/admin/suspensions`: newest first, with their cause."""
        found = await exposure.list_suspensions(
            conn, tenant_id=_tenant_filter(tenant), include_ended=ended
        )
        return page(
            request,
            "operator_suspensions.html",
            suspensions=found,
            filters={"tenant": tenant or "", "ended": ended},
        )

    @post("/suspensions/{suspension_id:str}/lift")
    async def lift(
        self,
        request: Request[Any, Any, Any],
        state: State,
        conn: NamedDependency[Conn],
        suspension_id: FromPath[str],
    ) -> Redirect:
        """As `DELETE /v1/admin/suspensions/{id}`: sends there are accepted again, the
        messages it held back are due now, and the tenant is told."""
        async with conn.transaction():
            await changes.lift_suspension(
                conn,
                console_actor(request),
                suspension_id=forms.an_id(suspension_id, "suspension"),
                tenant_id=None,
                by="operator",
                task=services(state).scheduler.task,
            )
        return Redirect(f"{HERE}/suspensions?saved=lifted", status_code=303)

    @get("/alerts")
    async def alerts(
        self,
        request: Request[Any, Any, Any],
        reporting: NamedDependency[Conn],
        kind: FromQuery[str | None] = None,
        cursor: FromQuery[str | None] = None,
    ) -> Template:
        """Read only, from the reporting pool, as `GET /v1/admin/reports/alerts` and
        `/events`: the delivery rates that alert now, and the operator's event log
        (delivery rate drops and recoveries, destinations suspended)."""
        judged = await deliverability.alerts(reporting)
        events = await deliverability.events(
            reporting, kind=kind or None, limit=EVENTS_PAGE, cursor=cursor or None
        )
        return page(
            request,
            "operator_alerts.html",
            firing=[a for a in judged if a.firing],
            judged=len(judged),
            events=events,
            kind=kind or "",
        )
