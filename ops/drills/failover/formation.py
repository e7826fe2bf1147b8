"""The formation: a pg_auto_failover monitor, a primary and a synchronous standby on
loopback, run as the ``postgres`` account when we are root."""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ops.drills.failover.nodes import Node
from smsgw.embedded import find_bindir
from smsgw.processes import free_port

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
        port = free_port(56400)
        self.monitor = Node("monitor", self.base / "monitor", port)
        first = free_port(port + 1)
        self.nodes = [
            Node("node1", self.base / "node1", first),
            Node("node2", self.base / "node2", free_port(first + 1)),
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

    # -- the end of the run -------------------------------------------------------------
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
