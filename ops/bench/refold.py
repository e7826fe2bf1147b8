"""The database's cost of keeping an hour's rollups: its first fold and its refolds,
with smsgw_fold_rollup_hour_v2 (every fold recomputes the whole hour), v3 (a refold
reads the hour's pending messages only, rollup_pending) and v4 (the hour folded while
open, in ``--spans`` (180: every 20 s) folds each adding the messages since the last
mark, then closed: the messages after the last mark added and the pending refolded).

One embedded server and database: ``--messages`` (200,000) messages in one closed hour,
for 20 tenants, 40 prefixes of ``dialing_prefixes`` and 3 providers (about 2,400 rollup
rows); ``--pending`` (1%) of them still ``sent`` (awaiting their receipt), the rest
delivered, undelivered or failed. Each round, for each version: the hour's first fold;
receipts for half the pending messages (delivered); a refold; a refold with nothing
changed (idle); then the hour's rollups, cubes and pending rows wiped and the receipts
undone (VACUUM ANALYZE) for the next. Prints the median of ``--rounds`` (3) per fold:
wall ms, the backend's CPU ms (/proc/<pid>/schedstat) and CPU us per message of the
hour, and WAL bytes per message; and a message's life's worth of folds per message: the
first, one refold after receipts and the other refolds idle (``--refolds`` 6:
SMSGW_ROLLUP_SETTLE_HOURS 6 over SMSGW_ROLLUP_REFRESH_MINUTES 60).

    nice -n 10 .venv/bin/python -m ops.bench.refold [--messages 200000] [--pending 0.01]

``fold_life`` is the same account on a database traffic filled (ops/bench/e2e.py).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from ops.bench.rollup_data import ROLLUP_TABLES
from ops.bench.server_stats import backend_cpu_ns
from ops.bench.system import Cluster

# What a load starts from: the rollups, their cubes and the folds' own bookkeeping.
CUBES = ("rollup_hours", "rollup_pending", *ROLLUP_TABLES)


def _load(conn: psycopg.Connection, messages: int, pending: float) -> object:
    """The hour two hours ago (closed), filled; returns it."""
    hour = conn.execute("SELECT date_trunc('hour', now(), 'UTC') - interval '2 hours'").fetchone()
    assert hour is not None
    conn.execute("SELECT smsgw_ensure_partitions_v1((%s AT TIME ZONE 'UTC')::date, 1)", (hour[0],))
    conn.execute(
        "INSERT INTO tenants (id, name, price_per_segment, webhook_secret)"
        " SELECT gen_random_uuid(), 'bench ' || g, 7900, 'secret' FROM generate_series(1, 20) g"
    )
    every = max(1, round(1 / pending)) if pending else 0
    conn.execute(
        """
        WITH t AS (SELECT array_agg(id) AS ids FROM tenants),
             p AS (SELECT array_agg(prefix ORDER BY prefix) AS prefixes FROM dialing_prefixes)
        INSERT INTO messages (id, created_at, tenant_id, status, to_number, body, encoding,
                              segments, price, cost, expires_at, updated_at, provider,
                              sent_at, delivered_at)
        SELECT (lpad(to_hex((extract(epoch FROM at) * 1000)::bigint), 12, '0') || '7'
                || substr(md5(i::text), 1, 3) || '8' || substr(md5(i::text), 4, 15))::uuid,
               at, t.ids[1 + abs(hashint4(i)) %% 20], s.status,
               left(p.prefixes[1 + abs(hashint4(-i)) %% least(40, cardinality(p.prefixes))]
                    || lpad((i %% 9999991)::text, 10, '0'), 15),
               'bench', 'GSM-7', 1 + i %% 3, 7900 * (1 + i %% 3), 300 * (1 + i %% 3),
               at + interval '1 day', at,
               (ARRAY['alpha', 'beta', 'gamma'])[1 + abs(hashint4(i + 7)) %% 3],
               CASE WHEN s.status <> 'failed' THEN at + (i %% 5000) * interval '1 ms' END,
               CASE WHEN s.status = 'delivered'
                    THEN at + (i %% 5000 + i %% 20000) * interval '1 ms' END
          FROM generate_series(1, %(messages)s) AS i, t, p,
               -- Whole milliseconds, as an accept makes them: created_at is the id's.
               LATERAL (SELECT date_trunc('milliseconds', %(hour)s::timestamptz
                               + interval '1 hour' * (i::double precision / (%(messages)s + 1)))
                               AS at) AS a,
               LATERAL (SELECT CASE WHEN %(every)s > 0 AND i %% %(every)s = 0 THEN 'sent'
                                    WHEN i %% 10 = 1 THEN 'undelivered'
                                    WHEN i %% 10 = 2 THEN 'failed'
                                    ELSE 'delivered' END AS status) AS s
        """,
        {"messages": messages, "hour": hour[0], "every": every},
    )
    conn.execute("VACUUM ANALYZE")
    return hour[0]


def _timed(conn: psycopg.Connection, pid: int, statement: str, hour: object) -> tuple[float, ...]:
    """One fold in its own transaction: wall s, backend CPU s, WAL bytes."""
    wal = "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')"
    wal_0 = conn.execute(wal).fetchone()
    cpu_0 = backend_cpu_ns(pid)
    started = time.perf_counter()
    with conn.transaction():
        conn.execute(statement, (hour,))
    took = time.perf_counter() - started
    cpu = (backend_cpu_ns(pid) - cpu_0) / 1e9
    wal_1 = conn.execute(wal).fetchone()
    assert wal_0 is not None
    assert wal_1 is not None
    return took, cpu, float(wal_1[0] - wal_0[0])


def _timed_open(
    conn: psycopg.Connection, pid: int, hour: object, spans: int
) -> list[tuple[float, ...]]:
    """v4: the hour's folds while open (one mark every 1/spans of the hour, each fold in
    its own transaction; their sum) and its closing fold: wall s, CPU s, WAL bytes."""
    # The hour before folded whole: the open hour's first fold waits for it.
    with conn.transaction():
        conn.execute("SELECT smsgw_fold_rollup_hour_v4(%s - interval '1 hour', false)", (hour,))
    total = [0.0, 0.0, 0.0]
    for span in range(1, spans):
        statement = (
            "SELECT smsgw_fold_rollup_hour_v4(%s, false, false,"
            f" %s + interval '1 hour' * {span / spans})"
        )
        wal = "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')"
        wal_0 = conn.execute(wal).fetchone()
        cpu_0 = backend_cpu_ns(pid)
        started = time.perf_counter()
        with conn.transaction():
            conn.execute(statement, (hour, hour))
        total[0] += time.perf_counter() - started
        total[1] += (backend_cpu_ns(pid) - cpu_0) / 1e9
        wal_1 = conn.execute(wal).fetchone()
        assert wal_0 is not None
        assert wal_1 is not None
        total[2] += float(wal_1[0] - wal_0[0])
    closing = _timed(conn, pid, "SELECT smsgw_fold_rollup_hour_v4(%s, false)", hour)
    return [tuple(total), closing]


def _receipts(conn: psycopg.Connection, hour: object) -> list[object]:
    """Half the hour's `sent` messages delivered; their ids."""
    rows = conn.execute(
        "UPDATE messages SET status = 'delivered', delivered_at = sent_at + interval '3 s',"
        " updated_at = clock_timestamp()"
        " WHERE created_at >= %s AND created_at < %s + interval '1 hour' AND status = 'sent'"
        "   AND get_byte(uuid_send(id), 15) %% 2 = 0 RETURNING id",
        (hour, hour),
    ).fetchall()
    return [r[0] for r in rows]


