"""The end-to-end phases of ops/bench/run.py: ingest and delivery at once, a message's
whole life (its receipt applied, its callbacks sent), through the simulator or an SMPP
upstream; their loopback peers (a callback receiver, the tests' SMSC)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx

from ops.bench import history, load, measure
from ops.bench.bodies import json_body
from ops.bench.e2e import upstream_peer
from ops.bench.phases import Bench, Outcome, on_card
from ops.bench.server_stats import per_message
from ops.bench.system import (
    ADMIN,
    HELD_BACK,
    RECEIPTS_AFTER,
    Gateway,
    keys_file,
)
from smsgw.processes import free_port, stop, wait_http


@contextlib.contextmanager
def callback_receiver(bench: Bench, key: str) -> Iterator[str]:
    """A loopback endpoint answering 200 at once (ops/bench/receiver.py); yields the URL
    to put on every message."""
    port = free_port()
    log = (bench.dir(key) / "receiver.log").open("ab")
    proc = subprocess.Popen(
        load.asgi_peer("ops.bench.receiver:app", port),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(base, watch=[proc], any_answer=True)
        yield f"{base}/callbacks"
    finally:
        stop(proc, timeout=30)
        log.close()


def use_provider(gw: Gateway, body: dict[str, Any] | None) -> None:
    """Every destination routed to ``body``'s provider, named "bench"."""
    if body is None:
        return
    admin = {"Authorization": f"Bearer {ADMIN}"}
    with httpx.Client(base_url=gw.base, headers=admin, timeout=30) as client:
        client.put("/v1/admin/providers/bench", json=body).raise_for_status()
        client.post(
            "/v1/admin/routes", json={"prefix": "+", "provider": "bench"}
        ).raise_for_status()


