"""One dispatch turn of one tenant: claim, send, settle.

Three short steps, and no transaction is open while the provider is called:

1. claim (one transaction): up to N due messages become ``sending`` under a lease;
2. send: the provider gets the batch and answers per message;
3. settle (one transaction): ``sent`` + capture, ``queued`` for a retry with backoff,
   ``failed`` or ``expired`` + release; then, holding the tenant's balance row lock,
   make sure a dispatch job is coming for whatever is still due.

A worker killed between 1 and 3 leaves its messages ``sending``; when the lease lapses
they are queued again and sent again (at-least-once upstream). The settle only applies
to the claim that sent the message, and the ledger's (message, phase) key refuses a
second settlement, so billing stays exactly-once.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from psycopg_pool import AsyncConnectionPool

from core.accept import DispatchScheduler
from core.retry import Backoff
from db import Conn, Row
from db import dispatch as dispatch_db
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
class DispatchConfig:
    batch_size: int = 200
    lease_seconds: float = 60.0
    backoff: Backoff = field(default_factory=Backoff)


@dataclass(slots=True)
class TurnReport:
    claimed: int = 0
    expired_waiting: int = 0
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
    ids: list[uuid.UUID] = field(default_factory=list)
    created_ats: list[datetime] = field(default_factory=list)
    attempts: list[int] = field(default_factory=list)
    outcomes: list[str] = field(default_factory=list)
    provider_message_ids: list[str | None] = field(default_factory=list)
    error_codes: list[str | None] = field(default_factory=list)
    error_messages: list[str | None] = field(default_factory=list)
    next_attempt_ats: list[datetime | None] = field(default_factory=list)

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
        self.ids.append(row["id"])
        self.created_ats.append(row["created_at"])
        self.attempts.append(row["attempts"])
        self.outcomes.append(outcome)
        self.provider_message_ids.append(provider_message_id)
        self.error_codes.append(error_code)
        self.error_messages.append(error_message)
        self.next_attempt_ats.append(next_attempt_at)

    def columns(self) -> dict[str, Sequence[Any]]:
        return {
            "ids": self.ids,
            "created_ats": self.created_ats,
            "attempts": self.attempts,
            "outcomes": self.outcomes,
            "provider_message_ids": self.provider_message_ids,
            "error_codes": self.error_codes,
            "error_messages": self.error_messages,
            "next_attempt_ats": self.next_attempt_ats,
        }


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
    conn: Conn, *, tenant_id: uuid.UUID, scheduler: DispatchScheduler
) -> datetime | None:
    """Inside the caller's transaction: lock the tenant's balance row, then make sure a
    dispatch job is coming for its earliest scheduled or queued message, if any."""
    if not await dispatch_db.lock_balance(conn, tenant_id=tenant_id):
        return None
    due = await dispatch_db.next_due(conn, tenant_id=tenant_id)
    if due is not None:
        tier = await dispatch_db.tenant_tier(conn, tenant_id=tenant_id)
        await scheduler.ensure(conn, tenant_id=tenant_id, tier=tier or "standard", due_at=due)
    return due


async def dispatch_turn(
    pool: AsyncConnectionPool[Conn],
    *,
    tenant_id: uuid.UUID,
    provider: Provider,
    scheduler: DispatchScheduler,
    config: DispatchConfig,
) -> TurnReport:
    report = TurnReport()
    async with pool.connection() as conn, conn.transaction():
        rows = await dispatch_db.claim(
            conn, tenant_id=tenant_id, limit=config.batch_size, lease_seconds=config.lease_seconds
        )
        if len(rows) == config.batch_size:
            # More are probably due: let another worker take the next batch while this
            # one sends. The job goes to the back of the queue, behind other tenants.
            tier = await dispatch_db.tenant_tier(conn, tenant_id=tenant_id)
            await scheduler.ensure(
                conn, tenant_id=tenant_id, tier=tier or "standard", due_at=datetime.now(UTC)
            )
    report.claimed = len(rows)
    sending = [row for row in rows if row["status"] == "sending"]
    report.expired_waiting = len(rows) - len(sending)
    plan = _Settlement()
    if sending:
        results = await _send(provider, sending)
        plan = plan_settlement(sending, results, backoff=config.backoff, now=datetime.now(UTC))
    async with pool.connection() as conn, conn.transaction():
        if plan.ids:
            report.settled = await dispatch_db.settle(
                conn, tenant_id=tenant_id, provider=provider.name, results=plan.columns()
            )
        await kick(conn, tenant_id=tenant_id, scheduler=scheduler)
    if report.claimed:
        log.info(
            "dispatch.turn",
            tenant_id=str(tenant_id),
            claimed=report.claimed,
            expired=report.expired_waiting,
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
