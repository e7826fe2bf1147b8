"""2,000 concurrent keep-alive connections held open against the API, requests flowing.

    python -m ops.load.connections [--connections 2000] [--seconds 30] [--interval 10]

Starts the system as a user would (embedded PostgreSQL, `smsgw api` under granian with
its production settings, one `smsgw worker` delivering through the simulator), then a
separate load-generator process opens every connection (at most ``--ramp`` connects in
flight at once), and once all are open sends on each of them, every ``--interval``
seconds from a random offset, alternately a single send (POST /v1/messages) and a
balance read (GET /v1/balance). While it runs, this process counts the established
connections that granian's processes hold (/proc/net/tcp and their descriptors) every
2 s, and the listener's accept queue every 50 ms while connections are being opened.

The default interval (2,000 connections, 200 requests a second) is what two shared cores
serve with room to spare: the point is holding the connections. At ``--interval 4``
(500 requests a second, half of them sends) the gateway needs ~1.7 cores (per request,
measured: API ~1.2 ms, PostgreSQL ~1.5 ms, worker ~0.75 ms), so on two cores requests
queue in the API for seconds, and those that wait over 3 s for a database connection get
503 (db/pool.py POOL_WAIT_SECONDS): load shed, not a connection refused.

Prints: connections opened, refused or reset, requests and non-2xx answers, errors by
kind, latency p50/p99/max, the most connections open at once as the generator and as the
server saw them, the longest accept queue, the kernel's listen overflows (machine-wide:
other sessions' listeners too), where the CPU went, and load average. Exit status 1 when
any connection or request failed or got a non-2xx answer.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass
from multiprocessing.connection import Connection as Pipe
from typing import Any

import uvloop

from ops.bench.cpu_meter import CpuMeter, cpu_note
from ops.load import (
    SEND_BODY,
    Connection,
    accept_queue,
    children,
    classify,
    established,
    listen_drops,
    loadavg,
    percentile,
    raise_nofile,
    request_bytes,
    running_system,
    step,
)


@dataclass(frozen=True)
class Plan:
    host: str
    port: int
    keys: list[str]
    connections: int
    seconds: float
    interval: float
    ramp: int  # connects in flight at once
    timeout: float


async def hold(plan: Plan) -> dict[str, Any]:
    """Opens ``plan.connections`` connections, then keeps requests flowing on each of them
    for ``plan.seconds``; returns the counts and latencies."""
    hostport = f"{plan.host}:{plan.port}"
    requests = [
        (
            request_bytes("POST", "/v1/messages", host=hostport, key=key, body=SEND_BODY),
            request_bytes("GET", "/v1/balance", host=hostport, key=key),
        )
        for key in plan.keys
    ]
    errors: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    latencies: list[float] = []
    conns: list[Connection | None] = [None] * plan.connections
    state = {"open": 0, "max_open": 0, "reconnects": 0}

    def opened() -> None:
        state["open"] += 1
        state["max_open"] = max(state["max_open"], state["open"])

    gate = asyncio.Semaphore(plan.ramp)

    async def connect(i: int) -> None:
        async with gate:
            try:
                conns[i] = await asyncio.wait_for(
                    Connection.open(plan.host, plan.port), plan.timeout
                )
                opened()
            except (OSError, TimeoutError) as exc:
                errors[f"connect_{classify(exc)}"] += 1

    ramp_started = time.monotonic()
    await asyncio.gather(*(connect(i) for i in range(plan.connections)))
    ramp_seconds = time.monotonic() - ramp_started
    open_after_ramp = state["open"]

    started = time.monotonic()
    deadline = started + plan.seconds

    async def flow(i: int) -> bool:
        """Requests on connection ``i`` until the deadline; whether the connection it
        started with served every one of them and is still open."""
        conn = conns[i]
        if conn is None:
            return False
        original = True
        send, read = requests[i % len(requests)]
        turn = i  # half the connections start with a send, half with a read
        due = started + random.uniform(0, plan.interval)
        while True:
            await asyncio.sleep(max(0.0, min(due, deadline) - time.monotonic()))
            if time.monotonic() >= deadline:
                break
            due += plan.interval
            is_send = turn % 2 == 0
            turn += 1
            began = time.perf_counter()
            try:
                if conn is None:  # the previous one failed: a new one, counted
                    conn = await asyncio.wait_for(
                        Connection.open(plan.host, plan.port), plan.timeout
                    )
                    opened()
                    state["reconnects"] += 1
                status, _ = await asyncio.wait_for(
                    conn.send(send if is_send else read), plan.timeout
                )
            except (OSError, TimeoutError, ValueError) as exc:
                errors[("send_" if is_send else "read_") + classify(exc)] += 1
                if conn is not None:
                    conn.close()
                    state["open"] -= 1
                conn, original = None, False
                continue
            latencies.append(time.perf_counter() - began)
            statuses[f"{'POST' if is_send else 'GET'} {status}"] += 1
        if conn is None:
            return False
        # Still open at the end: the server has not closed it while it sat idle either.
        still_open = not conn.reader.at_eof()
        conn.close()
        state["open"] -= 1
        return original and still_open

    kept = await asyncio.gather(*(flow(i) for i in range(plan.connections)))
    elapsed = time.monotonic() - started
    latencies.sort()
    ok = sum(n for key, n in statuses.items() if key.split()[1].startswith("2"))
    return {
        "connections": plan.connections,
        "opened": open_after_ramp,
        "ramp_seconds": ramp_seconds,
        "max_open": state["max_open"],
        "kept_open": sum(kept),
        "reconnects": state["reconnects"],
        "requests": sum(statuses.values()),
        "non_2xx": sum(statuses.values()) - ok,
        "statuses": dict(statuses),
        "errors": dict(errors),
        "seconds": elapsed,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "max_ms": (latencies[-1] if latencies else 0.0) * 1000,
    }


def generator(plan: Plan, pipe: Pipe) -> None:
    """The load-generator process: its own file-descriptor limit, its own event loop."""
    raise_nofile()
    pipe.send(uvloop.run(hold(plan)))
    pipe.close()


def run(
    plan: Plan, cpu: CpuMeter, server: list[int]
) -> tuple[dict[str, Any], tuple[int, int], str]:
    """Runs the generator in a process of its own while counting the established
    connections the ``server`` processes hold and the listener's accept queue; returns its
    result, the most of each seen at once, and where the machine's CPU went meanwhile."""
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe(duplex=False)
    proc = context.Process(target=generator, args=(plan, theirs), name="load-generator")
    cpu.start()
    began = checked = time.monotonic()
    proc.start()
    theirs.close()
    most = queued = 0
    while not ours.poll(0.05 if time.monotonic() - began < 10 else 1):  # ramp: closely
        queued = max(queued, accept_queue(plan.port))
        if time.monotonic() - checked >= 2:  # reading 2,000 descriptors takes a while
            most = max(most, established(plan.port, server))
            checked = time.monotonic()
        if not proc.is_alive():
            raise SystemExit(f"the load generator exited with {proc.exitcode}")
    result: dict[str, Any] = ours.recv()
    proc.join()
    used = cpu.stop()
    return result, (most, queued), cpu_note(used, cpu.api_processes)


