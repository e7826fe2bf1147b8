"""A soak at the mission's average rate, with the memory of every process watched.

    python -m ops.load.soak [--rate 1157] [--minutes 10] [--singles 0.1] [--batch 100]

Starts the system as a user would (embedded PostgreSQL, `smsgw api` under granian, one
`smsgw worker` delivering through the simulator with receipts coming back), then a
separate load-generator process sends ``--rate`` messages a second for ``--minutes``:
the share ``--singles`` of them one per request (POST /v1/messages), the rest in batches
of ``--batch`` (POST /v1/messages/batch), each request from the next of ``--tenants``
tenants in turn. Requests follow a schedule (open loop over keep-alive connections: a
slow answer delays no later request unless every connection is busy).

Why not only single sends: on the two shared cores this was written on, one single send
costs about 2.6 ms of CPU end to end (API ~1.0, PostgreSQL ~1.4, worker ~0.3), so 1,157
of them a second need ~3 cores; `--singles 1` runs that case and reports the rate it
reached.

Every ``--sample`` seconds this process reads the memory of every process (granian's
main process and its workers, each `smsgw worker`, PostgreSQL's processes added up, and
the generator), the queue and the counters. At the end it prints, per process, memory
after the warm-up (the first ``--warmup`` seconds) and at the end, the change, and
whether it is flat within ``--tolerance``; then the rate achieved, messages sent, queue
depth at the end and after a drain, where the CPU went (other sessions' processes
included) and the ledger invariant. Exit status 1 when a check fails.

PostgreSQL's processes share its buffer cache: their VmRSS counts the pages of it each
one has touched, so their sum means nothing. The server is shown twice instead: its
private memory (RssAnon, added up over the postmaster and every backend) is the leak
check; its PSS (shared pages divided among the processes that map them, so the sum is
the real footprint) is shown for information and grows as the cache fills, up to
shared_buffers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import sys
import time
from array import array
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection as Pipe
from typing import Any

import uvloop

from ops.bench.system import CpuMeter, cpu_note
from ops.embedded import SERVER_SETTINGS
from ops.load import (
    SEND_BODY,
    Connection,
    System,
    children,
    classify,
    ledger_violations,
    loadavg,
    memory,
    percentile,
    raise_nofile,
    request_bytes,
    running_system,
    step,
)


@dataclass(frozen=True)
class Stream:
    """Requests of one kind, paced: request ``i`` is due at ``start + i / rate``."""

    name: str
    requests: list[bytes]  # one per tenant, taken in turn
    per_request: int  # messages in each
    rate: float  # requests per second
    total: int
    connections: int


@dataclass(frozen=True)
class Plan:
    host: str
    port: int
    streams: list[Stream]
    timeout: float


def plan_for(host: str, port: int, keys: list[str], args: argparse.Namespace) -> tuple[Plan, int]:
    """Single sends for ``--singles`` of ``--rate``, batches of ``--batch`` for the rest;
    returns the plan and the messages it sends."""
    hostport = f"{host}:{port}"
    seconds = args.minutes * 60
    single_rate = args.rate * args.singles
    batch_rate = (args.rate - single_rate) / args.batch
    streams = []
    if single_rate > 0:
        streams.append(
            Stream(
                name="single",
                requests=[
                    request_bytes("POST", "/v1/messages", host=hostport, key=k, body=SEND_BODY)
                    for k in keys
                ],
                per_request=1,
                rate=single_rate,
                total=round(single_rate * seconds),
                connections=args.connections,
            )
        )
    if batch_rate > 0:
        body = json.dumps({"messages": [json.loads(SEND_BODY)] * args.batch}).encode()
        streams.append(
            Stream(
                name=f"batch of {args.batch}",
                requests=[
                    request_bytes("POST", "/v1/messages/batch", host=hostport, key=k, body=body)
                    for k in keys
                ],
                per_request=args.batch,
                rate=batch_rate,
                total=round(batch_rate * seconds),
                connections=max(2, args.connections // 4),
            )
        )
    plan = Plan(host=host, port=port, streams=streams, timeout=args.timeout)
    return plan, sum(s.total * s.per_request for s in streams)


async def send_stream(plan: Plan, stream: Stream, started: float) -> dict[str, Any]:
    """Sends ``stream.total`` requests on its schedule (open loop over its connections)."""
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    latencies = array("d")
    state = {"next": 0, "accepted": 0, "item_errors": 0, "max_lag": 0.0, "reconnects": 0}

    async def sender() -> None:
        conn: Connection | None = await Connection.open(plan.host, plan.port)
        while state["next"] < stream.total:
            i = int(state["next"])
            state["next"] = i + 1
            wait = started + i / stream.rate - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            else:
                state["max_lag"] = max(state["max_lag"], -wait)
            began = time.perf_counter()
            try:
                if conn is None:
                    conn = await Connection.open(plan.host, plan.port)
                    state["reconnects"] += 1
                status, body = await asyncio.wait_for(
                    conn.send(stream.requests[i % len(stream.requests)]), plan.timeout
                )
            except (OSError, TimeoutError, ValueError) as exc:
                errors[classify(exc)] += 1
                if conn is not None:
                    conn.close()
                conn = None
                continue
            latencies.append(time.perf_counter() - began)
            statuses[status] += 1
            if status == 202 and stream.per_request == 1:
                state["accepted"] += 1
            elif status == 202:  # a batch says which of its items it took
                answer = json.loads(body)
                state["accepted"] += len(answer["messages"])
                state["item_errors"] += len(answer["errors"])
        if conn is not None:
            conn.close()

    await asyncio.gather(*(sender() for _ in range(stream.connections)))
    ordered = sorted(latencies)
    return {
        "planned": stream.total,
        "per_request": stream.per_request,
        "requests": sum(statuses.values()) + sum(errors.values()),
        "accepted": int(state["accepted"]),
        "item_errors": int(state["item_errors"]),
        "statuses": {str(k): v for k, v in statuses.items()},
        "errors": dict(errors),
        "reconnects": int(state["reconnects"]),
        "seconds": time.monotonic() - started,
        "max_lag_s": state["max_lag"],
        "p50_ms": percentile(ordered, 0.50) * 1000,
        "p99_ms": percentile(ordered, 0.99) * 1000,
        "max_ms": (ordered[-1] if ordered else 0.0) * 1000,
    }


async def send_paced(plan: Plan) -> dict[str, Any]:
    started = time.monotonic()
    results = await asyncio.gather(*(send_stream(plan, s, started) for s in plan.streams))
    return {
        "seconds": time.monotonic() - started,
        "streams": {s.name: r for s, r in zip(plan.streams, results, strict=True)},
    }


def generator(plan: Plan, pipe: Pipe) -> None:
    raise_nofile()
    pipe.send(uvloop.run(send_paced(plan)))
    pipe.close()


# -- watching ---------------------------------------------------------------------------

PG_BACKENDS = "postgres: the gateway's backends (RssAnon, sum)"
PG_SERVER = "postgres: postmaster + background (RssAnon, sum)"
PG_PSS = "postgres: every process (PSS, sum)"
INFORMATIONAL = (PG_PSS, "load generator")
BACKGROUND = (
    "checkpointer",
    "background writer",
    "walwriter",
    "autovacuum launcher",
    "logical replication launcher",
)


def pss(pid: int) -> int:
    """Proportional set size in kB (0 when the process is gone)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass
