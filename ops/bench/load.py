"""Load generators, each in processes of its own: wrk (HTTP), pgbench (SQL), and the
Python generator of ops/bench/loadgen.py where pacing needs a look at the queue.

wrk rather than a Python generator for the closed-loop HTTP phases: it is C, so at
64 connections it costs a few percent of one core where a Python client would take
most of one (on a 2-core machine that would be measuring the client), and its latency
histogram has microsecond resolution, which the Lua `done` hook below prints exactly
(p50, p99, max in us) instead of wrk's rounded text.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ops.bench import backend_cpu

WRK_SCRIPT = r"""
-- args: keys file, body file, path, threads, "close" or "keep-alive". Each thread takes
-- its own share of the tenant keys, and each request the next key of the share in turn,
-- so that with as many connections as tenants two requests of one tenant rarely run at
-- once (a tenant's accepts queue on its balance row). Threads that only started at their
-- own offset in one list drifted into each other's keys within seconds.
local reqs = {}
local n = 0
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("index", threads - 1)
end
function init(args)
  local body_file = io.open(args[2], "rb")
  local body = body_file:read("*a")
  body_file:close()
  local keys = {}
  for key in io.lines(args[1]) do
    keys[#keys + 1] = key
  end
  local threads = tonumber(args[4])
  local first = math.floor(index * #keys / threads) + 1
  local last = math.floor((index + 1) * #keys / threads)
  if last < first then  -- fewer keys than threads: all of them
    first, last = 1, #keys
  end
  for i = first, last do
    reqs[#reqs + 1] = wrk.format("POST", args[3], {
      ["Authorization"] = "Bearer " .. keys[i],
      ["Content-Type"] = "application/json",
      ["Connection"] = args[5],
    }, body)
  end
end
function request()
  n = n % #reqs + 1
  return reqs[n]
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK_RESULT requests=%.0f duration_us=%.0f status_errors=%.0f socket_errors=%.0f"
    .. " p50_us=%.0f p99_us=%.0f max_us=%.0f\n",
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


@dataclass(frozen=True)
class HttpResult:
    requests: int
    seconds: float
    status_errors: int  # answers >= 400 (wrk's count)
    socket_errors: int
    p50_ms: float
    p99_ms: float
    max_ms: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def wrk_version() -> str:
    out = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    match = re.search(r"wrk (\S+)", out.stdout + out.stderr)
    return match.group(1) if match else "?"


def require(tool: str, package: str) -> None:
    """The Debian package that brings ``tool``, installed when we are root (as ops/run does
    for PostgreSQL), else a message saying what to install."""
    if shutil.which(tool) is not None:
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print(f"bench: installing {package} (for {tool}) with apt-get", file=sys.stderr)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", package], env=env, check=False)
    if shutil.which(tool) is None:
        raise SystemExit(f"bench: `{tool}` is not installed (apt-get install {package})")


def start_wrk(
    *,
    url: str,
    keys: Path,
    body: bytes,
    connections: int,
    seconds: float,
    workdir: Path,
    tag: str,
    reconnect: bool = False,
) -> subprocess.Popen[str]:
    """Starts wrk; `wrk_result` reads its answer when it is done. ``reconnect``: a new
    connection per request (for a few long requests: keep-alive connections stay with
    the server process that accepted them, and four of them can all land on one)."""
    script = workdir / "post.lua"
    script.write_text(WRK_SCRIPT)
    body_file = workdir / f"{tag}.json"
    body_file.write_bytes(body)
    parts = urlsplit(url)
    threads = min(2, connections)
    return subprocess.Popen(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "30s",
            "-s",
            str(script),
            f"{parts.scheme}://{parts.netloc}",
            "--",
            str(keys),
            str(body_file),
            parts.path,
            str(threads),
            "close" if reconnect else "keep-alive",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wrk_result(proc: subprocess.Popen[str]) -> HttpResult:
    out, _ = proc.communicate()
    line = next((x for x in out.splitlines() if x.startswith("WRK_RESULT")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {out[-2000:]}")
    values = dict(item.split("=") for item in line.split()[1:])
    return HttpResult(
        requests=int(values["requests"]),
        seconds=int(values["duration_us"]) / 1e6,
        status_errors=int(values["status_errors"]),
        socket_errors=int(values["socket_errors"]),
        p50_ms=int(values["p50_us"]) / 1000,
        p99_ms=int(values["p99_us"]) / 1000,
        max_ms=int(values["max_us"]) / 1000,
    )


# The hold-plus-insert transaction, in the shape of the accept statement: one statement,
# one round trip, the conditional UPDATE of a balance row feeding the INSERT of a row.
PGBENCH_SCRIPT = """\\set tenant random(1, :tenants)
WITH hold AS (
    UPDATE bench_scratch.balances
       SET available = available - 7900, held = held + 7900
     WHERE tenant_id = :tenant AND available >= 7900
    RETURNING tenant_id
)
INSERT INTO bench_scratch.pgbench_messages (tenant_id, status, to_number, body, segments, price)
SELECT tenant_id, 'queued', '+14155552671', 'bench message', 1, 7900 FROM hold;
"""


@dataclass(frozen=True)
class PgbenchResult:
    transactions: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        return self.transactions / self.seconds if self.seconds else 0.0


def run_pgbench(
    db_url: str,
    *,
    clients: int,
    tenants: int,
    seconds: float,
    workdir: Path,
    transaction: str = PGBENCH_SCRIPT,
) -> PgbenchResult:
    """``transaction``: a pgbench script; ``:tenants`` is defined in it."""
    parts = urlsplit(db_url)
    script = workdir / "transaction.sql"
    script.write_text(transaction)
    prefix = workdir / "pgbench"
    out = subprocess.run(
        [
            "pgbench",
            "-n",
            "-M",
            "prepared",
            f"-c{clients}",
            f"-j{min(2, clients)}",
            f"-T{max(1, round(seconds))}",
            "-D",
            f"tenants={tenants}",
            "-f",
            str(script),
            "-l",
            f"--log-prefix={prefix}",
            "-h",
            parts.hostname or "127.0.0.1",
            "-p",
            str(parts.port),
            "-U",
            parts.username or "",
            parts.path.lstrip("/"),
        ],
        env={"PGPASSWORD": parts.password or "", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
        cwd=workdir,
    )
    if out.returncode != 0:
        raise RuntimeError(f"pgbench failed: {out.stderr[-2000:]}")
    latencies: list[int] = []
    for log in workdir.glob("pgbench.*"):
        with log.open() as lines:
            latencies.extend(int(line.split()[2]) for line in lines)
    latencies.sort()
    processed = re.search(r"number of transactions actually processed: (\d+)", out.stdout)
    tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out.stdout)
    if not processed or not tps or not latencies:
        raise RuntimeError(f"pgbench printed no result: {out.stdout[-2000:]}")
    transactions = int(processed.group(1))
    return PgbenchResult(
        transactions=transactions,
        seconds=transactions / float(tps.group(1)),
        p50_ms=latencies[len(latencies) // 2] / 1000,
        p99_ms=latencies[int(len(latencies) * 0.99)] / 1000,
    )


def start_loadgen(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "ops.bench.loadgen", *args],
            stdout=subprocess.PIPE,
            stderr=out,
        )


def loadgen_result(proc: subprocess.Popen[bytes], timeout: float) -> dict[str, int]:
    import json

    out, _ = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"loadgen exited with {proc.returncode}; see its log")
    result: dict[str, int] = json.loads(out.decode().strip().splitlines()[-1])
    # Its backlog reader's database session is the harness's (backend_cpu.py).
    backend_cpu.add(result.pop("backend_cpu_ms", 0) / 1000)
    return result


def asgi_peer(app: str, port: int) -> list[str]:
    """The argv of a loopback HTTP peer of the bench (an aggregator, a callback receiver):
    ``app`` (module:attribute) served by granian on ``port``, quiet."""
    return [
        sys.executable,
        "-m",
        "granian",
        "--interface",
        "asgi",
        "--port",
        str(port),
        "--log-level",
        "warning",
        app,
    ]
