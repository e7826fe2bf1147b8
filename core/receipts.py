"""Delivery receipts: every upstream's receipts enter through ``record`` (the HTTP DLR
endpoint, the SMPP adapter, the simulator) and take effect through ``apply_due``."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime

import psycopg
from psycopg_pool import AsyncConnectionPool

from db import Conn
from db import dispatch as dispatch_db
from db import receipts as receipts_db
from providers.base import Receipt, ReceiptSink

# Receipts name messages sent at most this long ago (validity is at most 72 h).
HORIZON_SECONDS = 4 * 24 * 3600

# Batches applied side by side, each a transaction on a connection of its own; SKIP
# LOCKED gives each its own receipts. One lane at a time applied about 3,700 receipts a
# second on 2 cores while the gateway sent 8,700 (issue 22): the inbox grew without end.
LANES = 2
BATCH = 1000


def _inbox_row(r: Receipt, now: datetime) -> dict[str, object]:
    return {
        "provider": r.provider,
        "provider_message_id": r.provider_message_id,
        "status": r.status,
        "error_code": r.error_code,
        "occurred_at": r.occurred_at,
        "available_at": r.not_before or now,
    }


async def record(conn: Conn, receipts: Sequence[Receipt]) -> int:
    """Stores ``receipts`` in the inbox, where apply_due takes them when due."""
    now = datetime.now(UTC)
    return await receipts_db.record(conn, receipts=[_inbox_row(r, now) for r in receipts])


async def take_in(conn: Conn, receipts: Sequence[Receipt]) -> int:
    """Receipts as they arrive, in the caller's transaction: those due now that name a
    message are applied at once (a duplicate finds it final and changes nothing); the
    rest (due later, or naming no message yet: its submit response may not be stored)
    go to the inbox for apply_due. Returns how many were applied at once.

    A receipt that takes effect on arrival is never written to the inbox, locked there
    and deleted again: three writes of four per receipt from an SMPP or HTTP upstream."""
    now = datetime.now(UTC)
    due = [
        {"ord": i, "provider": r.provider, "provider_message_id": r.provider_message_id}
        for i, r in enumerate(receipts)
        if r.not_before is None or r.not_before <= now
    ]
    matched = (
        await receipts_db.match(conn, receipts=due, horizon_seconds=HORIZON_SECONDS) if due else []
    )
    if matched:
        await dispatch_db.plan_key_batches(conn)
        await receipts_db.apply_matched(
            conn,
            receipts=[
                {
                    "created_at": row["created_at"],
                    "id": row["id"],
                    "new_status": receipts[row["ord"]].status,
                    "error_code": receipts[row["ord"]].error_code,
                    "occurred_at": receipts[row["ord"]].occurred_at,
                }
                for row in matched
            ],
        )
    taken = {row["ord"] for row in matched}
    rest = [_inbox_row(r, now) for i, r in enumerate(receipts) if i not in taken]
    if rest:
        await receipts_db.record(conn, receipts=rest)
    return len(taken)


def sink_for(pool: AsyncConnectionPool[Conn]) -> ReceiptSink:
    """A sink that applies or stores each batch of receipts in a transaction of its own.
    Should two batches with duplicate receipts deadlock, the loser stores its batch whole
    instead: a sink must not fail the send that handed it the receipts."""

    async def sink(receipts: Sequence[Receipt]) -> None:
        try:
            async with pool.connection() as conn, conn.transaction():
                await take_in(conn, receipts)
        except psycopg.errors.DeadlockDetected:
            async with pool.connection() as conn, conn.transaction():
                await record(conn, receipts)

    return sink


async def apply_due(pool: AsyncConnectionPool[Conn], *, limit: int = 1000) -> dict[str, int]:
    """One batch of due receipts, in a transaction of its own on a connection of
    ``pool``; returns counts (due, applied, consumed, waiting).

    A matched receipt is consumed whether it changed anything or not (a duplicate finds
    the message final already); an unmatched one waits with backoff, since its submit
    response may not be stored yet, and is dropped once older than the horizon."""
    async with pool.connection() as conn, conn.transaction():
        # Nothing due: one probe of the inbox's due index, and nothing else runs.
        rows = await receipts_db.take_due(conn, limit=limit, horizon_seconds=HORIZON_SECONDS)
        matched = [row for row in rows if row["id"] is not None]
        due = {row["receipt_id"] for row in rows}
        found = {row["receipt_id"] for row in matched}
        expired = {row["receipt_id"] for row in rows if row["expired"]}
        applied = 0
        if matched:
            await dispatch_db.plan_key_batches(conn)
            applied = await receipts_db.apply_matched(conn, receipts=matched)
        gone = sorted(found | expired)
        waiting = sorted(due - found - expired)
        consumed = await receipts_db.consume(conn, ids=gone) if gone else 0
        postponed = await receipts_db.postpone(conn, ids=waiting) if waiting else 0
    return {"due": len(due), "applied": applied, "consumed": consumed, "waiting": postponed}


async def apply_for(
    pool: AsyncConnectionPool[Conn], *, seconds: float, lanes: int = LANES, limit: int = BATCH
) -> Counter[str]:
    """Applies due receipts for up to ``seconds``, ``lanes`` batches at a time, until
    a batch finds fewer than ``limit`` due; returns the batches' counts added up."""
    deadline = time.monotonic() + seconds
    totals: Counter[str] = Counter()

    async def lane() -> None:
        while time.monotonic() < deadline:
            try:
                counts = await apply_due(pool, limit=limit)
            except psycopg.errors.DeadlockDetected:
                # Two lanes holding duplicate receipts of the same messages, taken in
                # crossed order: this batch rolled back whole and is taken again.
                totals["deadlocks"] += 1
                continue
            totals.update(counts)
            if counts["due"] < limit:
                return

    await asyncio.gather(*(lane() for _ in range(lanes)))
    return totals
