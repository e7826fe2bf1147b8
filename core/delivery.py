"""One dispatch turn of one tenant: claim, send, settle.

Three short steps, and no transaction is open while the provider is called:

1. claim (one transaction): lock up to N due messages, route each (core/routing.py),
   and mark those that can go now ``sending`` under a lease; the rest wait (breaker
   open, throttled, out of budget), expire, or fail when no route exists at all;
2. send: each provider gets its share of the batch, concurrently, and answers per
   message; the outcomes feed its circuit breaker, shared through PostgreSQL;
3. settle (one transaction): ``sent`` + capture, ``queued`` for a retry with backoff,
   ``failed`` or ``expired`` + release; then, holding the tenant's balance row lock,
   make sure a dispatch job is coming for whatever is still due.

A worker killed between 1 and 3 leaves its messages ``sending``; when the lease lapses
they are queued again and sent again (at-least-once upstream). The settle only applies
to the claim that sent the message, and the ledger's (message, phase) key refuses a
second settlement, so billing stays exactly-once.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import structlog
from psycopg_pool import AsyncConnectionPool

from core.accept import DispatchScheduler
from core.retry import Backoff
from core.routing import Health, RouteTable, choose
from db import Conn, Row
from db import dispatch as dispatch_db
from db import providers as providers_db
from providers.base import (
    Accepted,
    OutboundMessage,
    PermanentError,
    Provider,
    SendResult,
    TransientError,
)

log = structlog.get_logger("smsgw.delivery")


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    # Opens when, over the window, at least `min_requests` outcomes were seen and at
    # least `error_rate` of them were transient failures; half-opens after the
    # cool-down and lets `probes` messages through; closes on a probe's success.
    window_seconds: float = 30.0
    min_requests: int = 20
    error_rate: float = 0.5
    cooldown_seconds: float = 15.0
    probes: int = 5


@dataclass(frozen=True, slots=True)
class DispatchConfig:
    batch_size: int = 200
    lease_seconds: float = 60.0
    backoff: Backoff = field(default_factory=Backoff)
    breaker: BreakerConfig = field(default_factory=BreakerConfig)


class Upstreams(Protocol):
    """The providers a worker can use and the route table, kept current by ``jobs``."""

    async def refresh(self, conn: Conn) -> None: ...

    def table(self) -> RouteTable: ...

    def get(self, name: str) -> Provider: ...

    def mps(self, name: str) -> float | None: ...


@dataclass(slots=True)
class TurnReport:
    claimed: int = 0
    expired_waiting: int = 0
    postponed: int = 0
    no_route: int = 0
    settled: dict[str, int] = field(default_factory=dict)
    # Not before this instant is the tenant worth another turn (nothing was routable).
    hold_off_until: datetime | None = None


def _health(rows: Sequence[Row]) -> dict[str, Health]:
    return {
        row["provider"]: Health(
            state=row["state"], throttled_until=row["throttled_until"], opened_at=row["opened_at"]
        )
        for row in rows
    }


def _outbound(row: Row) -> OutboundMessage:
    return OutboundMessage(
        id=row["id"],
        to=row["to_number"],
        sender=row["sender"],
        body=row["body"],
        encoding=row["encoding"],
        segments=row["segments"],
        attempt=row["attempts"],
    )


@dataclass(slots=True)
class _Settlement:
    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(
        self,
        row: Row,
        outcome: str,
        *,
        provider_message_id: str | None = None,
        error_code: str | None = None,
        error_message: str | None = None,
        next_attempt_at: datetime | None = None,
    ) -> None:
        self.rows.append(
            {
                "id": row["id"],
                "created_at": row["created_at"],
                "attempts": row["attempts"],
                "outcome": outcome,
                "provider_message_id": provider_message_id,
                "error_code": error_code,
                "error_message": error_message,
                "next_attempt_at": next_attempt_at,
            }
        )

    def column(self, name: str) -> list[Any]:
        return [row[name] for row in self.rows]


def plan_settlement(
    rows: Sequence[Row],
    results: Sequence[SendResult],
    *,
    backoff: Backoff,
    now: datetime,
    rng: random.Random | None = None,
) -> _Settlement:
    """What each result means for its message (pure: no I/O)."""
    plan = _Settlement()
    for row, result in zip(rows, results, strict=True):
        if isinstance(result, Accepted):
            plan.add(row, "sent", provider_message_id=result.provider_message_id)
        elif isinstance(result, PermanentError):
            plan.add(row, "failed", error_code=result.code, error_message=result.message)
        else:
            delay = backoff.delay(row["attempts"], rng)
            if result.retry_after is not None:
                delay = max(delay, result.retry_after)
            retry_at = now + timedelta(seconds=delay)
            if retry_at >= row["expires_at"]:
                plan.add(
                    row,
                    "expired",
                    error_code="validity_expired",
                    error_message=f"validity ended before a retry; last error: {result.message}",
                )
            else:
                plan.add(
                    row,
                    "queued",
                    error_code=result.code,
                    error_message=result.message,
                    next_attempt_at=retry_at,
                )
    return plan


async def _send(provider: Provider, rows: Sequence[Row]) -> list[SendResult]:
    try:
        results = await provider.send([_outbound(row) for row in rows])
    except Exception as exc:  # an adapter bug or outage must not strand the claim
        log.warning("provider.send_failed", provider=provider.name, error=repr(exc))
        return [TransientError("provider_error", f"{type(exc).__name__}") for _ in rows]
    if len(results) != len(rows):
        log.error("provider.bad_answer", provider=provider.name, sent=len(rows), got=len(results))
        return [TransientError("provider_error", "wrong number of results") for _ in rows]
    return results


async def kick(
    conn: Conn,
    *,
    tenant_id: uuid.UUID,
    scheduler: DispatchScheduler,
    not_before: datetime | None = None,
) -> datetime | None:
    """Inside the caller's transaction: lock the tenant's balance row, then make sure a
    dispatch job is coming for its earliest scheduled or queued message, if any (not
    before ``not_before``, when nothing could be routed this turn)."""
    if not await dispatch_db.lock_balance(conn, tenant_id=tenant_id):
        return None
    due = await dispatch_db.next_due(conn, tenant_id=tenant_id)
    if due is not None:
        if not_before is not None and due < not_before:
            due = not_before
        tier = await dispatch_db.tenant_tier(conn, tenant_id=tenant_id)
        await scheduler.ensure(conn, tenant_id=tenant_id, tier=tier or "standard", due_at=due)
    return due


@dataclass(slots=True)
class _Claim:
    sending: list[Row] = field(default_factory=list)
    no_route: list[Row] = field(default_factory=list)


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


async def _claim(
    conn: Conn,
    *,
    tenant_id: uuid.UUID,
    upstreams: Upstreams,
    config: DispatchConfig,
    report: TurnReport,
    now: datetime,
) -> _Claim:
    claim = _Claim()
    candidates = await dispatch_db.claim_candidates(
        conn, tenant_id=tenant_id, limit=config.batch_size
    )
    report.claimed = len(candidates)
    if not candidates:
        return claim
    info = await dispatch_db.tenant_dispatch_info(conn, tenant_id=tenant_id)
    tier = info["tier"] if info else "standard"
    pace = info["rate_limit_mps"] if info else None
    await upstreams.refresh(conn)
    table = upstreams.table()
    health = _health(
        await providers_db.health(conn, cooldown_seconds=config.breaker.cooldown_seconds)
    )
    expired = [row for row in candidates if row["expires_at"] <= now]
    live = [row for row in candidates if row["expires_at"] > now]
    waiting: dict[datetime, list[Row]] = {}
    if pace and live:
        live, held_back = await _paced(conn, tenant_id, live, float(pace))
        if held_back:
            # The bucket refills at `pace` segments per second.
            deficit = sum(row["segments"] for row in held_back)
            waiting[now + timedelta(seconds=min(5.0, max(0.2, deficit / pace)))] = held_back
    by_provider: dict[str, list[Row]] = {}
    for row in live:
        avoid = row["provider"] if row["attempts"] > 0 else None
        choice = choose(table, to=row["to_number"], tier=tier, health=health, now=now, avoid=avoid)
        if choice.provider is not None:
            by_provider.setdefault(choice.provider, []).append(row)
        elif choice.wait:
            blocking = [health.get(r.provider) for r in table.candidates(row["to_number"], tier)]
            until = min(_wait_until(h, now, config.breaker.cooldown_seconds) for h in blocking)
            waiting.setdefault(until, []).append(row)
        else:
            claim.no_route.append(row)
    keys: list[tuple[datetime, uuid.UUID]] = []
    providers: list[str] = []
    for name, rows in by_provider.items():
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
        for row in rows[:allowed]:
            keys.append((row["created_at"], row["id"]))
            providers.append(name)
    if keys:
        claim.sending = await dispatch_db.mark_sending(
            conn,
            tenant_id=tenant_id,
            keys=keys,
            providers=providers,
            lease_seconds=config.lease_seconds,
        )
    if expired:
        await dispatch_db.expire(
            conn, tenant_id=tenant_id, keys=[(r["created_at"], r["id"]) for r in expired]
        )
    for until, rows in waiting.items():
        await dispatch_db.postpone(
            conn, tenant_id=tenant_id, keys=[(r["created_at"], r["id"]) for r in rows], until=until
        )
    report.expired_waiting = len(expired)
    report.postponed = sum(len(rows) for rows in waiting.values())
    report.no_route = len(claim.no_route)
    if waiting and not claim.sending:
        report.hold_off_until = min(waiting)
    return claim


async def _send_all(
    upstreams: Upstreams, rows: Sequence[Row]
) -> tuple[list[tuple[Row, SendResult]], dict[str, tuple[list[SendResult], float]]]:
    """Each provider's share concurrently; results per row, and per provider with the
    batch's latency (for the breaker)."""
    groups: dict[str, list[Row]] = {}
    for row in rows:
        groups.setdefault(row["provider"], []).append(row)

    async def one(name: str, group: list[Row]) -> tuple[str, list[SendResult], float]:
        started = time.perf_counter()
        results = await _send(upstreams.get(name), group)
        return name, results, (time.perf_counter() - started) * 1000 / max(1, len(group))

    outcomes = await asyncio.gather(*(one(name, group) for name, group in groups.items()))
    paired: list[tuple[Row, SendResult]] = []
    per_provider: dict[str, tuple[list[SendResult], float]] = {}
    for name, results, latency in outcomes:
        paired.extend(zip(groups[name], results, strict=True))
        per_provider[name] = (results, latency)
    return paired, per_provider


