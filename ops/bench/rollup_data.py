"""The data behind ops.bench.rollups: full-scale hourly rollups and their cubes written
directly (what 100M messages a day fold to), the cubes' upkeep timed, a tenant's raw
messages of today, their first fold, and the hour in progress left open as the worker
leaves it."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import psycopg
from psycopg import sql

STATUSES = ("delivered", "undelivered", "failed", "sent", "expired")


ROLLUP_TABLES = (
    "message_rollups",
    "daily_rollups",
    "daily_tenant_rollups",
    "daily_route_rollups",
    "hourly_tenant_rollups",
    "hourly_route_rollups",
    "weekly_tenant_rollups",
    "monthly_tenant_rollups",
    "weekly_route_rollups",
    "monthly_route_rollups",
)


# One hour's rollup rows: row i is tenant i mod T, its (i div T)-th combination of a
# country, a provider (3 pairs per tenant, spread over every country and provider) and a
# status (5); `n` messages (14 on average: 300,000 rows an hour stand for 100M a day).
_ROWS = """
    WITH t AS (SELECT array_agg(id ORDER BY id) AS ids FROM tenants),
         c AS (SELECT array_agg(DISTINCT country ORDER BY country) AS codes
                 FROM dialing_prefixes)
    SELECT t.ids[1 + i %% cardinality(t.ids)] AS tenant_id,
           c.codes[1 + (7 * (i %% cardinality(t.ids)) + 31 * (i / cardinality(t.ids) / 5))
                       %% cardinality(c.codes)] AS country,
           'p' || ((i %% cardinality(t.ids) + i / cardinality(t.ids) / 5)
                   %% %(providers)s) AS provider,
           (%(statuses)s::text[])[1 + (i / cardinality(t.ids)) %% 5] AS status,
           n
      FROM t, c, generate_series(0, %(rows)s - 1) AS i,
           LATERAL (SELECT 1 + (i %% 27)::bigint AS n) AS sized
