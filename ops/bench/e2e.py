"""End-to-end delivery throughput: accept -> sent with the simulator.

Starts a private PostgreSQL (under a temporary folder), migrates it, starts the API
under granian and ONE `smsgw worker` process, then from this process:

0. single sends: wrk at 64 connections for ``--single-seconds`` (10; 0: none) with no
   worker running, as ops/bench/run.py's single ingest phase (issue 27: single-send
   ingest direct and through PgBouncer in the same run);
1. backlog: accepts N messages through POST /v1/messages/batch with the worker stopped,
   starts the worker, and times how long until every message is `sent`;
2. live: with the worker running, accepts N more (batches of 1,000, several in flight)
   and times from the first accept to the last `sent`.

Prints msg/s for both and the p50/p99 of accept-to-sent latency (sent_at - created_at),
then keeps the run's hourly rollups and their cubes as the worker does over an hour's
life (smsgw_fold_rollup_hour_v3; ops/bench/refold.py, fold_life): the first fold, the
receipts held back made due and applied, a refold, and a later refold with nothing
changed; prints each one's time and WAL per message, and the share of a core the first
fold and its 6 refolds take at the live rate.
``--via pgbouncer`` runs the API and the worker through PgBouncer in transaction mode
(Debian's package, prepared statements off, LISTEN and migrations direct); ``--via both``
runs the phases direct and then through it, on the same server, and prints both.
``--provider http`` or ``smpp`` sends through that adapter to the loopback peer of the
tests (tests/aggregator.py, tests/providers/smsc.py) instead of the simulator, with
receipts flowing back (run it from a checkout).

    python -m ops.bench.e2e [--messages 20000] [--tenants 10] [--latency-ms 0]
                            [--provider simulator|http|smpp] [--via direct|pgbouncer|both]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
from psycopg import sql

from ops import pgbouncer
from ops.bench import e2e_traffic as traffic
from ops.bench import load, refold, server_stats
from smsgw.embedded import SERVER_SETTINGS, EmbeddedPostgres
from smsgw.processes import await_http, free_port, smsgw_command, spawn, stop

ADMIN = "bench-admin-token"


def _env(
    db_url: str, latency_ms: float, concurrency: int = 0, pooled: str | None = None
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSGW_")}
    if pooled is not None:
        # Through PgBouncer in transaction mode: no prepared statements, LISTEN direct.
        env["DIRECT_DATABASE_URL"] = db_url
        env["SMSGW_DB_PREPARED_STATEMENTS"] = "false"
    env.update(
        {
            "DATABASE_URL": pooled or db_url,
            "SMSGW_ADMIN_TOKEN": ADMIN,
            "SMSGW_LOG_LEVEL": "WARNING",
            "SMSGW_SIMULATOR_LATENCY_MS": str(latency_ms),
            "SMSGW_SIMULATOR_DLR_DELAY_SECONDS": "3600",  # keep receipts out of the way
            "SMSGW_SIMULATOR_SEED": "1",
        }
    )
    if concurrency:
        env["SMSGW_WORKER_CONCURRENCY"] = str(concurrency)
    return env


@contextlib.contextmanager
def upstream_peer(
    kind: str, gateway: str, receipt_delay: float = 0.0
) -> Iterator[dict[str, Any] | None]:
    """The upstream to send through: None for the simulator, else a provider body;
    the SMSC sends each receipt ``receipt_delay`` seconds after its submit_sm."""
    if kind == "simulator":
        yield None
        return
    if kind == "http":
        port = free_port()
        env = {
            **os.environ,
            "AGG_DLR_URL": f"{gateway}/v1/providers/bench/dlr",
            "AGG_DLR_SECRET": "bench-secret",
        }
        peer = subprocess.Popen(
            load.asgi_peer("tests.aggregator_asgi:app", port),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(1.5)
            yield {
                "kind": "http",
                "config": {
                    "url": f"http://127.0.0.1:{port}/messages",
                    "dlr_secret": "bench-secret",
                    "concurrency": 50,
                },
            }
        finally:
            stop(peer, timeout=60)
        return
    from tests.providers.smsc import Smsc

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    smsc = Smsc(receipt_delay=receipt_delay)
    asyncio.run_coroutine_threadsafe(smsc.start(), loop).result()
    try:
        yield {
            "kind": "smpp",
            "config": {
                "host": "127.0.0.1",
                "port": smsc.port,
                "system_id": smsc.system_id,
                "password": smsc.password,
                "window": 50,
            },
        }
    finally:
        asyncio.run_coroutine_threadsafe(smsc.stop(), loop).result()
        loop.call_soon_threadsafe(loop.stop)


async def _use_provider(client: httpx.AsyncClient, body: dict[str, Any] | None) -> None:
    if body is None:
        return
    admin = {"Authorization": f"Bearer {ADMIN}"}
    (await client.put("/v1/admin/providers/bench", json=body, headers=admin)).raise_for_status()
    route = {"prefix": "+", "provider": "bench"}
    (await client.post("/v1/admin/routes", json=route, headers=admin)).raise_for_status()


async def _tenants(client: httpx.AsyncClient, count: int) -> list[str]:
    keys = []
    # Issue 25: no pumping suspension of the bench's bulk sends (ops/bench/system.py).
    (
        await client.put(
            "/v1/admin/pumping-limits/US",
            json={"hourly_limit": 10**9},
            headers={"Authorization": f"Bearer {ADMIN}"},
        )
    ).raise_for_status()
    for i in range(count):
        created = await client.post(
            "/v1/admin/tenants",
            json={"name": f"bench-{i}"},
            headers={"Authorization": f"Bearer {ADMIN}"},
        )
        created.raise_for_status()
        tenant = created.json()
        credited = await client.post(
            f"/v1/admin/tenants/{tenant['id']}/credits",
            json={"amount": 10**13, "reference": "bench"},
            headers={"Authorization": f"Bearer {ADMIN}"},
        )
        credited.raise_for_status()
        # Issue 25: the exposure controls at work, never binding (ops/bench/system.py).
        admin = {"Authorization": f"Bearer {ADMIN}"}
        (
            await client.put(
                f"/v1/admin/tenants/{tenant['id']}/geo-permissions",
                json={"countries": None},
                headers=admin,
            )
        ).raise_for_status()
        caps = {"daily_spend_cap": 10**15, "monthly_spend_cap": 10**15}
        (
            await client.patch(f"/v1/admin/tenants/{tenant['id']}", json=caps, headers=admin)
        ).raise_for_status()
        keys.append(tenant["api_key"])
    return keys


def _spy(pid: int, seconds: float) -> subprocess.Popen[bytes]:
    """py-spy on a worker during the drain; prints its hottest functions when done."""
    out = f"{tempfile.gettempdir()}/smsgw-spy-{pid}.txt"
    return subprocess.Popen(
        [
            "bash",
            "-c",
            f"sleep 1; py-spy record -p {pid} -d {int(seconds)} -r 250 -f raw -o {out}"
            " >/dev/null 2>&1;"
            f" {sys.executable} -m ops.bench.spysummary {out}",
        ],
    )


async def main_async(args: argparse.Namespace) -> None:
    base = Path(tempfile.mkdtemp(prefix="smsgw-bench-", dir="/tmp"))
    base.chmod(0o755)
    settings = dict(SERVER_SETTINGS)
    if args.profile_sql:
        settings["shared_preload_libraries"] = "pg_stat_statements"
    server = EmbeddedPostgres(base / "pg", settings=settings)
    server_url = server.start()
    try:
        runs = ["direct", "pgbouncer"] if args.via == "both" else [args.via]
        for via in runs:
            # A database of its own per run, on the same server.
            db_url = _database(server_url, f"bench_{via}")
            if args.profile_sql:
                with psycopg.connect(db_url, autocommit=True) as conn:
                    conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            if via == "pgbouncer":
                parts = urlsplit(db_url)
                assert parts.hostname
                assert parts.port
                assert parts.password
                with pgbouncer.running(parts.hostname, parts.port, parts.password) as listen:
                    pooled = urlunsplit(
                        parts._replace(netloc=f"{parts.netloc.rsplit(':', 1)[0]}:{listen}")
                    )
                    env = _env(db_url, args.latency_ms, args.concurrency, pooled=pooled)
                    await _phases(args, db_url, env, via)
            else:
                await _phases(args, db_url, _env(db_url, args.latency_ms, args.concurrency), via)
    finally:
        server.destroy()
        shutil.rmtree(base, ignore_errors=True)


# Refolds of an hour after its first fold: every SMSGW_ROLLUP_REFRESH_MINUTES (60) until
# SMSGW_ROLLUP_SETTLE_HOURS (6) have passed.
REFOLDS = 6


def _database(server_url: str, name: str) -> str:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))


async def _phases(args: argparse.Namespace, db_url: str, env: dict[str, str], via: str) -> None:
    port = free_port()
    procs: list[subprocess.Popen[bytes]] = []
    stack = contextlib.ExitStack()
    try:
        subprocess.run(
            smsgw_command("migrate"),
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        api = spawn(smsgw_command("api", "--port", str(port)), env=env)
        procs.append(api)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            await await_http(str(client.base_url.join("/ready")), within=30)
            keys = await _tenants(client, args.tenants)
            peer = stack.enter_context(upstream_peer(args.provider, f"http://127.0.0.1:{port}"))
            await _use_provider(client, peer)

            # 0. Single sends alone, before any worker runs (as ops/bench/run.py's single
            # ingest phase: wrk, 64 connections, keep-alive).
            singles = (
                traffic.single_ingest(port, keys, args.single_seconds)
                if args.single_seconds
                else None
            )
            queued = traffic.count(db_url, "SELECT count(*) FROM messages")

            # 1. Backlog drain.
            await traffic.ingest(client, keys, args.messages, inflight=4)
            for n in range(args.workers):
                procs.append(spawn(smsgw_command("worker", "--name", f"bench-{n}"), env=env))
            spy = _spy(procs[-1].pid, args.spy) if args.spy else None
            started = time.monotonic()
            finished = traffic.wait_sent(db_url, queued + args.messages, timeout=600)
            backlog_rate = args.messages / (finished - started)
            if spy is not None:
                spy.wait()

            # 2. Live: ingest and delivery at the same time.
            started = time.monotonic()
            await traffic.ingest(client, keys, args.messages, inflight=4)
            accepted = time.monotonic()
            finished = await asyncio.to_thread(
                traffic.wait_sent, db_url, queued + 2 * args.messages, 600
            )
            live_rate = args.messages / (finished - started)
            p50, p99 = traffic.latencies(db_url, queued + args.messages)
        life = refold.fold_life(db_url)
        print(
            f"messages per phase: {args.messages}, tenants: {args.tenants}, "
            f"provider: {args.provider}, simulator latency: {args.latency_ms} ms, "
            f"workers: {args.workers} process(es), database: {via}"
        )
        if args.profile_sql:
            print(server_stats.sql_profile(db_url))
        print(f"{'phase':<34}{'msg/s':>10}")
        if singles is not None:
            rate, p50_ms, p99_ms = singles
            print(
                f"{'single-send ingest, 64 conns':<34}{rate:>10.0f}"
                f"   (p50 {p50_ms:.1f} ms, p99 {p99_ms:.1f} ms; no worker running)"
            )
        print(f"{'backlog drain (accept done first)':<34}{backlog_rate:>10.0f}")
        print(f"{'live (ingest + delivery together)':<34}{live_rate:>10.0f}")
        print(f"{'live ingest alone took':<34}{accepted - started:>9.2f}s")
        print(
            f"accept-to-sent latency, live phase: p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms"
        )
        # Rollup upkeep over the hours' life (smsgw_fold_rollup_hour_v3): the first fold
        # reads every message, the refold after the receipts came reads those that were
        # not final, each later refold finds nothing changed. Measured, not assumed.
        n = max(life.messages, 1)
        share = life.seconds(REFOLDS) / n * live_rate
        print(
            f"rollup upkeep of these {life.messages} messages ({life.pending} pending at"
            f" the first fold): first fold {life.first[0]:.2f} s, {life.first[1] / n:.1f} WAL"
            f" B/msg; refold after receipts {life.refold[0]:.2f} s, {life.refold[1] / n:.1f}"
            f" WAL B/msg; later refold {life.idle[0] * 1000:.0f} ms; first + {REFOLDS} refolds"
            f" = {share:.1%} of a core at the live rate (one core of the server's)"
        )
        usual = life.settled_seconds(REFOLDS) / n * live_rate
        print(
            f"the same with every receipt in before the first fold (the usual order: receipts"
            f" a second after the send, the first fold minutes after the hour): a fold of"
            f" the whole run {life.settled[0]:.2f} s, {life.settled[1] / n:.1f} WAL B/msg;"
            f" a refold then {life.settled_idle[0] * 1000:.0f} ms; with {REFOLDS} refolds"
            f" = {usual:.1%} of a core at the live rate"
        )
    finally:
        for proc in reversed(procs):
            stop(proc, timeout=60)
        stack.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument(
        "--single-seconds",
        type=float,
        default=10.0,
        help="first, single sends from wrk for this long (0: none)",
    )
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--provider", choices=["simulator", "http", "smpp"], default="simulator")
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument(
        "--via",
        choices=["direct", "pgbouncer", "both"],
        default="direct",
        help="connect directly, through PgBouncer in transaction mode, or both in turn",
    )
    parser.add_argument("--concurrency", type=int, default=0, help="jobs per worker")
    parser.add_argument("--profile-sql", action="store_true", help="print pg_stat_statements")
    parser.add_argument("--spy", type=float, default=0, help="py-spy a worker for N seconds")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
