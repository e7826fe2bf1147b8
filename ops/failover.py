"""Primary failover on a real HA engine, with sends flowing.

pg_auto_failover (Debian's ``postgresql-15-auto-failover``) runs a monitor, a primary and
a synchronous standby, all on loopback, data folders under /tmp (mode 0700, owned by the
``postgres`` account when we are root). smsgw's schema is migrated through the
formation's multi-host URL (``target_session_attrs=read-write``), then ``smsgw api`` and
``smsgw worker`` run on that URL. Client tasks send with an ``Idempotency-Key`` each,
retrying a failed send with the same key, while the primary's keeper and postgres are
killed with SIGKILL. It prints what the clients saw and what the new primary holds.

    .venv/bin/python -m ops.failover            # pg_auto_failover's default timeouts
    .venv/bin/python -m ops.failover --fast     # shorter detection and demote timeout
    (--senders 4 --rate 100 --before 5 --after 10 --client-timeout 30 --keep)

Not a test (it takes a minute): its figures go in docs/backup-and-failover.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import psycopg

from ops.embedded import _free_port, find_bindir

DATABASE = "smsgw"
APP_USER = "smsgw"
# Our settings win over pg_autoctl's own tuning (it sizes shared_buffers for the whole
# machine): postgresql.auto.conf is read last, and pg_basebackup copies it to the standby.
SERVER_CONF = {
    "listen_addresses": "127.0.0.1",
    "shared_buffers": "128MB",
    "max_connections": "200",
}

HA_ROLES = ("autoctl_node", "pgautofailover_monitor", "pgautofailover_replicator")
# --fast: pg_auto_failover's defaults take ~50 s to fail over a dead primary (20 s before
# the monitor calls it unhealthy, then 30 s waiting for it to demote itself, in case it is
# only cut off and still taking writes). These shorten both; the keeper's own
# partition timeout stays below the demote timeout, so a primary that is merely isolated
# still demotes itself before the standby is promoted.
FAST_MONITOR = {
    "pgautofailover.health_check_period": "1000",
    "pgautofailover.health_check_timeout": "1000",
    "pgautofailover.health_check_max_retries": "1",
    "pgautofailover.health_check_retry_delay": "500",
    "pgautofailover.node_considered_unhealthy_timeout": "5000",
    "pgautofailover.primary_demote_timeout": "10000",
}
FAST_KEEPER = {"timeout.network_partition_timeout": "5"}


class FailoverError(RuntimeError):
    pass


@dataclass
class Node:
    name: str
    pgdata: Path
    port: int
    keeper: subprocess.Popen[bytes] | None = None


@dataclass
class Formation:
    """A pg_auto_failover monitor and two data nodes under ``base``."""

    base: Path
    bindir: Path = field(default_factory=find_bindir)
    password: str = field(default_factory=lambda: secrets.token_hex(16))
    ha_password: str = field(default_factory=lambda: secrets.token_hex(16))

    def __post_init__(self) -> None:
        self.account = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
        self.sock = self.base / "sock"
        self.logs = self.base / "logs"
        port = _free_port(56400)
        self.monitor = Node("monitor", self.base / "monitor", port)
        first = _free_port(port + 1)
        self.nodes = [
            Node("node1", self.base / "node1", first),
            Node("node2", self.base / "node2", _free_port(first + 1)),
        ]
        self._logs: list[IO[bytes]] = []

    # -- running things as the server's owner -----------------------------------------
    def _env(self) -> dict[str, str]:
        # pg_autoctl keeps its config and state under XDG folders: ours, not the
        # account's home, so nothing outlives the run.
        return {
            "PATH": f"{self.bindir}:/usr/bin:/bin",
            "HOME": str(self.base),
            "XDG_CONFIG_HOME": str(self.base / "config"),
            "XDG_DATA_HOME": str(self.base / "share"),
            "XDG_RUNTIME_DIR": str(self.base / "run"),
            "PGHOST": str(self.sock),
            "LC_ALL": "C",
        }

    def _owner(self) -> dict[str, Any]:
        if self.account is None:
            return {}
        return {"user": self.account.pw_uid, "group": self.account.pw_gid, "extra_groups": []}

    def run(
        self, args: Sequence[str], *, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            list(args),
            input=input,
            capture_output=True,
            text=True,
            check=False,
            cwd=str(self.base),
            env=self._env(),
            **self._owner(),
        )
        if check and result.returncode != 0:
            raise FailoverError(
                f"{' '.join(args[:3])} failed ({result.returncode}):\n"
                f"{result.stderr.strip()[-2000:]}"
            )
        return result

    def _chown(self, path: Path) -> None:
        if self.account is not None:
            os.chown(path, self.account.pw_uid, self.account.pw_gid)

    def _start_keeper(self, node: Node) -> None:
        log = (self.logs / f"{node.name}.log").open("ab")
        self._logs.append(log)
        # A session of its own: one killpg takes the keeper and every postgres process
        # it started, as a crash of that machine would.
        node.keeper = subprocess.Popen(
            ["pg_autoctl", "run", "--pgdata", str(node.pgdata)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=str(self.base),
            env=self._env(),
            start_new_session=True,
            **self._owner(),
        )

    # -- building the formation ---------------------------------------------------------
    def _initdb(self, node: Node, hba: str) -> None:
        self.run(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(node.pgdata),
                "--auth-local=trust",
                "--auth-host=reject",
                "--encoding=UTF8",
                "--no-locale",
                "--no-instructions",
            ]
        )
        conf = {**SERVER_CONF, "unix_socket_directories": str(self.sock)}
        (node.pgdata / "postgresql.auto.conf").write_text(
            "".join(f"{key} = '{value}'\n" for key, value in conf.items())
        )
        # Local socket: trust, as its folder (0700) lets only the server's owner (and
        # root) reach it; pg_autoctl's keepers use it as several roles. pg_autoctl appends
        # the lines for its own roles (monitor, replication) on 127.0.0.0/8.
        (node.pgdata / "pg_hba.conf").write_text(hba)

    @property
    def monitor_uri(self) -> str:
        return (
            f"postgres://autoctl_node@127.0.0.1:{self.monitor.port}/pg_auto_failover"
            "?sslmode=disable"
        )

    def create(self, *, fast: bool = False) -> None:
        self.base.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.base.chmod(0o700)
        for folder in (self.base, self.sock, self.logs):
            folder.mkdir(mode=0o700, exist_ok=True)
            self._chown(folder)
        # Every TCP connection authenticates with SCRAM, pg_auto_failover's own roles
        # included: the keepers, the monitor's health checks, pg_basebackup and the
        # standby's WAL receiver all run with HOME=base and find their password here.
        pgpass = self.base / ".pgpass"
        pgpass.write_text(
            "".join(f"127.0.0.1:*:*:{role}:{self.ha_password}\n" for role in HA_ROLES)
        )
        pgpass.chmod(0o600)
        self._chown(pgpass)
        pg_ctl = str(self.bindir / "pg_ctl")
        common = ["--hostname", "127.0.0.1", "--auth", "scram-sha-256", "--no-ssl"]
        common += ["--pgctl", pg_ctl]

        self._initdb(self.monitor, "local all all trust\n")
        self.run(
            [
                *("pg_autoctl", "create", "monitor", "--pgdata", str(self.monitor.pgdata)),
                *("--pgport", str(self.monitor.port), *common),
            ]
        )
        self.run(self._config_set(self.monitor, "postgresql.listen_addresses", "127.0.0.1"))
        self._start_keeper(self.monitor)
        self.wait(lambda states: True, what="the monitor to answer")
        monitor_sql = (
            f"SET log_statement = 'none'; ALTER ROLE autoctl_node PASSWORD '{self.ha_password}';"
        )
        if fast:
            monitor_sql += "".join(f"ALTER SYSTEM SET {k} = {v};" for k, v in FAST_MONITOR.items())
            monitor_sql += "SELECT pg_reload_conf();"
        self.sql(self.monitor, monitor_sql, database="pg_auto_failover")

        first = self.nodes[0]
        self._initdb(
            first,
            "local all all trust\n"
            f"host {DATABASE} {APP_USER} 127.0.0.1/32 scram-sha-256\n"
            f"host {DATABASE} {APP_USER} ::1/128 scram-sha-256\n",
        )
        for node in self.nodes:
            self.run(
                [
                    *("pg_autoctl", "create", "postgres", "--pgdata", str(node.pgdata)),
                    *("--pgport", str(node.port), "--listen", "127.0.0.1", "--name", node.name),
                    *("--dbname", DATABASE, "--monitor", self.monitor_uri, *common),
                    *("--replication-quorum", "true", "--candidate-priority", "50"),
                ]
            )
            if fast:
                for key, value in FAST_KEEPER.items():
                    self.run(self._config_set(node, key, value))
            self._start_keeper(node)
            if node is first:
                self.wait(lambda s: s.get("node1") == ("single", "single"), what="node1 single")
                self.wait_accepting(first)
                self.sql(
                    first,
                    "SET log_statement = 'none';"
                    f" CREATE ROLE {APP_USER} LOGIN PASSWORD '{self.password}';"
                    f" ALTER DATABASE {DATABASE} OWNER TO {APP_USER};"
                    f" ALTER ROLE pgautofailover_monitor PASSWORD '{self.ha_password}';"
                    f" ALTER ROLE pgautofailover_replicator PASSWORD '{self.ha_password}';",
                )
        self.wait(
            lambda s: (
                s.get("node1") == ("primary", "primary")
                and s.get("node2") == ("secondary", "secondary")
            ),
            what="node1 primary, node2 secondary",
            timeout=180,
        )

    def _config_set(self, node: Node, key: str, value: str) -> list[str]:
        return ["pg_autoctl", "config", "set", "--pgdata", str(node.pgdata), key, value]

    # -- asking the formation -----------------------------------------------------------
    def states(self) -> dict[str, tuple[str, str]] | None:
        """node name -> (reported state, assigned state), as the monitor sees them; None
        while the monitor does not answer."""
        result = self.run(
            ["pg_autoctl", "show", "state", "--pgdata", str(self.monitor.pgdata), "--json"],
            check=False,
        )
        if result.returncode != 0:
            return None
        try:
            rows = json.loads(result.stdout or "[]")
        except json.JSONDecodeError:
            return None
        return {
            row["nodename"]: (row["current_group_state"], row["assigned_group_state"])
            for row in rows
        }

    def wait(
        self,
        done: Callable[[dict[str, tuple[str, str]]], bool],
        *,
        what: str,
        timeout: float = 60,
        interval: float = 0.2,
    ) -> dict[str, tuple[str, str]]:
        deadline = time.monotonic() + timeout
        states: dict[str, tuple[str, str]] | None = None
        while time.monotonic() < deadline:
            states = self.states()
            if states is not None and done(states):
                return states
            time.sleep(interval)
        raise FailoverError(f"timed out waiting for {what}; states: {states}")

    def primary(self) -> Node:
        states = self.states() or {}
        for node in self.nodes:
            if states.get(node.name, ("", ""))[0] in ("primary", "wait_primary", "single"):
                return node
        raise FailoverError(f"no primary; states: {states}")

    def sql(self, node: Node, statement: str, *, database: str = DATABASE) -> str:
        result = self.run(
            [
                *(str(self.bindir / "psql"), "-X", "-At", "-v", "ON_ERROR_STOP=1"),
                *("-h", str(self.sock), "-p", str(node.port), "-d", database),
            ],
            input=statement,
        )
        return result.stdout.strip()

    def replication(self, primary: Node) -> str:
        """How the primary streams to its standby: synchronous_standby_names, sync_state."""
        shown = self.sql(
            primary,
            "SELECT current_setting('synchronous_standby_names') || ', standby '"
            " || coalesce(string_agg(sync_state, ','), 'none') FROM pg_stat_replication",
        )
        return f"synchronous_standby_names={shown}"

    def wait_accepting(self, node: Node, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            check = [str(self.bindir / "pg_isready"), "-h", str(self.sock), "-p", str(node.port)]
            if self.run(check, check=False).returncode == 0:
                return
            time.sleep(0.2)
        raise FailoverError(f"{node.name} does not accept connections")

    def uri(self) -> str:
        """The formation's multi-host URL (pg_autoctl show uri), with our user in it."""
        shown = self.run(
            [
                *("pg_autoctl", "show", "uri", "--formation", "default"),
                *("--pgdata", str(self.monitor.pgdata)),
            ]
        ).stdout.strip()
        if not shown.startswith("postgres://"):
            raise FailoverError(f"unexpected uri: {shown}")
        return f"postgresql://{APP_USER}:{self.password}@" + shown.removeprefix("postgres://")

    # -- the fault ----------------------------------------------------------------------
    def crash(self, node: Node) -> None:
        """SIGKILL the node's keeper, its postmaster and every backend at once: what a
        power cut would leave (backends call setsid, so the keeper's group lacks them)."""
        assert node.keeper is not None
        postmaster = _postmaster_pid(node.pgdata)
        victims = [] if postmaster is None else [postmaster, *_children(postmaster)]
        with suppress(ProcessLookupError):
            os.killpg(node.keeper.pid, signal.SIGKILL)
        for pid in victims:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        node.keeper.wait(timeout=10)

    def destroy(self, *, keep: bool) -> None:
        for node in [*self.nodes, self.monitor]:
            if node.keeper is not None and node.keeper.poll() is None:
                with suppress(ProcessLookupError):
                    os.killpg(node.keeper.pid, signal.SIGTERM)
        for node in [*self.nodes, self.monitor]:
            if node.keeper is not None:
                try:
                    node.keeper.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    with suppress(ProcessLookupError):
                        os.killpg(node.keeper.pid, signal.SIGKILL)
                    node.keeper.wait(timeout=10)
        for log in self._logs:
            log.close()
        if not keep:
            shutil.rmtree(self.base, ignore_errors=True)


