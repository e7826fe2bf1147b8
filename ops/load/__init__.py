"""Load scripts of issue 7 (not tests: they start the system as a user would and print
figures): ``python -m ops.load.connections`` holds 2,000 keep-alive connections open with
requests flowing, ``python -m ops.load.soak`` sends at the mission's average rate for
ten minutes and watches the memory of every process.

Both reuse ops/bench/system.py (the embedded server, `smsgw api` under granian, `smsgw
worker`) and drive the API from a separate load-generator process with the small
HTTP/1.1 keep-alive client below: raw asyncio streams on uvloop, so that thousands of
connections or a thousand requests a second cost the generator a small share of a core
on a machine of two.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from ops import procnet
from ops.bench.bodies import TO
from ops.bench.system import Cluster, Gateway, Tenant, gateway_env, wait_workers
from smsgw.processes import smsgw_command

SEND_BODY = json.dumps({"to": TO, "body": "load test message"}).encode()


def raise_nofile() -> tuple[int, int]:
    """Raises this process's soft RLIMIT_NOFILE to its hard limit (children inherit it)
    and returns the (soft, hard) pair now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


# -- the client ---------------------------------------------------------------------------


class HttpError(Exception):
    """The server answered something that is not HTTP/1.1, or closed the connection."""


def request_bytes(method: str, path: str, *, host: str, key: str, body: bytes = b"") -> bytes:
    """One whole HTTP/1.1 request, built once and written as many times as needed."""
    head = [
        f"{method} {path} HTTP/1.1",
        f"Host: {host}",
        f"Authorization: Bearer {key}",
    ]
    if method != "GET":
        head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class Connection:
    """One keep-alive HTTP/1.1 connection; one request at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def send(self, request: bytes) -> tuple[int, bytes]:
        """Writes ``request`` and reads the answer: (status, body)."""
        self.writer.write(request)
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            raise HttpError("closed by the server") from exc
        lines = head.split(b"\r\n")
        if not lines[0].startswith(b"HTTP/1."):
            raise HttpError(f"not HTTP: {lines[0][:40]!r}")
        status = int(lines[0][9:12])
        length, chunked, close = 0, False, False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                close = b"close" in value.lower()
        try:
            body = await (self._chunked() if chunked else self.reader.readexactly(length))
        except asyncio.IncompleteReadError as exc:
            raise HttpError("closed by the server mid-answer") from exc
        if close:
            raise HttpError(f"the server closed the connection after a {status}")
        return status, body

    async def _chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunk = await self.reader.readexactly(size + 2)
            if size == 0:
                return b"".join(parts)
            parts.append(chunk[:-2])

    def close(self) -> None:
        self.writer.close()


def percentile(ordered: list[float], share: float) -> float:
    """``share`` (0-1) percentile of an already sorted list; 0 when it is empty."""
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def classify(exc: BaseException) -> str:
    """A short name for a failure, for the error table."""
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, ConnectionResetError):
        return "reset"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, HttpError):
        return "closed_by_server"
    return type(exc).__name__


# -- the system ---------------------------------------------------------------------------


@dataclass
class System:
    """The embedded server, one database cloned from its template, the API and workers."""

    root: Path
    cluster: Cluster
    gateway: Gateway
    tenants: list[Tenant] = field(default_factory=list)

    @property
    def postmaster_pid_file(self) -> Path:
        return self.cluster.server.cluster / "postmaster.pid"

    def postmaster(self) -> int:
        return int(self.postmaster_pid_file.read_text().split()[0])

    def db(self) -> psycopg.Connection[tuple[Any, ...]]:
        return psycopg.connect(self.gateway.db_url, autocommit=True)

    def log_errors(self) -> dict[str, int]:
        """Lines at level error or worse (and tracebacks) in each process's log."""
        found = {}
        for log in sorted(self.gateway.logs.glob(f"{self.gateway.name}-*.log")):
            count = 0
            for line in log.read_text(errors="replace").splitlines():
                if line.startswith("Traceback") or any(
                    f'"level": "{level}"' in line for level in ("error", "critical")
                ):
                    count += 1
            found[log.stem.removeprefix(f"{self.gateway.name}-")] = count
        return found


