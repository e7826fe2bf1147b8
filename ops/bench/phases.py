"""The phases of ops/bench/run.py. Each gets a fresh database (a clone of the migrated
template) and its own processes, and returns an Outcome: its figures, notes, and the
per-second series for the chart."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from ops.bench import load, measure, rate_card, server_stats
from ops.bench.bodies import json_body
from ops.bench.chart import PhaseSeries
from ops.bench.cpu_meter import CpuMeter, cpu_note
from ops.bench.server_stats import per_message
from ops.bench.system import ADMIN, Cluster, Gateway, keys_file

SCRATCH_SQL = Path(__file__).with_name("scratch.sql")


@dataclass(frozen=True)
class Plan:
    quick: bool
    ingest_seconds: float  # the ceilings and the ingest-only phases
    e2e_seconds: float
    baseline_seconds: float
    fairness_seconds: float
    growth_rows: int
    growth_days: int
    connections: int
    batch_connections: int
    batch_inflight: int
    batch_size: int
    spread_numbers: bool
    api_workers: int
    workers: int
    single_tenants: int
    batch_tenants: int
    backlog_cap: int
    fairness_backlog: int
    small_rate: float
    baseline_jobs: int
    drain_seconds: float


@dataclass
class Outcome:
    figures: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    error: str | None = None


class Bench:
    """What the phases share: the plan, the server, where files go, the chart's series,
    and the optional profilers (pg_stat_statements, py-spy)."""

    def __init__(
        self,
        plan: Plan,
        cluster: Cluster,
        workdir: Path,
        spy: set[str],
        settings: dict[str, str] | None = None,
    ) -> None:
        self.plan = plan
        self.cluster = cluster
        self.workdir = workdir
        self.spy = spy
        # SMSGW_* settings for the gateway in every phase (--set), for A/B runs; a
        # phase's own settings win.
        self.settings = settings or {}
        self.charts: list[PhaseSeries] = []
        self.profiles: list[str] = []

    def dir(self, key: str) -> Path:
        path = self.workdir / key
        path.mkdir(parents=True, exist_ok=True)
        return path

    @contextlib.contextmanager
    def database(self, key: str) -> Iterator[str]:
        name = f"bench_{key}"
        url = self.cluster.fresh(name)
        try:
            if self.cluster.profile_sql:
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute("SELECT pg_stat_statements_reset()")
            yield url
            if self.cluster.profile_sql:
                self.profiles.append(
                    f"pg_stat_statements, phase {key}:\n{server_stats.sql_profile(url)}"
                )
        finally:
            self.cluster.drop(name)

    @contextlib.contextmanager
    def gateway(
        self, url: str, key: str, module: str = "smsgw.cli", settings: dict[str, str] | None = None
    ) -> Iterator[Gateway]:
        wanted = {**self.settings, **(settings or {})}
        gateway = Gateway(url, self.cluster.logs, key, self.plan.api_workers, wanted)
        try:
            gateway.start_api(module)
            yield gateway
        finally:
            gateway.stop()

    @contextlib.contextmanager
    def observe(self, key: str, url: str, gateway: Gateway | None) -> Iterator[dict[str, Any]]:
        """CPU share of the whole machine and the queue sampler while the load runs; py-spy
        on the API and the first worker when asked for this phase."""
        seen: dict[str, Any] = {}
        spies = []
        if key in self.spy and gateway is not None:
            targets = [("api", gateway.api)] + [("worker", w) for w in gateway.workers[:1]]
            for what, proc in targets:
                if proc is not None:
                    out = self.dir(key) / f"spy-{what}.txt"
                    spies.append((what, out, _spy(proc.pid, out)))
        # The setup's writes (tenants, a rate card's 50,000 rows and their spans) flushed
        # before the window, so no phase measures another's checkpoint.
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CHECKPOINT")
        meter = CpuMeter(self.cluster.server.cluster / "postmaster.pid")
        wal = server_stats.wal(url)
        started = time.monotonic()
        meter.start()
        try:
            with measure.Sampler(url, waits=self.cluster.profile_sql) as sampler:
                yield seen
        except BaseException:
            for _, _, proc in spies:
                proc.kill()
                proc.wait(timeout=10)
            raise
        used = meter.stop()
        seen["seconds"] = time.monotonic() - started
        after = server_stats.wal(url)
        seen["wal"], seen["fpi"], seen["checkpoints"] = (
            a - b for a, b in zip(after, wal, strict=True)
        )
        seen["used"] = used
        seen["cpu"] = cpu_note(used, meter.api_processes)
        seen["backlog"] = sampler.samples
        seen["receipts"] = sampler.receipts
        if sampler.waits:
            total = sum(sampler.waits.values())
            shares = ", ".join(
                f"{name} {count / total:.0%}" for name, count in sampler.waits.most_common(8)
            )
            self.profiles.append(
                f"active backends by wait event, phase {key} ({total} samples at 10/s): {shares}"
            )
        for what, out, proc in spies:
            proc.send_signal(2)  # SIGINT: py-spy writes what it has
            proc.wait(timeout=60)
            summary = subprocess.run(
                [sys.executable, "-m", "ops.bench.spysummary", str(out), "--top", "20"],
                capture_output=True,
                text=True,
                check=False,
            )
            self.profiles.append(f"py-spy, phase {key}, {what}:\n{summary.stdout}")

    def chart(
        self,
        label: str,
        t0: float,
        t1: float,
        until: float,
        s: measure.Series,
        seen: dict[str, Any],
        latency_label: str = "all tenants",
    ) -> None:
        s.backlog = list(seen.get("backlog", []))
        self.charts.append(PhaseSeries(label, t0, t1, until, s, latency_label))


def _spy(pid: int, out: Path) -> subprocess.Popen[bytes]:
    beside = Path(sys.executable).with_name("py-spy")  # the venv's, when not on PATH
    return subprocess.Popen(
        [
            str(beside) if beside.exists() else "py-spy",
            "record",
            "-p",
            str(pid),
            "--subprocesses",
            "-r",
            "200",
            "-f",
            "raw",
            "-o",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def scratch_tables(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SCRATCH_SQL.read_text().encode())


def on_card(gw: Gateway, url: str, tenants: list[Any], workdir: Path) -> dict[str, float]:
    """The tenants on a 50,000-prefix rate card (ops/bench/rate_card.py) in place of
    their tier's flat price; the import and a dry run timed."""
    print("bench: importing the 50,000-prefix rate card ...", file=sys.stderr)
    return rate_card.install(gw.base, url, ADMIN, [t.id for t in tenants], workdir=workdir)


