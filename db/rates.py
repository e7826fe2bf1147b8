"""Rate cards: cards, their versions and rates, and which card a tenant is on. The
lookup that prices a send is not here: it runs inside the accept functions."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from db import Conn, Row
from db.sql import Queries, json_rows

_q = Queries("rates")


async def lock_card(
    conn: Conn, *, name: str, tenant_id: uuid.UUID | None = None, provider: str | None = None
) -> Row:
    """The card named ``name`` (made if new), locked until the caller's commit."""
    row = await _q.one(conn, "lock_card", name=name, tenant_id=tenant_id, provider=provider)
    assert row is not None
    return row


async def get_card(conn: Conn, *, name: str) -> Row | None:
    return await _q.one(conn, "get_card", name=name)


async def insert_version(
    conn: Conn,
    *,
    card_id: int,
    effective_at: datetime | None,
    rates: Sequence[Mapping[str, Any]],
) -> Row:
    """A new version of the card with ``rates`` (``prefix``, ``country``, ``network``,
    ``price``), numbered after its last, in effect from ``effective_at`` (None: the
    database's now, the clock accepts read); the caller holds the card's lock."""
    row = await _q.one(
        conn,
        "insert_version",
        card_id=card_id,
        effective_at=effective_at,
        rates=json_rows(rates),
        prepare=False,
    )
    assert row is not None
    return row


async def analyze(conn: Conn) -> None:
    await _q.run(conn, "analyze", prepare=False)


async def versions(conn: Conn, *, card_id: int) -> list[Row]:
    return await _q.all(conn, "versions", card_id=card_id)


async def version_in_effect(conn: Conn, *, card_id: int) -> Row | None:
    return await _q.one(conn, "version_in_effect", card_id=card_id)


async def get_version(conn: Conn, *, card_id: int, version: int) -> Row | None:
    return await _q.one(conn, "get_version", card_id=card_id, version=version)


async def rates(conn: Conn, *, version_id: int) -> list[Row]:
    return await _q.all(conn, "rates", version_id=version_id)


async def diff(
    conn: Conn, *, version_id: int | None, rates: Sequence[Mapping[str, Any]]
) -> list[Row]:
    return await _q.all(conn, "diff", version_id=version_id, rates=json_rows(rates), prepare=False)


async def set_tenant_card(conn: Conn, *, tenant_id: uuid.UUID, card_id: int | None) -> bool:
    return await _q.run(conn, "set_tenant_card", tenant_id=tenant_id, card_id=card_id) == 1


async def tenant_card(conn: Conn, *, tenant_id: uuid.UUID) -> Row | None:
    return await _q.one(conn, "tenant_card", tenant_id=tenant_id)


async def own_rates_with_flat_price(conn: Conn, *, tenant_id: uuid.UUID) -> list[Row]:
    return await _q.all(conn, "own_rates_with_flat_price", tenant_id=tenant_id)


async def provider_exists(conn: Conn, *, name: str) -> bool:
    return await _q.one(conn, "provider_exists", name=name) is not None
