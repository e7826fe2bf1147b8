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


async def record(conn: Conn, receipts: Sequence[Receipt]) -> int:
    now = datetime.now(UTC)
    return await receipts_db.record(
        conn,
        receipts=[
            {
                "provider": r.provider,
                "provider_message_id": r.provider_message_id,
                "status": r.status,
                "error_code": r.error_code,
                "occurred_at": r.occurred_at,
                "available_at": r.not_before or now,
            }
            for r in receipts
        ],
    )


def sink_for(pool: AsyncConnectionPool[Conn]) -> ReceiptSink:
    """A sink that stores receipts in the inbox, each batch in its own transaction."""

    async def sink(receipts: Sequence[Receipt]) -> None:
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