"""


def _load_tenants(conn: psycopg.Connection[tuple[object, ...]], tenants: int) -> None:
    conn.execute(
        "INSERT INTO tenants (id, name, price_per_segment, webhook_secret)"
        " SELECT gen_random_uuid(), 'bulk ' || i, 7900, 'x'"
        " FROM generate_series(1, %s) AS i",
        (max(0, tenants - 1),),
    )


def _load_hours(
    conn: psycopg.Connection[tuple[object, ...]], *, day: int, rows_per_hour: int, providers: int
) -> float:
    """A day of hourly rollup rows, one statement per hour as a fold writes them (the
    daily cubes' trigger runs on each); returns the seconds taken."""
    started = time.perf_counter()
    for hour in range(24):
        conn.execute(
            sql.SQL(
                "INSERT INTO message_rollups (hour, tenant_id, country, provider, status,"
                " messages, segments, price, cost, sent_latency, delivery_latency)"
                " SELECT date_trunc('day', now(), 'UTC') - make_interval(days => %(day)s,"
                "                                                        hours => -%(hour)s),"
                "        tenant_id, country, provider, status, n, n, n * 7900, n * 5000,"
                "        ARRAY[0, 0, n, 0, 0, 0, 0, 0, 0, 0, 0, 0]::bigint[],"
                "        ARRAY[0, 0, 0, 0, 0, n, 0, 0, 0, 0, 0, 0]::bigint[]"
                " FROM ({rows}) AS r ON CONFLICT DO NOTHING"
            ).format(rows=sql.SQL(_ROWS)),
            {
                "providers": providers,
                "statuses": list(STATUSES),
                "day": day,
                "hour": hour,
                "rows": rows_per_hour,
            },
        )
    return time.perf_counter() - started


def _load_cubes(
    conn: psycopg.Connection[tuple[object, ...]], *, day: int, rows_per_hour: int, providers: int
) -> float:
    """A day's cubes written directly: what 24 hours of the rows above sum to (the same
    combinations every hour), without the hourly rows; returns the seconds taken."""
    started = time.perf_counter()
    params = {"providers": providers, "statuses": list(STATUSES), "rows": rows_per_hour}
    day_sql = sql.SQL("(date_trunc('day', now(), 'UTC') - make_interval(days => %(day)s))::date")
    conn.execute(
        sql.SQL(
            "INSERT INTO daily_rollups (day, tenant_id, country, provider, status, messages,"
            " segments, price, cost)"
            " SELECT {day}, tenant_id, country, provider, status, 24 * sum(n), 24 * sum(n),"
            "        24 * sum(n) * 7900, 24 * sum(n) * 5000"
            " FROM ({rows}) AS r GROUP BY 2, 3, 4, 5"
        ).format(day=day_sql, rows=sql.SQL(_ROWS)),
        {**params, "day": day},
    )
    conn.execute(
        sql.SQL(
            "INSERT INTO daily_tenant_rollups (day, tenant_id, messages, segments, captured,"
            " captured_segments, revenue, cost)"
            " SELECT day, tenant_id, sum(messages), sum(segments),"
            "        coalesce(sum(messages) FILTER (WHERE captured), 0),"
            "        coalesce(sum(segments) FILTER (WHERE captured), 0),"
            "        coalesce(sum(price) FILTER (WHERE captured), 0),"
            "        coalesce(sum(cost) FILTER (WHERE captured), 0)"
            "   FROM (SELECT *, status IN ('sent', 'delivered', 'undelivered') AS captured"
            "          FROM daily_rollups WHERE day = {day}) d"
            "  GROUP BY 1, 2"
        ).format(day=day_sql),
        {"day": day},
    )
    conn.execute(
        sql.SQL(
            "INSERT INTO daily_route_rollups (day, country, provider, status, currency,"
            " messages, segments, price, cost, sent_latency, delivery_latency)"
            " SELECT d.day, d.country, d.provider, d.status, t.currency, sum(d.messages),"
            "        sum(d.segments), sum(d.price), sum(d.cost),"
            "        ARRAY[0, 0, sum(d.messages), 0, 0, 0, 0, 0, 0, 0, 0, 0]::bigint[],"
            "        ARRAY[0, 0, 0, 0, 0, sum(d.messages), 0, 0, 0, 0, 0, 0]::bigint[]"
            "   FROM daily_rollups d JOIN tenants t ON t.id = d.tenant_id"
            "  WHERE d.day = {day}"
            "  GROUP BY 1, 2, 3, 4, 5"
        ).format(day=day_sql),
        {"day": day},
    )
    return time.perf_counter() - started


def _weeks_and_months(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """The weekly and monthly cubes of the daily cubes written directly (as migration
    0013 makes them for the days before it); the hourly rows after add to them through
    the trigger."""
    migration = Path(__file__).parents[2] / "db" / "migrations" / "0013_report_speed.sql"
    text = migration.read_text()
    backfill = text[text.index("INSERT INTO weekly_tenant_rollups (week, tenant_id") :]
    for statement in backfill.split(";"):
        if statement.strip():
            conn.execute(statement)


def _load_rollups(
    db_url: str,
    *,
    days: int,
    hourly_days: int,
    rows_per_hour: int,
    tenants: int,
    providers: int,
) -> None:
    """The older days as daily cubes written directly, the last ``hourly_days`` as hourly
    rows (their cubes made by the trigger, as folds make them), every hour marked final."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        _load_tenants(conn, tenants)
        for day in range(days, hourly_days, -1):
            took = _load_cubes(conn, day=day, rows_per_hour=rows_per_hour, providers=providers)
            print(f"  cubes of day -{day}: {took:.1f} s", flush=True)
        started = time.perf_counter()
        _weeks_and_months(conn)
        print(f"  their weeks and months: {time.perf_counter() - started:.1f} s", flush=True)
        for day in range(min(hourly_days, days), 0, -1):
            took = _load_hours(conn, day=day, rows_per_hour=rows_per_hour, providers=providers)
            print(f"  hourly rows of day -{day} and their cubes: {took:.1f} s", flush=True)
        conn.execute(
            "INSERT INTO rollup_hours (hour, folded_at, final, messages)"
            " SELECT h, now(), true, 0 FROM generate_series("
            "     date_trunc('day', now(), 'UTC') - make_interval(days => %s),"
            "     date_trunc('day', now(), 'UTC') - interval '1 hour', interval '1 hour') AS h"
            " ON CONFLICT DO NOTHING",
            (days,),
        )
        for table in ROLLUP_TABLES:
            conn.execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(table)))


def _cube_upkeep(db_url: str, *, rows_per_hour: int, providers: int) -> tuple[float, float]:
    """An hour of rows written into a copy of message_rollups without the cubes' trigger,
    and into message_rollups with it (an hour of tomorrow, deleted after with its cube
    rows): seconds each, so the difference is the cubes' upkeep for an hour's fold."""
    params = {"providers": providers, "statuses": list(STATUSES), "rows": rows_per_hour}
    insert = sql.SQL(
        "INSERT INTO {table} (hour, tenant_id, country, provider, status, messages, segments,"
        " price, cost, sent_latency, delivery_latency)"
        " SELECT date_trunc('day', now(), 'UTC') + interval '1 day', tenant_id, country,"
        "        provider, status, n, n, n * 7900, n * 5000,"
        "        ARRAY[0, 0, n, 0, 0, 0, 0, 0, 0, 0, 0, 0]::bigint[],"
        "        ARRAY[0, 0, 0, 0, 0, n, 0, 0, 0, 0, 0, 0]::bigint[]"
        " FROM ({rows}) AS r"
    )
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE bench_hour (LIKE message_rollups INCLUDING ALL)")
        started = time.perf_counter()
        conn.execute(insert.format(table=sql.Identifier("bench_hour"), rows=sql.SQL(_ROWS)), params)
        bare = time.perf_counter() - started
        conn.execute("DROP TABLE bench_hour")
        started = time.perf_counter()
        conn.execute(
            insert.format(table=sql.Identifier("message_rollups"), rows=sql.SQL(_ROWS)), params
        )
        kept = time.perf_counter() - started
        conn.execute(
            "DELETE FROM message_rollups WHERE hour = date_trunc('day', now(), 'UTC')"
            " + interval '1 day'"
        )
    return bare, kept


def _load_raw(db_url: str, tenant_id: str, rows: int) -> None:
    """Delivered messages of today until now for one tenant, evenly spread, free (held
    and captured at 0, so the ledger stays whole)."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            """
            WITH made AS (
                INSERT INTO messages (id, created_at, tenant_id, status, to_number, body,
                                      encoding, segments, price, expires_at, updated_at,
                                      provider, sent_at, delivered_at)
                SELECT (lpad(to_hex((extract(epoch FROM t) * 1000)::bigint), 12, '0') || '7'
                        || substr(md5(i::text), 1, 3) || '8' || substr(md5(i::text), 4, 15))::uuid,
                       t, %(tenant)s, 'delivered', '+447400' || lpad((i %% 999999)::text, 6, '0'),
                       repeat('z', 120), 'GSM-7', 1, 0, t + interval '1 day', t, 'simulator',
                       t + interval '300 ms', t + interval '4 s'
                  FROM generate_series(1, %(rows)s) AS i,
                       LATERAL (SELECT date_trunc('day', now(), 'UTC')
                                       + (now() - date_trunc('day', now(), 'UTC'))
                                         * (i::double precision / (%(rows)s + 1)) AS t) AS at
                RETURNING id, created_at, tenant_id
            )
            INSERT INTO ledger_message_entries (message_created_at, message_id, tenant_id,
                                                kind, amount)
            SELECT created_at, id, tenant_id, kind, 0
              FROM made, (VALUES ('hold'), ('capture')) AS k (kind)
            """,
            {"tenant": tenant_id, "rows": rows},
        )
        conn.execute("ANALYZE messages")


def _fold(db_url: str) -> tuple[float, int, int]:
    """Fold every closed hour holding raw messages; seconds, WAL bytes, messages."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        hours = [
            r[0]
            for r in conn.execute(
                "SELECT DISTINCT date_trunc('hour', created_at, 'UTC') FROM messages ORDER BY 1"
            ).fetchall()
        ]
        count = conn.execute("SELECT count(*) FROM messages").fetchone()
        wal_0 = conn.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')").fetchone()
        started = time.perf_counter()
        for hour in hours:
            with conn.transaction():
                conn.execute("SELECT smsgw_fold_rollup_hour_v3(%s, false)", (hour,))
        took = time.perf_counter() - started
        wal_1 = conn.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')").fetchone()
    assert count
    assert wal_0
    assert wal_1
    return took, int(wal_1[0] - wal_0[0]), int(count[0])


def load_all(db_url: str, tenant: dict[str, str], args: argparse.Namespace) -> None:
    """Steps 1 and 2: the rollups, the cubes' upkeep, the raw messages and their fold."""
    hourly_days = args.days if args.hourly_only else min(args.hourly_days, args.days)
    print(
        f"loading {args.days} days x 24 h x {args.rows_per_hour} rollup rows"
        f" ({args.days - hourly_days} days as daily cubes, {hourly_days} as hourly rows)",
        flush=True,
    )
    started = time.perf_counter()
    _load_rollups(
        db_url,
        days=args.days,
        hourly_days=hourly_days,
        rows_per_hour=args.rows_per_hour,
        tenants=args.tenants,
        providers=args.providers,
    )
    print(f"rollups loaded in {time.perf_counter() - started:.0f} s", flush=True)
    bare, kept = _cube_upkeep(db_url, rows_per_hour=args.rows_per_hour, providers=args.providers)
    print(
        f"an hour of {args.rows_per_hour} rollup rows: {bare:.1f} s written bare,"
        f" {kept:.1f} s with the daily cubes' upkeep (a day: {24 * (kept - bare):.0f} s"
        " of upkeep)",
        flush=True,
    )
    print(f"loading {args.raw} raw messages", flush=True)
    started = time.perf_counter()
    _load_raw(db_url, tenant["id"], args.raw)
    print(f"raw messages loaded in {time.perf_counter() - started:.0f} s", flush=True)

    took, wal, messages = _fold(db_url)
    print(
        f"fold: {messages} messages in {took:.2f} s ({messages / max(took, 1e-9):,.0f}"
        f" msg/s), WAL {wal / max(messages, 1):.0f} B/msg"
    )


def open_hour(db_url: str) -> int:
    """The hour in progress as the worker leaves it at the hour's end (migration 0019): a
    whole hour of rollup rows (the last loaded hour's, moved: today holds raw messages only)
    out of the cubes, folded up to now, so the reports read them beside the cubes: the
    most they ever read. Returns its rows."""
    with psycopg.connect(db_url, autocommit=True) as conn, conn.transaction():
        # A whole hour of rows, the most it holds (at its end): the last loaded hour's
        # (yesterday's last), moved.
        conn.execute(
            "CREATE TEMP TABLE open_rows ON COMMIT DROP AS SELECT * FROM message_rollups"
            " WHERE hour = (SELECT max(hour) FROM message_rollups"
            "               WHERE hour < date_trunc('day', now(), 'UTC'))"
        )
        conn.execute("UPDATE open_rows SET hour = date_trunc('hour', now(), 'UTC')")
        # Out while the hour is still in the cubes (the trigger takes them out), back in
        # once it is not (the trigger leaves them).
        conn.execute("DELETE FROM message_rollups WHERE hour = date_trunc('hour', now(), 'UTC')")
        conn.execute(
            """
            INSERT INTO rollup_hours AS h (hour, folded_at, final, messages, in_cubes,
                                           folded_through, through_as_of)
            VALUES (date_trunc('hour', now(), 'UTC'), now(), false, 0, false, now(), now())
            ON CONFLICT (hour) DO UPDATE
               SET folded_at = now(), final = false, in_cubes = false,
                   folded_through = now(), through_as_of = now()
            """
        )
        conn.execute("INSERT INTO message_rollups SELECT * FROM open_rows")
        row = conn.execute("SELECT count(*) FROM open_rows").fetchone()
    assert row is not None
    return int(row[0])