async def _record_outcomes(
    conn: Conn, per_provider: dict[str, tuple[list[SendResult], float]], breaker: BreakerConfig
) -> None:
    for name, (results, latency) in sorted(per_provider.items()):
        failures = [r for r in results if isinstance(r, TransientError)]
        throttled = [r.retry_after or 0.0 for r in failures if r.code == "throttled"]
        throttle = max(throttled, default=0.0)
        before, after = await providers_db.record_outcomes(
            conn,
            provider=name,
            # A permanent error is the message's fault, not the provider's.
            successes=len(results) - len(failures),
            failures=len(failures),
            latency_ms=latency,
            window_seconds=breaker.window_seconds,
            min_requests=breaker.min_requests,
            error_rate=breaker.error_rate,
            throttle_seconds=throttle,
        )
        if before != after:
            log.warning("provider.breaker_changed", provider=name, old=before, new=after)


async def dispatch_turn(
    pool: AsyncConnectionPool[Conn],
    *,
    tenant_id: uuid.UUID,
    upstreams: Upstreams,
    scheduler: DispatchScheduler,
    config: DispatchConfig,
) -> TurnReport:
    report = TurnReport()
    now = datetime.now(UTC)
    async with pool.connection() as conn, conn.transaction():
        claim = await _claim(
            conn, tenant_id=tenant_id, upstreams=upstreams, config=config, report=report, now=now
        )
        if report.claimed == config.batch_size and report.hold_off_until is None:
            # More are probably due: let another worker take the next batch while this
            # one sends. The job goes to the back of the queue, behind other tenants.
            tier = await dispatch_db.tenant_tier(conn, tenant_id=tenant_id)
            await scheduler.ensure(
                conn, tenant_id=tenant_id, tier=tier or "standard", due_at=datetime.now(UTC)
            )
    plan = _Settlement()
    per_provider: dict[str, tuple[list[SendResult], float]] = {}
    if claim.sending:
        paired, per_provider = await _send_all(upstreams, claim.sending)
        plan = plan_settlement(
            [row for row, _ in paired],
            [result for _, result in paired],
            backoff=config.backoff,
            now=datetime.now(UTC),
        )
    for row in claim.no_route:
        plan.add(
            row,
            "failed",
            error_code="no_route",
            error_message="no route serves this destination",
        )
    async with pool.connection() as conn, conn.transaction():
        if plan.rows:
            report.settled = await dispatch_db.settle(conn, tenant_id=tenant_id, results=plan.rows)
        await kick(conn, tenant_id=tenant_id, scheduler=scheduler, not_before=report.hold_off_until)
    if per_provider:
        # After the settle commits: the health row is shared by every worker, and
        # holding its lock until a settle's commit would serialise all of them.
        async with pool.connection() as conn:
            await _record_outcomes(conn, per_provider, config.breaker)
    if report.claimed:
        log.info(
            "dispatch.turn",
            tenant_id=str(tenant_id),
            claimed=report.claimed,
            expired=report.expired_waiting,
            postponed=report.postponed,
            no_route=report.no_route,
            **report.settled,
        )
    return report


async def recover_leases(
    pool: AsyncConnectionPool[Conn], *, scheduler: DispatchScheduler, limit: int = 1000
) -> int:
    """Requeue messages whose claim lapsed, then wake their tenants' dispatch."""
    async with pool.connection() as conn:
        async with conn.transaction():
            tenants = await dispatch_db.recover_leases(conn, limit=limit)
        for tenant_id in sorted(set(tenants)):
            async with conn.transaction():
                await kick(conn, tenant_id=tenant_id, scheduler=scheduler)
    if tenants:
        log.warning("dispatch.leases_recovered", messages=len(tenants))
    return len(tenants)


async def wake_stranded(pool: AsyncConnectionPool[Conn], *, scheduler: DispatchScheduler) -> int:
    """The safety net: tenants with pending messages but no dispatch job get one."""
    async with pool.connection() as conn:
        stranded = await dispatch_db.tenants_without_dispatch(conn)
        for tenant_id in stranded:
            async with conn.transaction():
                await kick(conn, tenant_id=tenant_id, scheduler=scheduler)
    if stranded:
        log.warning("dispatch.stranded_tenants_woken", tenants=len(stranded))
    return len(stranded)
