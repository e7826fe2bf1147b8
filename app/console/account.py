"""The tenant console's account pages: API keys (a new key is shown once), webhooks
(rotate the signing secret, the last deliveries), numbers and sender IDs, opt-outs."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template

from app.console import forms
from app.console.tenant import TENANT_DEPENDENCIES
from app.console.web import PREFIX, console_actor, form_fields, page, tenant_guard
from app.deps import services
from core import changes, console, numbers, senders, suppressions, webhooks
from core.tenants import Tenant
from db import Conn


async def _keys_page(
    request: Request[Any, Any, Any], conn: Conn, tenant: Tenant, **extra: Any
) -> Template:
    return page(
        request,
        "keys.html",
        keys=await console.list_api_keys(conn, tenant_id=tenant.id),
        **extra,
    )


async def _webhooks_page(
    request: Request[Any, Any, Any], conn: Conn, tenant: Tenant, **extra: Any
) -> Template:
    found = await webhooks.list_deliveries(conn, tenant=tenant, limit=20)
    return page(request, "webhooks.html", tenant=tenant, deliveries=found.deliveries, **extra)


class AccountConsole(Controller):
    path = PREFIX
    guards = [tenant_guard]
    include_in_schema = False
    dependencies = TENANT_DEPENDENCIES

    @get("/keys")
    async def keys(
        self,
        request: Request[Any, Any, Any],
        conn: NamedDependency[Conn],
        tenant: NamedDependency[Tenant],
    ) -> Template:
        return await _keys_page(request, conn, tenant)

    @post("/keys")
    async def create_key(
        self,
        request: Request[Any, Any, Any],
        conn: NamedDependency[Conn],
        tenant: NamedDependency[Tenant],
    ) -> Template:
        """As `POST /v1/admin/tenants/{id}/api-keys`; the key is on this answer only."""
        async with conn.transaction():
            key = await changes.issue_api_key(conn, console_actor(request), tenant_id=tenant.id)
        return await _keys_page(request, conn, tenant, new_key=key)

    @post("/keys/{key_id:str}/revoke")
    async def revoke_key(
        self,
        request: Request[Any, Any, Any],
        conn: NamedDependency[Conn],
        tenant: NamedDependency[Tenant],
        key_id: FromPath[str],
    ) -> Redirect:
        key = forms.an_id(key_id, "API key")
        async with conn.transaction():
            await changes.revoke_api_key(
                conn, console_actor(request), key_id=key, tenant_id=tenant.id
            )
        return Redirect(f"{PREFIX}/keys?revoked=1", status_code=303)

    @get("/webhooks")
    async def webhooks_page(
        self,
        request: Request[Any, Any, Any],
        conn: NamedDependency[Conn],
        tenant: NamedDependency[Tenant],
    ) -> Template:
        return await _webhooks_page(request, conn, tenant)

    @post("/webhooks/secret")
    async def rotate_secret(
        self,
        request: Request[Any, Any, Any],
        conn: NamedDependency[Conn],
        tenant: NamedDependency[Tenant],
    ) -> Template:
        """A new signing secret, shown once; callbacks from now on are signed with it."""
        async with conn.transaction():
            secret = await changes.rotate_webhook_secret(
                conn, console_actor(request), tenant_id=tenant.id
            )
        return await _webhooks_page(request, conn, tenant, new_secret=secret)

    @post("/webhooks/test")
    async def test_event(
        self,
        request: Request[Any, Any, Any],
        state: State,
        conn: NamedDependency[Conn],
        tenant: NamedDependency[Tenant],
    ) -> Redirect:
        """A signed test callback to the URL given; its answer shows in the deliveries."""
        fields = await form_fields(request)
        await webhooks.send_test_event(
            conn,
            tenant=tenant,
            url=fields.get("url", "").strip(),
            destinations=services(state).destinations,
        )
        return Redirect(f"{PREFIX}/webhooks?tested=1", status_code=303)

    @get("/team")
    async def team(
        self,
        request: Request[Any, Any, Any],
        conn: NamedDependency[Conn],
        tenant: NamedDependency[Tenant],
    ) -> Template:
        return page(request, "team.html", users=await console.list_users(conn, tenant_id=tenant.id))

    @post("/team")
    async def invite(
        self,
        request: Request[Any, Any, Any],
        conn: NamedDependency[Conn],
        tenant: NamedDependency[Tenant],
    ) -> Template:
        """The owner invites a colleague: a link shown once, as the operator's is."""
        fields = await form_fields(request)
        async with conn.transaction():
            token = await changes.invite(
                conn, console_actor(request), tenant_id=tenant.id, email=fields.get("email", "")
            )
        link = f"{str(request.base_url).rstrip('/')}{PREFIX}/invitations/{token}"
        return page(
            request,
            "team.html",
            users=await console.list_users(conn, tenant_id=tenant.id),
            invitation=link,
        )

    @get("/numbers")
    async def numbers_page(
        self,
        request: Request[Any, Any, Any],
        conn: NamedDependency[Conn],
        tenant: NamedDependency[Tenant],
    ) -> Template:
        return page(
            request,
            "numbers.html",
            numbers=(await numbers.list_numbers(conn, tenant_id=tenant.id)).numbers,
            sender_ids=(await senders.list_sender_ids(conn, tenant_id=tenant.id)).sender_ids,
        )

    @get("/suppressions")
    async def suppressions_page(
        self,
        request: Request[Any, Any, Any],
        conn: NamedDependency[Conn],
        tenant: NamedDependency[Tenant],
        recipient: FromQuery[str | None] = None,
        cursor: FromQuery[str | None] = None,
    ) -> Template:
        found = await suppressions.list_entries(
            conn, tenant=tenant, recipient=recipient or None, cursor=cursor or None
        )
        return page(request, "suppressions.html", found=found, recipient=recipient or "")

    @post("/suppressions")
    async def add_suppression(
        self,
        request: Request[Any, Any, Any],
        conn: NamedDependency[Conn],
        tenant: NamedDependency[Tenant],
    ) -> Redirect:
        """As `POST /v1/suppressions`: stop sends to a recipient (from one number, or all)."""
        fields = await form_fields(request)
        async with conn.transaction():
            await changes.add_suppression(
                conn,
                console_actor(request),
                tenant=tenant,
                recipient=fields.get("recipient", "").strip(),
                number=fields.get("number", "").strip() or None,
            )
        return Redirect(f"{PREFIX}/suppressions?saved=added", status_code=303)

    @post("/suppressions/remove")
    async def remove_suppression(
        self,
        request: Request[Any, Any, Any],
        conn: NamedDependency[Conn],
        tenant: NamedDependency[Tenant],
    ) -> Redirect:
        """As `DELETE /v1/suppressions/{recipient}?number=`: lift one entry."""
        fields = await form_fields(request)
        async with conn.transaction():
            await changes.remove_suppression(
                conn,
                console_actor(request),
                tenant=tenant,
                recipient=fields.get("recipient", ""),
                number=fields.get("number") or None,
            )
        return Redirect(f"{PREFIX}/suppressions?saved=removed", status_code=303)
