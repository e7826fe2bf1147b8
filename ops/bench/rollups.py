"""Issue 27's speed figures for reports from rollups, the fold and the export.

Starts a private PostgreSQL (durable settings), migrates it, runs `smsgw api`, then:

1. writes ``--days`` of hourly rollup rows directly (``--rows-per-hour`` rows per hour
   over ``--tenants`` tenants, the countries of ``dialing_prefixes`` and ``--providers``
   providers: the full-scale default stands for 100M messages a day), and
   ``--raw`` raw messages of today (delivered, for one tenant);
2. folds the raw messages' hours (``smsgw_fold_rollup_hour_v1``): seconds and WAL per
   message;
3. times the admin usage report over the last 30 days by tenant, country and provider
   and a tenant's usage report (p50/p95 of ``--calls`` calls each, HTTP round trip);
4. streams the tenant's export of its raw messages (CSV): rows/s and the API's RSS at
   the start and the end.

    python -m ops.bench.rollups                     # full scale: hours of loading
    python -m ops.bench.rollups --days 2 --rows-per-hour 2000 --tenants 50 --raw 500

Not measured here: the fold's share of the e2e batch throughput in the same run (not
written yet); e2e through PgBouncer against direct connections is ``ops.bench.e2e --via
both``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import psycopg

from smsgw.embedded import EmbeddedPostgres
from smsgw.processes import await_http, free_port, smsgw_command, spawn, stop

ADMIN = "bench-admin-token"
HEADERS = {"Authorization": f"Bearer {ADMIN}"}
STATUSES = ("delivered", "undelivered", "failed", "sent", "canceled")


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _load_rollups(
    db_url: str, *, days: int, rows_per_hour: int, tenants: int, providers: int
) -> None:
    """Rollup rows written directly, hour by hour (one statement per day), and every hour
    marked final; each (tenant, country, provider, status) appears once per hour."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO tenants (id, name, price_per_segment, webhook_secret)"
            " SELECT gen_random_uuid(), 'bulk ' || i, 7900, 'x'"
            " FROM generate_series(1, %s) AS i",
            (max(0, tenants - 1),),
        )
        for day in range(days, 0, -1):
            started = time.perf_counter()
            conn.execute(
                """
                WITH t AS (SELECT array_agg(id ORDER BY id) AS ids FROM tenants),
                     c AS (SELECT array_agg(DISTINCT country) AS codes FROM dialing_prefixes)
                INSERT INTO message_rollups (hour, tenant_id, country, provider, status,
                    messages, segments, price, cost, sent_latency, delivery_latency)
                SELECT h, t.ids[1 + i %% cardinality(t.ids)],
                       c.codes[1 + (i / cardinality(t.ids)) %% cardinality(c.codes)],
                       'p' || ((i / cardinality(t.ids) / cardinality(c.codes)) %% %(providers)s),
                       (%(statuses)s::text[])[1 + (i / cardinality(t.ids) / cardinality(c.codes)
                                                  / %(providers)s) %% 5],
                       n, n, n * 7900, n * 5000,
                       ARRAY[0, 0, n, 0, 0, 0, 0, 0, 0, 0, 0, 0]::bigint[],
                       ARRAY[0, 0, 0, 0, 0, n, 0, 0, 0, 0, 0, 0]::bigint[]
                  FROM t, c,
                       generate_series(date_trunc('day', now()) - make_interval(days => %(day)s),
                                       date_trunc('day', now()) - make_interval(days => %(day)s)
                                           + interval '23 hours', interval '1 hour') AS h,
                       generate_series(0, %(rows)s - 1) AS i,
                       LATERAL (SELECT 1 + (i %% 97)::bigint AS n) AS sized
                ON CONFLICT DO NOTHING
                """,
                {
                    "providers": providers,
                    "statuses": list(STATUSES),
                    "day": day,
                    "rows": rows_per_hour,
                },
            )
            print(f"  rollups of day -{day}: {time.perf_counter() - started:.1f} s", flush=True)
        conn.execute(
            "INSERT INTO rollup_hours (hour, folded_at, final, messages)"
            " SELECT DISTINCT hour, now(), true, 0 FROM message_rollups ON CONFLICT DO NOTHING"
        )
        conn.execute("VACUUM ANALYZE message_rollups")