def _children(parent: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with suppress(OSError, ValueError, IndexError):
            # The command name may hold spaces and parentheses: fields follow the last ")".
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == parent:
                found.append(int(stat.parent.name))
    return found


def _postmaster_pid(pgdata: Path) -> int | None:
    with suppress(OSError, ValueError, IndexError):
        return int((pgdata / "postmaster.pid").read_text().splitlines()[0])
    return None


# -- the gateway on the formation ---------------------------------------------------------
TO = "+14155552671"
CREDIT = 10**12  # micro-units: far more than the run can spend
RETRY_DELAY = 0.25  # a client's pause before retrying a failed send with the same key


def gateway_env(url: str, admin_token: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMSGW_", "PG"))}
    env.update(
        {
            "DATABASE_URL": url,
            "SMSGW_ADMIN_TOKEN": admin_token,
            "SMSGW_LOG_JSON": "true",
            "SMSGW_SIMULATOR_SEED": "1",
            "SMSGW_SIMULATOR_DLR_DELAY_SECONDS": "0.5",
            # Messages claimed on the dead primary are sent again once their lease
            # lapses; a short lease keeps the run short.
            "SMSGW_LEASE_SECONDS": "15",
        }
    )
    return env


@dataclass
class Gateway:
    """`smsgw migrate`, then `smsgw api` and one `smsgw worker`, all on ``url``."""

    url: str
    logs: Path
    port: int = field(default_factory=lambda: _free_port(18400))
    admin_token: str = field(default_factory=secrets.token_urlsafe)
    api: subprocess.Popen[bytes] | None = None
    worker: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _spawn(self, *args: str) -> subprocess.Popen[bytes]:
        with (self.logs / f"{args[0]}.log").open("ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "ops.cli", *args],
                env=gateway_env(self.url, self.admin_token),
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def start(self) -> None:
        migrate = subprocess.run(
            [sys.executable, "-m", "ops.cli", "migrate"],
            env=gateway_env(self.url, self.admin_token),
            capture_output=True,
            text=True,
            check=False,
        )
        if migrate.returncode != 0:
            raise FailoverError(f"smsgw migrate failed:\n{migrate.stderr[-2000:]}")
        self.api = self._spawn("api", "--port", str(self.port))
        self.worker = self._spawn("worker")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with suppress(httpx.HTTPError):
                if httpx.get(f"{self.base}/ready", timeout=2).status_code == 200:
                    return
            if self.api.poll() is not None:
                break
            time.sleep(0.2)
        raise FailoverError(f"the API did not become ready; see {self.logs}/api.log")

    def stop(self) -> None:
        for proc in (self.worker, self.api):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in (self.worker, self.api):
            if proc is not None:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)


# -- the clients --------------------------------------------------------------------------
@dataclass(frozen=True)
class Attempt:
    started: float
    ended: float
    outcome: str  # "202", "503 unavailable", "ReadTimeout"...
    retry_after: str | None


@dataclass
class Load:
    """Senders that POST /v1/messages, each send with its own Idempotency-Key, a failed
    send retried with the same key until it gets its 202."""

    base: str
    api_key: str
    rate: float
    senders: int
    timeout: float
    attempts: list[Attempt] = field(default_factory=list)
    accepted: dict[str, str] = field(default_factory=dict)  # message id -> key
    retried_then_accepted: int = 0
    abandoned: list[str] = field(default_factory=list)
    # Set by the first 202 after a failed send: the clients see the service back.
    recovered: asyncio.Event = field(default_factory=asyncio.Event)
    _failed: bool = False

    async def run(self, stop: asyncio.Event, give_up_after: float = 180) -> None:
        headers = {"Authorization": f"Bearer {self.api_key}"}
        async with httpx.AsyncClient(
            base_url=self.base, headers=headers, timeout=self.timeout
        ) as client:
            await asyncio.gather(
                *(self._sender(client, stop, give_up_after) for _ in range(self.senders))
            )

    async def _sender(self, client: httpx.AsyncClient, stop: asyncio.Event, give_up: float) -> None:
        interval = self.senders / self.rate
        while not stop.is_set():
            key = secrets.token_hex(16)
            payload = {"to": TO, "body": f"failover {key[:8]}", "client_reference": key}
            first = time.monotonic()
            tries = 0
            while True:
                tries += 1
                started = time.monotonic()
                retry_after = None
                try:
                    response = await client.post(
                        "/v1/messages", json=payload, headers={"Idempotency-Key": key}
                    )
                    outcome = str(response.status_code)
                    retry_after = response.headers.get("retry-after")
                    if response.status_code != 202:
                        with suppress(ValueError, AttributeError):
                            outcome += f" {response.json().get('code')}"
                except httpx.HTTPError as exc:
                    outcome = type(exc).__name__
                self.attempts.append(Attempt(started, time.monotonic(), outcome, retry_after))
                if outcome == "202":
                    self.accepted[response.json()["id"]] = key
                    if self._failed:
                        self.recovered.set()
                    self.retried_then_accepted += tries > 1
                    break
                self._failed = True
                if time.monotonic() - first > give_up:
                    self.abandoned.append(key)
                    break
                await asyncio.sleep(RETRY_DELAY)
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))


