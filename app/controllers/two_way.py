"""Two-way messaging: the numbers tenants own and their Twilio credentials (admin), and
the tenant's own suppression list."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, Response, delete, get, post
from litestar.di import NamedDependency, Provide
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from app.auth import admin_guard, provide_tenant, tenant_guard
from app.body import StrictBody
from app.controllers.admin import parse_id
from app.openapi import problems
from core import audit, changes, numbers, suppressions, tenants, twilio
from core.audit import Actor
from core.tenants import Tenant
from db import Conn


class NumberRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    number: Annotated[
        str, msgspec.Meta(description="E.164 number, 3-8 digit short code or sender id")
    ]


class SuppressionRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    recipient: Annotated[str, msgspec.Meta(description="The handset's number, E.164")]
    number: Annotated[
        str | None, msgspec.Meta(description="One of the tenant's numbers; null: all of them")
    ] = None


class TwoWayAdminController(Controller):
    path = "/v1/admin/tenants/{tenant_id:str}"
    tags = ["admin"]
    guards = [admin_guard]

    @post(
        "/numbers",
        dto=StrictBody[NumberRequest],
        return_dto=None,
        status_code=201,
        responses={
            200: ResponseSpec(numbers.OwnedNumber, description="The tenant owned it already"),
            **problems(409),
        },
    )
    async def add_number(
        self,
        conn: NamedDependency[Conn],
        actor: NamedDependency[Actor],
        tenant_id: FromPath[str],
        data: JSONBody[NumberRequest],
    ) -> Response[numbers.OwnedNumber]:
        """Give the tenant a number: inbound messages to it reach the tenant. 200 when
        the tenant owned it already, 409 when another tenant does."""
        async with conn.transaction():
            tenant, _ = await tenants.get_tenant(conn, tenant_id=parse_id(tenant_id, "tenant"))
            created, owned = await numbers.add_number(conn, tenant_id=tenant.id, number=data.number)
            if created:  # owned already: nothing changed
                await audit.record(
                    conn,
                    actor=actor,
                    action="number.added",
                    target=f"number:{owned.number}",
                    tenant_id=tenant.id,
                    after=owned,
                )
        return Response(owned, status_code=201 if created else 200)

    @get("/numbers")
    async def list_numbers(
        self, conn: NamedDependency[Conn], tenant_id: FromPath[str]
    ) -> numbers.NumberList:
        tenant, _ = await tenants.get_tenant(conn, tenant_id=parse_id(tenant_id, "tenant"))
        return await numbers.list_numbers(conn, tenant_id=tenant.id)

    @delete("/numbers/{number:str}", status_code=204)
    async def delete_number(
        self,
        conn: NamedDependency[Conn],
        actor: NamedDependency[Actor],
        tenant_id: FromPath[str],
        number: FromPath[str],
    ) -> None:
        tenant = parse_id(tenant_id, "tenant")
        async with conn.transaction():
            await numbers.delete_number(conn, tenant_id=tenant, number=number)
            await audit.record(
                conn,
                actor=actor,
                action="number.removed",
                target=f"number:{number}",
                tenant_id=tenant,
                before={"number": number, "tenant_id": tenant},
            )

    @post("/twilio-credentials", status_code=201)
    async def issue_twilio_credentials(
        self, conn: NamedDependency[Conn], actor: NamedDependency[Actor], tenant_id: FromPath[str]
    ) -> twilio.Credentials:
        """The tenant's Twilio account SID and a new auth token (shown once; the
        previous token stops working). HTTP Basic auth of /2010-04-01/Accounts/..."""
        async with conn.transaction():
            tenant, _ = await tenants.get_tenant(conn, tenant_id=parse_id(tenant_id, "tenant"))
            issued = await twilio.issue_credentials(conn, tenant_id=tenant.id)
            await audit.record(
                conn,
                actor=actor,
                action="twilio_credentials.issued",
                target=f"twilio_account:{issued.account_sid}",
                tenant_id=tenant.id,
                after=issued,  # its auth_token is masked
            )
            return issued


class SuppressionsController(Controller):
    path = "/v1/suppressions"
    tags = ["suppressions"]
    guards = [tenant_guard]
    dependencies = {"tenant": Provide(provide_tenant, sync_to_thread=False)}

    @get("/")
    async def list_suppressions(
        self,
        conn: NamedDependency[Conn],
        tenant: NamedDependency[Tenant],
        recipient: FromQuery[str | None] = None,
        limit: Annotated[
            int, QueryParameter(ge=1, le=suppressions.MAX_PAGE)
        ] = suppressions.DEFAULT_PAGE,
        cursor: FromQuery[str | None] = None,
    ) -> suppressions.SuppressionPage:
        """Recipients who opted out (STOP, or added here), by recipient."""
        return await suppressions.list_entries(
            conn, tenant=tenant, recipient=recipient, limit=limit, cursor=cursor
        )

    @post(
        "/",
        dto=StrictBody[SuppressionRequest],
        return_dto=None,
        status_code=201,
        responses={
            200: ResponseSpec(suppressions.Suppression, description="The entry was there already")
        },
    )
    async def add_suppression(
        self,
        conn: NamedDependency[Conn],
        tenant: NamedDependency[Tenant],
        actor: NamedDependency[Actor],
        data: JSONBody[SuppressionRequest],
    ) -> Response[suppressions.Suppression]:
        """Stop sends to ``recipient`` (from ``number``, or from every number); 200 when
        the entry was there already."""
        async with conn.transaction():
            created, entry = await changes.add_suppression(
                conn, actor, tenant=tenant, recipient=data.recipient, number=data.number
            )
        return Response(entry, status_code=201 if created else 200)

    @delete("/{recipient:str}", status_code=204)
    async def remove_suppression(
        self,
        conn: NamedDependency[Conn],
        tenant: NamedDependency[Tenant],
        actor: NamedDependency[Actor],
        recipient: FromPath[str],
        number: FromQuery[str | None] = None,
    ) -> None:
        """Lift every entry of ``recipient``, or with ``?number=`` only that number's
        (``*``: the all-numbers entry)."""
        async with conn.transaction():
            await changes.remove_suppression(
                conn, actor, tenant=tenant, recipient=recipient, number=number
            )
