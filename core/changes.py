"""Settings changes that both doors make, the REST API and the web consoles: each one is
the domain function and its audit row, written in the caller's transaction, so the two
doors make the same change and record it the same way (issue 28: "audited the same way").
The caller passes who acts (`audit.Actor`: the API's guard, or the console's user) and
owns the transaction; nothing here opens one.

The console's own changes with no API twin are here too: an invitation created
(`console_user.invited`) and accepted (`console_user.joined`). Their one-time tokens and
the password never reach the row."""

from __future__ import annotations

import uuid
from typing import Any

from core import account_suspension, audit, console, exposure, suppressions, tenants, upstreams
from core.audit import Actor
from core.webhook_policy import DestinationPolicy
from db import Conn

# -- tenants and their keys ------------------------------------------------------------------


async def create_tenant(
    conn: Conn, actor: Actor, *, name: str, tier: tenants.Tier, rate_limit_mps: int | None
) -> tuple[tenants.Tenant, tenants.IssuedKey]:
    tenant, key = await tenants.create_tenant(
        conn, name=name, tier=tier, rate_limit_mps=rate_limit_mps
    )
    await audit.record(
        conn,
        actor=actor,
        action="tenant.created",
        target=f"tenant:{tenant.id}",
        tenant_id=tenant.id,
        after={**audit.mask(tenant), "api_key_id": str(key.id)},
    )
    return tenant, key


async def update_tenant(
    conn: Conn, actor: Actor, *, tenant_id: uuid.UUID, **changes: Any
) -> tuple[tenants.Tenant, tenants.Balance]:
    """``tenants.update_tenant`` with ``changes``; the state before is read under the
    tenant's row lock, so the row's before is the state this change replaced."""
    before, _ = await tenants.get_tenant(conn, tenant_id=tenant_id, lock=True)
    tenant, balance = await tenants.update_tenant(conn, tenant_id=before.id, **changes)
    await audit.record(
        conn,
        actor=actor,
        action="tenant.updated",
        target=f"tenant:{tenant.id}",
        tenant_id=tenant.id,
        before=before,
        after=tenant,
    )
    return tenant, balance


async def suspend_tenant(
    conn: Conn, actor: Actor, *, tenant_id: uuid.UUID, reason: str
) -> account_suspension.Change:
    done = await account_suspension.suspend(conn, tenant_id=tenant_id, reason=reason)
    await _record_suspension(conn, actor, "tenant.suspended", done, "messages_held")
    return done


async def resume_tenant(
    conn: Conn, actor: Actor, *, tenant_id: uuid.UUID, task: str
) -> account_suspension.Change:
    done = await account_suspension.resume(conn, tenant_id=tenant_id, task=task)
    await _record_suspension(conn, actor, "tenant.resumed", done, "messages_released")
    return done


async def _record_suspension(
    conn: Conn, actor: Actor, action: str, done: account_suspension.Change, counted: str
) -> None:
    def state(tenant: tenants.Tenant) -> dict[str, Any]:
        since = tenant.suspended_at
        return {
            "suspended_at": since.isoformat() if since else None,
            "suspension_reason": tenant.suspension_reason,
        }

    await audit.record(
        conn,
        actor=actor,
        action=action,
        target=f"tenant:{done.tenant.id}",
        tenant_id=done.tenant.id,
        before=state(done.before),
        after={**state(done.tenant), counted: done.messages},
    )


async def add_credit(
    conn: Conn, actor: Actor, *, tenant_id: uuid.UUID, amount: int, reference: str
) -> tuple[bool, tenants.Balance]:
    created, balance = await tenants.add_credit(
        conn, tenant_id=tenant_id, amount=amount, reference=reference
    )
    if created:  # a repeated reference credits nothing: no change to record
        # The credit is one conditional UPDATE adding `amount`: what was there before is
        # exactly the balance less it.
        await audit.record(
            conn,
            actor=actor,
            action="credit.topped_up",
            target=f"credit:{reference}",
            tenant_id=tenant_id,
            before={"available": balance.available - amount},
            after={"available": balance.available, "amount": amount, "reference": reference},
        )
    return created, balance


async def issue_api_key(conn: Conn, actor: Actor, *, tenant_id: uuid.UUID) -> tenants.IssuedKey:
    await tenants.get_tenant(conn, tenant_id=tenant_id)  # 404 for an unknown tenant
    key = await tenants.issue_api_key(conn, tenant_id=tenant_id)
    await audit.record(
        conn,
        actor=actor,
        action="api_key.created",
        target=f"api_key:{key.id}",
        tenant_id=key.tenant_id,
        after=key,  # its `api_key` is masked: the secret is shown once, to the caller only
    )
    return key


