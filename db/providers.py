"""Providers, routes and the health every worker shares."""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from db import Conn, Row
from db.sql import Queries

_q = Queries("providers")


async def list_providers(conn: Conn) -> list[Row]:
    return await _q.all(conn, "list_providers")


async def list_routes(conn: Conn) -> list[Row]:
    return await _q.all(conn, "list_routes")


async def health(conn: Conn, *, cooldown_seconds: float) -> list[Row]:
    return await _q.all(conn, "health", cooldown_seconds=cooldown_seconds)


async def take_sends(
    conn: Conn, *, provider: str, wanted: int, mps: float | None, probes: int
) -> int:
    row = await _q.one(conn, "take_sends", provider=provider, wanted=wanted, mps=mps, probes=probes)
    assert row is not None
    return int(row["allowed"])


async def record_outcomes(
    conn: Conn,
    *,
    provider: str,
    successes: int,
    failures: int,
    latency_ms: float | None,
    window_seconds: float,
    min_requests: int,
    error_rate: float,
    throttle_seconds: float,
) -> tuple[str, str]:
    row = await _q.one(
        conn,
        "record_outcomes",
        provider=provider,
        successes=successes,
        failures=failures,
        latency_ms=latency_ms,
        window_seconds=window_seconds,
        min_requests=min_requests,
        error_rate=error_rate,
        throttle_seconds=throttle_seconds,
    )
    assert row is not None
    return str(row["old_state"]), str(row["new_state"])


async def upsert_provider(
    conn: Conn, *, name: str, kind: str, config: dict[str, Any], mps: int | None, enabled: bool
) -> Row:
    row = await _q.one(
        conn,
        "upsert_provider",
        name=name,
        kind=kind,
        config=Jsonb(config),
        mps=mps,
        enabled=enabled,
    )
    assert row is not None
    return row


async def insert_route(
    conn: Conn,
    *,
    prefix: str,
    tier: str | None,
    provider: str,
    priority: int,
    cost_per_segment: int,
    enabled: bool,
    allow_loss: bool = False,
) -> Row:
    row = await _q.one(
        conn,
        "insert_route",
        prefix=prefix,
        tier=tier,
        provider=provider,
        priority=priority,
        cost_per_segment=cost_per_segment,
        enabled=enabled,
        allow_loss=allow_loss,
    )
    assert row is not None
    return row


async def lock_route(conn: Conn, *, id: int) -> Row | None:
    return await _q.one(conn, "lock_route", id=id)


async def update_route(
    conn: Conn,
    *,
    id: int,
    prefix: str,
    tier: str | None,
    provider: str,
    priority: int,
    cost_per_segment: int,
    enabled: bool,
    allow_loss: bool,
) -> Row | None:
    return await _q.one(
        conn,
        "update_route",
        id=id,
        prefix=prefix,
        tier=tier,
        provider=provider,
        priority=priority,
        cost_per_segment=cost_per_segment,
        enabled=enabled,
        allow_loss=allow_loss,
    )


async def delete_route(conn: Conn, *, id: int) -> bool:
    return await _q.one(conn, "delete_route", id=id) is not None


async def provider_status(conn: Conn) -> list[Row]:
    return await _q.all(conn, "provider_status")
