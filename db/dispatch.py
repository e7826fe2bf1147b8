"""Claiming, settling and recovering messages for delivery."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from db import Conn, Row
from db.sql import Queries, json_rows

_q = Queries("dispatch")


def _keys(keys: Sequence[tuple[datetime, uuid.UUID]]) -> str:
    return json_rows([{"created_at": created_at, "id": id_} for created_at, id_ in keys])


def _span(created: Sequence[datetime]) -> dict[str, datetime | None]:
    """The range of created_at the statement touches, so that PostgreSQL prunes the
    other daily partitions (see db/queries/dispatch.sql, mark_sending). No keys, no
    range: the statement then touches nothing, as it would anyway."""
    if not created:
        return {"oldest": None, "newest": None}
    return {"oldest": min(created), "newest": max(created)}


async def claim_candidates(conn: Conn, *, tenant_id: uuid.UUID, limit: int) -> list[Row]:
    return await _q.all(conn, "claim_candidates", tenant_id=tenant_id, limit=limit)


async def mark_sending(
    conn: Conn,
    *,
    tenant_id: uuid.UUID,
    keys: Sequence[tuple[datetime, uuid.UUID]],
    providers: Sequence[str],
    lease_seconds: float,
) -> list[Row]:
    claims = [
        {"created_at": key[0], "id": key[1], "provider": provider}
        for key, provider in zip(keys, providers, strict=True)
    ]
    return await _q.all(
        conn,
        "mark_sending",
        **_span([key[0] for key in keys]),
        tenant_id=tenant_id,
        claims=json_rows(claims),
        lease_seconds=lease_seconds,
    )


async def postpone(
    conn: Conn, *, tenant_id: uuid.UUID, keys: Sequence[tuple[datetime, uuid.UUID]], until: datetime
) -> int:
    return await _q.run(
        conn,
        "postpone",
        tenant_id=tenant_id,
        keys=_keys(keys),
        until=until,
        **_span([key[0] for key in keys]),
    )


async def expire(
    conn: Conn, *, tenant_id: uuid.UUID, keys: Sequence[tuple[datetime, uuid.UUID]]
) -> None:
    await _q.run(
        conn, "expire", tenant_id=tenant_id, keys=_keys(keys), **_span([key[0] for key in keys])
    )


async def settle(
    conn: Conn, *, tenant_id: uuid.UUID, results: Sequence[Mapping[str, Any]]
) -> dict[str, int]:
    """Apply results (one mapping per message); returns how many took each status."""
    rows = await _q.all(
        conn,
        "settle",
        tenant_id=tenant_id,
        results=json_rows(results),
        **_span([r["created_at"] for r in results]),
    )
    return {row["status"]: int(row["messages"]) for row in rows}


async def lock_balance(conn: Conn, *, tenant_id: uuid.UUID) -> bool:
    return await _q.one(conn, "lock_balance", tenant_id=tenant_id) is not None


async def next_due(conn: Conn, *, tenant_id: uuid.UUID) -> datetime | None:
    row = await _q.one(conn, "next_due", tenant_id=tenant_id)
    return None if row is None else row["next_due"]


async def recover_leases(conn: Conn, *, limit: int) -> list[uuid.UUID]:
    """Requeue lapsed claims; returns the tenants concerned (with repeats)."""
    return [row["tenant_id"] for row in await _q.all(conn, "recover_leases", limit=limit)]


async def tenants_without_dispatch(conn: Conn) -> list[uuid.UUID]:
    return [row["tenant_id"] for row in await _q.all(conn, "tenants_without_dispatch")]


async def tenant_tier(conn: Conn, *, tenant_id: uuid.UUID) -> str | None:
    row = await _q.one(conn, "tenant_tier", tenant_id=tenant_id)
    return None if row is None else str(row["tier"])


async def tenant_dispatch_info(conn: Conn, *, tenant_id: uuid.UUID) -> Row | None:
    """The tenant's tier and delivery pace (segments per second, None: unlimited)."""
    return await _q.one(conn, "tenant_dispatch_info", tenant_id=tenant_id)


async def take_tenant_segments(
    conn: Conn, *, tenant_id: uuid.UUID, wanted: int, rate: float
) -> int:
    row = await _q.one(conn, "take_tenant_segments", tenant_id=tenant_id, wanted=wanted, rate=rate)
    assert row is not None
    return int(row["granted"])
