"""Migration 0014 on a database with messages: the recipients of the messages already
there are indexed, so a search by recipient finds them, and the messages accepted after
it are indexed by the trigger."""

from __future__ import annotations

import uuid

import psycopg
from psycopg.rows import dict_row

from core import ids
from db import messages as messages_db
from db import migrate
from tests.db.test_migrations import empty_db  # noqa: F401 - the fixture
from tests.db.test_rate_cards_migration import _baseline, _tenant

SEARCH = next(m for m in migrate.migrations() if m.name == "recipient_search")


async def _message(conn, tenant_id: uuid.UUID, to_number: str, minutes_ago: int) -> uuid.UUID:
    cursor = await conn.execute(
        "SELECT clock_timestamp() - make_interval(mins => %s) AS at", (minutes_ago,)
    )
    at = (await cursor.fetchone())["at"]
    message_id = ids.uuid7(int(at.timestamp() * 1000))
    await conn.execute(
        "INSERT INTO messages (id, created_at, tenant_id, status, to_number, body, encoding,"
        " segments, price, expires_at, updated_at)"
        " VALUES (%s, %s, %s, 'delivered', %s, 'hi', 'GSM-7', 1, 0, %s, %s)",
        (message_id, ids.created_at(message_id), tenant_id, to_number, at, at),
    )
    return message_id


async def _found(conn, tenant_id: uuid.UUID, to_number: str) -> list[uuid.UUID]:
    rows = await messages_db.list_messages(
        conn,
        tenant_id=tenant_id,
        to_number=to_number,
        status=None,
        created_after=None,
        created_before=None,
        before_created_at=None,
        before_id=None,
        limit=10,
    )
    return [row["id"] for row in rows]


async def test_messages_from_before_the_migration_are_found_by_recipient(empty_db):  # noqa: F811
    await _baseline(empty_db)
    conn = await psycopg.AsyncConnection.connect(empty_db, autocommit=True, row_factory=dict_row)
    async with conn:
        for m in migrate.migrations()[1 : SEARCH.version - 1]:
            await conn.execute(m.sql)
            await conn.execute(
                "INSERT INTO smsgw_migrations (version, name) VALUES (%s, %s)", (m.version, m.name)
            )
        tenant, other = await _tenant(conn, "standard", 7_900), await _tenant(conn, "vip", 1)
        older = await _message(conn, tenant, "+14155550100", minutes_ago=24 * 60)
        newer = await _message(conn, tenant, "+14155550100", minutes_ago=10)
        await _message(conn, tenant, "+14155550199", minutes_ago=10)
        theirs = await _message(conn, other, "+14155550100", minutes_ago=10)

        assert f"{SEARCH.version:04d}_recipient_search" in await migrate.migrate(empty_db)
        # All four are older than the minute the migration indexed them up to.
        cursor = await conn.execute("SELECT count(*) AS n FROM message_recipients")
        assert (await cursor.fetchone())["n"] == 4

        assert await _found(conn, tenant, "+14155550100") == [newer, older]
        assert await _found(conn, other, "+14155550100") == [theirs]
        # A message after the migration: found by the walk until the job indexes it.
        latest = await _message(conn, tenant, "+14155550100", minutes_ago=0)
        assert await _found(conn, tenant, "+14155550100") == [latest, newer, older]
