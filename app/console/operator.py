"""The operator console: tenants (search, create, tier and rate limit, credit, invite the
owner, API keys), providers and routes. Each change calls the core function the admin
API's handler calls, in the same unit of work."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template

from app.console import forms
from app.console.exposure import tenant_exposure
from app.console.web import PREFIX, console_actor, form_fields, operator_guard, page
from app.deps import provide_reporting_conn, services
from core import changes, console, reports, tenants, upstreams
from core.errors import FieldError, InvalidRequest, NotFound
from db import Conn
from jobs.scheduler import follow_tier

HERE = f"{PREFIX}/operator"


def _tier(raw: str) -> tenants.Tier:
    if raw not in tenants.TIERS:
        raise InvalidRequest(
            "The form is not valid.", [FieldError("tier", "must be vip, premium or standard")]
        )
    return raw


async def _tenant_page(
    request: Request[Any, Any, Any], conn: Conn, tenant_id: uuid.UUID, **extra: Any
) -> Template:
    tenant, balance = await tenants.get_tenant(conn, tenant_id=tenant_id)
    return page(
        request,
        "operator_tenant.html",
        tenant=tenant,
        balance=balance,
        keys=await console.list_api_keys(conn, tenant_id=tenant.id),
        users=await console.list_users(conn, tenant_id=tenant.id),
        **await tenant_exposure(conn, tenant.id),
        **extra,
    )


class OperatorConsole(Controller):
    path = HERE
    guards = [operator_guard]
    include_in_schema = False
    dependencies = {"reporting": Provide(provide_reporting_conn)}

    @get("/tenants")
    async def tenants_list(
        self,
        request: Request[Any, Any, Any],
        conn: NamedDependency[Conn],
        q: FromQuery[str | None] = None,
        cursor: FromQuery[str | None] = None,
    ) -> Template:
        found = await console.list_tenants(conn, query=q, cursor=cursor)
        return page(request, "operator_tenants.html", found=found, q=q or "")

    @post("/tenants")
    async def create_tenant(
        self, request: Request[Any, Any, Any], conn: NamedDependency[Conn]
    ) -> Template:
        """As `POST /v1/admin/tenants`; the first API key and the webhook secret are
        shown on this answer only."""
        fields = await form_fields(request)
        async with conn.transaction():
            tenant, key = await changes.create_tenant(
                conn,
                console_actor(request),
                name=fields.get("name", ""),
                tier=_tier(fields.get("tier", "standard")),
                rate_limit_mps=forms.whole(fields, "rate_limit_mps", optional=True),
            )
        return page(request, "operator_created.html", tenant=tenant, key=key)

    @get("/tenants/{tenant_id:str}")
    async def tenant(
        self,
        request: Request[Any, Any, Any],
        conn: NamedDependency[Conn],
        tenant_id: FromPath[str],
    ) -> Template:
        return await _tenant_page(request, conn, forms.an_id(tenant_id, "tenant"))

    @get("/tenants/{tenant_id:str}/traffic")
    async def traffic(
        self,
        request: Request[Any, Any, Any],
        conn: NamedDependency[Conn],
        reporting: NamedDependency[Conn],
        tenant_id: FromPath[str],
    ) -> Template:
        """Today's messages by status, from the reporting pool: loaded after the page."""
        tenant, _ = await tenants.get_tenant(conn, tenant_id=forms.an_id(tenant_id, "tenant"))
        today = await reports.tenant_usage(
            reporting,
            tenant_id=tenant.id,
            currency=tenant.currency,
            from_=datetime.now(UTC).date().isoformat(),
            to=None,
            group_by="status",
        )
        return page(request, "_traffic.html", traffic=today)

    @post("/tenants/{tenant_id:str}/settings")
    async def update_tenant(
        self,
        request: Request[Any, Any, Any],
        state: State,
        conn: NamedDependency[Conn],
        tenant_id: FromPath[str],
    ) -> Redirect:
        """As `PATCH /v1/admin/tenants/{id}` with `tier` and `rate_limit_mps` (empty:
        unlimited)."""
        fields = await form_fields(request)
        tier = _tier(fields.get("tier", ""))
        async with conn.transaction():
            tenant, _ = await changes.update_tenant(
                conn,
                console_actor(request),
                tenant_id=forms.an_id(tenant_id, "tenant"),
                tier=tier,
                rate_limit_mps=forms.whole(fields, "rate_limit_mps", optional=True),
                destinations=services(state).destinations,
            )
            await follow_tier(conn, tenant_id=tenant.id)
        return Redirect(f"{HERE}/tenants/{tenant.id}?saved=settings", status_code=303)

    @post("/tenants/{tenant_id:str}/credits")
    async def add_credit(
        self, request: Request[Any, Any, Any], conn: NamedDependency[Conn], tenant_id: FromPath[str]
    ) -> Redirect:
        """As `POST /v1/admin/tenants/{id}/credits`: once per reference."""
        fields = await form_fields(request)
        async with conn.transaction():
            created, _ = await changes.add_credit(
                conn,
                console_actor(request),
                tenant_id=forms.an_id(tenant_id, "tenant"),
                amount=forms.money(fields, "amount"),
                reference=fields.get("reference", "").strip(),
            )
        outcome = "credited" if created else "repeated"
        return Redirect(f"{HERE}/tenants/{tenant_id}?saved={outcome}", status_code=303)

    @post("/tenants/{tenant_id:str}/invitations")
    async def invite(
        self,
        request: Request[Any, Any, Any],
        conn: NamedDependency[Conn],
        tenant_id: FromPath[str],
    ) -> Template:
        """A link for the tenant's owner to set a password; shown once, here."""
        fields = await form_fields(request)
        tenant = forms.an_id(tenant_id, "tenant")
        async with conn.transaction():
            await tenants.get_tenant(conn, tenant_id=tenant)
            token = await changes.invite(
                conn, console_actor(request), tenant_id=tenant, email=fields.get("email", "")
            )
        link = f"{str(request.base_url).rstrip('/')}{PREFIX}/invitations/{token}"
        return await _tenant_page(request, conn, tenant, invitation=link)

    @post("/tenants/{tenant_id:str}/api-keys/{key_id:str}/revoke")
    async def revoke_key(
        self,
        request: Request[Any, Any, Any],
        conn: NamedDependency[Conn],
        tenant_id: FromPath[str],
        key_id: FromPath[str],
    ) -> Redirect:
        """As `DELETE /v1/admin/api-keys/{id}`: the key's next request is refused."""
        tenant = forms.an_id(tenant_id, "tenant")
        key = forms.an_id(key_id, "API key")
        async with conn.transaction():
            await changes.revoke_api_key(conn, console_actor(request), key_id=key, tenant_id=tenant)
        return Redirect(f"{HERE}/tenants/{tenant}?saved=revoked", status_code=303)

    @post("/tenants/{tenant_id:str}/suspension")
    async def suspend(
        self, request: Request[Any, Any, Any], conn: NamedDependency[Conn], tenant_id: FromPath[str]
    ) -> Redirect:
        """As `PUT /v1/admin/tenants/{id}/suspension`."""
        fields = await form_fields(request)
        tenant = forms.an_id(tenant_id, "tenant")
        async with conn.transaction():
            await changes.suspend_tenant(
                conn, console_actor(request), tenant_id=tenant, reason=fields.get("reason", "")
            )
        return Redirect(f"{HERE}/tenants/{tenant}?saved=suspended", status_code=303)

    @post("/tenants/{tenant_id:str}/resume")
    async def resume(
        self,
        request: Request[Any, Any, Any],
        state: State,
        conn: NamedDependency[Conn],
        tenant_id: FromPath[str],
    ) -> Redirect:
        """As `DELETE /v1/admin/tenants/{id}/suspension`."""
        tenant = forms.an_id(tenant_id, "tenant")
        async with conn.transaction():
            await changes.resume_tenant(
                conn, console_actor(request), tenant_id=tenant, task=services(state).scheduler.task
            )
        return Redirect(f"{HERE}/tenants/{tenant}?saved=resumed", status_code=303)

    @get("/providers")
    async def providers(
        self, request: Request[Any, Any, Any], conn: NamedDependency[Conn]
    ) -> Template:
        return page(
            request,
            "operator_providers.html",
            providers=await upstreams.provider_status(conn),
            routes=await upstreams.list_routes(conn),
        )

    @post("/providers/{name:str}/enabled")
    async def set_provider_enabled(
        self, request: Request[Any, Any, Any], conn: NamedDependency[Conn], name: FromPath[str]
    ) -> Redirect:
        """Takes a provider out of routing, or back, keeping its configuration."""
        fields = await form_fields(request)
        async with conn.transaction():
            await changes.set_provider_enabled(
                conn, console_actor(request), name=name, enabled=fields.get("enabled") == "true"
            )
        return Redirect(f"{HERE}/providers", status_code=303)

    @post("/routes")
    async def add_route(
        self, request: Request[Any, Any, Any], conn: NamedDependency[Conn]
    ) -> Redirect:
        """As `POST /v1/admin/routes`."""
        fields = await form_fields(request)
        tier = fields.get("tier", "")
        async with conn.transaction():
            await changes.add_route(
                conn,
                console_actor(request),
                prefix=fields.get("prefix", "").strip(),
                tier=_tier(tier) if tier else None,
                provider=fields.get("provider", "").strip(),
                priority=forms.whole(fields, "priority") or 0,
                cost_per_segment=forms.whole(fields, "cost_per_segment") or 0,
                enabled=True,
            )
        return Redirect(f"{HERE}/providers", status_code=303)

    @post("/routes/{route_id:int}/enabled")
    async def set_route_enabled(
        self, request: Request[Any, Any, Any], conn: NamedDependency[Conn], route_id: FromPath[int]
    ) -> Redirect:
        """A route on or off, in place: `PATCH /v1/admin/routes/{id}` with `enabled`."""
        fields = await form_fields(request)
        async with conn.transaction():
            await changes.update_route(
                conn,
                console_actor(request),
                route_id=route_id,
                enabled=fields.get("enabled") == "true",
            )
        return Redirect(f"{HERE}/providers", status_code=303)

    @get("/routes/{route_id:int}")
    async def route(
        self, request: Request[Any, Any, Any], conn: NamedDependency[Conn], route_id: FromPath[int]
    ) -> Template:
        found = next((r for r in await upstreams.list_routes(conn) if r.id == route_id), None)
        if found is None:
            raise NotFound("No route has this id.")
        return page(
            request,
            "operator_route.html",
            route=found,
            providers=await upstreams.provider_status(conn),
        )

    @post("/routes/{route_id:int}")
    async def edit_route(
        self, request: Request[Any, Any, Any], conn: NamedDependency[Conn], route_id: FromPath[int]
    ) -> Redirect:
        """As `PATCH /v1/admin/routes/{id}` with every field of the form: the route keeps
        its id; only the fields that changed are recorded."""
        fields = await form_fields(request)
        tier = fields.get("tier", "")
        async with conn.transaction():
            await changes.update_route(
                conn,
                console_actor(request),
                route_id=route_id,
                prefix=fields.get("prefix", "").strip(),
                tier=_tier(tier) if tier else None,
                provider=fields.get("provider", "").strip(),
                priority=forms.whole(fields, "priority"),
                cost_per_segment=forms.whole(fields, "cost_per_segment"),
                enabled=fields.get("enabled") == "true",
                allow_loss=fields.get("allow_loss") == "true",
            )
        return Redirect(f"{HERE}/providers?saved=route", status_code=303)

    @post("/routes/{route_id:int}/remove")
    async def remove_route(
        self, request: Request[Any, Any, Any], conn: NamedDependency[Conn], route_id: FromPath[int]
    ) -> Redirect:
        """As `DELETE /v1/admin/routes/{id}`."""
        async with conn.transaction():
            await changes.delete_route(conn, console_actor(request), route_id=route_id)
        return Redirect(f"{HERE}/providers", status_code=303)