class Sample:
    t: float
    memory_kb: dict[str, int]  # process label -> kB
    backends: int
    accepted: int
    sent: int  # messages that reached `sent` (counted when they did)
    delivered: int
    due: int
    sending: int
    load: str


COUNTERS_SQL = """
SELECT coalesce(sum(n) FILTER (WHERE kind = 'accepted'), 0)::bigint,
       coalesce(sum(n) FILTER (WHERE kind = 'changed' AND status = 'sent'), 0)::bigint,
       coalesce(sum(n) FILTER (WHERE kind = 'changed' AND status = 'delivered'), 0)::bigint
  FROM message_counters
"""
# Through the partial indexes of the queue (messages_due_idx, messages_lease_idx).
QUEUE_SQL = """
SELECT (SELECT count(*) FROM messages
         WHERE status IN ('scheduled', 'queued') AND next_attempt_at <= now()),
       (SELECT count(*) FROM messages WHERE status = 'sending')
"""
# The server's processes but this one: the gateway's pooled connections (client backends
# of its database), the long-lived background processes, and whatever comes and goes
# (autovacuum workers), which only the PSS total counts.
PROCESSES_SQL = """
SELECT pid, backend_type, datname = current_database() AS ours
  FROM pg_stat_activity
 WHERE pid <> pg_backend_pid()
"""


