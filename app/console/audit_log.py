"""The audit trail in the consoles: the operator's page (every tenant's changes and the
operator-wide ones, filtered by tenant and action) and a tenant's own (its changes only),
both read with `core.audit.list_events`, as `GET /v1/admin/audit` and `GET /v1/audit`
are, a keyset page at a time."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.params import FromQuery
from litestar.response import Template

from app.console.tenant import TENANT_DEPENDENCIES
from app.console.web import PREFIX, operator_guard, page, tenant_guard
from core import audit
from core.tenants import Tenant
from db import Conn

PAGE = 50


def _shown(value: Any) -> str:
    return msgspec.json.encode(value).decode()  # None: null, as the API shows it


def fields_of(event: audit.AuditEvent) -> list[tuple[str, str, str]]:
    """The event's changed fields as (field, before, after), each value as JSON (a
    masked secret reads "***"): one line per field is readable where two JSON objects
    side by side are not."""
    before, after = event.before or {}, event.after or {}
    return [
        (name, _shown(before.get(name)), _shown(after.get(name)))
        for name in sorted({*before, *after})
    ]


def _page(request: Request[Any, Any, Any], found: audit.AuditPage, **context: Any) -> Template:
    rows = [(event, fields_of(event)) for event in found.events]
    return page(request, "audit.html", found=found, rows=rows, **context)


class OperatorAuditConsole(Controller):
    path = f"{PREFIX}/operator/audit"
    guards = [operator_guard]
    include_in_schema = False

    @get("/")
    async def events(
        self,
        request: Request[Any, Any, Any],
        conn: NamedDependency[Conn],
        tenant: FromQuery[str | None] = None,
        action: FromQuery[str | None] = None,
        cursor: FromQuery[str | None] = None,
    ) -> Template:
        found = await audit.list_events(
            conn,
            tenant_id=audit.tenant_filter(tenant or None),
            action=action or None,
            limit=PAGE,
            cursor=cursor or None,
        )
        filters = {"tenant": tenant or "", "action": action or ""}
        return _page(request, found, filters=filters, operator=True)


class TenantAuditConsole(Controller):
    path = f"{PREFIX}/audit"
    guards = [tenant_guard]
    include_in_schema = False
    dependencies = TENANT_DEPENDENCIES

    @get("/")
    async def events(
        self,
        request: Request[Any, Any, Any],
        conn: NamedDependency[Conn],
        tenant: NamedDependency[Tenant],
        action: FromQuery[str | None] = None,
        cursor: FromQuery[str | None] = None,
    ) -> Template:
        """This tenant's changes only, whoever made them (the operator, its keys, its
        console users)."""
        found = await audit.list_events(
            conn, tenant_id=tenant.id, action=action or None, limit=PAGE, cursor=cursor or None
        )
        filters = {"tenant": "", "action": action or ""}
        return _page(request, found, filters=filters, operator=False)
