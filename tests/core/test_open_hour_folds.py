"""The hour in progress is folded as it goes (smsgw_fold_rollup_hour_v4 with a mark):
each fold adds the messages between the last mark and the new one, and the rollups then
equal a recomputation of the messages before the mark; reports read those rollups and
raw messages after the mark only; a message that commits behind the mark is counted
when the hour closes; a fold killed midway leaves everything as it was."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import psycopg

from core import rollups
from db import rollups as rollups_db
from tests import support
from tests.rollups import (
    DESTINATIONS,
    days_of,
    periods_of,
    recomputed,
    stored,
    stored_days,
    stored_periods,
    traffic,
)

OPEN = ("scheduled", "queued", "sending", "sent")


async def _instants(api, conn, tenant, *, least: int = 4) -> list[datetime]:
    """The distinct instants (ms) of the newest hour's messages, at least ``least`` of
    them (a few more sends when the traffic straddled an hour)."""
    while True:
        cursor = await conn.execute(
            "SELECT DISTINCT created_at FROM messages"
            " WHERE created_at >= date_trunc('hour', (SELECT max(created_at) FROM messages),"
            "                                 'UTC')"
            " ORDER BY created_at"
        )
        found = [r["created_at"].astimezone(UTC) for r in await cursor.fetchall()]
        if len(found) >= least:
            return found
        sent = await support.send(api, tenant, to=DESTINATIONS[len(found) % 4])
        assert sent.status_code == 202, sent.text


def _hour(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


async def _open_fold(pool, settings, through: datetime) -> None:
    """The job's fold of the hour in progress, on a clock that puts its mark at
    ``through`` (marks at any millisecond: no steps)."""
    await rollups.fold_open(
        pool,
        msgspec.structs.replace(settings, rollup_open_step_seconds=0),
        at=through + timedelta(seconds=settings.rollup_open_lag_seconds),
    )


async def _mark(conn, hour: datetime):
    cursor = await conn.execute(
        "SELECT folded_through, through_as_of = folded_at AS current, final, messages"
        " FROM rollup_hours WHERE hour = %s",
        (hour,),
    )
    return await cursor.fetchone()


async def _pending(conn) -> set:
    cursor = await conn.execute("SELECT message_id FROM rollup_pending")
    return {r["message_id"] for r in await cursor.fetchall()}


async def _open_before(conn, through: datetime) -> set:
    cursor = await conn.execute(
        "SELECT id FROM messages WHERE status = ANY(%s) AND created_at < %s",
        (list(OPEN), through),
    )
    return {r["id"] for r in await cursor.fetchall()}


async def _out_of_cubes(conn) -> set:
    cursor = await conn.execute("SELECT hour FROM rollup_hours WHERE NOT in_cubes")
    return {r["hour"].astimezone(UTC) for r in await cursor.fetchall()}


async def _assert_cubes_are_sums(conn) -> None:
    """The cubes are the sums of the hourly rows of the hours in them: all but the open
    hour, whose rows enter when it closes."""
    out = await _out_of_cubes(conn)
    hourly = {key: row for key, row in (await stored(conn)).items() if key[0] not in out}
    days = await stored_days(conn)
    assert days == await days_of(conn, hourly)
    assert await stored_periods(conn) == periods_of(days)


async def _answers(api, admin_headers, tenants, day: str) -> list:
    """Tenants' usage reports (their hourly rollups and daily cube) and admin usage
    reports by route and by tenant (the cross-tenant cubes, whole window or by hour)."""
    got = []
    for tenant in tenants:
        for group_by in ("status", "country", "hour"):
            usage = await api.get(
                "/v1/reports/usage",
                params={"from": day, "to": day, "group_by": group_by},
                headers=tenant.headers,
            )
            assert usage.status_code == 200, usage.text
            got.append(usage.json()["rows"])
    for params in (
        {"group_by": "country"},
        {"group_by": "provider", "period": "window"},
        {"group_by": "tenant", "period": "hour"},
    ):
        admin = await api.get(
            "/v1/admin/reports/usage",
            params={"from": day, "to": day, **params},
            headers=admin_headers,
        )
        assert admin.status_code == 200, admin.text
        got.append(admin.json()["rows"])
    return got


async def test_folds_of_the_open_hour_add_each_span_once_and_the_close_completes_it(
    api, conn, pool, settings, admin_headers
):
    first, _ = await traffic(api, conn, settings, admin_headers)
    instants = await _instants(api, conn, first)
    hour = _hour(instants[-1])
    # The hour before has a messages partition and is not folded yet: the open hour
    # waits for it (else the day's cubes would hold the open hour's rows while reports
    # read the hour before raw).
    await conn.execute("SELECT smsgw_ensure_partitions_v2(%s, 2)", ((hour - timedelta(1)).date(),))
    await _open_fold(pool, settings, instants[1])
    assert await _mark(conn, hour) is None
    # The closed hours folded (on a clock at the hour's start), the open hour goes.
    await rollups.fold_due(pool, settings, at=hour)

    # Three rounds, each mark later: the rollups are the messages before the mark, the
    # cubes their sums, the pending rows the open messages before the mark.
    marks = [instants[1], instants[len(instants) // 2], instants[-1] + timedelta(milliseconds=1)]
    for through in marks:
        await _open_fold(pool, settings, through)
        mark = await _mark(conn, hour)
        assert (mark["folded_through"], mark["current"], mark["final"]) == (through, True, False)
        assert await rollups_db.frontier(conn) == through
        assert await stored(conn) == await recomputed(conn, before=through)
        assert await _out_of_cubes(conn) == {hour}
        await _assert_cubes_are_sums(conn)
        assert await _pending(conn) == await _open_before(conn, through)
    # A mark never moves back; a fold at the same mark adds nothing.
    before = await stored(conn)
    await _open_fold(pool, settings, marks[0])
    await _open_fold(pool, settings, marks[-1])
    assert await stored(conn) == before
    assert (await _mark(conn, hour))["folded_through"] == marks[-1]

    # The hour closes: it is due at once (its last fold is seconds old), its messages
    # after the mark are added and its pending ones refolded: all of it, exactly.
    assert await rollups.fold_due(pool, settings, at=hour + timedelta(hours=1, seconds=5))
    assert await stored(conn) == await recomputed(conn)
    assert await _out_of_cubes(conn) == set()
    await _assert_cubes_are_sums(conn)
    assert (await _mark(conn, hour))["folded_through"] == hour + timedelta(hours=1)
    assert await _pending(conn) == await _open_before(conn, hour + timedelta(hours=1))


async def test_reports_during_the_open_hour_read_rollups_before_the_mark_and_raw_after(
    api, conn, pool, settings, admin_headers
):
    first, second = await traffic(api, conn, settings, admin_headers, scheduled=False)
    instants = await _instants(api, conn, first)
    hour = _hour(instants[-1])
    await rollups.fold_due(pool, settings, at=hour)
    day = hour.date().isoformat()

    async def answers():
        return await _answers(api, admin_headers, (first, second), day)

    raw = await answers()
    through = instants[len(instants) // 2]
    await _open_fold(pool, settings, through)
    assert await rollups_db.frontier(conn) == through
    assert await answers() == raw

    # Behind the gateway's back, a message before the mark gets one more segment: the
    # reports do not see it (they read the rollups there, folded before the change); one
    # after the mark does: the reports read it raw.
    async def one_more_segment(condition: str) -> None:
        cursor = await conn.execute(
            "UPDATE messages SET segments = segments + 1"
            " WHERE id = (SELECT id FROM messages WHERE created_at >= %s AND "
            + condition
            + " ORDER BY created_at LIMIT 1) RETURNING id",
            (hour, through),
        )
        assert await cursor.fetchone()

    await one_more_segment("created_at < %s")
    assert await answers() == raw
    await one_more_segment("created_at >= %s")
    after = await answers()
    assert after != raw
    total = lambda rows: sum(r["segments"] for r in rows)  # noqa: E731
    assert total(after[-2]) == total(raw[-2]) + 1


async def _behind(conn, tenant_id, at: datetime) -> None:
    """A message created at ``at`` that commits only now, written directly as an accept
    writes one (free: held and captured at 0, so the ledger stays whole)."""
    await conn.execute(
        """
        WITH made AS (
            INSERT INTO messages (id, created_at, tenant_id, status, to_number, body,
                                  encoding, segments, price, expires_at, updated_at,
                                  provider, sent_at, delivered_at)
            SELECT (lpad(to_hex((extract(epoch FROM t) * 1000)::bigint), 12, '0')
                    || '7abc8' || substr(md5(t::text), 1, 15))::uuid,
                   t, %(tenant)s, 'delivered', '+447400123456', 'late', 'GSM-7', 1, 0,
                   t + interval '1 day', t, 'simulator', t, t + interval '2 s'
              FROM (SELECT %(at)s::timestamptz AS t) AS made_at
            RETURNING id, created_at, tenant_id
        )
        INSERT INTO ledger_message_entries (message_created_at, message_id, tenant_id, kind,
                                            amount)
        SELECT created_at, id, tenant_id, kind, 0
          FROM made, (VALUES ('hold'), ('capture')) AS k (kind)
        """,
        {"tenant": tenant_id, "at": at},
    )


async def test_a_message_committed_behind_the_mark_is_counted_when_the_hour_closes(
    api, conn, pool, settings, admin_headers
):
    first, _ = await traffic(api, conn, settings, admin_headers, scheduled=False)
    instants = await _instants(api, conn, first)
    hour = _hour(instants[-1])
    await rollups.fold_due(pool, settings, at=hour)
    through = instants[-1] + timedelta(milliseconds=1)
    await _open_fold(pool, settings, through)
    folded = await stored(conn)
    assert folded == await recomputed(conn)

    # An accept whose instant is before the mark commits after the fold that passed it:
    # the open hour's next folds do not see it (they read after the mark) ...
    await _behind(conn, first.id, through - timedelta(milliseconds=1))
    await _open_fold(pool, settings, through + timedelta(seconds=1))
    assert await stored(conn) == folded != await recomputed(conn)
    # ... the hour's close finds more messages than it folded and reads it whole.
    await rollups.fold_due(pool, settings, at=hour + timedelta(hours=1, seconds=5))
    assert await stored(conn) == await recomputed(conn)
    await _assert_cubes_are_sums(conn)


async def test_an_open_fold_killed_midway_leaves_everything_as_it_was(
    api, conn, pool, settings, admin_headers, db_url
):
    first, _ = await traffic(api, conn, settings, admin_headers)
    instants = await _instants(api, conn, first)
    hour = _hour(instants[-1])
    await rollups.fold_due(pool, settings, at=hour)
    await _open_fold(pool, settings, instants[1])
    before = (await stored(conn), await stored_days(conn), await _pending(conn))
    mark = await _mark(conn, hour)

    through = instants[-1] + timedelta(milliseconds=1)
    folder = await psycopg.AsyncConnection.connect(db_url)
    try:
        await folder.execute(
            "SELECT smsgw_fold_rollup_hour_v4(%s, false, false, %s)", (hour, through)
        )
        await conn.execute("SELECT pg_terminate_backend(%s)", (folder.info.backend_pid,))
    finally:
        await folder.close()
    assert (await stored(conn), await stored_days(conn), await _pending(conn)) == before
    assert await _mark(conn, hour) == mark

    await _open_fold(pool, settings, through)
    assert await stored(conn) == await recomputed(conn, before=through)
    await _assert_cubes_are_sums(conn)


async def test_a_late_close_counts_the_messages_before_the_mark_itself(
    api, conn, pool, settings, admin_headers
):
    # An hour three hours ago, folded as it went and closed only now (the workers were
    # down): past 10 minutes after the hour's end v3 no longer counts the hour's
    # messages, so v4 counts those before the mark, and finds the one that committed
    # behind it.
    tenant = await support.make_tenant(api, admin_headers, name="late")
    hour = _hour(datetime.now(UTC)) - timedelta(hours=3)
    await conn.execute("SELECT smsgw_ensure_partitions_v2(%s, 3)", ((hour - timedelta(1)).date(),))
    for minute in (5, 10, 20, 40, 50):
        await _behind(conn, tenant.id, hour + timedelta(minutes=minute))
    await rollups.fold_due(pool, settings, at=hour)
    through = hour + timedelta(minutes=30)
    await _open_fold(pool, settings, through)
    assert (await _mark(conn, hour))["messages"] == 3
    assert await stored(conn) == await recomputed(conn, before=through)

    await _behind(conn, tenant.id, hour + timedelta(minutes=15))
    assert await rollups.fold_due(pool, settings, at=hour + timedelta(hours=1, seconds=5))
    assert await stored(conn) == await recomputed(conn)
    assert (await _mark(conn, hour))["messages"] == 6
    await _assert_cubes_are_sums(conn)


async def test_the_open_hour_mark_moves_in_whole_steps(api, conn, pool, settings, admin_headers):
    tenant = await support.make_tenant(api, admin_headers, name="steps")
    hour = _hour(datetime.now(UTC)) - timedelta(hours=2)
    await conn.execute("SELECT smsgw_ensure_partitions_v2(%s, 3)", ((hour - timedelta(1)).date(),))
    for seconds in (30, 590, 610, 650):
        await _behind(conn, tenant.id, hour + timedelta(seconds=seconds))
    await rollups.fold_due(pool, settings, at=hour)
    lag = timedelta(seconds=settings.rollup_open_lag_seconds)
    assert settings.rollup_open_step_seconds == 60
    # Each run puts the mark at the last whole minute before the lag; runs within the
    # same minute find nothing new to fold.
    for clock, mark, folded in (
        (hour + timedelta(seconds=599) + lag, hour + timedelta(minutes=9), 1),
        (hour + timedelta(seconds=659) + lag, hour + timedelta(minutes=10), 2),
        (hour + timedelta(seconds=660) + lag, hour + timedelta(minutes=11), 4),
    ):
        await rollups.fold_open(pool, settings, at=clock)
        got = await _mark(conn, hour)
        assert (got["folded_through"], got["messages"]) == (mark, folded)
        assert await stored(conn) == await recomputed(conn, before=mark)


async def _cube_rows_of(conn, hour: datetime) -> int:
    return await support.count(
        conn,
        "SELECT (SELECT count(*) FROM hourly_tenant_rollups WHERE hour = %s)"
        " + (SELECT count(*) FROM hourly_route_rollups WHERE hour = %s) AS n",
        hour,
        hour,
    )


async def test_the_open_hour_stays_out_of_the_cubes_until_its_close_puts_it_in_once(
    api, conn, pool, settings, admin_headers, db_url
):
    # The open folds write the hour's rollup rows only: the cubes (rewritten at every
    # fold, they cost two thirds of it) get the hour when it closes, whole, in the
    # closing fold's transaction. Reports read the open hour's rows beside the cubes.
    tenants = await traffic(api, conn, settings, admin_headers, scheduled=False)
    instants = await _instants(api, conn, tenants[0])
    hour = _hour(instants[-1])
    day = hour.date().isoformat()
    await rollups.fold_due(pool, settings, at=hour)
    cubes = (await stored_days(conn), await stored_periods(conn))
    raw = await _answers(api, admin_headers, tenants, day)

    for through in (instants[len(instants) // 2], instants[-1] + timedelta(milliseconds=1)):
        await _open_fold(pool, settings, through)
        assert await stored(conn) == await recomputed(conn, before=through)
        assert any(key[0] == hour for key in await stored(conn))
        assert (await stored_days(conn), await stored_periods(conn)) == cubes
        assert await _cube_rows_of(conn, hour) == 0
        assert await _out_of_cubes(conn) == {hour}
        assert await _answers(api, admin_headers, tenants, day) == raw

    # A closing fold killed midway leaves the hour out of the cubes, its rows as they were.
    folded = await stored(conn)
    folder = await psycopg.AsyncConnection.connect(db_url)
    try:
        await folder.execute("SELECT smsgw_fold_rollup_hour_v4(%s, false)", (hour,))
        await conn.execute("SELECT pg_terminate_backend(%s)", (folder.info.backend_pid,))
    finally:
        await folder.close()
    assert await stored(conn) == folded
    assert (await stored_days(conn), await stored_periods(conn)) == cubes
    assert await _out_of_cubes(conn) == {hour}
    assert await _answers(api, admin_headers, tenants, day) == raw

    # The close: the whole hour in the cubes, exactly, and the reports unchanged.
    assert await rollups.fold_due(pool, settings, at=hour + timedelta(hours=1, seconds=5))
    assert await _out_of_cubes(conn) == set()
    assert await stored(conn) == await recomputed(conn)
    await _assert_cubes_are_sums(conn)
    assert await _cube_rows_of(conn, hour) > 0
    assert await _answers(api, admin_headers, tenants, day) == raw
    # A refold later (receipts in) goes through the cubes' trigger as before.
    assert await rollups.fold_due(pool, settings, at=hour + timedelta(hours=3))
    assert await stored(conn) == await recomputed(conn)
    await _assert_cubes_are_sums(conn)


async def test_an_older_release_closing_the_open_hour_leaves_reports_exact_until_v4_cubes_it(
    api, conn, pool, settings, admin_headers
):
    # A rolling deploy: the hour was folded open by the new release, then an older
    # release's job (v3, which knows nothing of the cubes' flag) folds it when it closes.
    # Its writes stay out of the cubes with the hour; reports read the hour's rows beside
    # them; the next v4 fold of the hour puts it in.
    tenants = await traffic(api, conn, settings, admin_headers, scheduled=False)
    instants = await _instants(api, conn, tenants[0])
    hour = _hour(instants[-1])
    day = hour.date().isoformat()
    await rollups.fold_due(pool, settings, at=hour)
    cubes = (await stored_days(conn), await stored_periods(conn))
    raw = await _answers(api, admin_headers, tenants, day)
    await _open_fold(pool, settings, instants[len(instants) // 2])

    async with conn.transaction():
        await conn.execute("SELECT smsgw_fold_rollup_hour_v3(%s, false)", (hour,))
    assert await stored(conn) == await recomputed(conn)
    assert await _out_of_cubes(conn) == {hour}
    assert (await stored_days(conn), await stored_periods(conn)) == cubes
    assert await _answers(api, admin_headers, tenants, day) == raw

    # Due for the new release at once (out of the cubes), which puts it in.
    assert await rollups.fold_due(pool, settings, at=hour + timedelta(hours=1, seconds=5))
    assert await _out_of_cubes(conn) == set()
    assert await stored(conn) == await recomputed(conn)
    await _assert_cubes_are_sums(conn)
    assert await _answers(api, admin_headers, tenants, day) == raw


async def test_retention_of_the_open_hour_messages_leaves_its_rows_and_puts_them_in_the_cubes(
    api, conn, pool, settings, admin_headers
):
    # The hour folded open, then its raw messages dropped before it closed: its folds
    # keep what they folded, final, and the rows enter the cubes with the fold that
    # finds the partition gone.
    tenant = await support.make_tenant(api, admin_headers, name="dropped")
    hour = _hour(datetime.now(UTC)) - timedelta(hours=3)
    await conn.execute("SELECT smsgw_ensure_partitions_v2(%s, 3)", ((hour - timedelta(1)).date(),))
    for minute in (5, 10, 20, 40, 50):
        await _behind(conn, tenant.id, hour + timedelta(minutes=minute))
    await rollups.fold_due(pool, settings, at=hour)
    through = hour + timedelta(minutes=30)
    await _open_fold(pool, settings, through)
    expected = await stored(conn)
    assert expected == await recomputed(conn, before=through)
    assert await _out_of_cubes(conn) == {hour}
    await conn.execute("SELECT smsgw_drop_partitions_v2(%s)", (hour.date() + timedelta(1),))
    assert await support.count(conn, "SELECT count(*) AS n FROM messages") == 0

    await rollups.fold_due(pool, settings, at=hour + timedelta(hours=8))
    assert await stored(conn) == expected
    assert await _out_of_cubes(conn) == set()
    assert (await _mark(conn, hour))["final"]
    await _assert_cubes_are_sums(conn)
