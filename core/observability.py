"""What operators watch, read from PostgreSQL at scrape time.

Workers are separate processes without HTTP, and the API may run as many processes on
many hosts; so the numbers that describe the whole gateway (messages by status, queue
depth, providers, ledger, replication) are not kept in any process's memory but read
from the database when /metrics is scraped or the dashboard polls: a handful of cheap,
bounded statements (db/queries/observability.sql), shared by both through a snapshot
cached for ``ttl`` seconds, so neither more scrapers nor more dashboards add load.
Message counts come from ``message_counters``, kept by triggers on ``messages`` in the
transactions that change them, so they are exact and survive restarts.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Literal

import msgspec
from psycopg_pool import AsyncConnectionPool

from core import deliverability, reports, todays_margin, upstreams
from core.upstreams import ProviderStatus
from db import Conn
from db import account_suspension as suspension_db
from db import alerts as alerts_db
from db import observability as obs_db
from db import pumping as pumping_db
from db import rollups as rollups_db

TIERS: tuple[str, ...] = ("vip", "premium", "standard")
SETTLED = ("sent", "delivered", "undelivered", "failed", "expired", "canceled")
BREAKER_STATES = ("closed", "half_open", "open")
# Counting stops here: a backlog this large reads as "at least CAP", and a scrape never
# walks more index entries than that.
CAP = 1_000_000
FOLD_EVERY_SECONDS = 60.0
# Today's margin moves when an hour is folded (every few minutes): read it once a minute.
MARGIN_EVERY_SECONDS = 60.0


class CounterRow(msgspec.Struct, frozen=True, kw_only=True):
    kind: str
    status: str
    tier: str
    provider: str
    n: int


class QueueTier(msgspec.Struct, frozen=True, kw_only=True):
    tier: str
    depth: int
    oldest_age_seconds: float


class LedgerTotals(msgspec.Struct, frozen=True, kw_only=True):
    currency: str
    tenants: int
    credits: int
    available: int
    held: int
    captured: int


class JobCount(msgspec.Struct, frozen=True, kw_only=True):
    queue: str
    status: str
    jobs: int


class Standby(msgspec.Struct, frozen=True, kw_only=True):
    application_name: str
    client_addr: str | None
    state: str | None
    replay_lag_bytes: int | None
    replay_lag_seconds: float | None


class Replication(msgspec.Struct, frozen=True, kw_only=True):
    # Where reports are read: "replica" when REPORTING_DATABASE_URL names a standby.
    reporting: Literal["primary", "replica"]
    in_recovery: bool
    replay_paused: bool
    # How far the reporting database is behind the primary, in time and in WAL bytes.
    lag_seconds: float
    lag_bytes: int
    primary_lsn: str
    replay_lsn: str | None
    standbys: list[Standby]


class Snapshot(msgspec.Struct, frozen=True, kw_only=True):
    at: datetime
    took_seconds: float
    counters: list[CounterRow]
    queue: list[QueueTier]
    in_flight: int
    providers: list[ProviderStatus]
    ledger: list[LedgerTotals]
    jobs: list[JobCount]
    callbacks_due: int
    receipts_waiting: int
    # The deliverability alerts as last judged (core/deliverability.py).
    delivery: list[deliverability.Alert] = []
    # Exposure (issue 25): destinations suspended by pumping protection now, and tenants
    # whose available credit is under their low-balance threshold.
    suspensions_active: int = 0
    tenants_below_balance_threshold: int = 0
    # Tenants the operator has suspended (core/account_suspension.py).
    tenants_suspended: int = 0
    # The end of the folded hours of the rollups (None: none folded yet).
    rollup_frontier: datetime | None = None


def parse_lsn(lsn: str) -> int:
    high, _, low = lsn.partition("/")
    return (int(high, 16) << 32) + int(low, 16)


async def read_snapshot(
    pool: AsyncConnectionPool[Conn], *, now: datetime | None = None
) -> Snapshot:
    """Read on a connection of ``pool``, the counts in a transaction of their own."""
    started = time.perf_counter()
    async with pool.connection() as conn:
        async with conn.transaction():
            # A scrape must never hang on a busy server: every statement gets two seconds.
            await conn.execute("SELECT set_config('statement_timeout', '2000', true)")
            counters = await obs_db.message_counters(conn)
            queue = {r["tier"]: r for r in await obs_db.queue_depth(conn, cap=CAP)}
            in_flight = await obs_db.in_flight(conn, cap=CAP)
            ledger = await obs_db.ledger_totals(conn)
            jobs = await obs_db.jobs(conn)
            callbacks_due = await obs_db.callbacks_due(conn, cap=CAP)
            receipts_waiting = await obs_db.receipts_waiting(conn, cap=CAP)
            delivery = await deliverability.alerts(conn)
            rollup_frontier = await rollups_db.frontier(conn)
            suspensions_active = await pumping_db.active_count(conn)
            below_threshold = await alerts_db.below_threshold(conn)
            tenants_suspended = await suspension_db.suspended_count(conn)
        providers = await upstreams.provider_status(conn)
    at = now or datetime.now(UTC)
    return Snapshot(
        at=at,
        took_seconds=time.perf_counter() - started,
        counters=[CounterRow(**r) for r in counters],
        queue=[
            QueueTier(
                tier=tier,
                depth=queue[tier]["depth"] if tier in queue else 0,
                oldest_age_seconds=max(0.0, (at - queue[tier]["oldest_due"]).total_seconds())
                if tier in queue
                else 0.0,
            )
            for tier in TIERS
        ],
        in_flight=in_flight,
        providers=providers,
        ledger=[LedgerTotals(**r) for r in ledger],
        jobs=[JobCount(queue=r["queue_name"], status=r["status"], jobs=r["jobs"]) for r in jobs],
        callbacks_due=callbacks_due,
        receipts_waiting=receipts_waiting,
        delivery=delivery,
        rollup_frontier=rollup_frontier,
        suspensions_active=suspensions_active,
        tenants_below_balance_threshold=below_threshold,
        tenants_suspended=tenants_suspended,
    )


async def read_replication(primary: Conn, reporting: Conn | None) -> Replication:
    """The reporting database's lag behind the primary; ``reporting`` is None when
    reports read the primary itself."""
    primary_lsn = await obs_db.primary_wal_lsn(primary)
    standbys = [Standby(**r) for r in await obs_db.standbys(primary)]
    if reporting is None or not await obs_db.in_recovery(reporting):
        return Replication(
            reporting="primary" if reporting is None else "replica",
            in_recovery=False,
            replay_paused=False,
            lag_seconds=0.0,
            lag_bytes=0,
            primary_lsn=primary_lsn,
            replay_lsn=None,
            standbys=standbys,
        )
    position = await obs_db.replica_position(reporting)
    replay = position["replay_lsn"]
    lag_bytes = max(0, parse_lsn(primary_lsn) - parse_lsn(replay)) if replay else 0
    return Replication(
        reporting="replica",
        in_recovery=True,
        replay_paused=bool(position["paused"]),
        # Behind the primary, received or not yet: as old as the last replayed commit.
        lag_seconds=max(0.0, float(position["lag_seconds"] or 0.0)) if lag_bytes else 0.0,
        lag_bytes=lag_bytes,
        primary_lsn=primary_lsn,
        replay_lsn=replay,
        standbys=standbys,
    )


class Observer:
    """The snapshot and replication status of one process, cached for ``ttl`` seconds
    (concurrent readers share one refresh)."""

    def __init__(
        self,
        primary: AsyncConnectionPool[Conn],
        reporting: AsyncConnectionPool[Conn],
        *,
        reporting_is_primary: bool,
        ttl: float = 1.0,
    ) -> None:
        self._primary = primary
        self._reporting = reporting
        self._reporting_is_primary = reporting_is_primary
        self._ttl = ttl
        self._lock = asyncio.Lock()
        self._snapshot: tuple[float, Snapshot] | None = None
        self._replication: tuple[float, Replication] | None = None
        self._live: tuple[float, list[reports.LiveTenant]] | None = None
        self._margin: tuple[float, todays_margin.TodaysMargin] | None = None
        self._folded_at = 0.0

    async def snapshot(self) -> Snapshot:
        async with self._lock:
            now = time.monotonic()
            if self._snapshot and now - self._snapshot[0] < self._ttl:
                return self._snapshot[1]
            if now - self._folded_at >= FOLD_EVERY_SECONDS:
                # Keeps message_counters small (rows of exited backends fold into one);
                # the counts, and so the metrics, do not change.
                async with self._primary.connection() as conn:
                    await obs_db.fold_message_counters(conn)
                self._folded_at = now
            snapshot = await read_snapshot(self._primary)
            self._snapshot = (now, snapshot)
            return snapshot

    async def replication(self) -> Replication:
        now = time.monotonic()
        if self._replication and now - self._replication[0] < self._ttl:
            return self._replication[1]
        async with self._primary.connection() as primary:
            if self._reporting_is_primary:
                status = await read_replication(primary, None)
            else:
                async with self._reporting.connection() as reporting:
                    status = await read_replication(primary, reporting)
        self._replication = (now, status)
        return status

    async def live_top_tenants(self) -> list[reports.LiveTenant]:
        """The last minute's busiest tenants, from the reporting database (cached 5 s)."""
        now = time.monotonic()
        if self._live and now - self._live[0] < max(self._ttl, 5.0):
            return self._live[1]
        async with self._reporting.connection() as conn:
            live = await reports.live_top_tenants(conn)
        self._live = (now, live)
        return live

    async def todays_margin(self) -> todays_margin.TodaysMargin:
        """Today's margin and loss-making destinations, from the reporting database's
        rollups (cached a minute)."""
        now = time.monotonic()
        if self._margin and now - self._margin[0] < MARGIN_EVERY_SECONDS:
            return self._margin[1]
        async with self._reporting.connection() as conn:
            margin = await todays_margin.todays_margin(conn, now=datetime.now(UTC))
        self._margin = (now, margin)
        return margin


def message_totals(snapshot: Snapshot) -> dict[str, int]:
    """Messages accepted, and settled per status, since counting began (all tiers)."""
    totals = {"accepted": 0, **dict.fromkeys(SETTLED, 0), "retried": 0}
    for row in snapshot.counters:
        if row.kind == "accepted":
            totals["accepted"] += row.n
        elif row.status in SETTLED:
            totals[row.status] += row.n
        elif row.status == "queued":
            totals["retried"] += row.n
    return totals
