"""The system under test, started as a user would: an embedded PostgreSQL, the API under
granian (`smsgw api`) and `smsgw worker` processes, one fresh database per phase.

The server is started once; `smsgw migrate` builds a template database once, and every
phase gets its own clone of it (CREATE DATABASE ... TEMPLATE, well under a second), so no
phase sees another's rows, jobs or dead tuples.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

import httpx
import psycopg
from psycopg import sql

from ops import procnet
from ops.bench.cpu_meter import process_table
from smsgw.embedded import SERVER_SETTINGS, EmbeddedPostgres
from smsgw.processes import free_port, smsgw_command, stop, stop_all, wait_http

ADMIN = "bench-admin-token"

TEMPLATE = "bench_template"
CREDIT = 10**13  # micro-units: a billion and more messages per tenant


class Cluster:
    """The embedded server, its template database, and a fresh clone per phase."""

    def __init__(self, root: Path, *, logs: Path, profile_sql: bool) -> None:
        self.root = root
        self.profile_sql = profile_sql
        settings = dict(SERVER_SETTINGS)
        if profile_sql:
            settings["shared_preload_libraries"] = "pg_stat_statements"
            # Statements inside functions too (smsgw_accept_*, the upkeep functions).
            settings["pg_stat_statements.track"] = "all"
        self.server = EmbeddedPostgres(root / "pg", settings=settings)
        self.logs = logs
        self.logs.mkdir(parents=True, exist_ok=True)

    def start(self) -> None:
        self.server.start()
        with psycopg.connect(self.server.url("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE)))
        url = self.server.url(TEMPLATE)
        env = {**gateway_env(url, latency_ms=0), "SMSGW_LOG_LEVEL": "WARNING"}
        subprocess.run(
            smsgw_command("migrate"),
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        if self.profile_sql:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")

    @property
    def version(self) -> str:
        with psycopg.connect(self.server.url("postgres"), autocommit=True) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        return str(row[0]) if row else "?"

    def fresh(self, name: str) -> str:
        with psycopg.connect(self.server.url("postgres"), autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(TEMPLATE)
                )
            )
        return self.server.url(name)

    def drop(self, name: str) -> None:
        with psycopg.connect(self.server.url("postgres"), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def destroy(self) -> None:
        self.server.destroy()


# When the simulator's receipts come back: after 1 s (the product's default), applied as
# they arrive, so a phase measures a message's whole life; or an hour later, which keeps
# them out of a phase (the "receipts held back" rows: accept -> sent only).
RECEIPTS_AFTER = 1.0
HELD_BACK = 3600.0


def gateway_env(
    db_url: str, *, latency_ms: float, receipts_after: float = RECEIPTS_AFTER
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSGW_")}
    env.update(
        {
            "DATABASE_URL": db_url,
            "SMSGW_ADMIN_TOKEN": ADMIN,
            "SMSGW_LOG_LEVEL": "WARNING",
            "SMSGW_LOG_JSON": "true",
            "SMSGW_SIMULATOR_LATENCY_MS": str(latency_ms),
            "SMSGW_SIMULATOR_DLR_DELAY_SECONDS": f"{receipts_after:g}",
            "SMSGW_SIMULATOR_SEED": "1",
            # The callbacks phase's receiver listens on loopback, which webhooks may
            # not reach unless the operator allows it.
            "SMSGW_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.1/32",
            # Bulk sends without history: pumping protection counts them (its cost is
            # measured) but must not suspend them mid-phase (issue 25).
            "SMSGW_PUMPING_FLOOR": str(10**9),
        }
    )
    return env


@dataclass
class Tenant:
    id: str
    key: str


@dataclass
class Gateway:
    """The API and workers of one phase, all on one database; logs go to ``logs``."""

    db_url: str
    logs: Path
    name: str
    api_workers: int
    # SMSGW_* settings of the API beyond the product defaults (an A/B phase's).
    settings: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    api: subprocess.Popen[bytes] | None = None
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _files: list[IO[bytes]] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _spawn(self, args: list[str], env: dict[str, str], log: str) -> subprocess.Popen[bytes]:
        out = (self.logs / f"{self.name}-{log}.log").open("ab")
        self._files.append(out)
        return subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)

    def start_api(self, module: str = "smsgw.cli") -> None:
        """`smsgw api` (or another module with the same arguments, the trivial endpoint)."""
        env = {**gateway_env(self.db_url, latency_ms=0), **self.settings}
        args = [sys.executable, "-m", module]
        if module == "smsgw.cli":
            args.append("api")
        args += ["--port", str(self.port), "--workers", str(self.api_workers)]
        self.api = self._spawn(args, env, "api")
        if module == "smsgw.cli":
            wait_http(f"{self.base}/ready", watch=[self.api])
        else:  # the trivial endpoint has no /ready: any answer means it listens
            wait_http(self.base, watch=[self.api], any_answer=True)
        wait_serving(self.api.pid, self.api_workers, urlsplit(self.db_url).port or 5432)

    def start_workers(
        self, count: int, *, latency_ms: float, receipts_after: float = RECEIPTS_AFTER
    ) -> None:
        env = gateway_env(self.db_url, latency_ms=latency_ms, receipts_after=receipts_after)
        for n in range(count):
            args = smsgw_command("worker", "--name", f"{self.name}-{n}")
            self.workers.append(self._spawn(args, env, f"worker{n}"))
        wait_workers(self.db_url, count, self.workers)

    def stop(self) -> None:
        # Workers first, side by side (they settle what they are sending), then the API.
        stop_all(self.workers, timeout=60)
        if self.api is not None:
            stop(self.api, timeout=60)
        for out in self._files:
            out.close()

    def tenants(self, count: int, *, prefix: str, tier: str = "standard") -> list[Tenant]:
        admin = {"Authorization": f"Bearer {ADMIN}"}
        made = []
        with httpx.Client(base_url=self.base, headers=admin, timeout=30) as client:
            never_suspend(client)
            for i in range(count):
                created = client.post(
                    "/v1/admin/tenants",
                    json={"name": f"{prefix}-{i}", "tier": tier, "rate_limit_mps": None},
                )
                created.raise_for_status()
                body = created.json()
                credited = client.post(
                    f"/v1/admin/tenants/{body['id']}/credits",
                    json={"amount": CREDIT, "reference": "bench"},
                )
                credited.raise_for_status()
                exposed(client, body["id"])
                made.append(Tenant(id=body["id"], key=body["api_key"]))
        return made


# Issue 25: measured with the exposure controls at work for every tenant, never binding.
EXPOSURE_CAP = 10**15  # the most a cap may be (core/exposure.py: MAX_MONEY)


# Where the benchmarks send (ops/bench: +1 415..., capacity's four countries).
BENCH_COUNTRIES = ("US", "GB", "DE", "FR")


def never_suspend(client: httpx.Client) -> None:
    """Operator limits no bench tenant reaches: its bulk sends have no history, and
    pumping protection would suspend them (the counters still count every accept)."""
    for country in BENCH_COUNTRIES:
        client.put(
            f"/v1/admin/pumping-limits/{country}", json={"hourly_limit": 10**9}
        ).raise_for_status()


def exposed(client: httpx.Client, tenant_id: str) -> None:
    """Geo permissions (every country: the check still reads the tenant's row) and daily
    and monthly spend caps far above what a run spends, for a tenant; the hourly
    counters are always on."""
    client.put(
        f"/v1/admin/tenants/{tenant_id}/geo-permissions",
        json={"countries": None, "high_risk_enabled": []},
    ).raise_for_status()
    client.patch(
        f"/v1/admin/tenants/{tenant_id}",
        json={"daily_spend_cap": EXPOSURE_CAP, "monthly_spend_cap": EXPOSURE_CAP},
    ).raise_for_status()


def _pg_sockets(pg_port: int) -> set[str]:
    """Inodes of the established TCP sockets whose far end is the server's port."""
    return {
        sock.inode
        for sock in procnet.sockets()
        if sock.state == procnet.ESTABLISHED and sock.remote_port == pg_port
    }


def wait_serving(main_pid: int, workers: int, pg_port: int, timeout: float = 60) -> None:
    """Until each of granian's ``workers`` processes has opened its connection pool, that
    is, has finished starting. /ready answers as soon as one has; load started then puts
    every keep-alive connection on that one process, and the figure measures one core."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children = [pid for pid, (ppid, _, _, _) in process_table().items() if ppid == main_pid]
        sockets = _pg_sockets(pg_port)
        serving = 0
        for pid in children:
            try:
                fds = os.listdir(f"/proc/{pid}/fd")
                links = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in fds}
            except OSError:
                continue
            if any(link[8:-1] in sockets for link in links if link.startswith("socket:[")):
                serving += 1
        if serving >= workers:
            return
        time.sleep(0.1)
    raise RuntimeError(f"not all {workers} server processes started within {timeout:.0f} s")


def wait_workers(db_url: str, count: int, procs: list[subprocess.Popen[bytes]]) -> None:
    """Until ``count`` procrastinate workers have registered (their first heartbeat)."""
    deadline = time.monotonic() + 60
    with psycopg.connect(db_url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in procs):
                raise RuntimeError("a worker exited during start-up")
            row = conn.execute("SELECT count(*) FROM procrastinate_workers").fetchone()
            if row is not None and row[0] >= count:
                return
            time.sleep(0.1)
    raise RuntimeError("the workers did not register within 60 s")


def keys_file(path: Path, tenants: list[Tenant]) -> Path:
    path.write_text("".join(f"{t.key}\n" for t in tenants))
    return path
