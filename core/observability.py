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
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Literal

import msgspec
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from psycopg_pool import AsyncConnectionPool

from core import deliverability, reports, upstreams
from core.upstreams import ProviderStatus
from db import Conn
from db import observability as obs_db
from db import rollups as rollups_db

TIERS: tuple[str, ...] = ("vip", "premium", "standard")
SETTLED = ("sent", "delivered", "undelivered", "failed", "expired", "canceled")
BREAKER_STATES = ("closed", "half_open", "open")
# Counting stops here: a backlog this large reads as "at least CAP", and a scrape never
# walks more index entries than that.
CAP = 1_000_000
FOLD_EVERY_SECONDS = 60.0


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
        lag_seconds=max(0.0, float(position["lag_seconds"] or 0.0)),
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


def families(snapshot: Snapshot | None, replication: Replication | None) -> Iterator[Metric]:
    """The database-derived metric families, in Prometheus' data model."""
    up = GaugeMetricFamily("smsgw_database_up", "1 when the scrape could read the primary")
    up.add_metric([], 1.0 if snapshot is not None else 0.0)
    yield up
    if snapshot is not None:
        yield from _snapshot_families(snapshot)
    if replication is not None:
        yield from _replication_families(replication)


def _snapshot_families(s: Snapshot) -> Iterator[Metric]:
    took = GaugeMetricFamily(
        "smsgw_metrics_query_seconds", "Time the database queries of this scrape took"
    )
    took.add_metric([], s.took_seconds)
    yield took
    accepted = CounterMetricFamily(
        "smsgw_messages_accepted", "Messages accepted", labels=["tier", "status"]
    )
    settled = CounterMetricFamily(
        "smsgw_messages_settled",
        "Messages that reached a status after sending (sent, delivered, undelivered) or "
        "ended without (failed, expired, canceled)",
        labels=["status", "tier", "provider"],
    )
    attempts = CounterMetricFamily(
        "smsgw_message_attempts", "Messages handed to a provider", labels=["tier", "provider"]
    )
    retried = CounterMetricFamily(
        "smsgw_messages_retried",
        "Messages queued again after a transient error",
        labels=["tier", "provider"],
    )
    for row in s.counters:
        if row.kind == "accepted":
            accepted.add_metric([row.tier, row.status], row.n)
        elif row.status in SETTLED:
            settled.add_metric([row.status, row.tier, row.provider], row.n)
        elif row.status == "sending":
            attempts.add_metric([row.tier, row.provider], row.n)
        elif row.status == "queued":
            retried.add_metric([row.tier, row.provider], row.n)
    yield from (accepted, settled, attempts, retried)

    depth = GaugeMetricFamily(
        "smsgw_queue_depth",
        f"Messages due for sending, per tier (counted up to {CAP})",
        labels=["tier"],
    )
    oldest = GaugeMetricFamily(
        "smsgw_queue_oldest_age_seconds",
        "How long the longest-waiting due message has been due, per tier",
        labels=["tier"],
    )
    for q in s.queue:
        depth.add_metric([q.tier], q.depth)
        oldest.add_metric([q.tier], q.oldest_age_seconds)
    yield from (depth, oldest)
    in_flight = GaugeMetricFamily("smsgw_messages_in_flight", "Messages being sent now")
    in_flight.add_metric([], s.in_flight)
    yield in_flight
    jobs = GaugeMetricFamily(
        "smsgw_jobs", "procrastinate jobs waiting or running", labels=["queue", "status"]
    )
    for j in s.jobs:
        jobs.add_metric([j.queue, j.status], j.jobs)
    yield jobs
    callbacks = GaugeMetricFamily("smsgw_callbacks_due", "Status callbacks waiting to be sent")
    callbacks.add_metric([], s.callbacks_due)
    receipts = GaugeMetricFamily(
        "smsgw_receipts_waiting", "Delivery receipts waiting to be applied"
    )
    receipts.add_metric([], s.receipts_waiting)
    yield from (callbacks, receipts)
    yield from _provider_families(s.providers)
    yield from _delivery_families(s.delivery)
    if s.rollup_frontier is not None:
        behind = GaugeMetricFamily(
            "smsgw_rollups_behind_seconds",
            "How far the hourly rollups' last folded hour ends before now: about an hour "
            "when the fold job keeps up; reports read raw messages after it",
        )
        behind.add_metric([], max(0.0, (s.at - s.rollup_frontier).total_seconds()))
        yield behind

    balance = GaugeMetricFamily(
        "smsgw_ledger_balance_micros",
        "Sum over tenants of each balance, in micro-units of the currency",
        labels=["currency", "account"],
    )
    tenants = GaugeMetricFamily("smsgw_tenants", "Tenants", labels=["currency"])
    for ledger in s.ledger:
        for account in ("credits", "available", "held", "captured"):
            balance.add_metric([ledger.currency, account], getattr(ledger, account))
        tenants.add_metric([ledger.currency], ledger.tenants)
    yield from (balance, tenants)