def start_workers(
    gateway: Gateway, count: int, *, latency_ms: float, dlr_delay_seconds: float
) -> None:
    """`smsgw worker` processes like ``Gateway.start_workers``, with receipts arriving
    ``dlr_delay_seconds`` after a send (the bench keeps them out of its phases)."""
    env = gateway_env(gateway.db_url, latency_ms=latency_ms)
    env["SMSGW_SIMULATOR_DLR_DELAY_SECONDS"] = str(dlr_delay_seconds)
    for n in range(count):
        log = (gateway.logs / f"{gateway.name}-worker{n}.log").open("ab")
        args = smsgw_command("worker", "--name", f"{gateway.name}-{n}")
        gateway.workers.append(subprocess.Popen(args, env=env, stdout=log, stderr=log))
        log.close()  # the child holds its own descriptor
    wait_workers(gateway.db_url, count, gateway.workers)


@contextmanager
def running_system(
    name: str,
    *,
    api_workers: int,
    workers: int,
    tenants: int,
    latency_ms: float,
    dlr_delay_seconds: float,
    keep: bool,
) -> Iterator[System]:
    """Starts everything, yields, stops everything and (unless ``keep``) removes it."""
    root = Path(tempfile.mkdtemp(prefix=f"smsgw-{name}-", dir="/tmp"))
    root.chmod(0o755)  # the embedded server runs as `postgres` when we are root
    cluster = Cluster(root, logs=root / "logs", profile_sql=False)
    gateway: Gateway | None = None
    try:
        step(f"embedded PostgreSQL and the template database in {root}")
        cluster.start()
        gateway = Gateway(cluster.fresh(name), root / "logs", name, api_workers)
        step(f"`smsgw api --workers {api_workers}` under granian on port {gateway.port}")
        gateway.start_api()
        step(
            f"{workers} `smsgw worker` (simulator {latency_ms:g} ms, receipts after "
            f"{dlr_delay_seconds:g} s)"
        )
        start_workers(gateway, workers, latency_ms=latency_ms, dlr_delay_seconds=dlr_delay_seconds)
        step(f"{tenants} tenants with credit")
        made = gateway.tenants(tenants, prefix=name)
        yield System(root=root, cluster=cluster, gateway=gateway, tenants=made)
    finally:
        if gateway is not None:
            gateway.stop()
        if keep:
            cluster.server.stop()
            print(f"kept: {root} (logs in {root / 'logs'})", file=sys.stderr)
        else:
            cluster.destroy()
            shutil.rmtree(root, ignore_errors=True)


def step(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


# -- processes ------------------------------------------------------------------------------


def children(pid: int) -> list[int]:
    """Direct children of ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                text = stat.read()
        except OSError:
            continue
        if int(text[text.rindex(")") + 2 :].split()[1]) == pid:
            found.append(int(entry))
    return sorted(found)


def memory(pid: int) -> dict[str, int]:
    """VmRSS, RssAnon and RssShmem of ``pid`` in kB (empty when it is gone)."""
    wanted = {"VmRSS", "RssAnon", "RssShmem"}
    found = {}
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                name, _, value = line.partition(":")
                if name in wanted:
                    found[name] = int(value.split()[0])
    except OSError:
        return {}
    return found


def established(port: int, pids: list[int]) -> int:
    """Established TCP connections whose local end is ``port`` and whose socket belongs to
    one of ``pids``: the connections the server processes hold."""
    inodes = {
        f"socket:[{sock.inode}]"
        for sock in procnet.sockets()
        if sock.state == procnet.ESTABLISHED and sock.local_port == port
    }
    held = set()
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link in inodes:
                held.add(link)
    return len(held)


def accept_queue(port: int) -> int:
    """Connections waiting in the accept queue of the listener(s) on ``port``."""
    return sum(
        sock.receive_queue
        for sock in procnet.sockets()
        if sock.state == procnet.LISTEN and sock.local_port == port
    )


def listen_drops() -> dict[str, int]:
    """The kernel's ListenOverflows and ListenDrops counters (a full accept queue)."""
    with open("/proc/net/netstat") as netstat:
        rows = netstat.read().splitlines()
    for names, values in zip(rows[::2], rows[1::2], strict=False):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:], strict=True))
            return {k: int(table.get(k, 0)) for k in ("ListenOverflows", "ListenDrops")}
    return {}


def loadavg() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def ledger_violations(system: System) -> int:
    with system.db() as conn:
        rows = conn.execute("SELECT * FROM smsgw_ledger_violations_v1()").fetchall()
    return len(rows)