@dataclass
class Watch:
    system: System
    generator_pid: int
    started: float = field(default_factory=time.monotonic)

    def processes(self) -> dict[str, int]:
        """Label -> pid of every gateway process (granian's workers found as children)."""
        gateway = self.system.gateway
        assert gateway.api is not None
        found = {"granian main": gateway.api.pid}
        for n, pid in enumerate(children(gateway.api.pid)):
            found[f"granian worker {n + 1}"] = pid
        for n, proc in enumerate(gateway.workers):
            found[f"smsgw worker {n + 1}"] = proc.pid
        found["load generator"] = self.generator_pid
        return found

    def sample(self) -> Sample:
        kb = {label: memory(pid).get("VmRSS", 0) for label, pid in self.processes().items()}
        postmaster = self.system.postmaster()
        with self.system.db() as conn:
            accepted, sent, delivered = conn.execute(COUNTERS_SQL).fetchone() or (0, 0, 0)
            due, sending = conn.execute(QUEUE_SQL).fetchone() or (0, 0)
            rows = conn.execute(PROCESSES_SQL).fetchall()
            me = conn.info.backend_pid
        backends = [pid for pid, kind, ours in rows if kind == "client backend" and ours]
        background = [postmaster, *(pid for pid, kind, _ in rows if kind in BACKGROUND)]
        kb[PG_BACKENDS] = sum(memory(pid).get("RssAnon", 0) for pid in backends)
        kb[PG_SERVER] = sum(memory(pid).get("RssAnon", 0) for pid in background)
        kb[PG_PSS] = sum(pss(pid) for pid in [postmaster, *children(postmaster)] if pid != me)
        return Sample(
            t=time.monotonic() - self.started,
            memory_kb=kb,
            backends=len(backends),
            accepted=int(accepted),
            sent=int(sent),
            delivered=int(delivered),
            due=int(due),
            sending=int(sending),
            load=loadavg(),
        )


def progress(sample: Sample, previous: Sample | None) -> None:
    span = sample.t - previous.t if previous else sample.t
    rate_in = (sample.accepted - (previous.accepted if previous else 0)) / span if span else 0
    rate_out = (sample.sent - (previous.sent if previous else 0)) / span if span else 0
    api = sum(v for k, v in sample.memory_kb.items() if k.startswith("granian"))
    workers = sum(v for k, v in sample.memory_kb.items() if k.startswith("smsgw"))
    step(
        f"t={sample.t:5.0f}s accepted {rate_in:6.0f}/s sent {rate_out:6.0f}/s "
        f"due {sample.due:6d} sending {sample.sending:4d} | MB api {api / 1024:.0f} "
        f"workers {workers / 1024:.0f} pg-backends {sample.memory_kb[PG_BACKENDS] / 1024:.0f} "
        f"({sample.backends}) | load {sample.load}"
    )


def wait_drained(system: System, timeout: float, since: float) -> tuple[float, int]:
    """Seconds from ``since`` (monotonic) until nothing is due or sending (or ``timeout``
    more seconds have passed), and what is left."""
    began = time.monotonic()
    left = -1
    with system.db() as conn:
        while time.monotonic() - began < timeout:
            row = conn.execute(QUEUE_SQL).fetchone() or (0, 0)
            left = int(row[0]) + int(row[1])
            if left == 0:
                break
            time.sleep(0.2)
    return time.monotonic() - since, left


