"""The system under fault, started as an operator would: an embedded PostgreSQL server of
its own (restarting the tests' shared one would pull it from under other tests), the API
as a real `smsgw api` (granian) and real `smsgw worker` processes, each in a process
group of its own so that a SIGKILL takes the whole of it (granian's server process
included) and nothing else.

The database faults are done to the server for real: `pg_ctl restart -m fast` run as
the server's account, and an outage of new connections (ALLOW_CONNECTIONS false, every
session of the database terminated) for a few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psycopg
from psycopg import sql

from smsgw import processes
from smsgw.embedded import TEST_SETTINGS, EmbeddedPostgres

ADMIN_TOKEN = "chaos-admin-token"
TEMPLATE = "chaos_template"

# Short leases, fast retries and a quick breaker so that a fault and the recovery from
# it fit in seconds. Everything else is the gateway's default.
GATEWAY_SETTINGS: dict[str, str] = {
    "SMSGW_LEASE_SECONDS": "3",
    "SMSGW_RETRY_BASE_SECONDS": "0.2",
    "SMSGW_RETRY_CAP_SECONDS": "1",
    "SMSGW_DISPATCH_BATCH_SIZE": "20",
    "SMSGW_WORKER_CONCURRENCY": "4",
    "SMSGW_BREAKER_WINDOW_SECONDS": "5",
    "SMSGW_BREAKER_COOLDOWN_SECONDS": "1",
    "SMSGW_CALLBACK_TIMEOUT_SECONDS": "1",
    "SMSGW_CALLBACK_RETRY_BASE_SECONDS": "0.2",
    "SMSGW_CALLBACK_RETRY_CAP_SECONDS": "1",
    "SMSGW_DB_POOL_MAX": "10",
    "SMSGW_LOG_JSON": "true",
    # The callback receiver of the scenarios listens on 127.0.0.1.
    "SMSGW_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.1/32",
}


class Cluster:
    """One PostgreSQL server for the whole suite, a migrated template database, and a
    fresh clone of it per scenario."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.server = EmbeddedPostgres(root / "pg", settings=dict(TEST_SETTINGS))

    async def start(self) -> None:
        await asyncio.to_thread(self.server.start)
        await self._admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE)))
        env = {**os.environ, "DATABASE_URL": self.url(TEMPLATE), "SMSGW_LOG_LEVEL": "WARNING"}
        proc = await asyncio.create_subprocess_exec(
            *processes.smsgw_command("migrate"), env=env, stdout=subprocess.DEVNULL
        )
        if await proc.wait() != 0:
            raise RuntimeError("smsgw migrate failed on the template database")

    def url(self, dbname: str) -> str:
        return self.server.url(dbname)

    async def _admin(
        self, statement: sql.SQL | sql.Composed, params: tuple[object, ...] | None = None
    ) -> None:
        async with await psycopg.AsyncConnection.connect(
            self.url("postgres"), autocommit=True
        ) as conn:
            await conn.execute(statement, params)

    async def fresh(self, prefix: str) -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:8]}"
        await self._admin(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(TEMPLATE)
            )
        )
        return name

    async def drop(self, name: str) -> None:
        await self._admin(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )

    def _pg_ctl(self, *args: str) -> None:
        """pg_ctl as the server's owner (PostgreSQL refuses root). Its output goes to the
        server's log, never to a pipe of ours: the server it starts would inherit the
        pipe and keep it open for as long as it runs."""
        command = [
            str(self.server.bindir / "pg_ctl"),
            "-D",
            str(self.server.cluster),
            "-l",
            str(self.server.log_file),
            *args,
        ]
        kwargs: dict[str, Any] = {}
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres")
            kwargs = {
                "user": account.pw_uid,
                "group": account.pw_gid,
                "extra_groups": [],
                "env": {"PATH": "/usr/bin:/bin", "LC_ALL": "C"},
            }
        with (self.root / "pg_ctl.log").open("ab") as out:
            subprocess.run(
                command,
                check=True,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=str(self.server.root),
                timeout=120,
                **kwargs,
            )

    async def restart(self) -> None:
        """A fast shutdown (every session terminated, in-flight transactions rolled back)
        and a start, as an operator's `pg_ctl restart -m fast` does."""
        await asyncio.to_thread(self._pg_ctl, "-m", "fast", "-w", "-t", "60", "restart")

    async def refuse_connections(self, dbname: str, seconds: float) -> None:
        """Every session of ``dbname`` is terminated and no new one is allowed for
        ``seconds``: each process's pool loses all its connections and cannot open any."""
        name = sql.Identifier(dbname)
        await self._admin(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(name))
        try:
            await self._admin(
                sql.SQL(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = %s AND pid <> pg_backend_pid()"
                ),
                (dbname,),
            )
            await asyncio.sleep(seconds)
        finally:
            await self._admin(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(name))

    def save_logs(self, folder: Path) -> None:
        """The server's log and pg_ctl's, copied into ``folder``."""
        for log in (self.server.log_file, self.root / "pg_ctl.log"):
            if log.exists():
                shutil.copy(log, folder / f"postgres-{log.name}")

    def destroy(self) -> None:
        self.server.destroy()


