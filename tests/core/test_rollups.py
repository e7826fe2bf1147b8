"""Hourly rollups and their daily cubes: after each fold they equal a recomputation from
the raw messages (done here in Python, with the country from smsgw_country_v1; the cubes
also the sums of the hourly rows), also after a fold killed midway, and they stay when
retention drops the raw messages; rollup retention drops hourly rows and cubes alike."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta

import psycopg

from core import rollups
from tests import support
from tests.rollups import (
    DESTINATIONS,
    assert_days_match,
    recomputed,
    stored,
    stored_days,
    traffic,
)


async def _hours(conn):
    cursor = await conn.execute(
        "SELECT hour, final, messages FROM rollup_hours WHERE messages > 0 ORDER BY hour"
    )
    return await cursor.fetchall()


async def test_rollups_equal_the_raw_messages_after_traffic(
    api, conn, pool, settings, admin_headers
):
    _, second = await traffic(api, conn, settings, admin_headers)
    expected = await recomputed(conn)
    statuses = {key[4] for key in expected}
    assert {"delivered", "undelivered", "failed", "canceled", "scheduled"} <= statuses
    assert sum(r["cost"] for r in expected.values()) >= 0

    # An hour is folded once closed: two hours on, the traffic's hour is.
    assert await rollups.fold_due(pool, settings, at=datetime.now(UTC) + timedelta(hours=2))
    assert await stored(conn) == expected
    await assert_days_match(conn)
    hours = await _hours(conn)
    assert sum(h["messages"] for h in hours) == 35
    assert not any(h["final"] for h in hours)  # not settled yet

    # Folding again changes nothing (idempotent).
    await rollups.fold_due(pool, settings, at=datetime.now(UTC) + timedelta(hours=3))
    assert await stored(conn) == expected

    # Settled, but the scheduled message is still pending: not final, folded again
    # later; once it is canceled, the next fold takes that in and the hour is final.
    await rollups.fold_due(pool, settings, at=datetime.now(UTC) + timedelta(hours=7))
    assert not any(h["final"] for h in await _hours(conn))
    cursor = await conn.execute("SELECT id FROM messages WHERE status = 'scheduled'")
    (pending,) = await cursor.fetchall()
    canceled = await api.post(f"/v1/messages/{pending['id']}/cancel", headers=second.headers)
    assert canceled.status_code == 200, canceled.text
    await rollups.fold_due(pool, settings, at=datetime.now(UTC) + timedelta(hours=9))
    assert await stored(conn) == await recomputed(conn)
    await assert_days_match(conn)
    assert all(h["final"] for h in await _hours(conn))


async def test_a_fold_killed_midway_leaves_the_hour_as_it_was_and_due(
    api, conn, pool, settings, admin_headers, db_url
):
    first, _ = await traffic(api, conn, settings, admin_headers)
    at = datetime.now(UTC) + timedelta(hours=2)
    await rollups.fold_due(pool, settings, at=at)
    before = await stored(conn)
    assert before == await recomputed(conn)
    days_before = await stored_days(conn)

    # Traffic changes the hour, then a worker dies in the middle of its fold: the fold's
    # transaction has replaced the hour's rows but not committed when its backend goes.
    sent = await support.send(api, first, to=DESTINATIONS[3])
    assert sent.status_code == 202
    cursor = await conn.execute(
        "SELECT date_trunc('hour', created_at, 'UTC') AS hour FROM messages WHERE id = %s",
        (sent.json()["id"],),
    )
    hour = (await cursor.fetchone())["hour"]
    folder = await psycopg.AsyncConnection.connect(db_url)
    try:
        await folder.execute("SELECT smsgw_fold_rollup_hour_v3(%s, false)", (hour,))
        await conn.execute("SELECT pg_terminate_backend(%s)", (folder.info.backend_pid,))
    finally:
        await folder.close()
    assert await stored(conn) == before  # nothing of the killed fold is left
    assert await stored_days(conn) == days_before

    # The next run folds it (its last fold is older than the refresh at this clock).
    await rollups.fold_due(pool, settings, at=at + timedelta(hours=2))
    assert await stored(conn) == await recomputed(conn) != before
    await assert_days_match(conn)


async def test_rollups_stay_when_retention_drops_the_raw_messages(
    api, conn, pool, settings, admin_headers
):
    await traffic(api, conn, settings, admin_headers, scheduled=False)
    expected = await recomputed(conn)
    assert await rollups.fold_due(pool, settings, at=datetime.now(UTC) + timedelta(hours=2))
    today = datetime.now(UTC).date()
    cursor = await conn.execute(
        "SELECT day, dropped FROM smsgw_drop_partitions_v2(%s)", (today + timedelta(1),)
    )
    assert (today, True) in {(r["day"], r["dropped"]) for r in await cursor.fetchall()}
    assert await support.count(conn, "SELECT count(*) AS n FROM messages") == 0

    # Later folds (the hour settled now) find no raw messages: the rollups stay, final.
    await rollups.fold_due(pool, settings, at=datetime.now(UTC) + timedelta(hours=8))
    assert await stored(conn) == expected
    await assert_days_match(conn, raw=False)
    assert all(h["final"] for h in await _hours(conn))


async def test_rollup_retention_drops_old_hours_and_their_daily_cubes(
    api, conn, pool, settings, admin_headers
):
    first, _ = await traffic(api, conn, settings, admin_headers, scheduled=False)
    assert await rollups.fold_due(pool, settings, at=datetime.now(UTC) + timedelta(hours=2))
    kept = await stored_days(conn)
    # Three hours of rollups of a day older than the retention, written directly (their
    # messages are long gone): the trigger made that day's cubes.
    old_day = datetime.now(UTC).date() - timedelta(days=settings.rollup_retention_days + 2)
    await conn.execute(
        "INSERT INTO message_rollups SELECT %s::date + (5 + h) * interval '1 hour', %s, 'GB',"
        " 'simulator', 'delivered', 3, 3, 0, 0, array_fill(0::bigint, ARRAY[12]),"
        " array_fill(0::bigint, ARRAY[12]) FROM generate_series(0, 2) AS h",
        (old_day, first.id),
    )
    days = await stored_days(conn)
    assert days["tenant"][(old_day, uuid.UUID(str(first.id)))] == [9, 9, 9, 9, 0, 0]
    assert days["route"][(old_day, "GB", "simulator", "delivered", "USD")][0] == 9

    await rollups.drop_old(pool, settings)
    assert (
        await support.count(
            conn,
            "SELECT count(*) AS n FROM message_rollups WHERE hour < now() - interval '397 days'",
        )
        == 0
    )
    assert await stored_days(conn) == kept
    await assert_days_match(conn)


async def test_metrics_say_how_far_behind_the_rollups_are(api, pool, settings):
    assert "smsgw_rollups_behind_seconds" not in (await api.get("/metrics")).text
    assert await rollups.fold_due(pool, settings)  # every closed hour, on the real clock
    await asyncio.sleep(1.1)  # past the metrics cache
    for line in (await api.get("/metrics")).text.splitlines():
        if line.startswith("smsgw_rollups_behind_seconds "):
            behind = float(line.split()[1])
            break
    else:
        raise AssertionError("no smsgw_rollups_behind_seconds")
    # The last folded hour is the one before the current: less than an hour behind.
    assert 0 <= behind < 3600


async def test_a_window_over_whole_months_and_weeks_reads_them_and_days_at_its_edges(conn):
    async def spans(first, end, whole):
        cursor = await conn.execute(
            "SELECT unit, starts, ends FROM smsgw_window_spans_v1(%s, %s, %s) ORDER BY 2",
            (first, end, whole),
        )
        return [(r["unit"], str(r["starts"]), str(r["ends"])) for r in await cursor.fetchall()]

    # 30 days from a Friday: four whole weeks, the Friday to Sunday before them as days.
    assert await spans(date(2026, 11, 6), date(2026, 12, 7), True) == [
        ("day", "2026-11-06", "2026-11-09"),
        ("week", "2026-11-09", "2026-12-07"),
    ]
    # 13 months: twelve whole months, weeks and days on the left, days on the right.
    assert await spans(date(2025, 11, 5), date(2026, 12, 7), True) == [
        ("day", "2025-11-05", "2025-11-10"),
        ("week", "2025-11-10", "2025-12-01"),
        ("month", "2025-12-01", "2026-12-01"),
        ("day", "2026-12-01", "2026-12-07"),
    ]
    # A report by day reads days only; a window without a whole day reads none.
    assert await spans(date(2026, 11, 6), date(2026, 12, 7), False) == [
        ("day", "2026-11-06", "2026-12-07")
    ]
    assert await spans(date(2026, 12, 7), date(2026, 12, 6), True) == []