# -- the run ----------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=1157, help="messages per second")
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument(
        "--singles", type=float, default=0.1, help="share of messages sent one per request"
    )
    parser.add_argument("--batch", type=int, default=100, help="messages per batch request")
    parser.add_argument("--warmup", type=float, default=60, help="seconds before the baseline")
    parser.add_argument("--sample", type=float, default=10, help="seconds between samples")
    parser.add_argument("--tolerance", type=float, default=10, help="flat within this %%")
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--connections", type=int, default=32, help="for single sends")
    parser.add_argument("--api-workers", type=int, default=1, help="granian processes")
    parser.add_argument("--workers", type=int, default=1, help="`smsgw worker` processes")
    parser.add_argument("--latency-ms", type=float, default=50, help="simulator submit latency")
    parser.add_argument("--dlr-delay", type=float, default=5, help="receipt after, seconds")
    parser.add_argument("--drain-seconds", type=float, default=120)
    parser.add_argument("--timeout", type=float, default=30, help="per request, seconds")
    parser.add_argument("--keep", action="store_true", help="keep the server folder and logs")
    args = parser.parse_args()
    if args.warmup >= args.minutes * 60:
        parser.error("--warmup must be shorter than the run")
    if not 0 <= args.singles <= 1 or not 1 <= args.batch <= 1000:
        parser.error("--singles is a share (0 to 1); --batch is 1 to 1,000")

    limits = raise_nofile()
    step(f"RLIMIT_NOFILE {limits[0]}/{limits[1]}; load average {loadavg()}")
    with running_system(
        "soak",
        api_workers=args.api_workers,
        workers=args.workers,
        tenants=args.tenants,
        latency_ms=args.latency_ms,
        dlr_delay_seconds=args.dlr_delay,
        keep=args.keep,
    ) as system:
        report = soak(args, system)
    return 0 if print_report(args, report) else 1


def soak(args: argparse.Namespace, system: System) -> dict[str, Any]:
    keys = [t.key for t in system.tenants]
    plan, planned = plan_for("127.0.0.1", system.gateway.port, keys, args)
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe(duplex=False)
    proc = context.Process(target=generator, args=(plan, theirs), name="load-generator")
    shown = ", ".join(f"{s.rate:.2f} req/s {s.name}" for s in plan.streams)
    step(f"{args.rate:g} msg/s ({shown}) for {args.minutes:g} min, {args.tenants} tenants")
    cpu = CpuMeter(system.postmaster_pid_file)
    cpu.start()
    proc.start()
    theirs.close()
    assert proc.pid is not None
    watch = Watch(system, proc.pid)
    samples = [watch.sample()]
    next_at = watch.started + args.sample
    while not ours.poll(max(0.0, next_at - time.monotonic())):
        if not proc.is_alive():
            raise SystemExit(f"the load generator exited with {proc.exitcode}")
        samples.append(watch.sample())
        progress(samples[-1], samples[-2])
        next_at += args.sample
    result: dict[str, Any] = ours.recv()
    proc.join()
    used = cpu.stop()
    ended = time.monotonic()
    end = watch.sample()
    samples.append(end)
    progress(end, samples[-2])
    violations_at_end = ledger_violations(system)
    step(f"load done; waiting up to {args.drain_seconds:g} s for the queue to drain")
    drain_seconds, left = wait_drained(system, args.drain_seconds, ended)
    with system.db() as conn:
        rows = conn.execute("SELECT status, count(*) FROM messages GROUP BY status").fetchall()
    return {
        "planned": planned,
        "result": result,
        "samples": samples,
        "cpu": cpu_note(used, cpu.api_processes),
        "violations_at_end": violations_at_end,
        "violations_after_drain": ledger_violations(system),
        "drain_seconds": drain_seconds,
        "left_after_drain": left,
        "by_status": {str(status): int(count) for status, count in rows},
        "log_errors": system.log_errors(),
    }


def memory_rows(
    samples: list[Sample], warmup: float, tolerance: float
) -> tuple[list[tuple[str, ...]], bool]:
    """Per process: after warm-up, end, max after warm-up, change, flat or not."""
    base = next((s for s in samples if s.t >= warmup), samples[-1])
    after = [s for s in samples if s.t >= base.t]
    rows: list[tuple[str, ...]] = []
    flat_all = True
    for label, start_kb in base.memory_kb.items():
        # The last reading of the process (the generator has exited by the final one).
        end_kb = next((s.memory_kb[label] for s in reversed(after) if s.memory_kb.get(label)), 0)
        peak = max(s.memory_kb.get(label, 0) for s in after)
        change = (end_kb - start_kb) / start_kb * 100 if start_kb else 0.0
        flat = abs(change) <= tolerance
        if label not in INFORMATIONAL:
            flat_all = flat_all and flat
        verdict = ("yes" if flat else "NO") + (" (info)" if label in INFORMATIONAL else "")
        rows.append(
            (
                label,
                f"{start_kb / 1024:.1f}",
                f"{end_kb / 1024:.1f}",
                f"{peak / 1024:.1f}",
                f"{change:+.1f}%",
                verdict,
            )
        )
    return rows, flat_all


