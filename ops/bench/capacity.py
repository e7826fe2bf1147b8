"""The measurements behind docs/scaling.md: WAL and storage per message, the cost of a
/metrics scrape and of the reports.

Starts a private PostgreSQL (durable settings, as `smsgw run` uses), migrates it, runs
the API under granian and ONE `smsgw worker`, and with the simulator (receipts after
0.2 s) sends ``--messages`` messages through their whole life (accepted, sent,
delivered), then prints:

1. WAL bytes per message, per phase (accept; send + receipt), from pg_current_wal_lsn();
2. bytes per message in each partitioned table (pg_total_relation_size of today's
   partitions) and rows per message;
3. the time of one /metrics scrape's queries with a backlog of queued messages, and of
   the reports over everything sent.

    python -m ops.bench.capacity [--messages 20000] [--tenants 10] [--backlog 100000]
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
from psycopg import sql

from smsgw.embedded import EmbeddedPostgres
from smsgw.processes import await_http, free_port, smsgw_command, spawn, stop

ADMIN = "bench-admin-token"
HEADERS = {"Authorization": f"Bearer {ADMIN}"}
TABLES = ("messages", "message_events", "ledger_message_entries", "callbacks")


def _scalar(db_url: str, query: str) -> float:
    with psycopg.connect(db_url, autocommit=True) as conn:
        row = conn.execute(query).fetchone()
        assert row is not None
        return float(row[0] or 0)


def _cpu_seconds(root: int) -> float:
    """CPU time (user + system) of a process tree: ``root``, the children it has reaped
    (PostgreSQL's backends that ended), and every live descendant."""
    tick = os.sysconf("SC_CLK_TCK")
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                text = (entry / "stat").read_text()
            except OSError:
                continue
            stats[int(entry.name)] = text[text.rindex(")") + 2 :].split()
    children: dict[int, list[int]] = {}
    for child, fields in stats.items():
        children.setdefault(int(fields[1]), []).append(child)
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        found = stats.get(pid)
        if found is None:
            continue
        total += int(found[11]) + int(found[12])  # utime, stime
        if pid == root:
            total += int(found[13]) + int(found[14])  # cutime, cstime
        todo.extend(children.get(pid, []))
    return total / tick


def _wal(db_url: str) -> int:
    return int(_scalar(db_url, "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')"))


def _wait(db_url: str, query: str, expected: int, timeout: float = 900) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _scalar(db_url, query) >= expected:
            return time.monotonic()
        time.sleep(0.05)
    raise SystemExit(f"timed out waiting for {expected}: {query}")


async def _tenants(client: httpx.AsyncClient, count: int) -> list[str]:
    keys = []
    # Issue 25: no pumping suspension of the bulk sends below (they have no history).
    for country in ("US", "GB", "DE", "FR"):
        limit = {"hourly_limit": 10**9}
        (
            await client.put(f"/v1/admin/pumping-limits/{country}", json=limit, headers=HEADERS)
        ).raise_for_status()
    for i in range(count):
        created = await client.post("/v1/admin/tenants", json={"name": f"t{i}"}, headers=HEADERS)
        created.raise_for_status()
        tenant = created.json()
        credit = {"amount": 10**14, "reference": "bench"}
        (
            await client.post(
                f"/v1/admin/tenants/{tenant['id']}/credits", json=credit, headers=HEADERS
            )
        ).raise_for_status()
        keys.append(tenant["api_key"])
    return keys


async def _ingest(client: httpx.AsyncClient, keys: list[str], total: int) -> None:
    gate = asyncio.Semaphore(4)
    sizes = [min(1000, total - i) for i in range(0, total, 1000)]

    async def one(n: int, size: int) -> None:
        # Destinations in a few countries, so the delivery report has rows to group.
        to = ("+14155552671", "+447400123456", "+4915123456789", "+33612345678")[n % 4]
        body = {"messages": [{"to": to, "body": f"capacity {n}"}] * size}
        async with gate:
            response = await client.post(
                "/v1/messages/batch",
                json=body,
                headers={"Authorization": f"Bearer {keys[n % len(keys)]}"},
            )
            response.raise_for_status()

    await asyncio.gather(*(one(n, size) for n, size in enumerate(sizes)))


async def _timed(client: httpx.AsyncClient, path: str, headers: dict[str, str]) -> float:
    times = []
    for _ in range(3):
        started = time.perf_counter()
        response = await client.get(path, headers=headers)
        response.raise_for_status()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


async def main_async(args: argparse.Namespace) -> None:
    base = Path(tempfile.mkdtemp(prefix="smsgw-capacity-", dir="/tmp"))
    base.chmod(0o755)
    server = EmbeddedPostgres(base / "pg")
    db_url = server.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSGW_")}
    env.update(
        {
            "DATABASE_URL": db_url,
            "SMSGW_ADMIN_TOKEN": ADMIN,
            "SMSGW_LOG_LEVEL": "WARNING",
            "SMSGW_SIMULATOR_DLR_DELAY_SECONDS": "0.2",
            "SMSGW_SIMULATOR_SEED": "1",
            "SMSGW_METRICS_CACHE_SECONDS": "0",
        }
    )
    port = free_port()
    procs: list[subprocess.Popen[bytes]] = []
    n = args.messages
    done_q = "SELECT count(*) FROM messages WHERE status = 'delivered'"
    try:
        subprocess.run(smsgw_command("migrate"), env=env, check=True, capture_output=True)
        procs.append(spawn(smsgw_command("api", "--port", str(port)), env=env))
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=300) as client:
            await await_http(str(client.base_url.join("/ready")), within=30)
            keys = await _tenants(client, args.tenants)

            # 1 + 2. One full life per message: WAL, storage and CPU.
            postmaster = int((server.cluster / "postmaster.pid").read_text().split()[0])
            api_pid = procs[0].pid
            cpu_0 = (_cpu_seconds(postmaster), _cpu_seconds(api_pid))
            wal_0 = _wal(db_url)
            await _ingest(client, keys, n)
            wal_1 = _wal(db_url)
            worker = spawn(smsgw_command("worker"), env=env)
            procs.append(worker)
            _wait(db_url, done_q, n)
            await asyncio.sleep(1.0)  # let the last receipts' and jobs' writes land
            wal_2 = _wal(db_url)
            cpu_1 = (_cpu_seconds(postmaster), _cpu_seconds(api_pid), _cpu_seconds(worker.pid))
            sizes = {}
            rows = {}
            with psycopg.connect(db_url, autocommit=True) as conn:
                conn.execute("CHECKPOINT")
                for table in TABLES:
                    row = conn.execute(
                        "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0),"
                        " coalesce(sum(pg_relation_size(c.oid)), 0)"
                        " FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                        " WHERE i.inhparent = %s::regclass",
                        (table,),
                    ).fetchone()
                    assert row is not None
                    sizes[table] = (int(row[0]), int(row[1]))
                    count = conn.execute(
                        sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
                    ).fetchone()
                    assert count is not None
                    rows[table] = int(count[0])

            # 3. A scrape with a backlog (no worker), and the reports.
            stop(worker, timeout=60)
            await _ingest(client, keys, args.backlog)
            scrape_times = []
            for _ in range(5):
                text = (await client.get("/metrics")).text
                line = next(
                    x for x in text.splitlines() if x.startswith("smsgw_metrics_query_seconds ")
                )
                scrape_times.append(float(line.split()[1]))
            depth = _scalar(db_url, "SELECT count(*) FROM messages WHERE status = 'queued'")
            tenant_headers = {"Authorization": f"Bearer {keys[0]}"}
            report_times = {
                "usage by day (one tenant)": await _timed(
                    client, "/v1/reports/usage?group_by=day", tenant_headers
                ),
                "top tenants": await _timed(client, "/v1/admin/reports/top-tenants", HEADERS),
                "delivery by provider, country": await _timed(
                    client, "/v1/admin/reports/delivery", HEADERS
                ),
                "spend by tier": await _timed(client, "/v1/admin/reports/spend", HEADERS),
            }
            all_messages = int(_scalar(db_url, "SELECT count(*) FROM messages"))

        print(f"messages per phase: {n}, tenants: {args.tenants}, one worker process, simulator")
        print("\n1. WAL per message (pg_current_wal_lsn before/after)")
        print(f"   accept (API, batches of 1,000):        {(wal_1 - wal_0) / n:>8.0f} bytes")
        print(f"   send + settle + receipt (worker):      {(wal_2 - wal_1) / n:>8.0f} bytes")
        print(f"   whole life (accepted -> delivered):    {(wal_2 - wal_0) / n:>8.0f} bytes")
        print("\n   CPU per message over the whole life (user + system, all processes):")
        print(
            f"   PostgreSQL (all backends):             {(cpu_1[0] - cpu_0[0]) / n * 1e6:>8.0f} µs"
        )
        print(
            f"   API (granian, accepting batches):      {(cpu_1[1] - cpu_0[1]) / n * 1e6:>8.0f} µs"
        )
        print(
            f"   worker (dispatch, settle, receipts; with start-up):{cpu_1[2] / n * 1e6:>8.0f} µs"
        )
        print("\n2. storage per message, today's partitions after one full life")
        print(f"   {'table':<24}{'rows/msg':>9}{'heap B/msg':>12}{'total B/msg':>13}")
        for table in TABLES:
            total_bytes, heap = sizes[table]
            print(f"   {table:<24}{rows[table] / n:>9.2f}{heap / n:>12.0f}{total_bytes / n:>13.0f}")
        print(f"\n3. /metrics database queries with {depth:.0f} queued messages:")
        print(
            f"   median {statistics.median(scrape_times) * 1000:.1f} ms, "
            f"max {max(scrape_times) * 1000:.1f} ms (5 scrapes)"
        )
        print(f"   reports over {all_messages} messages (HTTP round trip, median of 3):")
        for name, seconds in report_times.items():
            print(f"   {name:<32}{seconds * 1000:>8.1f} ms")
    finally:
        for proc in reversed(procs):
            stop(proc, timeout=60)
        server.destroy()
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--backlog", type=int, default=100_000)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