# -- the run ------------------------------------------------------------------------------
@dataclass
class Timeline:
    killed: float = 0.0
    promoted: float = 0.0  # the monitor reports the standby as (wait_)primary
    victim: str = ""
    survivor: str = ""
    replication: str = ""


async def make_tenant(gateway: Gateway) -> str:
    admin = {"Authorization": f"Bearer {gateway.admin_token}"}
    async with httpx.AsyncClient(base_url=gateway.base, headers=admin, timeout=30) as client:
        created = await client.post("/v1/admin/tenants", json={"name": "failover"})
        created.raise_for_status()
        tenant = created.json()
        credited = await client.post(
            f"/v1/admin/tenants/{tenant['id']}/credits",
            json={"amount": CREDIT, "reference": "failover"},
        )
        credited.raise_for_status()
        return str(tenant["api_key"])


async def drive(
    formation: Formation, gateway: Gateway, args: argparse.Namespace
) -> tuple[Load, Timeline]:
    load = Load(
        gateway.base,
        await make_tenant(gateway),
        rate=args.rate,
        senders=args.senders,
        timeout=args.client_timeout,
    )
    timeline = Timeline()
    stop = asyncio.Event()
    clients = asyncio.create_task(load.run(stop))
    await asyncio.sleep(args.before)
    victim = formation.primary()
    survivor = next(node for node in formation.nodes if node is not victim)
    timeline.victim, timeline.survivor = victim.name, survivor.name
    timeline.replication = await asyncio.to_thread(formation.replication, victim)
    timeline.killed = time.monotonic()
    await asyncio.to_thread(formation.crash, victim)
    print(f"killed {victim.name} (keeper, postmaster, backends: SIGKILL)", flush=True)
    await asyncio.to_thread(
        formation.wait,
        lambda s: s.get(survivor.name, ("", ""))[0] in ("wait_primary", "primary"),
        what=f"{survivor.name} to be promoted",
        timeout=180,
        interval=0.1,
    )
    timeline.promoted = time.monotonic()
    print(f"{survivor.name} promoted after {timeline.promoted - timeline.killed:.1f} s", flush=True)
    with suppress(TimeoutError):
        await asyncio.wait_for(load.recovered.wait(), timeout=180)
    await asyncio.sleep(args.after)
    stop.set()
    await clients
    return load, timeline


