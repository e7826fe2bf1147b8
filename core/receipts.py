"""Delivery receipts: every upstream's receipts enter through ``record`` (the HTTP DLR
endpoint, the SMPP adapter, the simulator) and take effect through ``apply_due``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from psycopg_pool import AsyncConnectionPool

from db import Conn
from db import receipts as receipts_db
from providers.base import Receipt, ReceiptSink

# Receipts name messages sent at most this long ago (validity is at most 72 h).
HORIZON_SECONDS = 4 * 24 * 3600


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


async def apply_due(conn: Conn, *, limit: int = 1000) -> dict[str, int]:
    """One batch of due receipts; returns counts (due, applied, consumed, waiting)."""
    async with conn.transaction():
        if not await receipts_db.any_due(conn):
            return {"due": 0, "applied": 0, "consumed": 0, "waiting": 0}
        row = await receipts_db.apply_due(conn, limit=limit, horizon_seconds=HORIZON_SECONDS)
    return {key: int(value) for key, value in row.items()}
