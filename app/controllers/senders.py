"""Admin: the sender IDs registered for a tenant and the sender rules of destination
countries (who may send as whom, core/senders.py)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, Response, delete, get, post, put
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody

from app.auth import admin_guard
from app.body import StrictBody
from app.controllers.admin import parse_id
from core import audit, senders, tenants
from core.audit import Actor
from core.errors import NotFound
from db import Conn


class SenderIdRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    sender_id: Annotated[
        str, msgspec.Meta(description="1-11 letters, digits and spaces, at least one letter")
    ]
    countries: Annotated[
        list[str] | None,
        msgspec.Meta(
            description="ISO 3166 alpha-2 codes it is registered for; null: any country "
            "whose rule takes unregistered alphanumeric senders"
        ),
    ] = None
    status: senders.SenderIdStatus = "approved"


class CountryRuleRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    alphanumeric: Annotated[
        senders.Alphanumeric,
        msgspec.Meta(
            description="`allowed`; `registered`: only sender IDs registered for this "
            "country; `not_supported`: numeric senders only"
        ),
    ]
    numeric_allowed: bool = True
    default_sender: Annotated[
        str | None,
        msgspec.Meta(
            description="Sent from when a message names no sender and its tenant "
            "has none for this country"
        ),
    ] = None
    source: Annotated[str | None, msgspec.Meta(description="Where the rule comes from")] = None


class SenderIdsController(Controller):
    path = "/v1/admin/tenants/{tenant_id:str}/sender-ids"
    tags = ["admin"]
    guards = [admin_guard]

    @post(
        "/",
        dto=StrictBody[SenderIdRequest],
        return_dto=None,
        status_code=201,
        responses={
            200: ResponseSpec(senders.SenderId, description="It was registered: changed"),
        },
    )
    async def register_sender_id(
        self,
        conn: NamedDependency[Conn],
        actor: NamedDependency[Actor],
        tenant_id: FromPath[str],
        data: JSONBody[SenderIdRequest],
    ) -> Response[senders.SenderId]:
        """Register an alphanumeric sender ID for the tenant (201), or change the countries
        or status of one registered already (200). Only an `approved` one may be sent from."""
        async with conn.transaction():
            tenant, _ = await tenants.get_tenant(conn, tenant_id=parse_id(tenant_id, "tenant"))
            before = await senders.find_sender_id(
                conn, tenant_id=tenant.id, sender_id=data.sender_id
            )
            created, sender_id = await senders.register_sender_id(
                conn,
                tenant_id=tenant.id,
                sender_id=data.sender_id,
                countries=data.countries,
                status=data.status,
            )
            await audit.record(
                conn,
                actor=actor,
                action="sender_id.registered" if created else "sender_id.updated",
                target=f"sender_id:{sender_id.sender_id}",
                tenant_id=tenant.id,
                before=before,
                after=sender_id,
            )
        return Response(sender_id, status_code=201 if created else 200)

    @get("/")
    async def list_sender_ids(
        self, conn: NamedDependency[Conn], tenant_id: FromPath[str]
    ) -> senders.SenderIdList:
        tenant, _ = await tenants.get_tenant(conn, tenant_id=parse_id(tenant_id, "tenant"))
        return await senders.list_sender_ids(conn, tenant_id=tenant.id)

    @delete("/{sender_id:str}", status_code=204)
    async def delete_sender_id(
        self,
        conn: NamedDependency[Conn],
        actor: NamedDependency[Actor],
        tenant_id: FromPath[str],
        sender_id: FromPath[str],
    ) -> None:
        tenant = parse_id(tenant_id, "tenant")
        async with conn.transaction():
            before = await senders.find_sender_id(conn, tenant_id=tenant, sender_id=sender_id)
            await senders.delete_sender_id(conn, tenant_id=tenant, sender_id=sender_id)
            await audit.record(
                conn,
                actor=actor,
                action="sender_id.deleted",
                target=f"sender_id:{sender_id}",
                tenant_id=tenant,
                before=before,
            )


class SenderRulesController(Controller):
    path = "/v1/admin/sender-rules"
    tags = ["admin"]
    guards = [admin_guard]

    @get("/")
    async def list_rules(self, conn: NamedDependency[Conn]) -> senders.CountryRuleList:
        """Every country with a rule; a country without one takes any sender."""
        return await senders.list_rules(conn)

    @get("/{country:str}")
    async def get_rule(
        self, conn: NamedDependency[Conn], country: FromPath[str]
    ) -> senders.CountryRule:
        return await senders.get_rule(conn, country=country)

    @put("/{country:str}", dto=StrictBody[CountryRuleRequest], return_dto=None)
    async def set_rule(
        self,
        conn: NamedDependency[Conn],
        actor: NamedDependency[Actor],
        country: FromPath[str],
        data: JSONBody[CountryRuleRequest],
    ) -> senders.CountryRule:
        """Set the sender rule of messages to `country` (ISO 3166 alpha-2); it applies to
        the next accept."""
        async with conn.transaction():
            before = await _rule_or_none(conn, country)
            rule = await senders.set_rule(
                conn,
                country=country,
                alphanumeric=data.alphanumeric,
                numeric_allowed=data.numeric_allowed,
                default_sender=data.default_sender,
                source=data.source,
            )
            await audit.record(
                conn,
                actor=actor,
                action="sender_rule.set",
                target=f"sender_rule:{country}",
                before=before,
                after=rule,
            )
        return rule

    @delete("/{country:str}", status_code=204)
    async def delete_rule(
        self, conn: NamedDependency[Conn], actor: NamedDependency[Actor], country: FromPath[str]
    ) -> None:
        """Back to no rule: any sender, no default sender."""
        async with conn.transaction():
            before = await _rule_or_none(conn, country)
            await senders.delete_rule(conn, country=country)
            await audit.record(
                conn,
                actor=actor,
                action="sender_rule.deleted",
                target=f"sender_rule:{country}",
                before=before,
            )


async def _rule_or_none(conn: Conn, country: str) -> senders.CountryRule | None:
    try:
        return await senders.get_rule(conn, country=country)
    except NotFound:
        return None