def _reset(conn: psycopg.Connection, hour: object, receipted: list[object]) -> None:
    conn.execute(f"TRUNCATE {', '.join(CUBES)}")
    conn.execute(
        "UPDATE messages SET status = 'sent', delivered_at = NULL"
        " WHERE created_at >= %s AND created_at < %s + interval '1 hour' AND id = ANY (%s)",
        (hour, hour, receipted),
    )
    conn.execute("VACUUM ANALYZE messages")


@dataclass(frozen=True)
class Life:
    """What keeping the rollups of a run's messages costs over their hours' life:
    seconds and WAL bytes of each kind of fold, for all the run's hours."""

    messages: int
    pending: int  # recorded by the first fold (not final yet)
    first: tuple[float, int]
    refold: tuple[float, int]  # after the receipts came: the changed messages
    idle: tuple[float, int]  # nothing changed since: each later refold
    # The usual order, receipts in before the hour's first fold (they come a second after
    # the send; the first fold minutes after the hour): a fold of the whole hour with
    # nothing left pending, then a refold that finds no pending message.
    settled: tuple[float, int] = (0.0, 0)
    settled_idle: tuple[float, int] = (0.0, 0)

    def seconds(self, refolds: int) -> float:
        """The first fold, one refold after the receipts, the other refolds idle."""
        return self.first[0] + self.refold[0] + max(0, refolds - 1) * self.idle[0]

    def settled_seconds(self, refolds: int) -> float:
        """The same life when the receipts were in before the first fold."""
        return self.settled[0] + refolds * self.settled_idle[0]


