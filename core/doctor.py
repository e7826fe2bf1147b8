"""What needs an operator's attention, read from the database: the checks behind
`smsgw doctor`. Each check says ok, warn (the gateway works, but something is going
wrong) or fail (something is broken now), with a line that says what it saw.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import msgspec
from psycopg_pool import AsyncConnectionPool

from core import observability
from core.delivery import WORKER_ALIVE_SECONDS
from db import Conn, migrate
from db import doctor as doctor_db
from db import ledger as ledger_db

Status = Literal["ok", "warn", "fail"]


class Finding(msgspec.Struct, frozen=True, kw_only=True):
    check: str
    status: Status
    detail: str


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    # The oldest due message of a tier has waited longer than this: delivery is behind.
    queue_age_seconds: float = 60.0
    # A due job has not been taken for this long: no live worker serves its queue.
    job_wait_seconds: float = 60.0
    # Reports on the replica are this far behind the primary.
    replica_lag_seconds: float = 60.0
    # Fewer daily partitions ahead than this: the upkeep job is not running.
    partitions_ahead_days: int = 2


def needs_attention(findings: Sequence[Finding]) -> bool:
    return any(f.status != "ok" for f in findings)


async def schema(conn: Conn) -> Finding:
    try:
        version = await migrate.current_version(conn)
    except migrate.PreReleaseDatabase as exc:
        return Finding(check="schema", status="fail", detail=str(exc))
    expected = migrate.latest_version()
    if version is None:
        return Finding(check="schema", status="fail", detail="never migrated: run smsgw migrate")
    if version < expected:
        detail = f"at version {version}, this release expects {expected}: run smsgw migrate"
        return Finding(check="schema", status="fail", detail=detail)
    if version > expected:
        detail = f"at version {version}, newer than this release ({expected}): upgrade smsgw"
        return Finding(check="schema", status="fail", detail=detail)
    return Finding(check="schema", status="ok", detail=f"version {version}, as expected")


async def partitions(conn: Conn, limits: Limits) -> Finding:
    row = await doctor_db.partitions(conn)
    if row is None or not row["has_today"]:
        detail = "no partition of messages for today: sends fail; run smsgw migrate"
        return Finding(check="partitions", status="fail", detail=detail)
    ahead = int(row["days_ahead"])
    detail = f"through {row['last_day'].isoformat()} ({ahead} day(s) ahead)"
    if ahead < limits.partitions_ahead_days:
        detail += ": the upkeep job is not making them (is a worker serving maintenance?)"
        return Finding(check="partitions", status="warn", detail=detail)
    return Finding(check="partitions", status="ok", detail=detail)


def queue(snapshot: observability.Snapshot, limits: Limits) -> Finding:
    late = [q for q in snapshot.queue if q.oldest_age_seconds > limits.queue_age_seconds]
    detail = ", ".join(
        f"{q.tier} {q.depth} due" + (f" (oldest {q.oldest_age_seconds:.0f} s)" if q.depth else "")
        for q in snapshot.queue
    )
    if late:
        tiers = ", ".join(q.tier for q in late)
        detail += f"; {tiers} behind by more than {limits.queue_age_seconds:.0f} s"
        return Finding(check="queue", status="warn", detail=detail)
    return Finding(check="queue", status="ok", detail=detail)


def providers(snapshot: observability.Snapshot) -> Finding:
    opened = [p.name for p in snapshot.providers if p.state == "open"]
    if opened:
        detail = f"breaker open: {', '.join(opened)} (their messages go elsewhere or wait)"
        return Finding(check="providers", status="warn", detail=detail)
    count = len(snapshot.providers)
    detail = (
        f"{count} provider(s), no breaker open"
        if count
        else "none configured: messages go to the default one (SMSGW_PROVIDER)"
    )
    return Finding(check="providers", status="ok", detail=detail)


async def workers(conn: Conn, limits: Limits) -> list[Finding]:
    row = await doctor_db.workers(conn, alive_seconds=WORKER_ALIVE_SECONDS)
    found = []
    if int(row["alive"]) == 0:
        detail = (
            f"none alive (no heartbeat within {WORKER_ALIVE_SECONDS:.0f} s): "
            "nothing is sent; start smsgw worker"
        )
        found.append(Finding(check="workers", status="fail", detail=detail))
    else:
        detail = f"{row['alive']} alive"
        found.append(Finding(check="workers", status="ok", detail=detail))
    stuck = [
        r
        for r in await doctor_db.waiting_jobs(conn)
        if r["oldest_seconds"] > limits.job_wait_seconds
    ]
    if stuck:
        detail = "; ".join(
            f"{r['queue_name']}: {r['jobs']} job(s) waiting {r['oldest_seconds']:.0f} s"
            for r in stuck
        )
        detail += " (no live worker serves these queues?)"
        found.append(Finding(check="jobs", status="warn", detail=detail))
    else:
        found.append(Finding(check="jobs", status="ok", detail="no job waiting for a worker"))
    return found


async def replica(primary: Conn, reporting: Conn | None, limits: Limits) -> Finding:
    if reporting is None:
        return Finding(check="replica", status="ok", detail="none: reports read the primary")
    replication = await observability.read_replication(primary, reporting)
    if not replication.in_recovery:
        detail = "REPORTING_DATABASE_URL is not a standby (reports read a primary)"
        return Finding(check="replica", status="warn", detail=detail)
    detail = f"{replication.lag_seconds:.1f} s behind ({replication.lag_bytes} bytes of WAL)"
    if replication.replay_paused:
        return Finding(check="replica", status="warn", detail=f"replay paused; {detail}")
    if replication.lag_seconds > limits.replica_lag_seconds:
        return Finding(check="replica", status="warn", detail=detail)
    return Finding(check="replica", status="ok", detail=detail)


async def ledger(conn: Conn) -> Finding:
    """The invariant over every tenant and message: reads the whole ledger, so it runs
    only when asked for."""
    problems = await ledger_db.violations(conn)
    if problems:
        detail = f"{len(problems)} violation(s), first: {problems[0]['problem']}"
        return Finding(check="ledger", status="fail", detail=detail)
    return Finding(check="ledger", status="ok", detail="credits = available + held + captured")


async def examine(
    primary: AsyncConnectionPool[Conn],
    reporting: Conn | None,
    *,
    limits: Limits,
    with_ledger: bool = False,
) -> list[Finding]:
    """Every check, in the order an operator reads them. The schema comes first: on a
    database that is not migrated, the rest cannot be read."""
    async with primary.connection() as conn:
        found = [await schema(conn)]
        if found[0].status == "fail":
            return found
    snapshot = await observability.read_snapshot(primary)
    async with primary.connection() as conn:
        found.append(await partitions(conn, limits))
        found.append(queue(snapshot, limits))
        found.extend(await workers(conn, limits))
        found.append(providers(snapshot))
        found.append(await replica(conn, reporting, limits))
        if with_ledger:
            found.append(await ledger(conn))
    return found
