"""Upstreams: operators configure providers and routes and watch their health; HTTP
providers post delivery receipts back."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, delete, get, patch, post, put
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from app.auth import admin_guard
from app.body import StrictBody
from app.deps import services
from app.openapi import problems
from core import changes, upstreams
from core.audit import Actor
from core.errors import NotFound
from core.upstreams import ProviderStatus, RouteView
from db import Conn
from providers import kinds
from providers.http import SIGNATURE_HEADER

Tier = Literal["vip", "premium", "standard"]
if TYPE_CHECKING:
    KindName = str
else:
    KindName = Literal[tuple(kinds.KINDS)]


def _settings_by_kind() -> str:
    return "; ".join(
        f"{kind.name}: "
        + ", ".join(f"{name} (secret)" if name in kind.secrets else name for name in kind.settings)
        for kind in kinds.KINDS.values()
    )


class ProviderRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    kind: KindName
    config: Annotated[
        dict[str, Any],
        msgspec.Meta(
            description=f"Adapter settings, by kind ({_settings_by_kind()}). Secrets are"
            " accepted and never shown back. See README, Providers."
        ),
    ] = msgspec.field(default_factory=dict)
    mps: Annotated[int, msgspec.Meta(ge=1)] | None = None
    enabled: bool = True


class RouteRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    prefix: Annotated[str, msgspec.Meta(description="+ and up to 15 digits; + is any")] = "+"
    tier: Tier | None = None
    provider: str
    priority: int = 100
    cost_per_segment: Annotated[
        int,
        msgspec.Meta(ge=0, description="Used where the provider has no price list covering it"),
    ] = 0
    enabled: bool = True
    allow_loss: Annotated[
        bool,
        msgspec.Meta(description="Send even where it costs more than the message's price"),
    ] = False


class RouteUpdate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Absent fields stay as they are."""

    prefix: str | msgspec.UnsetType = msgspec.UNSET  # + and up to 15 digits; + is any
    tier: Tier | msgspec.UnsetType | None = msgspec.UNSET
    provider: str | msgspec.UnsetType = msgspec.UNSET
    priority: int | msgspec.UnsetType = msgspec.UNSET
    cost_per_segment: Annotated[int, msgspec.Meta(ge=0)] | msgspec.UnsetType = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET
    allow_loss: bool | msgspec.UnsetType = msgspec.UNSET


def _route_id(raw: str) -> int:
    # The id is a bigint: anything else (other digits than ASCII ones too) names no route.
    if not (raw.isascii() and raw.isdigit()) or int(raw) >= 2**63:
        raise NotFound("No route has this id.")
    return int(raw)


class ReceiptsAccepted(msgspec.Struct, kw_only=True):
    accepted: int


class InboundAccepted(msgspec.Struct, kw_only=True):
    accepted: int
    duplicates: int
    unrouted: int


class UpstreamsAdminController(Controller):
    path = "/v1/admin"
    tags = ["admin"]
    guards = [admin_guard]

    @get("/providers")
    async def list_providers(self, conn: NamedDependency[Conn]) -> list[ProviderStatus]:
        """Every provider with its breaker state, recent error rate and latency."""
        return await upstreams.provider_status(conn)

    @put("/providers/{name:str}", dto=StrictBody[ProviderRequest], return_dto=None)
    async def put_provider(
        self,
        conn: NamedDependency[Conn],
        actor: NamedDependency[Actor],
        name: FromPath[str],
        data: JSONBody[ProviderRequest],
    ) -> ProviderStatus:
        """Create or replace a provider; workers pick the change up within seconds."""
        async with conn.transaction():
            status = await changes.put_provider(
                conn,
                actor,
                name=name,
                kind=data.kind,
                config=data.config,
                mps=data.mps,
                enabled=data.enabled,
            )
        return status

    @get("/routes")
    async def list_routes(self, conn: NamedDependency[Conn]) -> list[RouteView]:
        return await upstreams.list_routes(conn)

    @post("/routes", dto=StrictBody[RouteRequest], return_dto=None, status_code=201)
    async def add_route(
        self,
        conn: NamedDependency[Conn],
        actor: NamedDependency[Actor],
        data: JSONBody[RouteRequest],
    ) -> RouteView:
        async with conn.transaction():
            route = await changes.add_route(conn, actor, **msgspec.structs.asdict(data))
        return route

    @patch(
        "/routes/{route_id:str}",
        dto=StrictBody[RouteUpdate],
        return_dto=None,
        responses=problems(400, 404, 422),
    )
    async def update_route(
        self,
        conn: NamedDependency[Conn],
        actor: NamedDependency[Actor],
        route_id: FromPath[str],
        data: JSONBody[RouteUpdate],
    ) -> RouteView:
        """Edit a route in place (it keeps its id): the fields given change, the others
        stay. Workers route by it within seconds (they reread the routes every ~5 s)."""
        edits = {
            name: value
            for name, value in msgspec.structs.asdict(data).items()
            if value is not msgspec.UNSET
        }
        async with conn.transaction():
            route = await changes.update_route(conn, actor, route_id=_route_id(route_id), **edits)
        return route

    @delete("/routes/{route_id:str}", status_code=204)
    async def delete_route(
        self, conn: NamedDependency[Conn], actor: NamedDependency[Actor], route_id: FromPath[str]
    ) -> None:
        async with conn.transaction():
            await changes.delete_route(conn, actor, route_id=_route_id(route_id))


class ReceiptsController(Controller):
    path = "/v1/providers"
    tags = ["providers"]

    @post("/{provider:str}/dlr", status_code=202, responses=problems(400, 401, 413, 422, 503))
    async def receive(
        self, request: Request[Any, Any, Any], conn: NamedDependency[Conn], provider: FromPath[str]
    ) -> ReceiptsAccepted:
        """Delivery receipts from an HTTP provider, signed with its `dlr_secret`:
        `X-Signature: sha256=<hex HMAC-SHA256(dlr_secret, body)>`."""
        body = await request.body()
        async with conn.transaction():  # applied and stored together, or not at all
            accepted = await upstreams.accept_http_receipts(
                conn, provider=provider, body=body, signature=request.headers.get(SIGNATURE_HEADER)
            )
        return ReceiptsAccepted(accepted=accepted)

    @post("/{provider:str}/inbound", status_code=202, responses=problems(400, 401, 413, 422, 503))
    async def receive_inbound(
        self,
        request: Request[Any, Any, Any],
        state: State,
        provider: FromPath[str],
    ) -> InboundAccepted:
        """Inbound (mobile-originated) messages from an HTTP provider, signed like its
        receipts: `X-Signature: sha256=<hex HMAC-SHA256(dlr_secret, body)>`. Body
        `{id, from, to, text, part?: {reference, total, number}}`, a list, or
        `{messages: [...]}`. A repeated `id` is counted in `duplicates` and stored once;
        a destination no tenant owns in `unrouted`."""
        received = await upstreams.accept_http_inbound(
            services(state).pool,
            provider=provider,
            body=await request.body(),
            signature=request.headers.get(SIGNATURE_HEADER),
            scheduler=services(state).scheduler,
        )
        return InboundAccepted(
            accepted=received.accepted,
            duplicates=received.duplicates,
            unrouted=received.unrouted,
        )
