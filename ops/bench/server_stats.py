"""What the database server did during a phase: WAL, full-page images and checkpoints,
CPU and WAL per message, and the top statements (pg_stat_statements)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg


def backend_cpu_ns(pid: int) -> int:
    """Time a server process (a backend) has spent on a CPU so far, in ns: the kernel's
    scheduler statistics, so a measure of one statement's cost is not the wall clock's."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])


def wal(url: str) -> tuple[int, int, int]:
    """Bytes of WAL the server has written so far, of them full-page images, and
    checkpoints begun (the whole cluster: one phase at a time). A checkpoint inside a
    phase makes the next change of every page write the whole page to the WAL."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint,"
            " (SELECT wal_fpi FROM pg_stat_wal)"
        ).fetchone()
        # PostgreSQL 17 moved the checkpoint counts to pg_stat_checkpointer.
        newer = conn.execute("SELECT to_regclass('pg_stat_checkpointer') IS NOT NULL").fetchone()
        checkpoints = conn.execute(
            "SELECT num_timed + num_requested FROM pg_stat_checkpointer"
            if newer and newer[0]
            else "SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter"
        ).fetchone()
    assert row is not None
    assert checkpoints is not None
    return int(row[0]), int(row[1]), int(checkpoints[0])


def per_message(seen: dict[str, Any], messages: int, what: str = "msg") -> str:
    """CPU time and WAL per message (or transaction): less at the mercy of other load on
    the machine than rates are."""
    if messages <= 0:
        return ""
    used, seconds = seen["used"], seen["seconds"]
    parts = [
        f"{group} {used[group] * seconds / messages * 1e6:.0f}"
        for group in ("postgres", "api", "workers")
        if used.get(group, 0) >= 0.005
    ]
    wal = (
        f"WAL {seen['wal'] / messages:,.0f} B ({seen['fpi'] / messages:.2f} full-page images;"
        f" checkpoints begun: {seen['checkpoints']})"
    )
    return f"per {what}: CPU us {', '.join(parts)}; {wal}"


def sql_profile(url: str) -> str:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT total_exec_time, calls, rows,"
            "       jit_generation_time + jit_inlining_time + jit_optimization_time"
            "       + jit_emission_time,"
            "       left(regexp_replace(query, '\\s+', ' ', 'g'), 110)"
            "  FROM pg_stat_statements"
            " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " ORDER BY total_exec_time DESC LIMIT 20"
        ).fetchall()
        tables = conn.execute(
            "SELECT regexp_replace(relname, '_[0-9]{8}$', ''), sum(n_tup_ins),"
            "       sum(n_tup_upd), sum(n_tup_hot_upd), sum(n_tup_del)"
            "  FROM pg_stat_user_tables GROUP BY 1"
            " HAVING sum(n_tup_ins + n_tup_upd + n_tup_del) > 1000"
            " ORDER BY sum(n_tup_ins + n_tup_upd + n_tup_del) DESC LIMIT 10"
        ).fetchall()
    # JIT beside the time: a compilation on every call is what a hot statement must
    # never pay (issue 22: 38 ms of it per receipts batch before the pool turned it off).
    lines = [f"{'ms total':>10}{'calls':>9}{'rows':>10}{'ms JIT':>8}  statement"]
    lines += [f"{t:>10.0f}{c:>9}{r:>10}{j:>8.0f}  {q}" for t, c, r, j, q in rows]
    lines.append("rows written, by table (partitions summed):")
    lines.append(f"{'inserted':>12}{'updated':>12}{'of which HOT':>14}{'deleted':>12}  table")
    lines += [f"{i:>12,}{u:>12,}{h:>14,}{d:>12,}  {name}" for name, i, u, h, d in tables]
    return "\n".join(lines)
