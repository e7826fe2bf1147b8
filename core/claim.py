"""The claim of a dispatch turn (one transaction): lock due messages of the turn's
tenants, route each (core/routing.py), and mark those that can go now ``sending`` under
a lease; the rest wait (breaker open, provider throttled or out of budget, the tenant's
delivery pace), or are set aside, until the settle, as expired or without a route.

The claim takes no balance row: an accept of the same tenant never waits for it. Rows
that several claims may lock (a tenant's pace bucket, a provider's budget) are taken in
name order, so two claims never wait for each other in opposite orders."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from core.dispatch import DispatchConfig, Upstreams
from core.routing import Health, Route, choose
from db import Conn, Row
from db import dispatch as dispatch_db
from db import providers as providers_db


@dataclass(slots=True)
class Claim:
    candidates: int = 0
    sending: list[Row] = field(default_factory=list)
    # Settled, with the sent ones, as failed and expired; until then they wait out of
    # sight of other claims (postponed by the lease: should this worker die, they come
    # back then).
    no_route: list[Row] = field(default_factory=list)
    expired: list[Row] = field(default_factory=list)
    postponed: int = 0


def _health(rows: Sequence[Row]) -> dict[str, Health]:
    return {
        row["provider"]: Health(
            state=row["state"], throttled_until=row["throttled_until"], opened_at=row["opened_at"]
        )
        for row in rows
    }


def _wait_until(health: Health | None, now: datetime, cooldown: float) -> datetime:
    """When a message held back from this provider is worth another look."""
    if health is not None and health.state == "open" and health.opened_at is not None:
        return max(now + timedelta(seconds=0.5), health.opened_at + timedelta(seconds=cooldown))
    if health is not None and health.throttled_until is not None and health.throttled_until > now:
        return health.throttled_until
    return now + timedelta(seconds=1)


async def _paced(
    conn: Conn, tenant_id: uuid.UUID, rows: list[Row], pace: float
) -> tuple[list[Row], list[Row]]:
    """The tenant's delivery pace: as many messages, in due order, as its segments-per-
    second bucket allows now; the rest wait for it to refill."""
    granted = await dispatch_db.take_tenant_segments(
        conn, tenant_id=tenant_id, wanted=sum(row["segments"] for row in rows), rate=pace
    )
    spent, cut = 0, 0
    for row in rows:
        if spent + row["segments"] > granted:
            break
        spent += row["segments"]
        cut += 1
    if spent < granted:
        # A long message at the cut did not fit: give its share back (a negative take).
        await dispatch_db.take_tenant_segments(
            conn, tenant_id=tenant_id, wanted=spent - granted, rate=pace
        )
    return rows[:cut], rows[cut:]


async def _pace_tenants(
    conn: Conn,
    tenants: dict[uuid.UUID, Row],
    live: list[Row],
    waiting: dict[datetime, list[Row]],
    now: datetime,
) -> list[Row]:
    """The live messages the tenants' delivery paces let through now; the rest are added
    to ``waiting`` for when their bucket has refilled."""
    paced = {t for t, info in tenants.items() if info["rate_limit_mps"]}
    if not paced:
        return live
    kept: list[Row] = []
    by_tenant: dict[uuid.UUID, list[Row]] = {}
    for row in live:
        if row["tenant_id"] in paced:
            by_tenant.setdefault(row["tenant_id"], []).append(row)
        else:
            kept.append(row)
    for tenant_id, rows in sorted(by_tenant.items()):
        pace = float(tenants[tenant_id]["rate_limit_mps"])
        allowed, held_back = await _paced(conn, tenant_id, rows, pace)
        kept.extend(allowed)
        if held_back:
            # The bucket refills at `pace` segments per second.
            deficit = sum(row["segments"] for row in held_back)
            until = now + timedelta(seconds=min(5.0, max(0.2, deficit / pace)))
            waiting.setdefault(until, []).extend(held_back)
    return kept


def _route_cost(costs: Mapping[tuple[str, str], int], to: str) -> Callable[[Route], int]:
    """A route's cost per segment for ``to``: its provider's price list, else its flat one."""

    def cost(route: Route) -> int:
        return costs.get((to, route.provider), route.cost_per_segment)

    return cost


def _keys(rows: Sequence[Row]) -> list[tuple[datetime, uuid.UUID]]:
    return [(row["created_at"], row["id"]) for row in rows]


async def claim(
    conn: Conn,
    *,
    tenants: Sequence[Row],
    upstreams: Upstreams,
    config: DispatchConfig,
    now: datetime,
) -> Claim:
    """Inside the caller's transaction; ``tenants`` from db.dispatch.turn_tenants."""
    result = Claim()
    candidates = await dispatch_db.claim_candidates(
        conn, tenants=tenants, per_tenant=config.batch_size
    )
    result.candidates = len(candidates)
    if not candidates:
        return result
    info = {row["tenant_id"]: row for row in tenants}
    await upstreams.refresh(conn)
    table = upstreams.table()
    # The providers' own price lists, for every number of the turn in one statement
    # (none to read while no provider has one).
    costs = (
        await dispatch_db.provider_costs(
            conn, numbers=sorted({row["to_number"] for row in candidates})
        )
        if table.priced
        else {}
    )
    health = _health(
        await providers_db.health(conn, cooldown_seconds=config.breaker.cooldown_seconds)
    )
    expired = [row for row in candidates if row["expires_at"] <= now]
    live = [row for row in candidates if row["expires_at"] > now]
    waiting: dict[datetime, list[Row]] = {}
    live = await _pace_tenants(conn, info, live, waiting, now)
    by_provider: dict[str, list[Row]] = {}
    cost_of: dict[uuid.UUID, int | None] = {}
    for row in live:
        tier = info[row["tenant_id"]]["tier"]
        avoid = row["provider"] if row["attempts"] > 0 else None
        to = row["to_number"]
        choice = choose(
            table,
            to=to,
            tier=tier,
            health=health,
            now=now,
            avoid=avoid,
            cost=_route_cost(costs, to),
            # The margin guard, for messages priced by a rate card (not a free answer).
            ceiling=row["price_per_segment"],
        )
        if choice.provider is not None:
            by_provider.setdefault(choice.provider, []).append(row)
            cost_of[row["id"]] = choice.cost_per_segment
        elif choice.wait:
            blocking = [health.get(r.provider) for r in choice.candidates]
            until = min(_wait_until(h, now, config.breaker.cooldown_seconds) for h in blocking)
            waiting.setdefault(until, []).append(row)
        else:
            result.no_route.append(row)
    keys: list[tuple[datetime, uuid.UUID]] = []
    providers: list[str] = []
    route_costs: list[int | None] = []
    for name, rows in sorted(by_provider.items()):
        state = health.get(name)
        mps = upstreams.mps(name)
        allowed = len(rows)
        if mps is not None or (state is not None and state.state == "half_open"):
            allowed = await providers_db.take_sends(
                conn, provider=name, wanted=len(rows), mps=mps, probes=config.breaker.probes
            )
        for row in rows[allowed:]:
            wait = len(rows) / mps if mps else 1.0
            waiting.setdefault(now + timedelta(seconds=min(wait, 5.0)), []).append(row)
        keys.extend(_keys(rows[:allowed]))
        providers.extend([name] * allowed)
        route_costs.extend(cost_of[row["id"]] for row in rows[:allowed])
    # The claim proper, and the updates after it, join many keys to messages.
    await dispatch_db.plan_key_batches(conn)
    if keys:
        result.sending = await dispatch_db.mark_sending(
            conn,
            keys=keys,
            providers=providers,
            costs=route_costs,
            lease_seconds=config.lease_seconds,
        )
    set_aside = [*expired, *result.no_route]
    if set_aside:
        until = now + timedelta(seconds=config.lease_seconds)
        await dispatch_db.postpone(conn, keys=_keys(set_aside), until=until)
    for until, rows in waiting.items():
        await dispatch_db.postpone(conn, keys=_keys(rows), until=until)
    result.expired = expired
    result.postponed = sum(len(rows) for rows in waiting.values())
    return result
