"""Refolds of an hour read its pending messages only (smsgw_fold_rollup_hour_v3,
rollup_pending): after receipts arrive, late or in several rounds, after a refold killed
midway, after an older release's fold, after a message committed into an hour already
folded, the hourly rollups equal a recomputation from the raw messages and the daily,
weekly and monthly cubes the sums of the hourly rows; a final hour keeps no pending
messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg

from core import receipts, rollups
from db import rollups as rollups_db
from jobs.app import MAINTENANCE_QUEUE, QUEUES
from tests import support, workers
from tests.rollups import DESTINATIONS, assert_days_match, recomputed, stored, traffic

OPEN = ("scheduled", "queued", "sending", "sent")


async def _sent_awaiting_receipts(api, conn, settings, admin_headers, count=12, scheduled=True):
    """Traffic at rest (unless told otherwise, one message still scheduled for tomorrow),
    then ``count`` more messages sent whose receipts wait an hour in the inbox: they stay
    `sent`."""
    first, second = await traffic(api, conn, settings, admin_headers, scheduled=scheduled)
    batch = [{"to": DESTINATIONS[i % 4], "body": f"late {i}"} for i in range(count)]
    accepted = await api.post("/v1/messages/batch", json={"messages": batch}, headers=first.headers)
    assert accepted.status_code == 202, accepted.text

    async def all_sent():
        n = await support.count(conn, "SELECT count(*) AS n FROM messages WHERE status = 'sent'")
        return n == count

    async with workers.in_process(
        settings,
        queues=[q for q in QUEUES if q != MAINTENANCE_QUEUE],
        simulator_permanent_rate=0.0,
        simulator_dlr_delay_seconds=3600,
    ):
        await workers.eventually(all_sent)
    return first, second


async def _receipts_arrive(pool, conn, n):
    """``n`` of the held receipts come in now (half delivered, half undelivered, as the
    simulator drew them) and are applied as the receipts job applies them."""
    await conn.execute(
        "UPDATE receipts_inbox SET available_at = now()"
        " WHERE id IN (SELECT id FROM receipts_inbox WHERE available_at > now()"
        "              ORDER BY id LIMIT %s)",
        (n,),
    )
    totals = await receipts.apply_for(pool, seconds=30, lanes=1, limit=100)
    assert totals["applied"] == n


async def _pending(conn):
    cursor = await conn.execute("SELECT message_id FROM rollup_pending")
    return {r["message_id"] for r in await cursor.fetchall()}


async def _open(conn):
    cursor = await conn.execute("SELECT id FROM messages WHERE status = ANY(%s)", (list(OPEN),))
    return {r["id"] for r in await cursor.fetchall()}


async def _hours(conn):
    cursor = await conn.execute(
        "SELECT DISTINCT date_trunc('hour', created_at, 'UTC') AS hour FROM messages"
    )
    return [r["hour"] for r in await cursor.fetchall()]


async def _marks(conn):
    """When each hour holding messages was last folded, and whether it is final."""
    cursor = await conn.execute(
        "SELECT hour, folded_at, final FROM rollup_hours WHERE messages > 0 ORDER BY hour"
    )
    return await cursor.fetchall()


def _soon(hours: float) -> datetime:
    return datetime.now(UTC) + timedelta(hours=hours)


async def test_refolds_after_receipts_equal_a_recomputation_and_keep_only_open_messages(
    api, conn, pool, settings, admin_headers
):
    await _sent_awaiting_receipts(api, conn, settings, admin_headers)
    assert await rollups.fold_due(pool, settings, at=_soon(2))
    assert await stored(conn) == await recomputed(conn)
    # The first fold recorded the messages that may still change: the 12 sent, the one
    # scheduled; none of those final.
    assert await _pending(conn) == await _open(conn)
    assert len(await _pending(conn)) == 13

    # Receipts come in two rounds, each followed by a refold: the refold moves those
    # messages from `sent` to their end, and the rollups and cubes follow exactly.
    for arriving, still_open in ((5, 8), (4, 4)):
        await _receipts_arrive(pool, conn, arriving)
        assert await rollups.fold_due(pool, settings, at=_soon(2))
        assert await stored(conn) == await recomputed(conn)
        await assert_days_match(conn)
        assert await _pending(conn) == await _open(conn)
        assert len(await _pending(conn)) == still_open


async def test_a_refold_reads_only_pending_messages_and_a_full_fold_repairs(
    api, conn, pool, settings, admin_headers
):
    await _sent_awaiting_receipts(api, conn, settings, admin_headers, count=4)
    assert await rollups.fold_due(pool, settings, at=_soon(2))
    # Behind the gateway's back, a delivered message's cost changes in the raw table. A
    # refold does not read that message (it is final), so its rollup keeps the cost the
    # first fold saw; a receipt that came meanwhile is taken in.
    cursor = await conn.execute(
        "UPDATE messages SET cost = coalesce(cost, 0) + 1000"
        " WHERE id = (SELECT id FROM messages WHERE status = 'delivered' LIMIT 1) RETURNING id"
    )
    assert await cursor.fetchone()
    await _receipts_arrive(pool, conn, 2)
    assert await rollups.fold_due(pool, settings, at=_soon(2))
    kept, raw = await stored(conn), await recomputed(conn)
    assert kept.keys() == raw.keys()
    differ = {key for key in raw if kept[key] != raw[key]}
    assert len(differ) == 1
    (key,) = differ
    assert key[4] == "delivered"
    assert raw[key]["cost"] - kept[key]["cost"] == 1000

    # A full fold (repair) recomputes the hour from all its messages.
    async with pool.connection() as folder, folder.transaction():
        for hour in await _hours(conn):
            await rollups_db.fold_hour(folder, hour=hour, settled=False, full=True)
    assert await stored(conn) == await recomputed(conn)
    await assert_days_match(conn)
    assert await _pending(conn) == await _open(conn)


async def test_a_refold_killed_midway_leaves_the_hour_as_it_was_and_due(
    api, conn, pool, settings, admin_headers, db_url
):
    await _sent_awaiting_receipts(api, conn, settings, admin_headers, count=6)
    assert await rollups.fold_due(pool, settings, at=_soon(2))
    before, pending_before = await stored(conn), await _pending(conn)
    marks = await _marks(conn)

    await _receipts_arrive(pool, conn, 3)
    folder = await psycopg.AsyncConnection.connect(db_url)
    try:
        for hour in await _hours(conn):
            await folder.execute("SELECT smsgw_fold_rollup_hour_v3(%s, false)", (hour,))
        await conn.execute("SELECT pg_terminate_backend(%s)", (folder.info.backend_pid,))
    finally:
        await folder.close()
    assert await stored(conn) == before
    assert await _pending(conn) == pending_before
    assert await _marks(conn) == marks

    assert await rollups.fold_due(pool, settings, at=_soon(2))
    assert await stored(conn) == await recomputed(conn) != before
    await assert_days_match(conn)
    assert len(await _pending(conn)) == 4  # three sent and the scheduled one


async def test_a_final_hour_keeps_no_pending_messages_and_a_later_receipt_is_not_counted(
    api, conn, pool, settings, admin_headers
):
    _, second = await _sent_awaiting_receipts(api, conn, settings, admin_headers, count=4)
    assert await rollups.fold_due(pool, settings, at=_soon(2))
    await _receipts_arrive(pool, conn, 1)

    # Settled, but a message is still scheduled: not final; its pending rows stay.
    await rollups.fold_due(pool, settings, at=_soon(7))
    assert not any(mark["final"] for mark in await _marks(conn))
    assert len(await _pending(conn)) == 4

    cursor = await conn.execute("SELECT id FROM messages WHERE status = 'scheduled'")
    (scheduled,) = await cursor.fetchall()
    canceled = await api.post(f"/v1/messages/{scheduled['id']}/cancel", headers=second.headers)
    assert canceled.status_code == 200, canceled.text
    await rollups.fold_due(pool, settings, at=_soon(9))
    assert await stored(conn) == await recomputed(conn)
    await assert_days_match(conn)
    assert all(mark["final"] for mark in await _marks(conn))
    # Final with three messages still `sent`: no pending row is left for the hour.
    assert await _pending(conn) == set()
    assert len(await _open(conn)) == 3

    # Their receipts come after the hour is final: not counted (documented), the hour is
    # not folded again and keeps them as sent.
    before, marks = await stored(conn), await _marks(conn)
    await _receipts_arrive(pool, conn, 3)
    await rollups.fold_due(pool, settings, at=_soon(10))
    assert await _marks(conn) == marks
    assert await stored(conn) == before
    assert sum(row["messages"] for key, row in before.items() if key[4] == "sent") == 3


async def test_an_older_releases_fold_between_two_refolds_makes_the_next_one_full(
    api, conn, pool, settings, admin_headers
):
    await _sent_awaiting_receipts(api, conn, settings, admin_headers, count=6)
    assert await rollups.fold_due(pool, settings, at=_soon(2))
    await _receipts_arrive(pool, conn, 2)
    # During a deploy, an older worker folds with v2: it keeps no pending rows.
    async with pool.connection() as folder, folder.transaction():
        for hour in await _hours(conn):
            await folder.execute("SELECT smsgw_fold_rollup_hour_v2(%s, false)", (hour,))
    await _receipts_arrive(pool, conn, 2)
    assert await rollups.fold_due(pool, settings, at=_soon(2))
    assert await stored(conn) == await recomputed(conn)
    await assert_days_match(conn)
    assert await _pending(conn) == await _open(conn)


async def test_a_message_committed_into_an_hour_already_folded_is_counted(
    api, conn, pool, settings, admin_headers
):
    first, _ = await _sent_awaiting_receipts(api, conn, settings, admin_headers, count=2)
    assert await rollups.fold_due(pool, settings, at=_soon(2))
    # A message of the same hour commits after the hour's first fold (on the tests'
    # clock the hour is closed; in production, an accept in flight at the hour's end).
    sent = await support.send(api, first, to=DESTINATIONS[1])
    assert sent.status_code == 202, sent.text
    assert await rollups.fold_due(pool, settings, at=_soon(2))
    raw = await recomputed(conn)
    assert sum(row["messages"] for row in raw.values()) == 35 + 2 + 1
    assert await stored(conn) == raw
    await assert_days_match(conn)
    assert await _pending(conn) == await _open(conn)


async def test_pending_rows_go_when_retention_drops_the_raw_messages(
    api, conn, pool, settings, admin_headers
):
    await _sent_awaiting_receipts(api, conn, settings, admin_headers, count=3, scheduled=False)
    assert await rollups.fold_due(pool, settings, at=_soon(2))
    expected = await stored(conn)
    assert len(await _pending(conn)) == 3
    today = datetime.now(UTC).date()
    await conn.execute("SELECT smsgw_drop_partitions_v1(%s)", (today + timedelta(1),))
    assert await support.count(conn, "SELECT count(*) AS n FROM messages") == 0

    # The hour's next fold finds no raw messages: its rollups stay, it is final, and its
    # pending rows are gone with the messages they named.
    await rollups.fold_due(pool, settings, at=_soon(8))
    assert await stored(conn) == expected
    await assert_days_match(conn, raw=False)
    assert all(mark["final"] for mark in await _marks(conn))
    assert await _pending(conn) == set()


async def test_pending_rows_an_older_releases_final_fold_leaves_go_with_retention(
    api, conn, pool, settings, admin_headers
):
    await _sent_awaiting_receipts(api, conn, settings, admin_headers, count=2, scheduled=False)
    assert await rollups.fold_due(pool, settings, at=_soon(2))
    # An older worker settles the hour with v2, which keeps no pending rows: final, but
    # the two rows v3 recorded stay until the retention job's run.
    async with pool.connection() as folder, folder.transaction():
        for hour in await _hours(conn):
            await folder.execute("SELECT smsgw_fold_rollup_hour_v2(%s, true)", (hour,))
    assert all(mark["final"] for mark in await _marks(conn))
    assert len(await _pending(conn)) == 2
    kept = await stored(conn)

    await rollups.drop_old(pool, settings)
    assert await _pending(conn) == set()
    assert await stored(conn) == kept


async def test_after_a_crash_empties_the_pending_table_the_next_fold_reads_the_hour(
    api, conn, pool, settings, admin_headers
):
    await _sent_awaiting_receipts(api, conn, settings, admin_headers, count=4)
    assert await rollups.fold_due(pool, settings, at=_soon(2))
    assert len(await _pending(conn)) == 5
    # rollup_pending is unlogged: crash recovery (or a promoted replica) finds it empty.
    await conn.execute("TRUNCATE rollup_pending")
    await _receipts_arrive(pool, conn, 3)
    assert await rollups.fold_due(pool, settings, at=_soon(2))
    assert await stored(conn) == await recomputed(conn)
    await assert_days_match(conn)
    assert await _pending(conn) == await _open(conn)


async def test_a_receipt_committed_while_a_refold_runs_is_taken_by_the_next(
    api, conn, pool, settings, admin_headers, db_url
):
    await _sent_awaiting_receipts(api, conn, settings, admin_headers, count=4)
    assert await rollups.fold_due(pool, settings, at=_soon(2))
    await _receipts_arrive(pool, conn, 1)
    # A refold has read the hour's pending messages (one statement) and not committed
    # when another receipt commits: it recorded the message as it saw it, `sent`.
    folder = await psycopg.AsyncConnection.connect(db_url)
    try:
        for hour in await _hours(conn):
            await folder.execute("SELECT smsgw_fold_rollup_hour_v3(%s, false)", (hour,))
        await _receipts_arrive(pool, conn, 1)
        await folder.commit()
    finally:
        await folder.close()
    raw = await recomputed(conn)
    assert await stored(conn) != raw  # the second receipt is not in yet
    assert (
        len(await _pending(conn)) == 4
    )  # three sent (one of them delivered since) and one scheduled

    assert await rollups.fold_due(pool, settings, at=_soon(2))
    assert await stored(conn) == raw
    await assert_days_match(conn)
    assert await _pending(conn) == await _open(conn)