def _delivery_families(alerts: list[deliverability.Alert]) -> Iterator[Metric]:
    rate = GaugeMetricFamily(
        "smsgw_delivery_rate",
        "Delivered share of known outcomes per destination country and provider: the last "
        "closed hour (window=1h) and the 7 days before it (window=7d), judged every 15 min",
        labels=["country", "provider", "window"],
    )
    known = GaugeMetricFamily(
        "smsgw_delivery_outcomes",
        "Known outcomes (delivered, undelivered, failed, expired) behind smsgw_delivery_rate",
        labels=["country", "provider", "window"],
    )
    alert = GaugeMetricFamily(
        "smsgw_delivery_alert",
        "1 while the last hour's delivery rate is below the 7-day rate by "
        "SMSGW_DELIVERY_ALERT_MARGIN with SMSGW_DELIVERY_ALERT_MIN_MESSAGES outcomes",
        labels=["country", "provider"],
    )
    for a in alerts:
        for window, value, count in (
            ("1h", a.hour_rate, a.hour_known),
            ("7d", a.week_rate, a.week_known),
        ):
            known.add_metric([a.country, a.provider, window], count)
            if value is not None:
                rate.add_metric([a.country, a.provider, window], value)
        alert.add_metric([a.country, a.provider], 1.0 if a.firing else 0.0)
    yield from (rate, known, alert)


def _provider_families(providers: list[ProviderStatus]) -> Iterator[Metric]:
    state = GaugeMetricFamily(
        "smsgw_provider_breaker_state",
        "1 for the provider's circuit breaker state, 0 for the others",
        labels=["provider", "state"],
    )
    latency = GaugeMetricFamily(
        "smsgw_provider_latency_seconds",
        "Provider submit latency per message (moving average over recent batches)",
        labels=["provider"],
    )
    error_ratio = GaugeMetricFamily(
        "smsgw_provider_error_ratio",
        "Share of transient failures in the breaker's current window",
        labels=["provider"],
    )
    sent = CounterMetricFamily(
        "smsgw_provider_accepted", "Messages a provider accepted", labels=["provider"]
    )
    failed = CounterMetricFamily(
        "smsgw_provider_errors", "Transient failures of a provider", labels=["provider"]
    )
    for p in providers:
        for name in BREAKER_STATES:
            state.add_metric([p.name, name], 1.0 if p.state == name else 0.0)
        if p.latency_ms is not None:
            latency.add_metric([p.name], p.latency_ms / 1000)
        error_ratio.add_metric([p.name], p.error_rate or 0.0)
        sent.add_metric([p.name], p.sent_total)
        failed.add_metric([p.name], p.failed_total)
    yield from (state, latency, error_ratio, sent, failed)


def _replication_families(r: Replication) -> Iterator[Metric]:
    replica = GaugeMetricFamily(
        "smsgw_reporting_replica", "1 when reports read a standby, 0 when the primary"
    )
    replica.add_metric([], 1.0 if r.in_recovery else 0.0)
    seconds = GaugeMetricFamily(
        "smsgw_replication_lag_seconds",
        "Age of the last transaction the reporting database replayed, while it is behind",
    )
    seconds.add_metric([], r.lag_seconds)
    size = GaugeMetricFamily(
        "smsgw_replication_lag_bytes", "WAL bytes the reporting database has yet to replay"
    )
    size.add_metric([], r.lag_bytes)
    paused = GaugeMetricFamily("smsgw_replication_paused", "1 when replay is paused")
    paused.add_metric([], 1.0 if r.replay_paused else 0.0)
    standby = GaugeMetricFamily(
        "smsgw_standby_replay_lag_bytes",
        "WAL bytes each standby has yet to replay, as the primary sees it",
        labels=["application_name"],
    )
    for s in r.standbys:
        standby.add_metric([s.application_name], s.replay_lag_bytes or 0)
    yield from (replica, seconds, size, paused, standby)
