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
import multiprocessing
import sys
import time
from typing import Any

from ops.bench.cpu_meter import CpuMeter, cpu_note
from ops.load import System, ledger_violations, loadavg, raise_nofile, running_system, step
from ops.load.soak_generator import generator, plan_for
from ops.load.soak_watch import INFORMATIONAL, Sample, Watch, progress, wait_drained
from smsgw.embedded import SERVER_SETTINGS


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
