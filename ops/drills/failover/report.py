"""What the run showed: what the new primary holds, and the table the drill prints."""

from __future__ import annotations

import time
from contextlib import suppress
from typing import Any

import httpx
import psycopg

from ops.drills.failover.drill import Timeline
from ops.drills.failover.gateway import Gateway
from ops.drills.failover.senders import Attempt, Load


def recovery(load: Load) -> tuple[Attempt, Attempt] | None:
    """The first failed attempt, and the first 202 that ended after it."""
    failures = [a for a in load.attempts if a.outcome != "202"]
    if not failures:
        return None
    first = min(failures, key=lambda a: a.ended)
    after = [a for a in load.attempts if a.outcome == "202" and a.ended > first.ended]
    return (first, min(after, key=lambda a: a.ended)) if after else None


def verify(url: str, load: Load, timeout: float = 120) -> dict[str, Any]:
    """What the new primary holds, once the worker has had time to send everything."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as conn:
        while True:
            pending = conn.execute(
                "SELECT count(*) FROM messages WHERE status IN ('queued', 'sending')"
            ).fetchone()
            if (pending is not None and pending[0] == 0) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        ids = list(load.accepted)
        found = conn.execute("SELECT count(*) FROM messages WHERE id = ANY(%s::uuid[])", (ids,))
        statuses = conn.execute(
            "SELECT status, count(*) FROM messages GROUP BY status ORDER BY 2 DESC"
        ).fetchall()
        port = conn.execute("SELECT inet_server_port()").fetchone()
        problems = conn.execute("SELECT * FROM smsgw_ledger_violations_v1()").fetchall()
        found_row = found.fetchone()
    return {
        "found": found_row[0] if found_row else 0,
        "total": sum(n for _, n in statuses),
        "statuses": ", ".join(f"{s} {n}" for s, n in statuses),
        "port": port[0] if port else None,
        "violations": len(problems),
    }


def report(
    load: Load, timeline: Timeline, held: dict[str, Any], gateway: Gateway
) -> list[tuple[str, str]]:
    since = timeline.killed
    seen = recovery(load)
    end = seen[1].ended if seen else float("inf")
    window = [a for a in load.attempts if a.ended >= since and a.started <= end]
    failures = [a for a in load.attempts if a.outcome != "202"]
    outcomes: dict[str, list[float]] = {}
    for attempt in window:
        label = attempt.outcome
        if label.startswith("503"):
            label += f" Retry-After: {attempt.retry_after}" if attempt.retry_after else " (none)"
        outcomes.setdefault(label, []).append(attempt.ended - attempt.started)
    answers = "; ".join(
        f"{label} x{len(took)} ({min(took):.2f}-{max(took):.2f} s)"
        for label, took in sorted(outcomes.items(), key=lambda kv: -len(kv[1]))
    )
    ready: int | str = "no answer"
    with suppress(httpx.HTTPError):
        ready = httpx.get(f"{gateway.base}/ready", timeout=5).status_code
    rows = [
        ("replication before the kill", timeline.replication),
        ("sends accepted (202)", str(len(load.accepted))),
        ("  that needed retries with the same key", str(load.retried_then_accepted)),
        ("  abandoned (never got a 202)", str(len(load.abandoned))),
        ("primary killed at t=0", f"{timeline.victim} (SIGKILL keeper, postmaster, backends)"),
        ("standby promoted", f"{timeline.survivor} at +{timeline.promoted - since:.1f} s"),
    ]
    if seen is not None:
        first, back = seen
        rows += [
            ("first failed send", f"+{first.ended - since:.2f} s"),
            ("first 202 after it", f"+{back.ended - since:.2f} s"),
            ("OUTAGE SEEN BY CLIENTS", f"{back.ended - first.ended:.1f} s"),
        ]
    else:
        rows.append(("OUTAGE SEEN BY CLIENTS", "none: no send failed"))
    rows += [
        ("answers, kill to recovery (time taken)", answers),
        (
            "client timeout / timed out",
            f"{load.timeout:.0f} s / {sum('Timeout' in a.outcome for a in failures)}",
        ),
        ("failed sends after recovery", str(sum(a.started > end for a in failures))),
        ("API /ready at the end (no restart)", str(ready)),
        ("worker process (no restart)", worker_state(gateway)),
        ("202s missing on the new primary", f"{len(load.accepted) - held['found']}"),
        ("messages on the new primary", f"{held['total']} ({held['statuses']})"),
        ("served by port / ledger violations", f"{held['port']} / {held['violations']}"),
    ]
    return rows


def worker_state(gateway: Gateway) -> str:
    alive = gateway.worker is not None and gateway.worker.poll() is None
    log = (gateway.logs / "worker.log").read_text(errors="replace")
    restarts = log.count('"worker.database_lost"')
    return f"{'alive' if alive else 'EXITED'}, lost the database {restarts} time(s)"