async def revoke_api_key(
    conn: Conn, actor: Actor, *, key_id: uuid.UUID, tenant_id: uuid.UUID | None = None
) -> tenants.RevokedKey | None:
    """``tenant_id`` (the consoles'): the key must be this tenant's, or it is not found."""
    if tenant_id is not None:
        await console.owns_api_key(conn, tenant_id=tenant_id, key_id=key_id)
    revoked = await tenants.revoke_api_key(conn, key_id=key_id)
    if revoked is not None:  # None: it was revoked already, nothing changed
        await audit.record(
            conn,
            actor=actor,
            action="api_key.revoked",
            target=f"api_key:{revoked.id}",
            tenant_id=revoked.tenant_id,
            before={"revoked_at": None},
            after={"revoked_at": revoked.revoked_at},
        )
    return revoked


async def rotate_webhook_secret(conn: Conn, actor: Actor, *, tenant_id: uuid.UUID) -> str:
    secret = await tenants.rotate_webhook_secret(conn, tenant_id=tenant_id)
    await audit.record(
        conn,
        actor=actor,
        action="webhook_secret.rotated",
        target=f"tenant:{tenant_id}",
        tenant_id=tenant_id,
        # Masked: the row says that a new secret was set, never what it is.
        after={"webhook_secret": secret},
    )
    return secret


# -- exposure (issue 25) ---------------------------------------------------------------------


async def set_limits(
    conn: Conn,
    actor: Actor,
    *,
    tenant_id: uuid.UUID,
    destinations: DestinationPolicy,
    **limits: Any,
) -> exposure.Limits:
    """``exposure.set_limits`` with ``limits`` (spend caps, alert settings; absent ones
    stay). They live beside the tenant's row, so a row of their own (none when nothing
    changed); the state before is read under the tenant's row lock."""
    await tenants.get_tenant(conn, tenant_id=tenant_id, lock=True)
    before = await exposure.get_limits(conn, tenant_id=tenant_id)
    after = await exposure.set_limits(
        conn, tenant_id=tenant_id, destinations=destinations, **limits
    )
    await audit.record(
        conn,
        actor=actor,
        action="tenant_limits.updated",
        target=f"tenant:{tenant_id}",
        tenant_id=tenant_id,
        before=before,
        after=after,
    )
    return after


async def set_geo_permissions(
    conn: Conn,
    actor: Actor,
    *,
    tenant_id: uuid.UUID,
    countries: list[str] | None,
    high_risk_enabled: list[str],
) -> exposure.GeoPermissions:
    await tenants.get_tenant(conn, tenant_id=tenant_id, lock=True)
    before = await exposure.get_geo_permissions(conn, tenant_id=tenant_id)
    after = await exposure.set_geo_permissions(
        conn, tenant_id=tenant_id, countries=countries, high_risk_enabled=high_risk_enabled
    )
    await audit.record(
        conn,
        actor=actor,
        action="geo_permissions.set",
        target=f"tenant:{tenant_id}",
        tenant_id=tenant_id,
        before=before,
        after=after,
    )
    return after


async def lift_suspension(
    conn: Conn,
    actor: Actor,
    *,
    suspension_id: uuid.UUID,
    tenant_id: uuid.UUID | None,
    by: str,
    task: str,
) -> exposure.Suspension:
    """``exposure.lift`` (``tenant_id``: the tenant's own only; ``by``: operator or
    tenant)."""
    lifted = await exposure.lift(
        conn, suspension_id=suspension_id, tenant_id=tenant_id, by=by, task=task
    )
    await audit.record(
        conn,
        actor=actor,
        action="suspension.lifted",
        target=f"suspension:{lifted.id}",
        tenant_id=lifted.tenant_id,
        before={"lifted_at": None},
        after={"lifted_at": lifted.lifted_at, "lifted_by": lifted.lifted_by},
    )
    return lifted


# -- opt-outs ----------------------------------------------------------------------------------


async def add_suppression(
    conn: Conn, actor: Actor, *, tenant: tenants.Tenant, recipient: str, number: str | None
) -> tuple[bool, suppressions.Suppression]:
    created, entry = await suppressions.add(conn, tenant=tenant, recipient=recipient, number=number)
    if created:  # there already: nothing changed
        await audit.record(
            conn,
            actor=actor,
            action="suppression.added",
            target=f"suppression:{entry.recipient}:{entry.number or suppressions.ALL}",
            tenant_id=tenant.id,
            after=entry,
        )
    return created, entry


