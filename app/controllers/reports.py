"""Reports, read from the reporting database (a replica when one is configured): a
tenant's own usage, and operators' views across tenants."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import QueryParameter
from litestar.response import Stream

from app.auth import admin_guard, provide_tenant, tenant_guard
from app.deps import provide_reporting_conn, services
from core import deliverability, margin, reports, usage
from core.tenants import Tenant
from db import Conn

From = Annotated[
    str | None,
    QueryParameter(
        name="from",
        description="Date (YYYY-MM-DD, a whole UTC day) or RFC 3339 timestamp, inclusive; "
        "default: 30 days before `to`",
    ),
]
To = Annotated[
    str | None,
    QueryParameter(
        description="Date (the whole UTC day is included) or RFC 3339 timestamp, exclusive; "
        "default: now. The window is widened to whole hours and spans at most 397 days.",
    ),
]
Limit = Annotated[int | None, QueryParameter(description="Rows per page")]
Cursor = Annotated[str | None, QueryParameter(description="`next_cursor` of a page")]


class ReportsController(Controller):
    path = "/v1/reports"
    tags = ["reports"]
    guards = [tenant_guard]
    dependencies = {
        "tenant": Provide(provide_tenant, sync_to_thread=False),
        "reporting": Provide(provide_reporting_conn),
    }

    @get("/usage")
    async def usage(
        self,
        reporting: NamedDependency[Conn],
        tenant: NamedDependency[Tenant],
        from_: From = None,
        to: To = None,
        group_by: Annotated[
            str | None, QueryParameter(description="day (default), hour, status, provider, country")
        ] = None,
    ) -> reports.UsageReport:
        """Messages, segments and money spent (captured, in micro-units) in a window, by
        day, status, provider or destination country (ISO 3166, ZZ when unknown)."""
        return await reports.tenant_usage(
            reporting,
            tenant_id=tenant.id,
            currency=tenant.currency,
            from_=from_,
            to=to,
            group_by=group_by,
        )


class AdminReportsController(Controller):
    path = "/v1/admin/reports"
    tags = ["admin", "reports"]
    guards = [admin_guard]
    dependencies = {"reporting": Provide(provide_reporting_conn)}

    @get("/top-tenants")
    async def top_tenants(
        self,
        reporting: NamedDependency[Conn],
        from_: From = None,
        to: To = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> reports.TopTenantsReport:
        """Tenants by messages in the window, busiest first (limit 1-100, default 20)."""
        return await reports.top_tenants(reporting, from_=from_, to=to, limit=limit, cursor=cursor)

    @get("/delivery")
    async def delivery(
        self,
        reporting: NamedDependency[Conn],
        from_: From = None,
        to: To = None,
        provider: Annotated[str | None, QueryParameter()] = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> reports.DeliveryReport:
        """Delivery rate per provider and destination country (limit 1-500, default 100)."""
        return await reports.delivery(
            reporting, from_=from_, to=to, provider=provider, limit=limit, cursor=cursor
        )

    @get("/spend")
    async def spend(
        self, reporting: NamedDependency[Conn], from_: From = None, to: To = None
    ) -> reports.SpendReport:
        """Money spent per tier and currency."""
        return await reports.spend_by_tier(reporting, from_=from_, to=to)

    @get("/margin")
    async def margin(
        self,
        reporting: NamedDependency[Conn],
        from_: From = None,
        to: To = None,
        group_by: Annotated[
            str | None,
            QueryParameter(description="day (default), hour, tenant, country, provider, status"),
        ] = None,
    ) -> margin.MarginReport:
        """Revenue (captured), cost (of the routes that sent them) and margin, in
        micro-units per currency, by day, hour, tenant, destination country, provider or
        status."""
        return await margin.margin(reporting, from_=from_, to=to, group_by=group_by)

    @get("/usage")
    async def usage(
        self,
        reporting: NamedDependency[Conn],
        from_: From = None,
        to: To = None,
        period: Annotated[
            str | None, QueryParameter(description="day (default), hour, window")
        ] = None,
        group_by: Annotated[
            str | None, QueryParameter(description="tenant (default), country, provider, status")
        ] = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> usage.AdminUsageReport:
        """Messages, segments, revenue (captured) and cost across tenants per period and
        tenant, destination country, provider or status, per currency (limit 1-5000,
        default 500). Reads the rollups (daily cubes, hourly rows at the window's edges):
        any window up to 13 months."""
        return await usage.admin_usage(
            reporting,
            from_=from_,
            to=to,
            period=period,
            group_by=group_by,
            limit=limit,
            cursor=cursor,
        )

    @get("/billing", media_type="text/csv")
    async def billing(self, state: State, from_: From = None, to: To = None) -> Stream:
        """Rollups by tenant and day as CSV (day, tenant_id, currency, messages, segments,
        revenue, cost), streamed from the reporting database."""
        body = await usage.billing_csv(services(state).reporting, from_=from_, to=to)
        return Stream(
            body,
            media_type="text/csv",
            headers={"Content-Disposition": 'attachment; filename="billing.csv"'},
        )

    @get("/deliverability")
    async def deliverability_report(
        self,
        reporting: NamedDependency[Conn],
        from_: From = None,
        to: To = None,
        period: Annotated[
            str | None, QueryParameter(description="day (default), hour, window")
        ] = None,
        country: Annotated[str | None, QueryParameter(description="ISO 3166 code")] = None,
        provider: Annotated[str | None, QueryParameter()] = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> deliverability.DeliverabilityReport:
        """Delivery rate and latency (accept to sent, sent to delivered: p50 and p95 as
        bucket bounds in ms) per period, destination country and provider (limit 1-5000,
        default 500). Reads the rollups (daily cubes, hourly rows at the window's edges):
        any window up to 13 months."""
        return await deliverability.report(
            reporting,
            from_=from_,
            to=to,
            period=period,
            country=country,
            provider=provider,
            limit=limit,
            cursor=cursor,
        )

    @get("/alerts")
    async def alerts(self, reporting: NamedDependency[Conn]) -> list[deliverability.Alert]:
        """Every (country, provider) as last judged: the last closed hour's delivery
        rate against the 7 days before it, and whether it alerts."""
        return await deliverability.alerts(reporting)

    @get("/events")
    async def events(
        self,
        reporting: NamedDependency[Conn],
        kind: Annotated[
            str | None,
            QueryParameter(description="delivery_rate.dropped or delivery_rate.recovered"),
        ] = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> deliverability.EventsPage:
        """The operator's event log (alerts firing and resolving), newest first."""
        return await deliverability.events(reporting, kind=kind, limit=limit, cursor=cursor)
