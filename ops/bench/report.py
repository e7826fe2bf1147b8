"""The one table: every figure of the run beside its target from issue 6 (Targets), with
pass or FAIL, under a header giving the exact parameters."""

from __future__ import annotations

import math
import operator
import os
from collections.abc import Callable
from functools import partial

from ops.bench.phases import Outcome, Plan

PEAK = 11_570  # msg/s: 100M messages a day at ten times the average
SINGLE_INGEST = 2_500
SINGLE_RATIO = 0.9
SINGLE_P99_MS = 50.0
BATCH_INGEST = 25_000
E2E_SINGLE = 2_500
E2E_SINGLE_P99 = 1.0
LATENCY_RATIO = 0.9
BASELINE_MULTIPLE = 4.0
FAIR_P99 = 1.0
GROWTH_RATIO = 0.9
SMPP_BATCH = 9_500  # msg/s delivered through an SMPP upstream (issue 22)
CALLBACKS_RATIO = 0.8  # delivered msg/s with status callbacks on, to without (issue 22)
# Issue 23: priced by a 50,000-prefix card, within 5% of the flat price; a card's import
# and its dry run each under 5 s.
CARD_RATIO = 0.95
CARD_SECONDS = 5.0


def header(
    plan: Plan,
    *,
    commit: str,
    postgres: str,
    wrk: str,
    load_before: tuple[float, float, float],
    load_after: tuple[float, float, float],
    minutes: float,
    settings: dict[str, str] | None = None,
) -> list[str]:
    p = plan
    kind = "QUICK (smoke test)" if p.quick else "full"
    cpus = os.cpu_count()

    def loads(v: tuple[float, float, float]) -> str:
        return " ".join(f"{x:.2f}" for x in v)

    return [
        f"smsgw benchmark, {kind} run, {minutes:.1f} min; code: commit {commit},"
        " copied at the start of the run",
        f"machine: {cpus} cores; load average before {loads(load_before)},"
        f" after {loads(load_after)}",
        f"PostgreSQL {postgres}, embedded (smsgw/embedded.py settings); a fresh database per"
        " phase, cloned from one migrated template",
        f"API: `smsgw api` under granian, {p.api_workers} process(es); delivery:"
        f" {p.workers} x `smsgw worker` (all queues, {_defaults(settings)}); simulator receipts"
        ' after 1 s, applied as they arrive (rows marked "receipts held back": DLR delay'
        " 3600 s, stored in the inbox, not applied during the phase);"
        " tenants tier standard, no rate limit",
        f"load: wrk {wrk} (-t2, keep-alive) at {p.connections} connections for single sends,"
        f" {p.batch_connections} for batches of {p.batch_size:,} (a connection per batch;"
        f" {'numbers spread over the US' if p.spread_numbers else 'one number'});"
        " python loadgen for e2e batch"
        f" ({p.batch_inflight} in flight, paused while the queue >= {p.backlog_cap:,});"
        f" pgbench -c{p.connections} -j2 -M prepared",
        f"phases: ceilings and ingest {p.ingest_seconds:g} s, e2e {p.e2e_seconds:g} s then"
        f" drain (<= {p.drain_seconds:g} s), baseline <= {p.baseline_seconds:g} s"
        f" ({p.baseline_jobs:,} jobs), fairness {p.fairness_seconds:g} s"
        f" ({p.small_rate:g} msg/s behind {p.fairness_backlog:,}),"
        f" growth {p.growth_rows:,} rows over {p.growth_days} days;"
        f" tenants: {p.single_tenants} (single), {p.batch_tenants} (batch)",
    ]


def _defaults(settings: dict[str, str] | None) -> str:
    if not settings:
        return "product defaults"
    return "product defaults but " + ", ".join(f"{k}={v}" for k, v in sorted(settings.items()))


def _n(v: float) -> str:
    return f"{v:,.0f}"


def _s(v: float) -> str:
    return "never" if math.isinf(v) else ("n/a" if math.isnan(v) else f"{v:.3f} s")


def _pair(p50: float | None, p99: float) -> str:
    return f"{_s(p50 if p50 is not None else math.nan)} / {_s(p99)}"


def _import_and_dry_run(dry_run: float | None, seconds: float) -> str:
    return f"{seconds:.2f} / {dry_run if dry_run is not None else math.nan:.2f}"


