"""The audit trail (core/audit.py): every change of settings, who made it, from where,
before and after. The operator reads all of it; a tenant reads its own."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency, Provide
from litestar.params import QueryParameter

from app.auth import admin_guard, provide_tenant, tenant_guard
from core import audit
from core.tenants import Tenant
from db import Conn

From = Annotated[
    str | None,
    QueryParameter(
        name="from", description="Date (YYYY-MM-DD, UTC) or RFC 3339 timestamp, inclusive"
    ),
]
To = Annotated[
    str | None,
    QueryParameter(
        description="Date (the whole UTC day is included) or RFC 3339 timestamp, exclusive"
    ),
]
Action = Annotated[
    str | None, QueryParameter(description="Only this action, e.g. `tenant.updated`")
]
Limit = Annotated[int | None, QueryParameter(description=f"Events per page, 1 to {audit.MAX_PAGE}")]
Cursor = Annotated[str | None, QueryParameter(description="`next_cursor` of a page")]


class AdminAuditController(Controller):
    path = "/v1/admin/audit"
    tags = ["admin", "audit"]
    guards = [admin_guard]

    @get("/")
    async def list_events(
        self,
        conn: NamedDependency[Conn],
        tenant_id: Annotated[
            str | None, QueryParameter(description="Only this tenant's events")
        ] = None,
        from_: From = None,
        to: To = None,
        action: Action = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> audit.AuditPage:
        """Changes of settings, newest first: when, who (`actor`: the admin token, a
        tenant's API key by its id), from which address, the tenant, the action and its
        target, and the changed fields before and after (secrets masked)."""
        return await audit.list_events(
            conn,
            tenant_id=audit.tenant_filter(tenant_id),
            from_=from_,
            to=to,
            action=action,
            limit=limit,
            cursor=cursor,
        )


class AuditController(Controller):
    path = "/v1/audit"
    tags = ["audit"]
    guards = [tenant_guard]
    dependencies = {"tenant": Provide(provide_tenant, sync_to_thread=False)}

    @get("/")
    async def list_events(
        self,
        conn: NamedDependency[Conn],
        tenant: NamedDependency[Tenant],
        from_: From = None,
        to: To = None,
        action: Action = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> audit.AuditPage:
        """Changes of this account's settings, newest first, whoever made them (the
        operator or one of its API keys), with the changed fields before and after
        (secrets masked)."""
        return await audit.list_events(
            conn,
            tenant_id=tenant.id,
            from_=from_,
            to=to,
            action=action,
            limit=limit,
            cursor=cursor,
        )
