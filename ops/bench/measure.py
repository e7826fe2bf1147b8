"""What a phase did, read from the database: counts in a window, accept-to-sent latency
(sent_at - created_at of the messages table), per-second series for the chart, and a
sampler that reads the queue's depth every second while the phase runs.

Times are Unix seconds (floats) on the machine's clock, which the server shares.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from psycopg import sql

from ops.bench import backend_cpu

# One tenant's queue (queued plus sending), read through the two partial indexes that
# hold exactly those rows (messages_due_idx, messages_lease_idx): the fairness phase's
# look at its large tenant's backlog. It reads an index entry per queued message (~50 ms
# at 20,000), so the whole database's depth, read often, comes from QUEUE_DEPTH_SQL.
# The last hour's partitions only: over the growth phase's 30 days of history, probing
# every partition's indexes cost ~70 ms a reading.
DEPTH_SQL = (
    "SELECT (SELECT count(*) FROM messages WHERE status = 'queued'"
    "          AND created_at > now() - interval '1 hour' AND tenant_id = %(tenant)s::uuid)"
    "     + (SELECT count(*) FROM messages WHERE status = 'sending'"
    "          AND created_at > now() - interval '1 hour' AND tenant_id = %(tenant)s::uuid)"
)

# The whole database's queue (queued or sending) from the gateway's own counters, the
# figures its /metrics serves: messages accepted, less those that reached `sent` or an
# end without it. A few dozen rows whatever the backlog: DEPTH_SQL read ~50 ms of index
# at a 20,000 backlog, and at the load generator's and the sampler's pace that was ~3%
# of PostgreSQL's time in e2e batch (pg_stat_statements), spent by the harness.
QUEUE_DEPTH_SQL = (
    "SELECT coalesce(sum(n) FILTER (WHERE kind = 'accepted'), 0)"
    "     - coalesce(sum(n) FILTER (WHERE kind = 'changed'"
    "                  AND status IN ('sent', 'failed', 'expired', 'canceled')), 0)"
    "  FROM message_counters"
)

# Receipts stored and due, not yet applied (through receipts_inbox_due_idx).
RECEIPTS_DUE_SQL = "SELECT count(*) FROM receipts_inbox WHERE available_at <= now()"

# Tenant filters (`tenants`) are arrays of ids, or NULL for every tenant of the database.


@dataclass(frozen=True)
class Window:
    accepted: int  # messages created in the window
    sent: int  # messages whose sent_at falls in the window
    seconds: float
    # Messages whose receipt was applied in the window: `delivered`, updated then (the
    # time the tenant could see it; delivered_at is the carrier's own claim).
    delivered: int = 0

    @property
    def delivered_rate(self) -> float:
        return self.delivered / self.seconds

    @property
    def sent_rate(self) -> float:
        return self.sent / self.seconds

    @property
    def accepted_rate(self) -> float:
        return self.accepted / self.seconds


@dataclass(frozen=True)
class Latency:
    """Accept-to-sent of the messages created in a window; unsent ones count as infinite."""

    messages: int
    unsent: int
    p50: float
    p99: float
    max: float


@dataclass
class Series:
    """Per second of a phase: accepted, sent, p50/p99 accept-to-sent of what was sent in
    that second, and the queue depth the sampler read."""

    seconds: list[float] = field(default_factory=list)
    accepted: list[int] = field(default_factory=list)
    sent: list[int] = field(default_factory=list)
    p50: list[float | None] = field(default_factory=list)
    p99: list[float | None] = field(default_factory=list)
    backlog: list[tuple[float, int]] = field(default_factory=list)


def _params(t0: float, t1: float, tenants: list[str] | None) -> dict[str, Any]:
    return {"t0": t0, "t1": t1, "tenants": tenants}


def window(db_url: str, t0: float, t1: float, tenants: list[str] | None = None) -> Window:
    """Accepted: created in [t0, t1). Sent: sent_at in [t0, t1), whenever accepted (within
    the hour before, which keeps the scan to the newest partitions)."""
    with backend_cpu.connection(db_url) as conn:
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE created_at >= to_timestamp(%(t0)s)"
            "                          AND created_at < to_timestamp(%(t1)s)),"
            "       count(*) FILTER (WHERE sent_at >= to_timestamp(%(t0)s)"
            "                          AND sent_at < to_timestamp(%(t1)s)),"
            "       count(*) FILTER (WHERE status = 'delivered'"
            "                          AND updated_at >= to_timestamp(%(t0)s)"
            "                          AND updated_at < to_timestamp(%(t1)s))"
            "  FROM messages WHERE created_at >= to_timestamp(%(t0)s) - interval '1 hour'"
            "   AND (%(tenants)s::uuid[] IS NULL OR tenant_id = ANY(%(tenants)s::uuid[]))",
            _params(t0, t1, tenants),
        ).fetchone()
    assert row is not None
    return Window(accepted=int(row[0]), sent=int(row[1]), seconds=t1 - t0, delivered=int(row[2]))


# When a message reached the end a latency is measured to: `sent`, or its receipt
# applied (a message not there yet counts as never).
_UNTIL = {
    "sent": "sent_at",
    "delivered": "CASE WHEN status = 'delivered' THEN updated_at END",
}


def latency(
    db_url: str, t0: float, t1: float, tenants: list[str] | None = None, *, until: str = "sent"
) -> Latency:
    """Accept-to-``until`` (sent, or delivered: its receipt applied) of the messages
    created in [t0, t1)."""
    end = sql.SQL(_UNTIL[until])
    with backend_cpu.connection(db_url) as conn:
        row = conn.execute(
            sql.SQL(
                "WITH l AS (SELECT coalesce(extract(epoch FROM {} - created_at)::float8,"
                "                           'Infinity') AS s"
                "             FROM messages"
                "            WHERE created_at >= to_timestamp(%(t0)s)"
                "              AND created_at < to_timestamp(%(t1)s)"
                "              AND (%(tenants)s::uuid[] IS NULL"
                "                   OR tenant_id = ANY(%(tenants)s::uuid[])))"
                " SELECT count(*), count(*) FILTER (WHERE s = 'Infinity'),"
                "        percentile_disc(0.5) WITHIN GROUP (ORDER BY s),"
                "        percentile_disc(0.99) WITHIN GROUP (ORDER BY s), max(s) FROM l"
            ).format(end),
            _params(t0, t1, tenants),
        ).fetchone()
    assert row is not None
    nan = float("nan")
    return Latency(
        messages=int(row[0]),
        unsent=int(row[1]),
        p50=float(row[2]) if row[2] is not None else nan,
        p99=float(row[3]) if row[3] is not None else nan,
        max=float(row[4]) if row[4] is not None else nan,
    )


def _wait_for_zero(db_url: str, query: str, params: dict[str, Any], timeout: float) -> float:
    """Polls ``query`` (one count) until it reads 0 or ``timeout`` passes; returns when
    that was (Unix seconds)."""
    deadline = time.monotonic() + timeout
    with backend_cpu.connection(db_url) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(query, params).fetchone()
            if row is not None and row[0] == 0:
                break
            time.sleep(0.25)
    return time.time()


def drain(
    db_url: str, t0: float, t1: float, timeout: float, tenants: list[str] | None = None
) -> float:
    """Waits until every message created in [t0, t1) has left the queue (or ``timeout``);
    returns when that was (Unix seconds)."""
    # One statement per status, each read through its partial index (see DEPTH_SQL).
    return _wait_for_zero(
        db_url,
        "SELECT (SELECT count(*) FROM messages WHERE status = 'queued'"
        "          AND created_at >= to_timestamp(%(t0)s)"
        "          AND created_at < to_timestamp(%(t1)s)"
        "          AND (%(tenants)s::uuid[] IS NULL"
        "               OR tenant_id = ANY(%(tenants)s::uuid[])))"
        "     + (SELECT count(*) FROM messages WHERE status = 'sending'"
        "          AND created_at >= to_timestamp(%(t0)s)"
        "          AND created_at < to_timestamp(%(t1)s)"
        "          AND (%(tenants)s::uuid[] IS NULL"
        "               OR tenant_id = ANY(%(tenants)s::uuid[])))",
        _params(t0, t1, tenants),
        timeout,
    )


def receipts_due(db_url: str) -> int:
    with backend_cpu.connection(db_url) as conn:
        row = conn.execute(RECEIPTS_DUE_SQL).fetchone()
    return int(row[0]) if row else 0


def settle(db_url: str, t0: float, t1: float, timeout: float, *, callbacks: bool = False) -> float:
    """After the sends have drained: waits until no message created in [t0, t1) waits
    for its receipt (`sent`) and the inbox is empty (and, with ``callbacks``, every
    callback is delivered), or ``timeout``; returns when that was (Unix seconds). An
    empty inbox alone is not enough: an SMPP upstream's receipts may still be on their
    way. (Whether any is left, not how many: a count read every pending callback's index
    entry four times a second while they drained.)"""
    return _wait_for_zero(
        db_url,
        "SELECT (EXISTS (SELECT FROM receipts_inbox)"
        "        OR EXISTS (SELECT FROM messages WHERE status = 'sent'"
        "                     AND created_at >= to_timestamp(%(t0)s)"
        "                     AND created_at < to_timestamp(%(t1)s))"
        "        OR (%(callbacks)s AND EXISTS (SELECT FROM callbacks"
        "                                       WHERE next_attempt_at IS NOT NULL)))::int",
        {**_params(t0, t1, None), "callbacks": callbacks},
        timeout,
    )


@dataclass(frozen=True)
class Callbacks:
    delivered: int  # callbacks answered 2xx in the window
    made: int  # callbacks made for the messages of the window (one per status change)
    left: int  # not yet delivered when measured

    def rate(self, seconds: float) -> float:
        return self.delivered / seconds


def callbacks(db_url: str, t0: float, t1: float) -> Callbacks:
    with backend_cpu.connection(db_url) as conn:
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE delivered_at >= to_timestamp(%(t0)s)"
            "                          AND delivered_at < to_timestamp(%(t1)s)),"
            "       count(*), count(*) FILTER (WHERE delivered_at IS NULL)"
            "  FROM callbacks WHERE created_at >= to_timestamp(%(t0)s) - interval '1 hour'",
            _params(t0, t1, None),
        ).fetchone()
    assert row is not None
    return Callbacks(delivered=int(row[0]), made=int(row[1]), left=int(row[2]))


def series(
    db_url: str,
    t0: float,
    t1: float,
    *,
    table: str = "messages",
    latency_tenants: list[str] | None = None,
) -> Series:
    """Per-second counts from the rows' own timestamps; ``table`` is a message-like table
    (created_at, and sent_at if it is `messages`)."""
    per_second: dict[float, list[Any]] = {}
    name = sql.Identifier(*table.split("."))
    with backend_cpu.connection(db_url) as conn:
        rows = conn.execute(
            sql.SQL(
                "SELECT floor(extract(epoch FROM created_at)), count(*) FROM {}"
                " WHERE created_at >= to_timestamp(%(t0)s) AND created_at < to_timestamp(%(t1)s)"
                " GROUP BY 1"
            ).format(name),
            _params(t0, t1, None),
        ).fetchall()
        for second, count in rows:
            per_second.setdefault(float(second), [0, 0, None, None])[0] = int(count)
        if table == "messages":
            rows = conn.execute(
                "SELECT floor(extract(epoch FROM sent_at)), count(*),"
                "  percentile_disc(0.5) WITHIN GROUP (ORDER BY sent_at - created_at)"
                "    FILTER (WHERE %(tenants)s::uuid[] IS NULL"
                "                  OR tenant_id = ANY(%(tenants)s::uuid[])),"
                "  percentile_disc(0.99) WITHIN GROUP (ORDER BY sent_at - created_at)"
                "    FILTER (WHERE %(tenants)s::uuid[] IS NULL"
                "                  OR tenant_id = ANY(%(tenants)s::uuid[]))"
                "  FROM messages"
                " WHERE created_at >= to_timestamp(%(t0)s) - interval '1 hour'"
                "   AND sent_at >= to_timestamp(%(t0)s) AND sent_at < to_timestamp(%(t1)s)"
                " GROUP BY 1",
                _params(t0, t1, latency_tenants),
            ).fetchall()
            for second, count, p50, p99 in rows:
                entry = per_second.setdefault(float(second), [0, 0, None, None])
                entry[1] = int(count)
                entry[2] = p50.total_seconds() if p50 is not None else None
                entry[3] = p99.total_seconds() if p99 is not None else None
    out = Series()
    for second in sorted(per_second):
        accepted, sent, p50, p99 = per_second[second]
        out.seconds.append(second)
        out.accepted.append(accepted)
        out.sent.append(sent)
        out.p50.append(p50)
        out.p99.append(p99)
    return out


def ledger_violations(db_url: str) -> int:
    with backend_cpu.connection(db_url) as conn:
        row = conn.execute("SELECT count(*) FROM smsgw_ledger_violations_v1()").fetchone()
    return int(row[0]) if row else -1


class Sampler:
    """Reads the queue's depth (queued + sending) once a second on a thread of its own;
    with ``waits``, also what the server's active backends are waiting on, ten times a
    second (pg_stat_activity; no wait event means on CPU or in the run queue)."""

    def __init__(self, db_url: str, *, waits: bool = False) -> None:
        self.db_url = db_url
        self.samples: list[tuple[float, int]] = []
        # Receipts due and not yet applied: a backlog that must not grow.
        self.receipts: list[tuple[float, int]] = []
        self.waits: Counter[str] = Counter()
        self._watch_waits = waits
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        with backend_cpu.connection(self.db_url) as conn:
            next_depth = 0.0
            while not self._stop.is_set():
                now = time.time()
                if now >= next_depth:
                    row = conn.execute(QUEUE_DEPTH_SQL).fetchone()
                    self.samples.append((now, int(row[0]) if row else 0))
                    row = conn.execute(RECEIPTS_DUE_SQL).fetchone()
                    self.receipts.append((now, int(row[0]) if row else 0))
                    next_depth = now + 1.0
                if self._watch_waits:
                    for kind, event, count in conn.execute(
                        "SELECT coalesce(wait_event_type, 'CPU'), coalesce(wait_event, ''),"
                        "       count(*)"
                        "  FROM pg_stat_activity"
                        " WHERE state = 'active' AND backend_type = 'client backend'"
                        "   AND pid <> pg_backend_pid() AND datname = current_database()"
                        " GROUP BY 1, 2"
                    ).fetchall():
                        self.waits[f"{kind}:{event}".rstrip(":")] += int(count)
                self._stop.wait(0.1 if self._watch_waits else max(0.0, next_depth - time.time()))