def _both_under(dry_run: float | None, seconds: float) -> bool:
    return seconds < CARD_SECONDS and dry_run is not None and dry_run < CARD_SECONDS


def table(head: list[str], plan: Plan, o: dict[str, Outcome]) -> str:
    rows: list[tuple[str, str, str, str, str]] = []

    def fig(key: str, name: str) -> float | None:
        outcome = o.get(key)
        if outcome is None or outcome.error is not None:
            return None
        return outcome.figures.get(name)

    def row(
        label: str,
        value: float | None,
        shown: Callable[[float], str],
        target: str = "",
        ok: Callable[[float], bool] | None = None,
        notes: str = "",
    ) -> None:
        if value is None:
            rows.append((label, "-", target, "" if ok is None else "n/a", notes))
            return
        verdict = "" if ok is None else ("pass" if ok(value) else "FAIL")
        rows.append((label, shown(value), target, verdict, notes))

    def phase(key: str, title: str) -> bool:
        outcome = o.get(key)
        if outcome is None:
            return False
        notes = outcome.error or "; ".join(outcome.notes)
        rows.append((title, "", "", "ERROR" if outcome.error else "", notes))
        return outcome.error is None

    def ratio(a: float | None, b: float | None) -> float | None:
        return a / b if a is not None and b else None

    single = fig("single", "rate")
    trivial = fig("trivial", "rate")
    pgbench = fig("pgbench", "rate")
    e2e_batch = fig("e2e_batch_0", "rate")
    e2e_single = fig("e2e_single_0", "rate")
    base = fig("baseline", "rate")

    if phase("pgbench", f"ceiling: pgbench hold+insert, {plan.connections} clients"):
        row("  transactions/s", pgbench, _n)
        row(
            "  latency p50 / p99 (ms)",
            fig("pgbench", "p99_ms"),
            lambda v: f"{fig('pgbench', 'p50_ms') or 0:.1f} / {v:.1f}",
        )
    accept_call = fig("pgbench_accept", "rate")
    if phase(
        "pgbench_accept",
        f"ceiling: pgbench smsgw_accept_one_v4 (no API), {plan.connections} clients",
    ):
        row("  transactions/s", accept_call, _n)
        row(
            "  latency p50 / p99 (ms)",
            fig("pgbench_accept", "p99_ms"),
            lambda v: f"{fig('pgbench_accept', 'p50_ms') or 0:.1f} / {v:.1f}",
        )
    if phase("trivial", f"ceiling: trivial Litestar INSERT, {plan.connections} connections"):
        row("  msg/s", trivial, _n)
        row(
            "  latency p50 / p99 (ms)",
            fig("trivial", "p99_ms"),
            lambda v: f"{fig('trivial', 'p50_ms') or 0:.1f} / {v:.1f}",
        )
    if phase("single", f"ingest: POST /v1/messages, {plan.connections} connections"):
        row("  msg/s", single, _n, f">= {SINGLE_INGEST:,}", lambda v: v >= SINGLE_INGEST)
        row(
            "  latency p50 / p99 (ms)",
            fig("single", "p99_ms"),
            lambda v: f"{fig('single', 'p50_ms') or 0:.1f} / {v:.1f}",
            f"p99 <= {SINGLE_P99_MS:g} ms",
            lambda v: v <= SINGLE_P99_MS,
        )
        row(
            "  ratio to the trivial endpoint",
            ratio(single, trivial),
            lambda v: f"{v:.2f}",
            f">= {SINGLE_RATIO}",
            lambda v: v >= SINGLE_RATIO,
        )
        row("  ratio to pgbench", ratio(single, pgbench), lambda v: f"{v:.2f}")
        row("  ratio to pgbench accept_one", ratio(single, accept_call), lambda v: f"{v:.2f}")
    if phase("single_pair", "ingest: the same against the trivial endpoint, interleaved"):
        row("  single msg/s, median", fig("single_pair", "single_rate"), _n)
        row("  trivial msg/s, median", fig("single_pair", "trivial_rate"), _n)
        row(
            "  single p99 (ms), median",
            fig("single_pair", "single_p99_ms"),
            lambda v: f"{v:.1f}",
            f"p99 <= {SINGLE_P99_MS:g} ms",
            lambda v: v <= SINGLE_P99_MS,
        )
        row(
            "  ratio, median of the pairs",
            fig("single_pair", "ratio"),
            lambda v: f"{v:.2f}",
            f">= {SINGLE_RATIO}",
            lambda v: v >= SINGLE_RATIO,
        )
    alone = fig("single_alone", "rate")
    if phase("single_alone", "ingest: the same, each send in an accept call of its own"):
        row("  msg/s", alone, _n)
        row(
            "  latency p50 / p99 (ms)",
            fig("single_alone", "p99_ms"),
            lambda v: f"{fig('single_alone', 'p50_ms') or 0:.1f} / {v:.1f}",
        )
        row("  coalesced sends as a multiple of it", ratio(single, alone), lambda v: f"{v:.2f}x")
    if phase("batch", f"ingest: POST /v1/messages/batch, {plan.batch_size:,} per request"):
        row(
            "  msg/s", fig("batch", "rate"), _n, f">= {BATCH_INGEST:,}", lambda v: v >= BATCH_INGEST
        )
        row(
            "  request latency p50 / p99 (ms)",
            fig("batch", "p99_ms"),
            lambda v: f"{fig('batch', 'p50_ms') or 0:.0f} / {v:.0f}",
        )
    for key, title, target_rate, p99_target in (
        ("e2e_batch_0", "e2e: batch ingest + delivery, simulator 0 ms", PEAK, None),
        (
            "e2e_batch_0_held",
            "e2e: the same, receipts held back (accept -> sent only)",
            None,
            None,
        ),
        (
            "e2e_batch_0_callbacks",
            "e2e: batch 0 ms with a status callback per change (loopback receiver)",
            None,
            None,
        ),
        ("e2e_batch_50", "e2e: batch ingest + delivery, simulator 50 ms", None, None),
        (
            "e2e_single_0",
            "e2e: single sends + delivery, simulator 0 ms",
            E2E_SINGLE,
            E2E_SINGLE_P99,
        ),
        (
            "e2e_single_0_held",
            "e2e: the same, receipts held back (accept -> sent only)",
            None,
            E2E_SINGLE_P99,
        ),
        (
            "e2e_single_50",
            "e2e: single sends + delivery, simulator 50 ms",
            E2E_SINGLE,
            E2E_SINGLE_P99,
        ),
        (
            "e2e_batch_smpp",
            "e2e: batch through SMPP (the tests' SMSC on loopback, answering at once)",
            SMPP_BATCH,
            None,
        ),
        (
            "e2e_single_smpp",
            "e2e: single sends through SMPP (the same SMSC)",
            None,
            None,
        ),
    ):
        if not phase(key, title):
            continue
        rate = fig(key, "rate")
        delivered = fig(key, "delivered_rate")
        if target_rate is not None and key.startswith("e2e_single"):
            row("  sent msg/s", rate, _n, f">= {target_rate:,}", partial(operator.le, target_rate))
        else:
            row("  sent msg/s", rate, _n)
        if delivered is not None:
            # The peak holds for a message's whole life: its receipt applied, not its send.
            if target_rate is not None and key in ("e2e_batch_0", "e2e_batch_smpp"):
                row(
                    "  delivered msg/s (receipt applied)",
                    delivered,
                    _n,
                    f">= {target_rate:,}",
                    partial(operator.le, target_rate),
                )
            else:
                row("  delivered msg/s (receipt applied)", delivered, _n)
        if key == "e2e_batch_50":
            row(
                "  ratio to 0 ms",
                ratio(rate, e2e_batch),
                lambda v: f"{v:.2f}",
                f">= {LATENCY_RATIO}",
                lambda v: v >= LATENCY_RATIO,
            )
        if key == "e2e_batch_0_callbacks":
            row(
                "  delivered msg/s, ratio to no callbacks",
                ratio(delivered, fig("e2e_batch_0", "delivered_rate")),
                lambda v: f"{v:.2f}",
                f">= {CALLBACKS_RATIO}",
                lambda v: v >= CALLBACKS_RATIO,
            )
            row("  callbacks delivered /s", fig(key, "callbacks_rate"), _n)
        if key == "e2e_single_50":
            row("  ratio to 0 ms", ratio(rate, e2e_single), lambda v: f"{v:.2f}")
        pair = partial(_pair, fig(key, "p50"))
        if p99_target is not None:
            row(
                "  accept-to-sent p50 / p99",
                fig(key, "p99"),
                pair,
                f"p99 <= {p99_target:g} s",
                partial(operator.ge, p99_target),
            )
        else:
            row("  accept-to-sent p50 / p99", fig(key, "p99"), pair)
        if delivered is not None:
            row(
                "  accept-to-delivered p50 / p99",
                fig(key, "life_p99"),
                partial(_pair, fig(key, "life_p50")),
            )
            row("  receipts due at the window's end", fig(key, "receipts_due"), _n)
        violations = fig(key, "ledger_violations")
        if violations is not None:
            row("  ledger invariant violations", violations, _n, "0", lambda v: v == 0)
    # Issue 23: the same load priced by a 50,000-prefix rate card, beside the flat price.
    for card_key, flat_key, title in (
        ("single_card", "single", "ingest: single sends, 50,000-prefix rate card"),
        ("batch_card", "batch", "ingest: batches, 50,000-prefix rate card"),
        ("e2e_batch_0_card", "e2e_batch_0", "e2e: batch, 0 ms, 50,000-prefix rate card"),
        ("e2e_single_0_card", "e2e_single_0", "e2e: single, 0 ms, 50,000-prefix rate card"),
    ):
        if not phase(card_key, title):
            continue
        rate = fig(card_key, "rate")
        row("  msg/s", rate, _n)
        row(
            "  ratio to the flat price",
            ratio(rate, fig(flat_key, "rate")),
            lambda v: f"{v:.3f}",
            f">= {CARD_RATIO}",
            lambda v: v >= CARD_RATIO,
        )
        dry_run = fig(card_key, "card_dry_run_seconds")
        row(
            "  card import / dry run (s)",
            fig(card_key, "card_import_seconds"),
            partial(_import_and_dry_run, dry_run),
            f"each < {CARD_SECONDS:g} s",
            partial(_both_under, dry_run),
        )
    if phase("baseline", "baseline: one procrastinate job per message, 1 worker"):
        row("  msg/s", base, _n)
        row(
            "  e2e batch 0 ms as a multiple",
            ratio(e2e_batch, base),
            lambda v: f"{v:.1f}x",
            f">= {BASELINE_MULTIPLE:g}x",
            lambda v: v >= BASELINE_MULTIPLE,
        )
        row("  e2e single 0 ms as a multiple", ratio(e2e_single, base), lambda v: f"{v:.1f}x")
    if phase("fairness", f"fairness: small tenant behind a {plan.fairness_backlog:,} backlog"):
        p99 = fig("fairness", "p99")
        row(
            "  small tenant accept-to-sent p50 / p99",
            p99,
            lambda v: f"{_s(fig('fairness', 'p50') or math.nan)} / {_s(v)}",
            f"p99 <= {FAIR_P99:g} s",
            lambda v: v <= FAIR_P99,
        )
    if phase("growth", f"growth: e2e batch 0 ms over {plan.growth_rows:,} historic messages"):
        rate = fig("growth", "rate")
        row("  sent msg/s", rate, _n)
        row(
            "  ratio to the empty table",
            ratio(rate, e2e_batch),
            lambda v: f"{v:.2f}",
            f">= {GROWTH_RATIO}",
            lambda v: v >= GROWTH_RATIO,
        )
        row("  accept-to-sent p99", fig("growth", "p99"), _s)

    widths = [max(len(r[i]) for r in rows) if rows else 10 for i in range(4)]
    widths = [
        max(w, len(h))
        for w, h in zip(widths, ("figure", "measured", "target", "result"), strict=True)
    ]
    line = "-" * (sum(widths) + 8 + 40)
    lines = [*head, line]
    names = ("figure", "measured", "target", "result")
    lines.append("  ".join(n.ljust(w) for n, w in zip(names, widths, strict=True)) + "  notes")
    lines.append(line)
    for r in rows:
        lines.append(
            "  ".join(v.ljust(w) for v, w in zip(r[:4], widths, strict=True)) + "  " + r[4]
        )
    lines.append(line)
    return "\n".join(lines)