def print_report(args: argparse.Namespace, report: dict[str, Any]) -> bool:
    result, samples = report["result"], report["samples"]
    streams: dict[str, dict[str, Any]] = result["streams"]
    base = next((s for s in samples if s.t >= args.warmup), samples[-1])
    end = samples[-1]
    rows, flat = memory_rows(samples, args.warmup, args.tolerance)
    header = ("process", "MB at warm-up", "MB at end", "MB max", "change", "flat")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print(
        f"memory (RSS unless named; baseline at t={base.t:.0f} s, end at t={end.t:.0f} s;"
        f" the gateway's PostgreSQL backends {base.backends} -> {end.backends})"
    )
    for row in [header, *rows]:
        print("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    requests = sum(r["requests"] for r in streams.values())
    accepted = sum(r["accepted"] for r in streams.values())
    errors = sum(sum(r["errors"].values()) + r["item_errors"] for r in streams.values())
    non_202 = sum(v for r in streams.values() for k, v in r["statuses"].items() if k != "202")
    span = end.t - base.t
    sent_rate = (end.sent - base.sent) / span if span > 0 else 0.0
    accepted_rate = (end.accepted - base.accepted) / span if span > 0 else 0.0
    achieved = accepted / result["seconds"] if result["seconds"] else 0.0
    rate_ok = achieved >= args.rate * 0.98
    queue_ok = report["left_after_drain"] == 0
    ledger_ok = report["violations_at_end"] == 0 and report["violations_after_drain"] == 0
    ok = flat and rate_ok and errors == 0 and non_202 == 0 and queue_ok and ledger_ok
    statuses = ", ".join(f"{k}: {v}" for k, v in sorted(report["by_status"].items()))
    lines = [
        (
            "rate asked / achieved (accepted over the run)",
            f"{args.rate:g} / {achieved:.1f} msg/s in {result['seconds']:.0f} s",
        ),
        (
            "accepted / sent per s after warm-up (server)",
            f"{accepted_rate:.1f} / {sent_rate:.1f}",
        ),
        ("messages planned / accepted", f"{report['planned']} / {accepted}"),
        ("requests / non-202 / errors", f"{requests} / {non_202} / {errors}"),
    ]
    for name, r in streams.items():
        lines.append(
            (
                f"  {name}: requests, p50 / p99 / max, lag",
                f"{r['requests']} of {r['planned']}, {r['p50_ms']:.1f} / {r['p99_ms']:.1f} / "
                f"{r['max_ms']:.1f} ms, most behind schedule {r['max_lag_s'] * 1000:.0f} ms"
                + (f", errors {r['errors']}" if r["errors"] else ""),
            )
        )
    lines += [
        ("queue at end: due / sending", f"{end.due} / {end.sending}"),
        (
            "drained, seconds after the last request",
            f"{report['drain_seconds']:.1f} s ({report['left_after_drain']} left)",
        ),
        ("messages by status after drain", statuses),
        (
            "ledger violations at end / after drain",
            f"{report['violations_at_end']} / {report['violations_after_drain']}",
        ),
        ("CPU during the run (other = other sessions)", report["cpu"]),
        ("load average at warm-up / end", f"{base.load} / {end.load}"),
        (
            "error lines in server logs",
            ", ".join(f"{k}: {v}" for k, v in report["log_errors"].items()),
        ),
        ("PostgreSQL shared_buffers", SERVER_SETTINGS.get("shared_buffers", "?")),
        ("memory flat within", f"{args.tolerance:g}%: {'yes' if flat else 'NO'}"),
        ("verdict", "PASS" if ok else "FAIL"),
    ]
    width = max(len(name) for name, _ in lines)
    for name, value in lines:
        print(f"{name:<{width}}  {value}")
    return ok


if __name__ == "__main__":
    sys.exit(main())
