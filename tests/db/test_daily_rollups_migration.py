"""The daily rollups' migration on a database that already has hourly rollups: the cubes
are backfilled as the sums of the hourly rows, and the previous release's fold
(smsgw_fold_rollup_hour_v1, replacing an hour's rows) keeps them equal, through the
trigger, during a deploy; migration 0013 backfills the weeks and months from the days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
from psycopg.rows import dict_row

from db import migrate
from tests.db.test_migrations import empty_db  # noqa: F401 - the fixture
from tests.db.test_rate_cards_migration import _baseline, _tenant
from tests.rollups import days_of, periods_of, stored, stored_days, stored_periods

DAILY = next(m for m in migrate.migrations() if m.name == "daily_rollups")


async def test_cubes_are_backfilled_and_follow_the_previous_release_fold(empty_db):  # noqa: F811
    await _baseline(empty_db)
    conn = await psycopg.AsyncConnection.connect(empty_db, autocommit=True, row_factory=dict_row)
    async with conn:
        for m in migrate.migrations()[1 : DAILY.version - 1]:
            await conn.execute(m.sql)
            await conn.execute(
                "INSERT INTO smsgw_migrations (version, name) VALUES (%s, %s)", (m.version, m.name)
            )
        tenant = await _tenant(conn, "standard", 7_900)
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        # Two days of hourly rows, the second with two statuses; one hour of today.
        await conn.execute(
            "INSERT INTO message_rollups SELECT h, %s, c, 'simulator', s, 2, 3, 15800, 900,"
            " ARRAY[0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]::bigint[],"
            " ARRAY[0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0]::bigint[]"
            " FROM (SELECT %s::timestamptz - make_interval(days => d) + k * interval '5 hours'"
            "         FROM generate_series(1, 2) AS d, generate_series(0, 4) AS k"
            "       UNION ALL SELECT %s) AS hs (h),"
            " (VALUES ('GB'), ('US')) AS cs (c), (VALUES ('delivered'), ('failed')) AS ss (s)"
            " WHERE s = 'delivered' OR h >= %s",
            (tenant, today, today, today - timedelta(days=1)),
        )
        hourly = await stored(conn)
        assert len({key[0].date() for key in hourly}) == 3

        assert f"{DAILY.version:04d}_daily_rollups" in await migrate.migrate(empty_db)
        days = await stored_days(conn)
        assert days == await days_of(conn, hourly)
        # 0013 backfilled the weeks and months from those days.
        assert await stored_periods(conn) == periods_of(days)
        assert days["tenant"][(today.date() - timedelta(days=1), tenant)] == [
            2 * 5 * 2 * 2,  # 5 hours (00, 05, 10, 15, 20) x 2 countries x 2 statuses x 2
            3 * 5 * 2 * 2,
            2 * 5 * 2,  # the delivered ones are captured
            3 * 5 * 2,
            15800 * 5 * 2,
            900 * 5 * 2,
        ]

        # A worker of the previous release folds today's hour: it finds no message and
        # replaces the hour's rows with none; the cubes lose that hour with it.
        await conn.execute("SELECT smsgw_fold_rollup_hour_v1(%s, false)", (today,))
        assert (today.date(), tenant) not in (await stored_days(conn))["tenant"]
        assert await stored_days(conn) == await days_of(conn, await stored(conn))
        assert await stored_periods(conn) == periods_of(await stored_days(conn))
