"""A dispatch turn of one tier: claim, send, settle.

Three short steps, and no transaction is open while a provider is called:

1. claim (one transaction, core/claim.py): the tier's longest-waiting tenants, a batch of
   due messages each, routed and marked ``sending`` under a lease; then the tenants'
   dispatch_queue rows are recounted (served tenants go to the back of the line) and the
   tier's next turn is queued, so another worker can claim while this one sends;
2. send: each provider gets its share of the batch, concurrently, and answers per
   message; the outcomes feed its circuit breaker, shared through PostgreSQL;
3. settle (one transaction): ``sent`` + capture, ``queued`` for a retry with backoff,
   ``failed`` or ``expired`` + release; the tenants with a retry are recounted.

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
from typing import Any

import structlog
from psycopg_pool import AsyncConnectionPool

from core.claim import claim
from core.dispatch import BreakerConfig, DispatchConfig, Upstreams
from core.retry import Backoff
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

# When where a tenant's due messages begin is not known, every partition is read.
UNKNOWN_OLDEST = datetime(1, 1, 1, tzinfo=UTC)
# A worker whose heartbeat (procrastinate's, every 10 s) is older than this is taken for
# dead by the safety net: its running turns no longer stand for their tiers. The same
# bound procrastinate uses to prune stalled workers.
WORKER_ALIVE_SECONDS = 30.0


@dataclass(slots=True)
class TurnReport:
    tenants: int = 0
    claimed: int = 0
    expired_waiting: int = 0
    postponed: int = 0
    no_route: int = 0
    settled: dict[str, int] = field(default_factory=dict)


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
    tier: str,
    upstreams: Upstreams,
    task: str,
    config: DispatchConfig,
) -> TurnReport:
    report = TurnReport()
    now = datetime.now(UTC)
    async with pool.connection() as conn:
        if config.turn_gap_seconds > 0:
            # Committed at once (autocommit), before the claim's transaction begins.
            await dispatch_db.start_paced_turn(conn, tier=tier, gap_seconds=config.turn_gap_seconds)
        async with conn.transaction():
            tenants = await dispatch_db.turn_tenants(conn, tier=tier, limit=config.tenants_per_turn)
            report.tenants = len(tenants)
            if not tenants:
                # Queued for tenants now due later (a retry's backoff): none is left without
                # a turn.
                await dispatch_db.ensure_next_turn(conn, tier=tier, task=task)
                return report
            claimed = await claim(
                conn, tenants=tenants, upstreams=upstreams, config=config, now=now
            )
            # A small turn spaces the tier's next one, so that it carries what arrives
            # meanwhile; a full turn does not (a backlog drains at full speed). Before the
            # recount, which queues that turn.
            full = (
                len(tenants) >= config.tenants_per_turn or claimed.candidates >= config.batch_size
            )
            await dispatch_db.pace_tier(
                conn, tier=tier, gap_seconds=0.0 if full else config.turn_gap_seconds
            )
            # Last, so the balance rows it locks are held only until the commit.
            await dispatch_db.requeue_tenants(
                conn,
                due_again={t["tenant_id"]: None for t in tenants},
                task=task,
                back_of_line=True,
            )
    report.claimed = claimed.candidates
    report.expired_waiting = len(claimed.expired)
    report.postponed = claimed.postponed
    report.no_route = len(claimed.no_route)
    plan = _Settlement()
    per_provider: dict[str, tuple[list[SendResult], float]] = {}
    if claimed.sending:
        paired, per_provider = await _send_all(upstreams, claimed.sending)
        plan = plan_settlement(
            [row for row, _ in paired],
            [result for _, result in paired],
            backoff=config.backoff,
            now=datetime.now(UTC),
        )
    for row in claimed.no_route:
        plan.add(
            row,
            "failed",
            error_code="no_route",
            error_message="no route serves this destination",
        )
    for row in claimed.expired:
        plan.add(
            row,
            "expired",
            error_code="validity_expired",
            error_message="the validity period ended before the message was sent",
        )
    if plan.rows:
        async with pool.connection() as conn, conn.transaction():
            await dispatch_db.plan_key_batches(conn)
            settled = await dispatch_db.settle(conn, results=plan.rows)
            if settled.due_again:
                await dispatch_db.requeue_tenants(
                    conn, due_again=settled.due_again, task=task, back_of_line=True
                )
        report.settled = settled.statuses
    if per_provider:
        # After the settle commits: the health row is shared by every worker, and
        # holding its lock until a settle's commit would serialise all of them.
        async with pool.connection() as conn:
            await _record_outcomes(conn, per_provider, config.breaker)
    if report.claimed:
        log.info(
            "dispatch.turn",
            tier=tier,
            tenants=report.tenants,
            claimed=report.claimed,
            expired=report.expired_waiting,
            postponed=report.postponed,
            no_route=report.no_route,
            **report.settled,
        )
    return report


async def requeue(
    pool: AsyncConnectionPool[Conn], *, tenants: Sequence[uuid.UUID], task: str
) -> int:
    """Recount the tenants' work from their messages (oldest unknown: every partition is
    read) and make sure their tiers have a turn coming. For the safety net."""
    if not tenants:
        return 0
    async with pool.connection() as conn, conn.transaction():
        return await dispatch_db.requeue_tenants(
            conn, due_again=dict.fromkeys(tenants, UNKNOWN_OLDEST), task=task, back_of_line=False
        )


async def recover_leases(pool: AsyncConnectionPool[Conn], *, task: str, limit: int = 1000) -> int:
    """Requeue messages whose claim lapsed, then queue their tenants."""
    async with pool.connection() as conn, conn.transaction():
        due_again = await dispatch_db.recover_leases(conn, limit=limit)
        if due_again:
            await dispatch_db.requeue_tenants(
                conn, due_again=dict(due_again), task=task, back_of_line=False
            )
    if due_again:
        log.warning("dispatch.leases_recovered", tenants=len(due_again))
    return len(due_again)


async def wake_stranded(pool: AsyncConnectionPool[Conn], *, task: str) -> int:
    """The safety net: tenants with pending messages but no dispatch_queue row are
    queued, and tiers with queued tenants but no turn get one."""
    async with pool.connection() as conn:
        stranded = await dispatch_db.tenants_without_dispatch(conn)
    await requeue(pool, tenants=stranded, task=task)
    async with pool.connection() as conn, conn.transaction():
        idle = await dispatch_db.tiers_without_turn(conn, alive_seconds=WORKER_ALIVE_SECONDS)
        for row in idle:
            await dispatch_db.ensure_tier_turn(conn, tier=row["tier"], task=task, due=row["due"])
    if stranded or idle:
        log.warning(
            "dispatch.stranded_woken", tenants=len(stranded), tiers=[row["tier"] for row in idle]
        )
    return len(stranded) + len(idle)
