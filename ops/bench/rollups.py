"""Issue 27's speed figures for reports from rollups, the fold and the export.

Starts a private PostgreSQL (durable settings), migrates it, runs `smsgw api`, then:

1. writes ``--days`` of rollups directly (``--rows-per-hour`` hourly rows per hour over
   ``--tenants`` tenants, every country of ``dialing_prefixes`` and ``--providers``
   providers: the full-scale default stands for 100M messages a day): the older days as
   daily cubes, what their hours sum to; the last ``--hourly-days`` (2) as hourly rows,
   an hour per statement, their cubes made by the trigger as a fold makes them
   (``--hourly-only``: every day so, hours of loading at full scale); then times an hour
   of rows written with and without the cubes' trigger (the cubes' upkeep), and loads
   ``--raw`` raw messages of today until now (delivered, for one tenant);
2. folds the raw messages' hours (``smsgw_fold_rollup_hour_v3``, their first fold):
   seconds and WAL per message;
3. (``--open-hour``: leaves the hour in progress as the worker does while it is open,
   its rows out of the cubes, so the reports read its rows beside them) prints the
   tables' sizes, then times the admin usage report over the last 30 days
   by tenant, country and provider, the deliverability report and a tenant's usage
   report by day and by country (p50/p95 of ``--calls`` calls each, HTTP round trip);
4. streams the tenant's export of its raw messages (CSV, or ``--export-format jsonl``):
   rows/s and the RSS of the API's granian worker at the start and the end.

    python -m ops.bench.rollups                     # full scale: about half an hour
    python -m ops.bench.rollups --days 4 --rows-per-hour 2000 --tenants 50 --raw 5000
    python -m ops.bench.rollups --keep /tmp/rollups-db   # load once and keep the database;
    python -m ops.bench.rollups --keep /tmp/rollups-db   # again: migrate it, steps 3-4 only

``--keep DIR`` keeps the loaded database in DIR; a later run with the same DIR (the same
UTC day: the windows are relative to today) migrates it to the checkout's schema and
times the reports and the export again without loading.

Not measured here: the fold's share of the e2e batch throughput in the same run (not
written yet); e2e through PgBouncer against direct connections is ``ops.bench.e2e --via
both``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
from psycopg import sql

from db.sql import queries
from smsgw.embedded import EmbeddedPostgres
from smsgw.processes import await_http, free_port, smsgw_command, spawn, stop

ADMIN = "bench-admin-token"
HEADERS = {"Authorization": f"Bearer {ADMIN}"}
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


def _worker_rss_kib(api: int) -> int:
    """The resident memory of the API's granian worker(s), the children of the `smsgw
    api` process, where requests run (the parent only supervises: its RSS says nothing
    of an export's)."""
    workers = Path(f"/proc/{api}/task/{api}/children").read_text().split()
    return sum(_rss_kib(int(worker)) for worker in workers)


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


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


def _sizes(db_url: str) -> list[str]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        return [
            f"{table}: {row[0]:,} rows, {row[1]}"
            for table in (*ROLLUP_TABLES, "messages")
            for row in [
                conn.execute(
                    sql.SQL(
                        "SELECT (SELECT count(*) FROM {table}),"
                        " pg_size_pretty(coalesce(sum(pg_total_relation_size(relid)),"
                        "                       pg_total_relation_size({name})))"
                        " FROM pg_partition_tree({name})"
                    ).format(name=sql.Literal(table), table=sql.Identifier(table)),
                ).fetchone()
                or (0, "")
            ]
        ]


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


def _plans(db_url: str, tenant_id: str) -> list[str]:
    """Each timed report's statement once under EXPLAIN ANALYZE, with PostgreSQL's JIT on
    (the default) and off: where the time goes, server side, and what JIT costs."""
    # The HTTP calls' window: from=30 days ago, to=today (the whole of today).
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    starts, ends = midnight - timedelta(days=30), midnight + timedelta(days=1)
    window: dict[str, object] = {
        "starts": starts,
        "ends": ends,
        "period": "window",
        "limit": 5001,
        "after_period": None,
        "after_key": None,
        "after_currency": None,
    }
    reports: list[tuple[str, str, str, dict[str, object]]] = [
        ("admin usage by tenant", "reports", "admin_usage_by_tenant", {"group_by": "tenant"}),
        ("admin usage by country", "reports", "admin_usage", {"group_by": "country"}),
        ("admin usage by provider", "reports", "admin_usage", {"group_by": "provider"}),
        (
            "deliverability",
            "deliverability",
            "report",
            {"country": None, "provider": None, "after_country": None, "after_provider": None},
        ),
    ]
    lines = []
    with psycopg.connect(db_url, autocommit=True) as conn:
        for label, resource, name, extra in reports:
            lines.append(_plan(conn, label, queries(resource)[name], {**window, **extra}))
        lines.append(
            _plan(
                conn,
                "tenant usage by day",
                queries("reports")["tenant_usage"],
                {"starts": starts, "ends": ends, "tenant_id": tenant_id, "group_by": "day"},
            )
        )
    return lines


def _plan(
    conn: psycopg.Connection[tuple[object, ...]],
    label: str,
    query: str,
    params: dict[str, object],
) -> str:
    figures = []
    conn.execute("SET work_mem = '32MB'")  # as the reporting pool's sessions (db/pool.py)
    for jit in ("on", "off"):
        conn.execute(sql.SQL("SET jit = {}").format(sql.Literal(jit)))
        row = conn.execute(
            sql.SQL("EXPLAIN (ANALYZE, FORMAT JSON) {}").format(sql.SQL(query)),
            params,
            prepare=False,
        ).fetchone()
        assert row is not None
        plan = row[0][0]  # type: ignore[index]
        jit_ms = plan.get("JIT", {}).get("Timing", {}).get("Total", 0.0)
        figures.append(
            f"jit {jit}: planning {plan['Planning Time']:.0f} ms, execution"
            f" {plan['Execution Time']:.0f} ms (JIT {jit_ms:.0f} ms)"
        )
    conn.execute("RESET jit")
    return f"{label}, server side: " + "; ".join(figures)


async def _p(
    client: httpx.AsyncClient,
    path: str,
    params: dict[str, str | int],
    headers: dict[str, str],
    calls: int,
) -> str:
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        response = await client.get(path, params=params, headers=headers)
        response.raise_for_status()
        times.append(time.perf_counter() - started)
    times.sort()
    p95 = times[min(len(times) - 1, round(0.95 * len(times)) - 1)]
    return f"p50 {statistics.median(times) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms"


def _load_all(db_url: str, tenant: dict[str, str], args: argparse.Namespace) -> None:
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


def _open_hour(db_url: str) -> int:
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


async def main_async(args: argparse.Namespace) -> None:
    if args.keep:
        base = Path(args.keep).resolve()
        base.mkdir(parents=True, exist_ok=True)
    else:
        base = Path(tempfile.mkdtemp(prefix="smsgw-rollups-", dir="/tmp"))
    base.chmod(0o755)
    loaded = base / "loaded.json"
    server = EmbeddedPostgres(base / "pg")
    db_url = server.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSGW_")}
    env.update({"DATABASE_URL": db_url, "SMSGW_ADMIN_TOKEN": ADMIN, "SMSGW_LOG_LEVEL": "WARNING"})
    port = free_port()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        subprocess.run(smsgw_command("migrate"), env=env, check=True, capture_output=True)
        procs.append(spawn(smsgw_command("api", "--port", str(port)), env=env))
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=600) as client:
            await await_http(str(client.base_url.join("/ready")), within=30)
            if loaded.exists():
                tenant = json.loads(loaded.read_text())
                print(f"reusing the database loaded in {base}", flush=True)
            else:
                made = await client.post(
                    "/v1/admin/tenants", json={"name": "measured"}, headers=HEADERS
                )
                made.raise_for_status()
                tenant = made.json()
                await asyncio.to_thread(_load_all, db_url, tenant, args)
                if args.keep:
                    loaded.write_text(
                        json.dumps({"id": tenant["id"], "api_key": tenant["api_key"]})
                    )
            key = {"Authorization": f"Bearer {tenant['api_key']}"}

            if args.open_hour:
                rows = await asyncio.to_thread(_open_hour, db_url)
                print(f"the hour in progress left open: {rows} rollup rows out of the cubes")
            for line in _sizes(db_url):
                print(line)
            if not args.no_reports:
                await _reports(client, db_url, tenant, key, args.calls)
            if not args.no_export:
                await _export(client, procs[0].pid, key, args.export_format)
    finally:
        for proc in procs:
            stop(proc, timeout=30)
        server.stop()
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


async def _reports(
    client: httpx.AsyncClient,
    db_url: str,
    tenant: dict[str, str],
    key: dict[str, str],
    calls: int,
) -> None:
    """Step 3: each report's p50/p95 over HTTP, then its statement's plan."""
    today = time.strftime("%Y-%m-%d", time.gmtime())
    start = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 30 * 86400))
    window = {"from": start, "to": today}
    for group in ("tenant", "country", "provider"):
        figure = await _p(
            client,
            "/v1/admin/reports/usage",
            {**window, "group_by": group, "period": "window", "limit": 5000},
            HEADERS,
            calls,
        )
        print(f"admin usage by {group}, 30 days: {figure}", flush=True)
    # A window that starts inside a day: its first 18 hours from the hourly cubes.
    yesterday = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 86400))
    figure = await _p(
        client,
        "/v1/admin/reports/usage",
        {
            "from": f"{yesterday}T06:00:00Z",
            "to": today,
            "group_by": "tenant",
            "period": "window",
            "limit": 5000,
        },
        HEADERS,
        calls,
    )
    print(f"admin usage by tenant, from yesterday 06:00 to today: {figure}", flush=True)
    figure = await _p(
        client,
        "/v1/admin/reports/deliverability",
        {**window, "period": "window", "limit": 5000},
        HEADERS,
        calls,
    )
    print(f"deliverability by country and provider, 30 days: {figure}", flush=True)
    for group in ("day", "country"):
        figure = await _p(client, "/v1/reports/usage", {**window, "group_by": group}, key, calls)
        print(f"tenant usage by {group}, 30 days: {figure}", flush=True)

    for line in _plans(db_url, tenant["id"]):
        print(line, flush=True)


async def _export(
    client: httpx.AsyncClient, api: int, key: dict[str, str], export_format: str
) -> None:
    """Step 4: the tenant's export of its raw messages: rows/s, the API's RSS."""
    rss_0, rows, started = _worker_rss_kib(api), 0, time.perf_counter()
    async with client.stream(
        "GET", "/v1/messages/export", params={"format": export_format}, headers=key
    ) as streamed:
        streamed.raise_for_status()
        async for chunk in streamed.aiter_bytes():
            rows += chunk.count(b"\n")
    took = time.perf_counter() - started
    rows -= export_format == "csv"  # the header
    print(
        f"export ({export_format}): {rows} rows in {took:.2f} s ({rows / took:,.0f} rows/s),"
        f" API worker RSS {rss_0} KiB at the start, {_worker_rss_kib(api)} KiB at the end"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=30)
    # The last days as hourly rows (their cubes made by the trigger, as folds make them);
    # the older ones as daily cubes written directly. --hourly-only: every day as hourly
    # rows (hours of loading at full scale).
    parser.add_argument("--hourly-days", type=int, default=2)
    parser.add_argument("--hourly-only", action="store_true")
    # 100M messages a day over 20,000 tenants: each hour's rows are the (tenant,
    # country, provider, status) combinations in use; 300,000 an hour stands for a
    # tenant in a few countries through a couple of providers.
    parser.add_argument("--rows-per-hour", type=int, default=300_000)
    parser.add_argument("--tenants", type=int, default=20_000)
    parser.add_argument("--providers", type=int, default=10)
    parser.add_argument("--raw", type=int, default=10_000_000)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--keep", metavar="DIR", help="keep the loaded database in DIR; reuse it")
    parser.add_argument("--no-reports", action="store_true", help="skip step 3")
    parser.add_argument("--no-export", action="store_true", help="skip step 4")
    parser.add_argument(
        "--open-hour",
        action="store_true",
        help="before the reports, leave the hour in progress open (out of the cubes)",
    )
    parser.add_argument("--export-format", choices=("csv", "jsonl"), default="csv")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
