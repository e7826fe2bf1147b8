"""The gateway's /metrics families in Prometheus' data model, from a snapshot of the
database (core/observability.py reads it; this says what each series is)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from core import deliverability
from core.observability import (
    BREAKER_STATES,
    CAP,
    SETTLED,
    Replication,
    Snapshot,
)
from core.upstreams import ProviderStatus


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
            "How far the hourly rollups' newest fold mark is before now: under a minute "
            "or two when the fold job keeps up with the hour in progress (about an hour "
            "with SMSGW_ROLLUP_OPEN_LAG_SECONDS=0); reports read raw messages after it",
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

    suspensions = GaugeMetricFamily(
        "smsgw_suspensions_active",
        "Destinations (tenant, country, range) suspended now by SMS pumping protection",
    )
    suspensions.add_metric([], s.suspensions_active)
    below = GaugeMetricFamily(
        "smsgw_tenants_below_balance_threshold",
        "Tenants whose available credit is under their low_balance_threshold",
    )
    below.add_metric([], s.tenants_below_balance_threshold)
    suspended = GaugeMetricFamily(
        "smsgw_tenants_suspended", "Tenants the operator has suspended: their sends are refused"
    )
    suspended.add_metric([], s.tenants_suspended)
    yield from (suspensions, below, suspended)


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
