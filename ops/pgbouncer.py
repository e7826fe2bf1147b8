"""A real PgBouncer (Debian's package) in front of a PostgreSQL on loopback, run as the
unprivileged `postgres` account when we are root (PgBouncer refuses root). Used by the
tests (tests/db/test_pgbouncer.py) and the benchmark (ops/bench/e2e.py --via pgbouncer)."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import LiteralString

import psycopg

from smsgw import processes
from smsgw.embedded import SUPERUSER

BINARY = "/usr/sbin/pgbouncer"


def available() -> bool:
    return Path(BINARY).exists() or shutil.which("pgbouncer") is not None


@contextlib.contextmanager
def running(
    host: str, port: int, password: str, *, pool_mode: str = "transaction", pool_size: int = 10
) -> Iterator[int]:
    """PgBouncer on a free loopback port, for every database of the server; yields its
    port. SCRAM on both sides with the superuser's password; its admin console (database
    `pgbouncer`) is open to the same user."""
    if not available():
        raise RuntimeError("pgbouncer is not installed (apt-get install pgbouncer)")
    binary = BINARY if Path(BINARY).exists() else str(shutil.which("pgbouncer"))
    listen = processes.free_port()
    root = Path(tempfile.mkdtemp(prefix="smsgw-pgbouncer-"))
    account = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
    (root / "userlist.txt").write_text(f'"{SUPERUSER}" "{password}"\n')
    (root / "pgbouncer.ini").write_text(
        f"""[databases]
* = host={host} port={port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {listen}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = {root}/userlist.txt
admin_users = {SUPERUSER}
pool_mode = {pool_mode}
default_pool_size = {pool_size}
max_client_conn = 1000
ignore_startup_parameters = extra_float_digits,options
logfile = {root}/pgbouncer.log
pidfile = {root}/pgbouncer.pid
stats_period = 1
"""
    )
    user: int | None = None
    group: int | None = None
    extra_groups: list[int] | None = None
    if account is not None:
        root.chmod(0o755)
        for path in (root, *root.iterdir()):
            os.chown(path, account.pw_uid, account.pw_gid)
        user, group, extra_groups = account.pw_uid, account.pw_gid, []
    proc = subprocess.Popen(
        [binary, str(root / "pgbouncer.ini")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        cwd=str(root),
        user=user,
        group=group,
        extra_groups=extra_groups,
    )
    try:
        processes.wait_listening("127.0.0.1", listen, watch=[proc], timeout=15)
        yield listen
    finally:
        processes.stop(proc, timeout=10)
        log = root / "pgbouncer.log"
        if log.exists() and os.environ.get("SMSGW_SHOW_PGBOUNCER_LOG"):
            print(log.read_text(errors="replace"))
        shutil.rmtree(root, ignore_errors=True)


def _console(listen: int, password: str, command: LiteralString) -> list[dict[str, object]]:
    # The admin console speaks the simple query protocol only: a client-side cursor.
    with psycopg.connect(
        f"postgresql://{SUPERUSER}:{password}@127.0.0.1:{listen}/pgbouncer",
        autocommit=True,
        cursor_factory=psycopg.ClientCursor,
    ) as conn:
        cursor = conn.execute(command)
        names = [c.name for c in cursor.description or []]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def stats(listen: int, password: str) -> dict[str, int]:
    """Totals of PgBouncer's SHOW STATS over its databases (updated every second)."""
    totals: dict[str, int] = {}
    for row in _console(listen, password, "SHOW STATS"):
        for name, value in row.items():
            if name.startswith("total_") and value is not None:
                totals[name] = totals.get(name, 0) + int(str(value))
    return totals


def clients(listen: int, password: str, database: str) -> int:
    """Client connections PgBouncer holds for ``database`` now."""
    return sum(
        1 for row in _console(listen, password, "SHOW CLIENTS") if row["database"] == database
    )
