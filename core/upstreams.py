"""Operating the upstreams: provider rows, routes, health as operators see it, and the
receipts that HTTP providers post back."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import msgspec
from psycopg_pool import AsyncConnectionPool

from core import inbound, receipts
from core.accept import DispatchScheduler
from core.errors import FieldError, InvalidRequest, MalformedRequest, NotFound, Unauthorized
from db import Conn
from db import providers as providers_db
from providers import http as http_provider
from providers import kinds

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


class ProviderStatus(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    kind: str | None
    enabled: bool | None
    mps: int | None
    state: str
    error_rate: float | None
    window_successes: int
    window_failures: int
    latency_ms: float | None
    opened_at: datetime | None
    throttled_until: datetime | None
    changed_at: datetime | None
    sent_total: int
    failed_total: int


class RouteView(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    prefix: str
    tier: str | None
    provider: str
    priority: int
    cost_per_segment: int
    enabled: bool
    # The margin guard lets it send a message that costs more than its price.
    allow_loss: bool = False


def validate_config(kind_name: str, config: dict[str, Any]) -> None:
    """Refuse a configuration the adapter could not be built from."""
    if kind_name not in kinds.KINDS:
        raise InvalidRequest(
            "The provider is not valid.",
            [FieldError("kind", "must be one of " + ", ".join(kinds.KINDS))],
        )
    kind = kinds.KINDS[kind_name]
    unknown = kind.unknown(config)
    if unknown:
        raise InvalidRequest(
            "The provider configuration is not valid.",
            [FieldError(f"config.{name}", "is not a setting of this kind") for name in unknown],
        )
    if b"\\u0000" in msgspec.json.encode(config):
        # A NUL anywhere (jsonb cannot store one): msgspec writes it as \u0000.
        raise InvalidRequest(
            "The provider configuration is not valid.",
            [FieldError("config", "must not contain NUL characters")],
        )
    try:
        kind.config(config)
    except (TypeError, ValueError) as exc:
        raise InvalidRequest(
            "The provider configuration is not valid.", [FieldError("config", str(exc))]
        ) from None


async def put_provider(
    conn: Conn, *, name: str, kind: str, config: dict[str, Any], mps: int | None, enabled: bool
) -> ProviderStatus:
    if not NAME.match(name):
        raise InvalidRequest(
            "The provider name is not valid.",
            [FieldError("name", "must be 1-32 of a-z, 0-9, _ and -, starting alphanumeric")],
        )
    if mps is not None and not 1 <= mps <= 1_000_000:
        raise InvalidRequest(
            "The provider is not valid.", [FieldError("mps", "must be null or 1 to 1000000")]
        )
    validate_config(kind, config)
    await providers_db.upsert_provider(
        conn, name=name, kind=kind, config=config, mps=mps, enabled=enabled
    )
    return next(s for s in await provider_status(conn) if s.name == name)


async def provider_settings(conn: Conn, *, name: str) -> dict[str, Any] | None:
    """A provider's settings as stored (kind, config with its secrets, mps, enabled),
    None when there is none: what the audit trail records, masked."""
    for row in await providers_db.list_providers(conn):
        if row["name"] == name:
            return {key: row[key] for key in ("kind", "config", "mps", "enabled")}
    return None


async def set_enabled(conn: Conn, *, name: str, enabled: bool) -> ProviderStatus:
    """Enable or disable a provider as configured (the console's switch): the put of its
    own configuration with ``enabled`` changed, as `PUT /v1/admin/providers/{name}`."""
    row = next((r for r in await providers_db.list_providers(conn) if r["name"] == name), None)
    if row is None:
        raise NotFound("No provider has this name.")
    return await put_provider(
        conn, name=name, kind=row["kind"], config=row["config"], mps=row["mps"], enabled=enabled
    )


async def provider_status(conn: Conn) -> list[ProviderStatus]:
    statuses = []
    for row in await providers_db.provider_status(conn):
        successes, failures = row["window_successes"] or 0, row["window_failures"] or 0
        seen = successes + failures
        statuses.append(
            ProviderStatus(
                name=row["name"],
                kind=row["kind"],
                enabled=row["enabled"],
                mps=row["mps"],
                state=row["state"] or "closed",
                error_rate=failures / seen if seen else None,
                window_successes=successes,
                window_failures=failures,
                latency_ms=row["latency_ms"],
                opened_at=row["opened_at"],
                throttled_until=row["throttled_until"],
                changed_at=row["changed_at"],
                sent_total=row["sent_total"] or 0,
                failed_total=row["failed_total"] or 0,
            )
        )
    return statuses


async def _check_route(
    conn: Conn, *, prefix: str, tier: str | None, provider: str, priority: int, cost: int
) -> None:
    """Refuse a route that could not be stored or routed by (422 naming each field)."""
    errors: list[FieldError] = []
    if not re.fullmatch(r"\+[0-9]{0,15}", prefix):
        errors.append(FieldError("prefix", "must be + followed by up to 15 digits"))
    if tier is not None and tier not in ("vip", "premium", "standard"):
        errors.append(FieldError("tier", "must be vip, premium, standard or null"))
    if not 0 <= cost <= 10**12:  # the bound of a tenant's price per segment
        errors.append(FieldError("cost_per_segment", "must be 0 to 1000000000000"))
    if not -(2**31) <= priority < 2**31:  # the column is an integer
        errors.append(FieldError("priority", "must be a 32-bit integer"))
    known = {row["name"] for row in await providers_db.list_providers(conn)}
    if provider not in known:
        errors.append(FieldError("provider", "no provider has this name (PUT it first)"))
    if errors:
        raise InvalidRequest("The route is not valid.", errors)


async def add_route(
    conn: Conn,
    *,
    prefix: str,
    tier: str | None,
    provider: str,
    priority: int,
    cost_per_segment: int,
    enabled: bool,
    allow_loss: bool = False,
) -> RouteView:
    await _check_route(
        conn, prefix=prefix, tier=tier, provider=provider, priority=priority, cost=cost_per_segment
    )
    row = await providers_db.insert_route(
        conn,
        prefix=prefix,
        tier=tier,
        provider=provider,
        priority=priority,
        cost_per_segment=cost_per_segment,
        enabled=enabled,
        allow_loss=allow_loss,
    )
    return RouteView(**row)


async def update_route(conn: Conn, *, route_id: int, **changes: Any) -> tuple[RouteView, RouteView]:
    """Change a route in place (it keeps its id): ``changes`` are any of its fields but
    ``id``; the others stay. The route as it was, and as it is now; workers route by it
    once they reread the routes (every few seconds)."""
    unknown = sorted(set(changes) - set(RouteView.__struct_fields__) | ({"id"} & set(changes)))
    if unknown:
        raise InvalidRequest(
            "The route is not valid.", [FieldError(f, "is not an editable field") for f in unknown]
        )
    # Held still until the caller's transaction ends: "before" is what this replaced.
    found = await providers_db.lock_route(conn, id=route_id)
    if found is None:
        raise NotFound("No route has this id.")
    before = RouteView(**found)
    merged = {**msgspec.structs.asdict(before), **changes}
    await _check_route(
        conn,
        prefix=merged["prefix"],
        tier=merged["tier"],
        provider=merged["provider"],
        priority=merged["priority"],
        cost=merged["cost_per_segment"],
    )
    row = await providers_db.update_route(conn, **merged)
    assert row is not None  # locked above: it is still there
    return before, RouteView(**row)


async def list_routes(conn: Conn) -> list[RouteView]:
    return [RouteView(**row) for row in await providers_db.list_routes(conn)]


async def delete_route(conn: Conn, *, route_id: int) -> None:
    if not await providers_db.delete_route(conn, id=route_id):
        raise NotFound("No route has this id.")


def _dlr_secret(rows: list[dict[str, Any]], provider: str) -> str:
    row = next((r for r in rows if r["name"] == provider), None)
    return str(row["config"].get("dlr_secret", "")) if row and row["kind"] == "http" else ""


async def accept_http_inbound(
    pool: AsyncConnectionPool[Conn],
    *,
    provider: str,
    body: bytes,
    signature: str | None,
    scheduler: DispatchScheduler,
) -> inbound.Received:
    """Inbound messages an HTTP provider posts: signed like its receipts, a repeated
    provider id stored once; each is matched to the tenant owning its destination, in a
    transaction of its own."""
    async with pool.connection() as conn:
        secret = _dlr_secret(await providers_db.list_providers(conn), provider)
    if not http_provider.verify_signature(secret, body, signature):
        raise Unauthorized("The inbound message is not signed with this provider's secret.")
    try:
        parts = http_provider.parse_inbound(provider, body)
    except http_provider.MalformedBody as exc:
        raise MalformedRequest(f"The request body is not valid JSON: {exc}.") from None
    except ValueError as exc:
        raise InvalidRequest(
            "The inbound messages are not valid.", [FieldError("body", str(exc))]
        ) from None
    return await inbound.receive(pool, parts, scheduler=scheduler)


async def accept_http_receipts(
    conn: Conn, *, provider: str, body: bytes, signature: str | None
) -> int:
    """Receipts an HTTP provider posts back, authenticated by its shared secret: applied
    at once when they name a message, else stored in the inbox (where a repeat or an
    early receipt is harmless), in the caller's transaction. Returns how many."""
    secret = _dlr_secret(await providers_db.list_providers(conn), provider)
    if not http_provider.verify_signature(secret, body, signature):
        raise Unauthorized("The receipt is not signed with this provider's secret.")
    try:
        parsed = http_provider.parse_receipts(provider, body)
    except http_provider.MalformedBody as exc:
        raise MalformedRequest(f"The request body is not valid JSON: {exc}.") from None
    except ValueError as exc:
        raise InvalidRequest(
            "The receipts are not valid.", [FieldError("body", str(exc))]
        ) from None
    await receipts.take_in(conn, parsed)
    return len(parsed)
