"""The tenant's webhook deliveries: status callbacks and inbound messages, each with its
last attempt and next retry."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromQuery, QueryParameter

from app.auth import provide_tenant, tenant_guard
from core import changes, webhooks
from core.audit import Actor
from core.tenants import Tenant
from db import Conn


class WebhookSecret(msgspec.Struct, frozen=True, kw_only=True):
    webhook_secret: str


class WebhooksController(Controller):
    path = "/v1/webhooks"
    tags = ["webhooks"]
    guards = [tenant_guard]
    dependencies = {"tenant": Provide(provide_tenant, sync_to_thread=False)}

    @get("/deliveries")
    async def list_deliveries(
        self,
        conn: NamedDependency[Conn],
        tenant: NamedDependency[Tenant],
        limit: Annotated[int, QueryParameter(ge=1, le=webhooks.MAX_PAGE)] = webhooks.DEFAULT_PAGE,
        cursor: FromQuery[str | None] = None,
    ) -> webhooks.DeliveryPage:
        """Webhook deliveries, newest first: URL, event, state, attempts, the last
        attempt's status code or error and latency, the next retry. A destination the
        gateway may not reach fails at once, with the reason in `error`."""
        return await webhooks.list_deliveries(conn, tenant=tenant, limit=limit, cursor=cursor)

    @post("/secret", status_code=201)
    async def rotate_secret(
        self,
        conn: NamedDependency[Conn],
        tenant: NamedDependency[Tenant],
        actor: NamedDependency[Actor],
    ) -> WebhookSecret:
        """A new signing secret, shown once: every callback from now on is signed with it
        (the console's "Rotate the signing secret" calls the same function)."""
        async with conn.transaction():
            secret = await changes.rotate_webhook_secret(conn, actor, tenant_id=tenant.id)
        return WebhookSecret(webhook_secret=secret)