def fold_life(db_url: str, *, receipts_within: float = 60.0) -> Life:
    """As the worker keeps an hour's rollups: the first fold of every hour holding
    messages (all read; those not final recorded as pending), then the receipts waiting
    in the inbox made due and applied by the running worker (an hour later they would
    have come), a refold (the changed messages), and another (nothing changed: what
    each later refold until the hour settles costs)."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        hours = [
            r[0]
            for r in conn.execute(
                "SELECT DISTINCT date_trunc('hour', created_at, 'UTC') FROM messages"
            ).fetchall()
        ]

        def count(query: str) -> int:
            row = conn.execute(query).fetchone()
            assert row is not None
            return int(row[0])

        def folds(full: bool = False) -> tuple[float, int]:
            wal = "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint"
            before = count(wal)
            started = time.perf_counter()
            for hour in hours:
                with conn.transaction():
                    conn.execute("SELECT smsgw_fold_rollup_hour_v3(%s, false, %s)", (hour, full))
            return time.perf_counter() - started, count(wal) - before

        messages = count("SELECT count(*) FROM messages")
        first = folds()
        pending = count("SELECT count(*) FROM rollup_pending")
        conn.execute("UPDATE receipts_inbox SET available_at = now()")
        deadline = time.monotonic() + receipts_within
        while count("SELECT count(*) FROM receipts_inbox") and time.monotonic() < deadline:
            time.sleep(0.5)
        refold = folds()
        idle = folds()
        # The hours read again whole now that every receipt is in (what the first fold
        # costs in the usual order), and a refold after that.
        settled = folds(full=True)
        settled_idle = folds()
    return Life(messages, pending, first, refold, idle, settled, settled_idle)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--pending", type=float, default=0.01)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--refolds", type=int, default=6)
    parser.add_argument("--spans", type=int, default=180)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="smsgw-refold-", dir="/var/tmp"))
    root.chmod(0o755)
    cluster = Cluster(root, logs=root / "logs", profile_sql=False)
    cluster.start()
    try:
        with psycopg.connect(cluster.fresh("refold"), autocommit=True) as conn:
            hour = _load(conn, args.messages, args.pending)
            backend = conn.execute("SELECT pg_backend_pid()").fetchone()
            assert backend is not None
            pid = int(backend[0])
            found: dict[tuple[str, str], list[tuple[float, ...]]] = {}
            for _ in range(args.rounds):
                for version in ("v2", "v3", "v4"):
                    statement = f"SELECT smsgw_fold_rollup_hour_{version}(%s, false)"
                    if version == "v4":
                        opened, closing = _timed_open(conn, pid, hour, args.spans)
                        found.setdefault((version, "open folds"), []).append(opened)
                        found.setdefault((version, "closing fold"), []).append(closing)
                    else:
                        found.setdefault((version, "first fold"), []).append(
                            _timed(conn, pid, statement, hour)
                        )
                    receipted = _receipts(conn, hour)
                    found.setdefault((version, "refold"), []).append(
                        _timed(conn, pid, statement, hour)
                    )
                    found.setdefault((version, "idle refold"), []).append(
                        _timed(conn, pid, statement, hour)
                    )
                    _reset(conn, hour, receipted)
        n = args.messages
        print(
            f"{n} messages in one closed hour, {args.pending:.1%} still sent, half of them"
            f" receipted between the first fold and the refold; median of {args.rounds}"
        )
        print(f"{'fold':<16}{'wall ms':>10}{'CPU ms':>10}{'CPU us/msg':>12}{'WAL B/msg':>11}")
        median: dict[tuple[str, str], float] = {}
        for (version, kind), runs in found.items():
            wall, cpu, wal = (statistics.median(r[i] for r in runs) for i in range(3))
            median[(version, kind)] = cpu
            print(
                f"{version + ' ' + kind:<16}{wall * 1000:>10.1f}{cpu * 1000:>10.1f}"
                f"{cpu / n * 1e6:>12.3f}{wal / n:>11.2f}"
            )
        for version in ("v2", "v3", "v4"):
            if version == "v4":
                first = median[(version, "open folds")] + median[(version, "closing fold")]
            else:
                first = median[(version, "first fold")]
            refold, idle = (median[(version, kind)] for kind in ("refold", "idle refold"))
            life = first + refold + (args.refolds - 1) * idle
            opening = f"{args.spans - 1} open folds + closing fold" if version == "v4" else ""
            print(
                f"{version}: {opening or 'first fold'} + refold after receipts"
                f" + {args.refolds - 1} idle refolds"
                f" = {life / n * 1e6:.2f} us of database CPU per message"
            )
    finally:
        cluster.destroy()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
