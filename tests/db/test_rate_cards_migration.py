"""Migration 0002 on a database of 1.0.0 with tenants and a message in flight: each tier's
price becomes its one-rate card, a tenant priced apart keeps its price, and the message
keeps the price it was held at."""

from __future__ import annotations

import uuid

import psycopg
from procrastinate.schema import SchemaManager
from psycopg.rows import dict_row

from db import migrate
from tests.db.test_migrations import empty_db  # noqa: F401 - the fixture

TO = "+14155552671"


async def _baseline(url: str) -> None:
    """The database as 1.0.0's `smsgw migrate` left it."""
    conn = await psycopg.AsyncConnection.connect(url, autocommit=True, row_factory=dict_row)
    async with conn:
        await conn.execute(SchemaManager.get_schema())
        await conn.execute(
            "CREATE TABLE smsgw_migrations (version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        await conn.execute(migrate.migrations()[0].sql)
        await conn.execute("INSERT INTO smsgw_migrations (version, name) VALUES (1, 'baseline')")
        # 1.0.0's partitions, by its own function (today's needs later migrations).
        await conn.execute(
            "SELECT smsgw_ensure_partitions_v1((now() AT TIME ZONE 'UTC')::date - 1, 3)"
        )


async def _tenant(conn, tier: str, price: int) -> uuid.UUID:
    tenant_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO tenants (id, name, tier, price_per_segment, webhook_secret)"
        " VALUES (%s, 'acme', %s, %s, 'whsec_x')",
        (tenant_id, tier, price),
    )
    await conn.execute(
        "INSERT INTO balances (tenant_id, credits, available) VALUES (%s, 100000, 100000)",
        (tenant_id,),
    )
    await conn.execute(
        "INSERT INTO ledger_credits (tenant_id, amount, reference) VALUES (%s, 100000, 'r')",
        (tenant_id,),
    )
    return tenant_id


async def _rate(conn, tenant_id: uuid.UUID) -> tuple:
    cursor = await conn.execute(
        "SELECT q.* FROM (SELECT smsgw_rating_v1(%s, now()) AS g OFFSET 0) AS t,"
        " smsgw_rate_v1(t.g, %s) AS q",
        (tenant_id, TO),
    )
    return tuple((await cursor.fetchone()).values())


async def test_tier_prices_become_cards_and_a_held_message_keeps_its_price(empty_db):  # noqa: F811
    await _baseline(empty_db)
    conn = await psycopg.AsyncConnection.connect(empty_db, autocommit=True, row_factory=dict_row)
    async with conn:
        standard = await _tenant(conn, "standard", 7_900)
        vip = await _tenant(conn, "vip", 5_000)
        apart = await _tenant(conn, "premium", 6_000)  # set by PATCH in 1.0.0
        # A message in flight, held by 1.0.0's accept at 1.0.0's price.
        await conn.execute(
            "SELECT smsgw_accept_one_v1(%s, NULL, 'standard', NULL, true, gen_random_uuid(),"
            " now(), 'queued', %s, NULL, 'x', 'GSM-7', 2::smallint, 15800, NULL, NULL, NULL,"
            " now() + interval '1 day', NULL, NULL, NULL)",
            (standard, TO),
        )
        # Later migrations follow (0004_rollups, 0005_sender_rules...): these two come first.
        applied = await migrate.migrate(empty_db)
        assert applied[:2] == ["0002_rate_cards", "0003_webhooks"]
        assert await _rate(conn, standard) == (7_900, "standard", 1, "")
        assert await _rate(conn, vip) == (5_000, "vip", 1, "")
        assert await _rate(conn, apart) == (6_000, f"tenant:{apart}", 1, "")
        cursor = await conn.execute(
            "SELECT price, price_per_segment, rate_card FROM messages WHERE tenant_id = %s",
            (standard,),
        )
        assert await cursor.fetchall() == [
            {"price": 15_800, "price_per_segment": None, "rate_card": None}
        ]
        cursor = await conn.execute("SELECT * FROM smsgw_ledger_violations_v1()")
        assert await cursor.fetchall() == []
