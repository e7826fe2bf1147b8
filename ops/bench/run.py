"""The benchmark harness of issue 6: starts smsgw as a user would (embedded PostgreSQL,
`smsgw api` under granian, `smsgw worker` processes), drives it over HTTP from separate
load-generator processes (wrk, and ops/bench/loadgen.py where pacing needs a look at the
queue), and prints one table, each figure beside its target, all measured in one run:

- ceilings: pgbench running the hold-plus-insert transaction on scratch tables, and a
  trivial Litestar endpoint doing one INSERT (ops/bench/trivial.py) under the same
  server and process count as the API;
- ingest alone: single sends at 64 connections, batches of 1,000 at 8 (the load
  generator's concurrency: 4 left the machine a fifth idle);
- single sends and the trivial endpoint again, interleaved in 10 s slices
  (T S S T T S S T T S), the ratio a median of adjacent pairs, so the machine's drift
  weighs on both alike (ops/bench/paired.py);
- end to end, ingest and delivery at once, batch and single sends, simulator at 0 and at
  50 ms, its receipts after 1 s applied as they arrive (a message's whole life): sent and
  delivered msg/s in the window, accept-to-sent and accept-to-delivered; the same with
  receipts held back (accept -> sent only, a second row), with status callbacks on
  (every message with a callback_url on a loopback receiver), and through an SMPP
  upstream (the tests' SMSC on loopback);
- single and batch ingest and end to end at 0 ms again, the tenants priced by a
  50,000-prefix rate card (ops/bench/rate_card.py) in place of the flat price, with the
  card's import and dry run timed (issue 23);
- one procrastinate job per message, drained by one worker: the baseline;
- fairness: a small tenant's accept-to-sent behind a large tenant's 100,000 backlog;
- growth: end to end again over millions of historic messages.

Every phase has a fresh database (a clone of one migrated template) and fresh processes.
It also draws the run (throughput, queue depth, latency per second) to a PNG.

    python -m ops.bench.run [--quick] [--out DIR] [--only e2e_batch_0,growth]
                            [--profile-sql] [--spy e2e_batch_0] [--batch-connections 8]
                            [--spread-numbers]

With --only the phases run in the order given (alternate it when comparing two). A full run
takes 15-20 minutes on 2 cores; --quick (10 s phases, 1M growth rows) about 5.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from ops.bench import chart, load, paired, report
from ops.bench.ceilings import pgbench_accept, pgbench_ceiling
from ops.bench.comparisons import baseline, fairness
from ops.bench.lifecycle import end_to_end
from ops.bench.phases import (
    Bench,
    Outcome,
    Plan,
    http_ingest,
)
from ops.bench.system import Cluster


def plan(args: argparse.Namespace) -> Plan:
    quick = bool(args.quick)
    return Plan(
        quick=quick,
        ingest_seconds=10 if quick else 30,
        e2e_seconds=10 if quick else 60,
        baseline_seconds=10 if quick else 30,
        fairness_seconds=10 if quick else 60,
        growth_rows=args.growth_rows or (1_000_000 if quick else 10_000_000),
        growth_days=30,
        connections=64,
        batch_connections=args.batch_connections,
        batch_inflight=4,
        batch_size=1000,
        spread_numbers=bool(args.spread_numbers),
        api_workers=args.api_workers,
        workers=args.workers,
        single_tenants=64,
        batch_tenants=10,
        backlog_cap=args.backlog_cap,
        fairness_backlog=100_000,
        small_rate=5.0,
        baseline_jobs=8_000 if quick else 30_000,
        drain_seconds=30 if quick else 60,
    )


def phases(bench: Bench) -> list[tuple[str, str, Callable[[], Outcome]]]:
    p = bench.plan
    growth = f"{p.growth_rows:,} rows"
    return [
        ("pgbench", "pgbench hold+insert", lambda: pgbench_ceiling(bench, "pgbench")),
        (
            "pgbench_accept",
            "pgbench accept_one",
            lambda: pgbench_accept(bench, "pgbench_accept"),
        ),
        (
            "trivial",
            "trivial endpoint",
            lambda: http_ingest(bench, "trivial", batch=False, trivial=True),
        ),
        ("single", "single ingest", lambda: http_ingest(bench, "single", batch=False)),
        (
            "single_pair",
            "single ingest and the trivial endpoint, interleaved",
            lambda: paired.interleaved(bench, "single_pair"),
        ),
        (
            "single_alone",
            "single ingest, a call per send",
            lambda: http_ingest(bench, "single_alone", batch=False, alone=True),
        ),
        (
            "single_card",
            "single ingest, 50,000-prefix card",
            lambda: http_ingest(bench, "single_card", batch=False, card=True),
        ),
        ("batch", "batch ingest", lambda: http_ingest(bench, "batch", batch=True)),
        (
            "batch_card",
            "batch ingest, 50,000-prefix card",
            lambda: http_ingest(bench, "batch_card", batch=True, card=True),
        ),
        (
            "e2e_batch_0",
            "e2e batch 0 ms",
            lambda: end_to_end(bench, "e2e_batch_0", batch=True, latency_ms=0),
        ),
        (
            "e2e_batch_0_held",
            "e2e batch 0 ms, receipts held back",
            lambda: end_to_end(bench, "e2e_batch_0_held", batch=True, latency_ms=0, receipts=False),
        ),
        (
            "e2e_batch_0_callbacks",
            "e2e batch 0 ms, status callbacks on",
            lambda: end_to_end(
                bench, "e2e_batch_0_callbacks", batch=True, latency_ms=0, callbacks=True
            ),
        ),
        (
            "e2e_batch_0_card",
            "e2e batch 0 ms, 50,000-prefix card",
            lambda: end_to_end(bench, "e2e_batch_0_card", batch=True, latency_ms=0, card=True),
        ),
        (
            "e2e_batch_50",
            "e2e batch 50 ms",
            lambda: end_to_end(bench, "e2e_batch_50", batch=True, latency_ms=50),
        ),
        (
            "e2e_single_0",
            "e2e single 0 ms",
            lambda: end_to_end(bench, "e2e_single_0", batch=False, latency_ms=0),
        ),
        (
            "e2e_single_0_held",
            "e2e single 0 ms, receipts held back",
            lambda: end_to_end(
                bench, "e2e_single_0_held", batch=False, latency_ms=0, receipts=False
            ),
        ),
        (
            "e2e_batch_smpp",
            "e2e batch through SMPP",
            lambda: end_to_end(bench, "e2e_batch_smpp", batch=True, latency_ms=0, provider="smpp"),
        ),
        (
            "e2e_single_smpp",
            "e2e single through SMPP",
            lambda: end_to_end(
                bench, "e2e_single_smpp", batch=False, latency_ms=0, provider="smpp"
            ),
        ),
        (
            "e2e_single_0_card",
            "e2e single 0 ms, 50,000-prefix card",
            lambda: end_to_end(bench, "e2e_single_0_card", batch=False, latency_ms=0, card=True),
        ),
        (
            "e2e_single_50",
            "e2e single 50 ms",
            lambda: end_to_end(bench, "e2e_single_50", batch=False, latency_ms=50),
        ),
        ("baseline", "baseline", lambda: baseline(bench, "baseline")),
        ("fairness", "fairness", lambda: fairness(bench, "fairness")),
        (
            "growth",
            f"growth ({growth})",
            lambda: end_to_end(
                bench, "growth", batch=True, latency_ms=0, history_rows=p.growth_rows
            ),
        ),
    ]


PACKAGES = ("app", "core", "db", "jobs", "providers", "smpp_server", "smsgw", "ops")


def snapshot(root: Path) -> Path:
    """A copy of the source as it is now, which every process of the run imports (it is
    their working directory, first on sys.path for `python -m`): a run measures one
    version of the code even while the work tree changes under it."""
    here = Path(__file__).resolve().parents[2]
    copy = root / "src"
    for package in PACKAGES:
        shutil.copytree(
            here / package, copy / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    return copy


def _commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=False).stdout

    head = git("rev-parse", "--short", "HEAD").strip() or "?"
    dirty = bool(git("status", "--porcelain", "--untracked-files=no").strip())
    return head + (" with uncommitted changes" if dirty else "")


def _settings(pairs: list[str]) -> dict[str, str]:
    settings = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.startswith("SMSGW_"):
            raise SystemExit(f"--set takes SMSGW_NAME=VALUE, not {pair!r}")
        settings[name] = value
    return settings


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="short phases: a smoke test")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("bench-results"),
        help="where the chart and logs go (default ./bench-results)",
    )
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated phase keys, run in the order given (default: all, in plan order)",
    )
    parser.add_argument(
        "--spread-numbers",
        action="store_true",
        help="batch ingest phases send to 1,000 numbers spread over the US, not one number",
    )
    parser.add_argument(
        "--api-workers",
        type=int,
        default=2,
        help="granian processes for the API and the trivial endpoint (2: one per core)",
    )
    parser.add_argument("--workers", type=int, default=2, help="smsgw worker processes (2)")
    parser.add_argument(
        "--batch-connections",
        type=int,
        default=8,
        # 4 left a fifth of the machine idle: both API processes waiting on the
        # database call of their batches, nothing else to do (CPU per message equal).
        help="batch ingest: batches of 1,000 in flight (8)",
    )
    parser.add_argument(
        "--backlog-cap",
        type=int,
        default=20_000,
        help="batch e2e: the load generator pauses while the queue is deeper",
    )
    parser.add_argument("--growth-rows", type=int, default=0, help="historic messages")
    parser.add_argument(
        "--profile-sql",
        action="store_true",
        help="print each phase's top statements (pg_stat_statements)",
    )
    parser.add_argument("--spy", default="", help="py-spy the API and a worker in these phases")
    parser.add_argument("--keep", action="store_true", help="keep the server's folder")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SMSGW_NAME=VALUE",
        help="a gateway setting for every phase (repeatable), for A/B runs",
    )
    args = parser.parse_args()
    load.require("wrk", "wrk")
    load.require("pgbench", "postgresql-client")
    the_plan = plan(args)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    root = Path(tempfile.mkdtemp(prefix="smsgw-bench-", dir="/tmp"))
    root.chmod(0o755)  # the embedded server runs as `postgres` when we are root
    workdir = out / f"run-{stamp}"
    cluster = Cluster(root, logs=workdir / "logs", profile_sql=args.profile_sql)
    bench = Bench(
        the_plan, cluster, workdir, set(filter(None, args.spy.split(","))), _settings(args.set)
    )
    # In the order given: a comparison of two phases can alternate which goes first (the
    # first phase of a run is often faster whatever it runs).
    only = list(dict.fromkeys(filter(None, args.only.split(","))))
    commit = _commit()
    os.chdir(snapshot(root))
    load_before = os.getloadavg()
    started = time.monotonic()
    outcomes: dict[str, Outcome] = {}
    version = "?"
    try:
        cluster.start()
        version = cluster.version
        planned = phases(bench)
        chosen = [p for k in only for p in planned if p[0] == k] if only else planned
        for key, label, run in chosen:
            print(f"bench: {label} ...", file=sys.stderr, flush=True)
            begun = time.monotonic()
            try:
                outcomes[key] = run()
            except Exception as exc:  # one broken phase must not hide the others
                traceback.print_exc()
                outcomes[key] = Outcome(error=f"{type(exc).__name__}: {exc}"[:200])
            print(f"bench: {label} took {time.monotonic() - begun:.0f} s", file=sys.stderr)
    finally:
        if args.keep:
            cluster.server.stop()
            print(f"bench: server folder kept in {root}", file=sys.stderr)
        else:
            cluster.destroy()
            shutil.rmtree(root, ignore_errors=True)
    header = report.header(
        the_plan,
        commit=commit,
        postgres=version,
        wrk=load.wrk_version(),
        load_before=load_before,
        load_after=os.getloadavg(),
        minutes=(time.monotonic() - started) / 60,
        settings=bench.settings,
    )
    print()
    print(report.table(header, the_plan, outcomes))
    for profile in bench.profiles:
        print()
        print(profile)
    png = out / f"bench-{stamp}{'-quick' if the_plan.quick else ''}.png"
    if bench.charts:
        chart.draw(bench.charts, png, header[0])
        print(f"\nchart: {png}")
    print(f"logs and load-generator files: {workdir}")


if __name__ == "__main__":
    main()
