"""Reports, read from the reporting database (a replica when one is configured): a
tenant's own usage, and operators' views across tenants."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency, Provide
from litestar.params import QueryParameter

from app.auth import admin_guard, provide_tenant, tenant_guard
from app.deps import provide_reporting_conn
from core import reports
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
        "default: now. The window spans at most 92 days.",
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
            str | None, QueryParameter(description="day (default), status, provider, country")
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
            str | None, QueryParameter(description="day (default), tenant, country, provider")
        ] = None,
    ) -> reports.MarginReport:
        """Revenue (captured), cost (of the routes that sent them) and margin, in
        micro-units per currency, by day, tenant, destination country or provider."""
        return await reports.margin(reporting, from_=from_, to=to, group_by=group_by)