def recovery(load: Load) -> tuple[Attempt, Attempt] | None:
    """The first failed attempt, and the first 202 that ended after it."""
    failures = [a for a in load.attempts if a.outcome != "202"]
    if not failures:
        return None
    first = min(failures, key=lambda a: a.ended)
    after = [a for a in load.attempts if a.outcome == "202" and a.ended > first.ended]
    return (first, min(after, key=lambda a: a.ended)) if after else None


def verify(url: str, load: Load, timeout: float = 120) -> dict[str, Any]:
    """What the new primary holds, once the worker has had time to send everything."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as conn:
        while True:
            pending = conn.execute(
                "SELECT count(*) FROM messages WHERE status IN ('queued', 'sending')"
            ).fetchone()
            if (pending is not None and pending[0] == 0) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        ids = list(load.accepted)
        found = conn.execute("SELECT count(*) FROM messages WHERE id = ANY(%s::uuid[])", (ids,))
        statuses = conn.execute(
            "SELECT status, count(*) FROM messages GROUP BY status ORDER BY 2 DESC"
        ).fetchall()
        port = conn.execute("SELECT inet_server_port()").fetchone()
        problems = conn.execute("SELECT * FROM smsgw_ledger_violations_v1()").fetchall()
        found_row = found.fetchone()
    return {
        "found": found_row[0] if found_row else 0,
        "total": sum(n for _, n in statuses),
        "statuses": ", ".join(f"{s} {n}" for s, n in statuses),
        "port": port[0] if port else None,
        "violations": len(problems),
    }


def report(
    load: Load, timeline: Timeline, held: dict[str, Any], gateway: Gateway
) -> list[tuple[str, str]]:
    since = timeline.killed
    seen = recovery(load)
    end = seen[1].ended if seen else float("inf")
    window = [a for a in load.attempts if a.ended >= since and a.started <= end]
    failures = [a for a in load.attempts if a.outcome != "202"]
    outcomes: dict[str, list[float]] = {}
    for attempt in window:
        label = attempt.outcome
        if label.startswith("503"):
            label += f" Retry-After: {attempt.retry_after}" if attempt.retry_after else " (none)"
        outcomes.setdefault(label, []).append(attempt.ended - attempt.started)
    answers = "; ".join(
        f"{label} x{len(took)} ({min(took):.2f}-{max(took):.2f} s)"
        for label, took in sorted(outcomes.items(), key=lambda kv: -len(kv[1]))
    )
    ready: int | str = "no answer"
    with suppress(httpx.HTTPError):
        ready = httpx.get(f"{gateway.base}/ready", timeout=5).status_code
    rows = [
        ("replication before the kill", timeline.replication),
        ("sends accepted (202)", str(len(load.accepted))),
        ("  that needed retries with the same key", str(load.retried_then_accepted)),
        ("  abandoned (never got a 202)", str(len(load.abandoned))),
        ("primary killed at t=0", f"{timeline.victim} (SIGKILL keeper, postmaster, backends)"),
        ("standby promoted", f"{timeline.survivor} at +{timeline.promoted - since:.1f} s"),
    ]
    if seen is not None:
        first, back = seen
        rows += [
            ("first failed send", f"+{first.ended - since:.2f} s"),
            ("first 202 after it", f"+{back.ended - since:.2f} s"),
            ("OUTAGE SEEN BY CLIENTS", f"{back.ended - first.ended:.1f} s"),
        ]
    else:
        rows.append(("OUTAGE SEEN BY CLIENTS", "none: no send failed"))
    rows += [
        ("answers, kill to recovery (time taken)", answers),
        (
            "client timeout / timed out",
            f"{load.timeout:.0f} s / {sum('Timeout' in a.outcome for a in failures)}",
        ),
        ("failed sends after recovery", str(sum(a.started > end for a in failures))),
        ("API /ready at the end (no restart)", str(ready)),
        ("worker process (no restart)", worker_state(gateway)),
        ("202s missing on the new primary", f"{len(load.accepted) - held['found']}"),
        ("messages on the new primary", f"{held['total']} ({held['statuses']})"),
        ("served by port / ledger violations", f"{held['port']} / {held['violations']}"),
    ]
    return rows


def worker_state(gateway: Gateway) -> str:
    alive = gateway.worker is not None and gateway.worker.poll() is None
    log = (gateway.logs / "worker.log").read_text(errors="replace")
    restarts = log.count('"worker.database_lost"')
    return f"{'alive' if alive else 'EXITED'}, lost the database {restarts} time(s)"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--senders", type=int, default=4, help="concurrent clients (4)")
    parser.add_argument(
        "--rate", type=float, default=100, help="sends per second, all clients (100)"
    )
    parser.add_argument("--before", type=float, default=5, help="seconds of sends before the kill")
    parser.add_argument("--after", type=float, default=10, help="seconds of sends after recovery")
    parser.add_argument("--client-timeout", type=float, default=30, help="per request (30 s)")
    parser.add_argument(
        "--fast", action="store_true", help="shorter failure detection and demote timeout"
    )
    parser.add_argument("--keep", action="store_true", help="keep data folders and logs")
    args = parser.parse_args(argv)
    if shutil.which("pg_autoctl") is None:
        raise SystemExit("pg_autoctl not found: apt-get install -y postgresql-15-auto-failover")
    base = Path(tempfile.mkdtemp(prefix="smsgw-failover-", dir="/tmp"))
    formation = Formation(base)
    gateway: Gateway | None = None
    failed = True
    try:
        started = time.monotonic()
        formation.create(fast=args.fast)
        url = formation.uri()
        shown = url.replace(formation.password, "***")
        print(f"formation ready in {time.monotonic() - started:.0f} s: {shown}", flush=True)
        gateway = Gateway(url, formation.logs)
        gateway.start()
        load, timeline = asyncio.run(drive(formation, gateway, args))
        held = verify(url, load)
        rows = report(load, timeline, held, gateway)
        width = max(len(k) for k, _ in rows)
        print()
        for key, value in rows:
            print(f"{key.ljust(width)}  {value}")
        failed = bool(held["violations"] or held["found"] != len(load.accepted) or load.abandoned)
        return 1 if failed else 0
    finally:
        if gateway is not None:
            gateway.stop()
        formation.destroy(keep=args.keep or failed)
        if args.keep or failed:
            print(f"data folders and logs kept in {base}")


if __name__ == "__main__":
    raise SystemExit(main())
