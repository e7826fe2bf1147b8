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
from ops.bench import rollup_data
from smsgw.embedded import EmbeddedPostgres
from smsgw.processes import await_http, free_port, smsgw_command, spawn, stop

ADMIN = "bench-admin-token"
HEADERS = {"Authorization": f"Bearer {ADMIN}"}


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


def _sizes(db_url: str) -> list[str]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        return [
            f"{table}: {row[0]:,} rows, {row[1]}"
            for table in (*rollup_data.ROLLUP_TABLES, "messages")
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
                await asyncio.to_thread(rollup_data.load_all, db_url, tenant, args)
                if args.keep:
                    loaded.write_text(
                        json.dumps({"id": tenant["id"], "api_key": tenant["api_key"]})
                    )
            key = {"Authorization": f"Bearer {tenant['api_key']}"}

            if args.open_hour:
                rows = await asyncio.to_thread(rollup_data.open_hour, db_url)
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