def http_ingest(
    bench: Bench,
    key: str,
    *,
    batch: bool,
    trivial: bool = False,
    alone: bool = False,
    card: bool = False,
) -> Outcome:
    """Ingest alone (no workers): single sends at 64 connections, or batches; the trivial
    endpoint in place of the gateway when ``trivial``; with ``alone``, each single send
    in an accept call of its own (SMSGW_ACCEPT_CALLS=0), the way before core/coalesce.py;
    with ``card``, the tenants priced by a 50,000-prefix rate card."""
    p = bench.plan
    figures: dict[str, float] = {}
    size = p.batch_size if batch else 1
    with bench.database(key) as url:
        if trivial:
            scratch_tables(url)
        module = "ops.bench.trivial" if trivial else "smsgw.cli"
        settings = {"SMSGW_ACCEPT_CALLS": "0"} if alone else None
        with bench.gateway(url, key, module, settings) as gw:
            if trivial:
                keys = bench.dir(key) / "keys"
                keys.write_text("unused\n")
            else:
                count = p.batch_tenants if batch else p.single_tenants
                tenants = gw.tenants(count, prefix=key)
                if card:
                    figures.update(on_card(gw, url, tenants, bench.dir(key)))
                keys = keys_file(bench.dir(key) / "keys", tenants)
            path = "/v1/messages/batch" if batch else "/v1/messages"
            with bench.observe(key, url, gw) as seen:
                t0 = time.time()
                proc = load.start_wrk(
                    url=gw.base + path,
                    keys=keys,
                    body=json_body(size, spread=p.spread_numbers),
                    connections=p.batch_connections if batch else p.connections,
                    seconds=p.ingest_seconds,
                    workdir=bench.dir(key),
                    tag=key,
                    reconnect=batch,
                )
                result = load.wrk_result(proc)
                t1 = time.time()
        table = "bench_scratch.trivial_messages" if trivial else "messages"
        s = measure.series(url, t0, t1 + 1, table=table)
        stored = sum(s.accepted)
    ok = (result.requests - result.status_errors) * size
    label = "trivial endpoint" if trivial else ("batch ingest" if batch else "single ingest")
    label += ", a call per send" if alone else ""
    label += ", 50,000-prefix card" if card else ""
    bench.chart(label, t0, t1, t1, s, seen)
    notes = [
        f"{result.requests} requests",
        f"rows stored {stored}",
        seen["cpu"],
        per_message(seen, stored),
    ]
    if result.status_errors or result.socket_errors:
        notes.append(f"errors: {result.status_errors} HTTP >= 400, {result.socket_errors} socket")
    return Outcome(
        figures={
            "rate": ok / result.seconds,
            "p50_ms": result.p50_ms,
            "p99_ms": result.p99_ms,
            **figures,
        },
        notes=notes,
    )
