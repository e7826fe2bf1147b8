"""Migration 0005 on a database of 1.0.0 with tenants and their numbers: each owned
number learns its country (so the default sender finds it), every tenant sends only from
its own senders, and 1.0.0's accept call still works for a process of that release
during the deploy."""

from __future__ import annotations

import psycopg
from psycopg.rows import dict_row

from db import migrate
from tests.db.test_migrations import empty_db  # noqa: F401 - the fixture
from tests.db.test_rate_cards_migration import TO, _baseline, _tenant


async def test_owned_numbers_get_their_country_and_1_0_0_accepts_still_work(empty_db):  # noqa: F811
    await _baseline(empty_db)
    conn = await psycopg.AsyncConnection.connect(empty_db, autocommit=True, row_factory=dict_row)
    async with conn:
        tenant = await _tenant(conn, "standard", 7_900)
        await conn.execute(
            "INSERT INTO owned_numbers (number, tenant_id) VALUES"
            " ('+14155550100', %s), ('+447400123400', %s), ('ACME', %s), ('12345', %s)",
            (tenant, tenant, tenant, tenant),
        )
        applied = await migrate.migrate(empty_db)
        assert "0005_sender_rules" in applied
        cursor = await conn.execute("SELECT number, country FROM owned_numbers ORDER BY number")
        assert [(r["number"], r["country"]) for r in await cursor.fetchall()] == [
            ("+14155550100", "US"),
            ("+447400123400", "GB"),
            ("12345", None),
            ("ACME", None),
        ]
        cursor = await conn.execute(
            "SELECT sender_policy, smart_encoding, quiet_hours_start FROM tenants"
        )
        assert await cursor.fetchone() == {
            "sender_policy": "own",
            "smart_encoding": False,
            "quiet_hours_start": None,
        }
        # The sender a message without one gets: the tenant's number in the country.
        cursor = await conn.execute("SELECT * FROM smsgw_sender_v1(%s, NULL, 'US')", (tenant,))
        assert await cursor.fetchone() == {"sender": "+14155550100", "refusal": None}
        cursor = await conn.execute(
            "SELECT * FROM smsgw_sender_v1(%s, '+14155550199', 'US')", (tenant,)
        )
        assert await cursor.fetchone() == {"sender": "+14155550199", "refusal": "not_owned"}
        # A process of 1.0.0 still accepts through its own call (no sender check there).
        cursor = await conn.execute(
            "SELECT accepted FROM smsgw_accept_one_v1(%s, NULL, 'standard', NULL, true,"
            " gen_random_uuid(), now(), 'queued', %s, NULL, 'during the deploy', 'GSM-7',"
            " 1::smallint, 7900, NULL, NULL, NULL, now() + interval '1 day', NULL, NULL, NULL)",
            (tenant, TO),
        )
        assert (await cursor.fetchone())["accepted"] == 1
        cursor = await conn.execute(
            "SELECT count(*) AS n FROM pg_proc WHERE proname IN"
            " ('smsgw_accept_v5', 'smsgw_accept_sends_v2', 'smsgw_accept_one_v2')"
        )
        assert (await cursor.fetchone())["n"] == 0