def _load_raw(db_url: str, tenant_id: str, rows: int) -> None:
    """Delivered messages of today's first hours for one tenant, free (held and captured
    at 0, so the ledger stays whole)."""
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
                       LATERAL (SELECT date_trunc('day', now()) + i * interval '10 ms' AS t) AS at
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
                conn.execute("SELECT smsgw_fold_rollup_hour_v1(%s, false)", (hour,))
        took = time.perf_counter() - started
        wal_1 = conn.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')").fetchone()
    assert count
    assert wal_0
    assert wal_1
    return took, int(wal_1[0] - wal_0[0]), int(count[0])


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


async def main_async(args: argparse.Namespace) -> None:
    base = Path(tempfile.mkdtemp(prefix="smsgw-rollups-", dir="/tmp"))
    base.chmod(0o755)
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
            made = await client.post(
                "/v1/admin/tenants", json={"name": "measured"}, headers=HEADERS
            )
            made.raise_for_status()
            tenant = made.json()
            key = {"Authorization": f"Bearer {tenant['api_key']}"}

            print(f"loading {args.days} days x 24 h x {args.rows_per_hour} rollup rows", flush=True)
            _load_rollups(
                db_url,
                days=args.days,
                rows_per_hour=args.rows_per_hour,
                tenants=args.tenants,
                providers=args.providers,
            )
            print(f"loading {args.raw} raw messages", flush=True)
            _load_raw(db_url, tenant["id"], args.raw)

            took, wal, messages = _fold(db_url)
            print(
                f"fold: {messages} messages in {took:.2f} s ({messages / max(took, 1e-9):,.0f}"
                f" msg/s), WAL {wal / max(messages, 1):.0f} B/msg"
            )

            today = time.strftime("%Y-%m-%d", time.gmtime())
            start = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 30 * 86400))
            window = {"from": start, "to": today}
            for group in ("tenant", "country", "provider"):
                figure = await _p(
                    client,
                    "/v1/admin/reports/usage",
                    {**window, "group_by": group, "period": "window", "limit": 5000},
                    HEADERS,
                    args.calls,
                )
                print(f"admin usage by {group}, 30 days: {figure}")
            figure = await _p(
                client, "/v1/reports/usage", {**window, "group_by": "day"}, key, args.calls
            )
            print(f"tenant usage by day, 30 days: {figure}")

            api = procs[0].pid
            rss_0, rows, started = _rss_kib(api), 0, time.perf_counter()
            async with client.stream("GET", "/v1/messages/export", headers=key) as streamed:
                streamed.raise_for_status()
                async for chunk in streamed.aiter_bytes():
                    rows += chunk.count(b"\n")
            took = time.perf_counter() - started
            print(
                f"export: {rows - 1} rows in {took:.2f} s ({(rows - 1) / took:,.0f} rows/s),"
                f" API RSS {rss_0} KiB at the start, {_rss_kib(api)} KiB at the end"
            )
    finally:
        for proc in procs:
            stop(proc, timeout=30)
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=30)
    # 100M messages a day over 20,000 tenants: each hour's rows are the (tenant,
    # country, provider, status) combinations in use; 300,000 an hour stands for a
    # tenant in a few countries through a couple of providers.
    parser.add_argument("--rows-per-hour", type=int, default=300_000)
    parser.add_argument("--tenants", type=int, default=20_000)
    parser.add_argument("--providers", type=int, default=10)
    parser.add_argument("--raw", type=int, default=10_000_000)
    parser.add_argument("--calls", type=int, default=20)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
