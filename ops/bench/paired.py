"""Single ingest against the trivial endpoint, interleaved: the ratio the issue asks for,
measured so that the machine's drift does not decide it.

The `trivial` and `single` phases run one after the other, 30 s each, and on this shared
machine the speed of both can move by a fifth between them: the trivial endpoint alone
measured 4,867-6,451 msg/s in three runs of one hour. Here both servers stay up on one
database (each idle while the other is loaded) and wrk alternates between them in short
slices, in the order T S S T T S S T T S, so a drift in time weighs on both alike. Each
adjacent pair gives a ratio; the figure is their median. Five pairs, not three: single
pairs of one run ranged 0.78-0.99 on this machine, and a median of three moved with one
of them. A 3 s slice of each goes first, uncounted:
the first seconds of either fill its pool and, for the gateway, its cache of keys.
"""

from __future__ import annotations

import statistics

from ops.bench import load
from ops.bench.bodies import json_body
from ops.bench.phases import Bench, Outcome, scratch_tables
from ops.bench.system import Gateway, keys_file

ORDER = "TSSTTSSTTS"  # five adjacent pairs: (T S) (S T) (T S) (S T) (T S)
SLICE_SECONDS = 10.0
WARM_UP_SECONDS = 3.0


def interleaved(bench: Bench, key: str) -> Outcome:
    seconds = 5.0 if bench.plan.quick else SLICE_SECONDS
    with bench.database(key) as url:
        scratch_tables(url)
        with (
            bench.gateway(url, f"{key}_trivial", "ops.bench.trivial") as trivial,
            bench.gateway(url, key) as gateway,
        ):
            slices = _alternate(bench, key, trivial.base, gateway, seconds)
    rates = {w: [r for which, r, _ in slices if which == w] for w in "TS"}
    ratios = [s / t for s, t in zip(rates["S"], rates["T"], strict=True)]
    return Outcome(
        figures={
            "ratio": statistics.median(ratios),
            "single_rate": statistics.median(rates["S"]),
            "trivial_rate": statistics.median(rates["T"]),
            "single_p99_ms": statistics.median(p for w, _, p in slices if w == "S"),
        },
        notes=[
            f"{len(ORDER)} slices of {seconds:g} s, in the order {ORDER}",
            "single msg/s " + ", ".join(f"{r:,.0f}" for r in rates["S"]),
            "trivial msg/s " + ", ".join(f"{r:,.0f}" for r in rates["T"]),
            "pair ratios " + ", ".join(f"{r:.2f}" for r in ratios),
        ],
    )


def _alternate(
    bench: Bench, key: str, trivial_base: str, gateway: Gateway, seconds: float
) -> list[tuple[str, float, float]]:
    """(endpoint, msg/s, p99 ms) per slice, in ORDER."""
    workdir = bench.dir(key)
    unused = workdir / "trivial-keys"
    unused.write_text("unused\n")
    tenants = gateway.tenants(bench.plan.single_tenants, prefix=key)
    keys = {"T": unused, "S": keys_file(workdir / "keys", tenants)}
    bases = {"T": trivial_base, "S": gateway.base}
    slices = []
    # A warm-up slice of each first (pools filled, keys cached), not counted.
    for n, which in enumerate("TS" + ORDER):
        proc = load.start_wrk(
            url=bases[which] + "/v1/messages",
            keys=keys[which],
            body=json_body(1),
            connections=bench.plan.connections,
            seconds=seconds if n >= 2 else WARM_UP_SECONDS,
            workdir=workdir,
            tag=f"{key}-{n}",
        )
        result = load.wrk_result(proc)
        if result.status_errors or result.socket_errors:
            raise RuntimeError(
                f"slice {n} ({which}): {result.status_errors} HTTP >= 400,"
                f" {result.socket_errors} socket errors"
            )
        slices.append((which, result.requests / result.seconds, result.p99_ms))
    return slices[2:]
