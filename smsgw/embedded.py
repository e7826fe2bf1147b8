"""A private PostgreSQL server for `smsgw run` without DATABASE_URL, and for the tests.

PostgreSQL refuses to run as root, so when we are root the cluster belongs to the
unprivileged ``postgres`` account and every server command runs as that user. Its data
folder must then be reachable by that user: when the project's data folder is not (a
clone under /root, say), the cluster moves to /var/lib/smsgw/<hash> and we say so.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import pwd
import secrets
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from smsgw.processes import StartError, free_port

DATABASE = "smsgw"
SUPERUSER = "smsgw"
DEFAULT_PORT = 54329

# Sized for one machine running API and workers beside the server.
SERVER_SETTINGS: dict[str, str] = {
    "max_connections": "300",
    "shared_buffers": "512MB",
    "wal_compression": "on",
    "max_wal_size": "4GB",
    "checkpoint_timeout": "15min",
    "log_min_duration_statement": "2000",
    # A client that opened a connection and never finished logging in (a connect
    # cancelled half-way, as a worker's LISTEN connection can be while the database
    # restarts) holds a fast shutdown or restart until this runs out: 60 s by default.
    "authentication_timeout": "10s",
}
# For throwaway test clusters only: durability is not what a test measures.
TEST_SETTINGS: dict[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "300",
    "shared_buffers": "128MB",
    "authentication_timeout": "10s",  # see SERVER_SETTINGS
}


class EmbeddedError(RuntimeError):
    pass


def find_bindir() -> Path:
    """Where initdb and pg_ctl live: pg_config's answer, else Debian's newest version."""
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        out = subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True, check=True
        ).stdout.strip()
        if out and (Path(out) / "initdb").exists():
            return Path(out)
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: (
            int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0
        ),
    )
    if candidates:
        return Path(candidates[-1]).parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    raise EmbeddedError(
        "PostgreSQL server binaries (initdb, pg_ctl) were not found; `ops/run` installs "
        "them with apt-get when run as root, or install the `postgresql` package."
    )


@dataclass
class EmbeddedPostgres:
    """One cluster in ``root`` (created on first start), listening on 127.0.0.1 only."""

    root: Path
    port: int | None = None
    settings: dict[str, str] = field(default_factory=lambda: dict(SERVER_SETTINGS))
    bindir: Path = field(default_factory=find_bindir)

    def __post_init__(self) -> None:
        self.root = self.root.resolve()
        self._account = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
        if self._account is not None and not self._reachable(self.root):
            digest = hashlib.sha256(str(self.root).encode()).hexdigest()[:12]
            self.moved_from: Path | None = self.root
            self.root = Path("/var/lib/smsgw") / digest
        else:
            self.moved_from = None

    # -- paths -------------------------------------------------------------------------
    @property
    def cluster(self) -> Path:
        return self.root / "cluster"

    @property
    def password_file(self) -> Path:
        return self.root / "password"

    @property
    def port_file(self) -> Path:
        return self.root / "port"

    @property
    def log_file(self) -> Path:
        return self.cluster / "server.log"

    # -- running commands as the server's owner ------------------------------------------
    def _run(self, args: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        kwargs: dict[str, object] = {}
        if self._account is not None:
            kwargs = {
                "user": self._account.pw_uid,
                "group": self._account.pw_gid,
                "extra_groups": [],
                "env": {"PATH": "/usr/bin:/bin", "HOME": str(self.root), "LC_ALL": "C"},
            }
        return subprocess.run(  # type: ignore[call-overload,no-any-return]
            list(args), capture_output=True, text=True, check=check, cwd=str(self.root), **kwargs
        )

    def _reachable(self, path: Path) -> bool:
        """Whether the postgres account can traverse into ``path`` (or its nearest
        existing ancestor, where the folder will be made)."""
        probe = path
        while not probe.exists():
            probe = probe.parent
        assert self._account is not None
        result = subprocess.run(
            ["test", "-x", str(probe)],
            user=self._account.pw_uid,
            group=self._account.pw_gid,
            extra_groups=[],
            cwd="/",
            check=False,
        )
        return result.returncode == 0

    def _chown(self, path: Path) -> None:
        if self._account is not None:
            os.chown(path, self._account.pw_uid, self._account.pw_gid)

    # -- lifecycle ---------------------------------------------------------------------
    def _init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._chown(self.root)
        password = secrets.token_urlsafe(24)
        pwfile = self.root / ".initdb-password"
        pwfile.write_text(password + "\n")
        pwfile.chmod(0o600)
        self._chown(pwfile)
        try:
            self._run(
                [
                    str(self.bindir / "initdb"),
                    "-D",
                    str(self.cluster),
                    "-U",
                    SUPERUSER,
                    "--auth=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "--encoding=UTF8",
                    "--no-locale",
                    "--no-instructions",
                ]
            )
        except subprocess.CalledProcessError as exc:
            raise EmbeddedError(f"initdb failed: {exc.stderr.strip()}") from exc
        finally:
            pwfile.unlink(missing_ok=True)
        self.password_file.write_text(password)
        self.password_file.chmod(0o600)

    def _is_running(self) -> bool:
        result = self._run(
            [str(self.bindir / "pg_ctl"), "-D", str(self.cluster), "status"], check=False
        )
        return result.returncode == 0

    def start(self) -> str:
        """Start (initialising on first use) and return the DATABASE_URL."""
        if not (self.cluster / "PG_VERSION").exists():
            self._init()
        if self.port is None:
            saved = self.port_file.read_text().strip() if self.port_file.exists() else ""
            self.port = int(saved) if saved.isdigit() else None
        if not self._is_running():
            try:
                self.port = free_port(self.port or DEFAULT_PORT)
            except StartError as exc:
                raise EmbeddedError(str(exc)) from None
            self.port_file.write_text(str(self.port))
            options = " ".join(
                [
                    "-c listen_addresses=127.0.0.1",
                    f"-c port={self.port}",
                    "-c unix_socket_directories=''",
                    *(f"-c {k}={v}" for k, v in self.settings.items()),
                ]
            )
            result = self._run(
                [
                    str(self.bindir / "pg_ctl"),
                    "-D",
                    str(self.cluster),
                    "-l",
                    str(self.log_file),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    "60",
                    "start",
                ],
                check=False,
            )
            if result.returncode != 0:
                tail = ""
                with contextlib.suppress(OSError):
                    tail = "\n".join(self.log_file.read_text().splitlines()[-15:])
                raise EmbeddedError(
                    f"PostgreSQL did not start: {result.stderr.strip()}\n{tail}".strip()
                )
        self._ensure_database()
        return self.url(DATABASE)

    def url(self, database: str) -> str:
        password = self.password_file.read_text().strip()
        return f"postgresql://{SUPERUSER}:{password}@127.0.0.1:{self.port}/{database}"

    def _ensure_database(self) -> None:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{DATABASE}"')

    def stop(self, mode: str = "fast") -> None:
        if (self.cluster / "postmaster.pid").exists():
            self._run(
                [str(self.bindir / "pg_ctl"), "-D", str(self.cluster), "-m", mode, "-w", "stop"],
                check=False,
            )

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
