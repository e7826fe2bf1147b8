"""The phases that compare: one procrastinate job per message (the baseline our end-to-end
figure is a multiple of), and fairness (a small tenant sends a few single messages a
second while a large tenant of the same tier holds a backlog, 100,000 messages by
default, that its load generator keeps topped up the whole time; the small tenant's
accept-to-sent is the figure).
"""

from __future__ import annotations

import subprocess
import sys
import time

import psycopg

from ops.bench import load, measure
from ops.bench.phases import Bench, Outcome
from ops.bench.server_stats import per_message
from ops.bench.system import gateway_env, keys_file
from smsgw.processes import stop


def _backlog(url: str, tenant: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(measure.DEPTH_SQL, {"tenant": tenant}).fetchone()
    return int(row[0]) if row else 0


def fairness(bench: Bench, key: str) -> Outcome:
    p = bench.plan
    out = Outcome()
    with bench.database(key) as url, bench.gateway(url, key) as gw:
        large, small = gw.tenants(2, prefix=key)
        large_keys = keys_file(bench.dir(key) / "large-keys", [large])
        small_keys = keys_file(bench.dir(key) / "small-keys", [small])
        feeder = load.start_loadgen(
            [
                "batch",
                "--url",
                gw.base,
                "--keys",
                str(large_keys),
                "--seconds",
                "3600",
                "--inflight",
                str(p.batch_inflight),
                "--size",
                str(p.batch_size),
                "--max-backlog",
                str(p.fairness_backlog),
                "--db-url",
                url,
                "--tenant",
                large.id,
                "--poll",
                "0.5",
            ],
            bench.dir(key) / "feeder.log",
        )
        try:
            deadline = time.monotonic() + 300
            while _backlog(url, large.id) < p.fairness_backlog:
                if feeder.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the large tenant's backlog could not be built")
                time.sleep(0.5)
            gw.start_workers(p.workers, latency_ms=0)
            with bench.observe(key, url, gw) as seen:
                t0 = time.time()
                sender = load.start_loadgen(
                    [
                        "paced",
                        "--url",
                        gw.base,
                        "--keys",
                        str(small_keys),
                        "--seconds",
                        str(p.fairness_seconds),
                        "--rate",
                        str(p.small_rate),
                    ],
                    bench.dir(key) / "small.log",
                )
                made = load.loadgen_result(sender, timeout=p.fairness_seconds + 120)
                t1 = time.time()
                large_left = _backlog(url, large.id)
                done = measure.drain(url, t0, t1, timeout=p.drain_seconds, tenants=[small.id])
        finally:
            stop(feeder)
        lat = measure.latency(url, t0, t1, tenants=[small.id])
        big = measure.window(url, t0, t1, tenants=[large.id])
        s = measure.series(url, t0 - 2, done + 1, latency_tenants=[small.id])
    depth = [d for t, d in seen["backlog"] if t0 <= t <= t1]
    out.figures.update(p50=lat.p50, p99=lat.p99, max=lat.max, messages=lat.messages)
    out.notes += [
        f"small tenant: {lat.messages} messages, max {lat.max:.2f} s"
        + (f", {lat.unsent} never sent" if lat.unsent else ""),
        f"large tenant sent {big.sent_rate:,.0f}/s",
        f"queue {min(depth, default=0):,}..{max(depth, default=0):,} (end {large_left:,})",
        seen["cpu"],
        per_message(seen, big.sent + lat.messages),
    ]
    failed = made["requests"] - made.get("status_202", 0)
    if failed:
        out.notes.append(f"{failed} small-tenant requests failed")
    bench.chart("fairness (small p99)", t0, t1, done, s, seen, latency_label="small tenant only")
    return out


def baseline(bench: Bench, key: str) -> Outcome:
    """One procrastinate job per message, drained by one worker process."""
    p = bench.plan
    with bench.database(key) as url, bench.gateway(url, key) as gw:
        keys = keys_file(bench.dir(key) / "keys", gw.tenants(1, prefix=key))
        gen = load.start_loadgen(
            [
                "batch",
                "--url",
                gw.base,
                "--keys",
                str(keys),
                "--seconds",
                "600",
                "--total",
                str(p.baseline_jobs),
                "--size",
                str(p.batch_size),
            ],
            bench.dir(key) / "loadgen.log",
        )
        load.loadgen_result(gen, timeout=900)
        env = gateway_env(url, latency_ms=0)
        deferred = subprocess.run(
            [sys.executable, "-m", "ops.bench.baseline", "defer", "--count", str(p.baseline_jobs)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        log = (bench.dir(key) / "worker.log").open("ab")
        worker = None
        try:
            with bench.observe(key, url, None) as seen:
                t0 = time.time()
                worker = subprocess.Popen(
                    [sys.executable, "-m", "ops.bench.baseline", "worker"],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
                sent = _wait_sent(url, int(deferred), t0 + p.baseline_seconds)
                t1 = time.time()
        finally:
            if worker is not None:
                stop(worker)
            log.close()
        first, last = _sent_span(url)
        # Accept-to-sent here is mostly time spent waiting for the worker: not charted.
        s = measure.series(url, t0, t1 + 1, latency_tenants=[])
    # From the worker's start (its start-up is part of the cost) to the last job done.
    elapsed = (last if sent >= int(deferred) else t1) - t0
    bench.chart("baseline job/msg", t0, t1, t1, s, seen)
    return Outcome(
        figures={"rate": sent / elapsed},
        notes=[
            f"{sent:,} of {int(deferred):,} jobs done in {elapsed:.1f} s",
            f"first sent {first - t0:.1f} s after start",
            seen["cpu"],
            per_message(seen, sent),
        ],
    )


def _wait_sent(url: str, expected: int, deadline: float) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        while True:
            row = conn.execute("SELECT count(*) FROM messages WHERE status = 'sent'").fetchone()
            sent = int(row[0]) if row else 0
            if sent >= expected or time.time() >= deadline:
                return sent
            time.sleep(0.2)


def _sent_span(url: str) -> tuple[float, float]:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT extract(epoch FROM min(sent_at))::float8,"
            "       extract(epoch FROM max(sent_at))::float8"
            "  FROM messages WHERE status = 'sent'"
        ).fetchone()
    assert row is not None
    return float(row[0] or 0), float(row[1] or 0)