def somaxconn() -> str:
    try:
        with open("/proc/sys/net/core/somaxconn") as value:
            return value.read().strip()
    except OSError:
        return "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=30, help="requests flowing")
    parser.add_argument("--interval", type=float, default=10, help="seconds between requests")
    parser.add_argument("--ramp", type=int, default=200, help="connects in flight at once")
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--api-workers", type=int, default=1, help="granian processes")
    parser.add_argument("--timeout", type=float, default=30, help="per request, seconds")
    parser.add_argument("--keep", action="store_true", help="keep the server folder and logs")
    args = parser.parse_args()

    limits = raise_nofile()  # inherited by the API, the worker and the generator
    step(f"RLIMIT_NOFILE {limits[0]}/{limits[1]}; load average {loadavg()}")
    with running_system(
        "connections",
        api_workers=args.api_workers,
        workers=1,
        tenants=args.tenants,
        latency_ms=0,
        dlr_delay_seconds=5,
        keep=args.keep,
    ) as system:
        gateway = system.gateway
        plan = Plan(
            host="127.0.0.1",
            port=gateway.port,
            keys=[t.key for t in system.tenants],
            connections=args.connections,
            seconds=args.seconds,
            interval=args.interval,
            ramp=args.ramp,
            timeout=args.timeout,
        )
        drops_before = listen_drops()
        load_before = loadavg()
        step(
            f"{args.connections} connections, a request on each every {args.interval:g} s "
            f"for {args.seconds:g} s"
        )
        assert gateway.api is not None
        server = [gateway.api.pid, *children(gateway.api.pid)]  # granian and its workers
        result, seen, cpu = run(plan, CpuMeter(system.postmaster_pid_file), server)
        load_after = loadavg()
        drops = {k: v - drops_before.get(k, 0) for k, v in listen_drops().items()}
        logged = system.log_errors()
    ok = print_report(args, result, seen, drops, (load_before, load_after, cpu), logged)
    return 0 if ok else 1


def print_report(
    args: argparse.Namespace,
    result: dict[str, Any],
    seen: tuple[int, int],
    drops: dict[str, int],
    machine: tuple[str, str, str],
    logged: dict[str, int],
) -> bool:
    load_before, load_after, cpu = machine
    most, queued = seen
    refused = sum(n for k, n in result["errors"].items() if k.startswith("connect_"))
    errors = sum(result["errors"].values())
    rate = result["requests"] / result["seconds"] if result["seconds"] else 0.0
    ok = bool(
        result["opened"] == args.connections
        and errors == 0
        and result["non_2xx"] == 0
        and result["kept_open"] == args.connections
    )
    rows = [
        ("connections asked", f"{args.connections}"),
        ("connections opened", f"{result['opened']} in {result['ramp_seconds']:.1f} s"),
        ("refused / reset / timed out at connect", f"{refused}"),
        ("kept open all through (no reconnect, no EOF)", f"{result['kept_open']}"),
        ("most open at once: generator / server side", f"{result['max_open']} / {most}"),
        (
            "most waiting in the API's accept queue",
            f"{queued} (backlog: 4096 asked by `smsgw api`, net.core.somaxconn {somaxconn()})",
        ),
        (
            "listen overflows / drops (kernel, machine-wide)",
            f"{drops.get('ListenOverflows', 0)} / {drops.get('ListenDrops', 0)}",
        ),
        ("requests", f"{result['requests']} in {result['seconds']:.1f} s ({rate:.0f}/s)"),
        ("answers", ", ".join(f"{k}: {v}" for k, v in sorted(result["statuses"].items()))),
        ("non-2xx", f"{result['non_2xx']}"),
        ("errors", ", ".join(f"{k}: {v}" for k, v in result["errors"].items()) or "0"),
        ("reconnects after an error", f"{result['reconnects']}"),
        (
            "latency p50 / p99 / max",
            f"{result['p50_ms']:.1f} / {result['p99_ms']:.1f} / {result['max_ms']:.1f} ms",
        ),
        ("error lines in server logs", ", ".join(f"{k}: {v}" for k, v in logged.items())),
        ("CPU during the run (other = other sessions)", cpu),
        ("load average before / after", f"{load_before} / {load_after}"),
        ("verdict", "PASS" if ok else "FAIL"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    return ok


if __name__ == "__main__":
    sys.exit(main())