@dataclass
class Gateway:
    """The API and the workers of one scenario, on one database; logs under ``logs``."""

    db_url: str
    logs: Path
    name: str
    port: int = field(default_factory=processes.free_port)
    api: asyncio.subprocess.Process | None = None
    workers: list[asyncio.subprocess.Process] = field(default_factory=list)
    worker_count: int = 0
    _files: list[IO[bytes]] = field(default_factory=list)
    _killed: set[int] = field(default_factory=set)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SMSGW_")}
        env.update(GATEWAY_SETTINGS)
        env.update({"DATABASE_URL": self.db_url, "SMSGW_ADMIN_TOKEN": ADMIN_TOKEN})
        return env

    async def _spawn(self, log: str, *args: str) -> asyncio.subprocess.Process:
        out = (self.logs / f"{self.name}-{log}.log").open("ab")
        self._files.append(out)
        return await asyncio.create_subprocess_exec(
            *processes.smsgw_command(*args),
            env=self.env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: see _kill
        )

    async def start_api(self) -> None:
        self.api = await self._spawn("api", "api", "--port", str(self.port))
        await self.wait_ready()

    async def wait_ready(self, within: float = 60.0) -> None:
        def exited() -> bool:
            return self.api is None or self.api.returncode is not None

        try:
            await processes.await_http(f"{self.base}/ready", exited=exited, within=within)
        except processes.StartError as exc:
            raise RuntimeError(f"{exc}; see {self.logs}/{self.name}-api.log") from None

    async def start_workers(self, count: int) -> None:
        for _ in range(count):
            n = self.worker_count
            self.worker_count += 1
            self.workers.append(
                await self._spawn(f"worker{n}", "worker", "--name", f"{self.name}-{n}")
            )

    async def wait_workers(self, count: int, timeout: float = 60.0) -> None:
        """Until ``count`` workers have registered with procrastinate (a fresh database
        has no other rows there)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with await psycopg.AsyncConnection.connect(self.db_url, autocommit=True) as conn:
            while loop.time() < deadline:
                if any(w.returncode is not None for w in self.workers):
                    raise RuntimeError(f"a worker exited during start-up; see {self.logs}")
                cursor = await conn.execute("SELECT count(*) FROM procrastinate_workers")
                row = await cursor.fetchone()
                if row is not None and row[0] >= count:
                    return
                await asyncio.sleep(0.1)
        raise RuntimeError(f"{count} workers did not register within {timeout:.0f} s")

    async def _kill(self, proc: asyncio.subprocess.Process) -> None:
        self._killed.add(proc.pid)
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()

    async def kill_api(self) -> None:
        assert self.api is not None
        await self._kill(self.api)

    async def kill_workers(self, count: int | None = None) -> int:
        """SIGKILL ``count`` live workers (all when None); returns how many."""
        live = [w for w in self.workers if w.returncode is None]
        victims = live if count is None else live[:count]
        await asyncio.gather(*(self._kill(w) for w in victims))
        return len(victims)

    def live_workers(self) -> int:
        return sum(1 for w in self.workers if w.returncode is None)

    async def stop(self) -> None:
        """SIGTERM (workers settle what they are sending), SIGKILL after 20 s."""
        procs = [w for w in self.workers if w.returncode is None]
        if self.api is not None and self.api.returncode is None:
            procs.append(self.api)
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                await asyncio.wait_for(proc.wait(), timeout=20)
            except TimeoutError:
                await self._kill(proc)
        for out in self._files:
            out.close()

    def logged(self, event: str) -> int:
        """How many times the workers logged ``event`` (their logs are JSON lines)."""
        needle = f'"event": "{event}"'
        return sum(
            path.read_text(errors="replace").count(needle)
            for path in self.logs.glob(f"{self.name}-worker*.log")
        )

    def crashed(self) -> list[str]:
        """Processes that exited without the suite killing them: a crash, or a process
        that gave up (a worker that exits when the database goes away, say)."""
        procs = [("api", self.api)] if self.api is not None else []
        procs += [(f"worker{n}", w) for n, w in enumerate(self.workers)]
        return [
            f"{name} (exit {proc.returncode})"
            for name, proc in procs
            if proc.returncode is not None and proc.pid not in self._killed
        ]