def end_to_end(
    bench: Bench,
    key: str,
    *,
    batch: bool,
    latency_ms: float,
    history_rows: int = 0,
    receipts: bool = True,
    callbacks: bool = False,
    provider: str = "simulator",
    card: bool = False,
) -> Outcome:
    """Ingest and delivery at once for e2e_seconds, then the drain: sent msg/s in the
    window and accept-to-sent of every message accepted in it. With ``receipts`` (the
    whole life), the simulator's receipts come back after 1 s and are applied as they
    arrive: delivered msg/s in the same window, accept-to-delivered, the receipts left
    due; the phase (and its CPU and WAL) lasts until every receipt is applied. Without,
    they are held back (accept -> sent only). With ``callbacks``, every message has a
    callback_url on a loopback receiver, and the phase lasts until they are delivered.
    With ``provider`` "smpp", every message goes through the SMPP adapter to the tests'
    SMSC on loopback (tests/providers/smsc.py, window 50), which answers at once and
    sends each receipt as a deliver_sm 1 s later. ``card``: the tenants priced by a
    50,000-prefix rate card."""
    p = bench.plan
    out = Outcome()
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(bench.database(key))
        gw = stack.enter_context(bench.gateway(url, key))
        hook = stack.enter_context(callback_receiver(bench, key)) if callbacks else None
        if provider != "simulator":
            peer = upstream_peer(provider, gw.base, receipt_delay=RECEIPTS_AFTER)
            use_provider(gw, stack.enter_context(peer))
        tenants = gw.tenants(p.batch_tenants if batch else p.single_tenants, prefix=key)
        if card:
            out.figures.update(on_card(gw, url, tenants, bench.dir(key)))
        keys = keys_file(bench.dir(key) / "keys", tenants)
        if history_rows:
            print(f"bench: loading {history_rows:,} historic messages ...", file=sys.stderr)
            took = history.load(
                url, rows=history_rows, days=p.growth_days, tenants=[t.id for t in tenants]
            )
            out.figures["history_seconds"] = took
            out.notes.append(f"history loaded in {took:.0f} s")
        gw.start_workers(
            p.workers,
            latency_ms=latency_ms,
            receipts_after=RECEIPTS_AFTER if receipts else HELD_BACK,
        )
        with bench.observe(key, url, gw) as seen:
            t0 = time.time()
            if batch:
                args = [
                    "batch",
                    "--url",
                    gw.base,
                    "--keys",
                    str(keys),
                    "--seconds",
                    str(p.e2e_seconds),
                    "--inflight",
                    str(p.batch_inflight),
                    "--size",
                    str(p.batch_size),
                    "--max-backlog",
                    str(p.backlog_cap),
                    "--db-url",
                    url,
                ]
                if hook is not None:
                    args += ["--callback-url", hook]
                gen = load.start_loadgen(args, bench.dir(key) / "loadgen.log")
                made = load.loadgen_result(gen, timeout=p.e2e_seconds + 300)
                errors = made["requests"] - made.get("status_202", 0)
            else:
                proc = load.start_wrk(
                    url=gw.base + "/v1/messages",
                    keys=keys,
                    body=json_body(1, hook),
                    connections=p.connections,
                    seconds=p.e2e_seconds,
                    workdir=bench.dir(key),
                    tag=key,
                )
                result = load.wrk_result(proc)
                errors = result.status_errors + result.socket_errors
                out.notes.append(f"ingest p50/p99 {result.p50_ms:.1f}/{result.p99_ms:.1f} ms")
            t1 = time.time()
            done = measure.drain(url, t0, t1, timeout=p.drain_seconds)
            due_at_end = measure.receipts_due(url) if receipts else 0
            settled = (
                measure.settle(url, t0, t1, p.drain_seconds, callbacks=callbacks)
                if receipts
                else done
            )
        w = measure.window(url, t0, t1)
        lat = measure.latency(url, t0, t1)
        life = measure.latency(url, t0, t1, until="delivered") if receipts else None
        hooks = measure.callbacks(url, t0, t1) if callbacks else None
        s = measure.series(url, t0 - 2, settled + 1)
        if not history_rows:  # over 10M rows the check alone takes minutes
            out.figures["ledger_violations"] = measure.ledger_violations(url)
    depth = [d for t, d in seen["backlog"] if t <= t1]
    out.figures.update(
        rate=w.sent_rate,
        accepted_rate=w.accepted_rate,
        p50=lat.p50,
        p99=lat.p99,
        max=lat.max,
        unsent=lat.unsent,
        drain=done - t1,
    )
    out.notes += [
        f"accepted {w.accepted_rate:,.0f}/s",
        f"queue at end {depth[-1] if depth else 0:,}",
        f"drained in {done - t1:.1f} s" + (f", {lat.unsent} never sent" if lat.unsent else ""),
    ]
    if life is not None:
        due = [d for t, d in seen.get("receipts", []) if t <= t1]
        out.figures.update(
            delivered_rate=w.delivered_rate,
            life_p50=life.p50,
            life_p99=life.p99,
            undelivered=life.unsent,
            receipts_due=due_at_end,
            settle=settled - t1,
        )
        out.notes.append(
            f"receipts due at the window's end {due_at_end:,} (most in it {max(due, default=0):,});"
            f" every receipt applied {settled - t1:.1f} s after it"
            + (f", {life.unsent} messages never delivered" if life.unsent else "")
        )
    if hooks is not None:
        out.figures.update(callbacks_rate=hooks.rate(w.seconds), callbacks_left=hooks.left)
        out.notes.append(
            f"callbacks {hooks.made:,} made ({hooks.made / max(1, lat.messages):.1f} a message),"
            f" {hooks.delivered / w.seconds:,.0f}/s delivered in the window, {hooks.left:,} left"
        )
    # Per message of the window: its whole life when the phase waited for every receipt.
    out.notes += [seen["cpu"], per_message(seen, lat.messages if receipts else w.sent)]
    if errors:
        out.notes.append(f"{errors} failed requests")
    label = f"e2e {'batch' if batch else 'single'} {latency_ms:g} ms"
    label += "" if receipts else " held"
    label += " +callbacks" if callbacks else ""
    label += f" {provider}" if provider != "simulator" else ""
    label += " +history" if history_rows else ""
    label += ", 50,000-prefix card" if card else ""
    bench.chart(label, t0, t1, settled, s, seen)
    return out