async def remove_suppression(
    conn: Conn, actor: Actor, *, tenant: tenants.Tenant, recipient: str, number: str | None
) -> list[str | None]:
    removed = await suppressions.remove(conn, tenant=tenant, recipient=recipient, number=number)
    await audit.record(
        conn,
        actor=actor,
        action="suppression.removed",
        target=f"suppression:{recipient}:{number or '*'}",
        tenant_id=tenant.id,
        before={"recipient": recipient, "numbers": removed},
    )
    return removed


# -- providers and routes ------------------------------------------------------------------


async def _provider_changed(
    conn: Conn, actor: Actor, *, name: str, before: dict[str, Any] | None
) -> None:
    await audit.record(
        conn,
        actor=actor,
        action="provider.created" if before is None else "provider.updated",
        target=f"provider:{name}",
        before=before,
        # The config's secret settings (providers/kinds.py) are masked.
        after=await upstreams.provider_settings(conn, name=name),
    )


async def put_provider(
    conn: Conn,
    actor: Actor,
    *,
    name: str,
    kind: str,
    config: dict[str, Any],
    mps: int | None,
    enabled: bool,
) -> upstreams.ProviderStatus:
    before = await upstreams.provider_settings(conn, name=name)
    status = await upstreams.put_provider(
        conn, name=name, kind=kind, config=config, mps=mps, enabled=enabled
    )
    await _provider_changed(conn, actor, name=name, before=before)
    return status


async def set_provider_enabled(
    conn: Conn, actor: Actor, *, name: str, enabled: bool
) -> upstreams.ProviderStatus:
    """The console's switch: the put of the provider's own settings with ``enabled``
    changed, recorded as that put is (``provider.updated``)."""
    before = await upstreams.provider_settings(conn, name=name)
    status = await upstreams.set_enabled(conn, name=name, enabled=enabled)
    await _provider_changed(conn, actor, name=name, before=before)
    return status


async def add_route(conn: Conn, actor: Actor, **route: Any) -> upstreams.RouteView:
    """``upstreams.add_route`` with ``route``'s fields."""
    added = await upstreams.add_route(conn, **route)
    await audit.record(
        conn, actor=actor, action="route.created", target=f"route:{added.id}", after=added
    )
    return added


async def update_route(
    conn: Conn, actor: Actor, *, route_id: int, **changes: Any
) -> upstreams.RouteView:
    """``upstreams.update_route``: the route keeps its id; the row holds the fields that
    changed, before and after (none when nothing did)."""
    before, after = await upstreams.update_route(conn, route_id=route_id, **changes)
    await audit.record(
        conn,
        actor=actor,
        action="route.updated",
        target=f"route:{route_id}",
        before=before,
        after=after,
    )
    return after


async def delete_route(conn: Conn, actor: Actor, *, route_id: int) -> upstreams.RouteView | None:
    """The route as it was (None when there was none: NotFound is raised first)."""
    before = next((r for r in await upstreams.list_routes(conn) if r.id == route_id), None)
    await upstreams.delete_route(conn, route_id=route_id)
    await audit.record(
        conn, actor=actor, action="route.deleted", target=f"route:{route_id}", before=before
    )
    return before


# -- the consoles' users (no API twin) ---------------------------------------------------------


async def invite(conn: Conn, actor: Actor, *, tenant_id: uuid.UUID, email: str) -> str:
    """An invitation link's token, shown once to the inviter; the row names the address
    invited, never the token."""
    token = await console.invite(conn, tenant_id=tenant_id, email=email)
    await audit.record(
        conn,
        actor=actor,
        action="console_user.invited",
        target=f"console_user:{console.normal_email(email)}",
        tenant_id=tenant_id,
        after={"email": console.normal_email(email)},
    )
    return token


async def accept_invitation(
    conn: Conn, *, token: str, password_hash: str, address: str | None
) -> console.Opened:
    """The invited user joins (sets a password) and is signed in; the user is the actor.
    Accepting again (a new invitation for the same address) resets the password, and is
    recorded again: who holds the address's password changed hands."""
    opened = await console.accept_invitation(conn, token=token, password_hash=password_hash)
    assert opened.user_id is not None
    assert opened.tenant_id is not None
    users = await console.list_users(conn, tenant_id=opened.tenant_id)
    user = next(u for u in users if u.id == opened.user_id)
    await audit.record(
        conn,
        actor=Actor(kind="console_user", id=str(opened.user_id), address=address),
        action="console_user.joined",
        target=f"console_user:{user.email}",
        tenant_id=opened.tenant_id,
        before=None,
        after={"id": str(user.id), "email": user.email, "role": user.role},
    )
    return opened
