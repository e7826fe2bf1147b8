"""Settings: read from the environment once, by the process entry point, and passed down.

Nothing in the code base reads ``os.environ`` at import time; ``Settings.from_env`` is
called by the CLI (or a test) and the resulting frozen struct travels as an argument.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

import msgspec

from core import webhook_policy


class SettingsError(ValueError):
    """An environment variable holds a value the gateway cannot use."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    database_url: str
    # Reports read here when set; the hot path never does.
    reporting_database_url: str | None = None
    # Behind a transaction-mode pooler (PgBouncer), DATABASE_URL names the pooler and
    # this the database itself: workers LISTEN here, `smsgw migrate` runs here, and
    # reports read here when REPORTING_DATABASE_URL is unset (their session settings
    # would not survive transaction pooling). Unset: DATABASE_URL for all of them.
    direct_database_url: str | None = None
    # False behind a pooler that cannot carry prepared statements (PgBouncer in
    # transaction mode before 1.21): psycopg then never prepares (prepare_threshold None).
    db_prepared_statements: bool = True
    admin_token: str = ""
    # Pool sizes per process. The API needs more than the worker: each in-flight
    # request holds a connection for the length of one short transaction.
    db_pool_min: int = 2
    db_pool_max: int = 20
    # Bodies over this size get 413. A batch of 1,000 messages of 10 segments is ~2 MB.
    max_request_bytes: int = 4 * 1024 * 1024
    idempotency_ttl_seconds: int = 24 * 3600
    # Single sends (without an Idempotency-Key): accept calls an API process keeps in
    # flight, and sends per call; the sends that arrive meanwhile go together in the
    # next call (core/coalesce.py). 0 calls: each send its own call. One call in flight:
    # a call's cost to PostgreSQL is mostly per call (its rules, price and hold decided
    # once for the call), so fewer, fuller calls do more on the same cores: single ingest
    # 1,794 against 1,600 msg/s with two (medians of 3 and 4 runs of ops/bench, p99 lower).
    accept_calls: int = 1
    accept_max_sends: int = 100
    partitions_ahead_days: int = 7
    # Days of message history kept. A day still holding unsettled messages is kept
    # whatever this says (scheduled sends can wait 35 days, validity adds 3).
    retention_days: int = 40
    # Hourly rollups (core/rollups.py): an hour is folded when it closes and again every
    # refresh until it is older than the settle time (receipts come within it) and none
    # of its messages is still pending; then it is final. Rollups are kept 13 months.
    rollup_settle_hours: int = 6
    rollup_refresh_minutes: int = 60
    rollup_retention_days: int = 397
    # The hour in progress is folded up to this far behind the clock (accepts commit
    # long before); 0: not folded before it closes (reports then read up to an hour of
    # raw messages). Its mark moves in steps of rollup_open_step_seconds (0: at every
    # run of the job, every 20 s): each fold rewrites the hour's rows its messages touch
    # (and their cubes'), so fewer steps cost less; reports read raw messages for the
    # lag plus up to a step and 20 s.
    rollup_open_lag_seconds: float = 30.0
    rollup_open_step_seconds: int = 60
    # The deliverability alert (core/deliverability.py): a (country, provider) whose last
    # hour's delivery rate is this much below its 7-day rate, with at least this many
    # known outcomes in the hour (and in the week), fires.
    delivery_alert_margin: float = 0.10
    delivery_alert_min_messages: int = 100
    # SMS pumping protection (core/pumping.py): a tenant's hourly count to a destination
    # breaks its limit when over the operator's limit for the country, else over this
    # multiple of its trailing 7-day hourly median there, and never under the floor;
    # the destination is then suspended for the cool-off. The floor is what a tenant
    # without history (a new one, a new destination) may send in an hour: high enough
    # for a first campaign, low enough to bound a pumped form's loss.
    pumping_multiple: float = 10.0
    pumping_floor: int = 1000
    pumping_cool_off_seconds: int = 12 * 3600
    # Delivery (issue 3 builds on these).
    dispatch_batch_size: int = 200
    # 128 tenants (was 32): under single sends from many tenants, each has a message or
    # two per turn, and turns of 32 ran back to back (full by tenants) with ~64 messages.
    dispatch_tenants_per_turn: int = 128
    # While a tier's turns come back small, its next turn starts at least this long after
    # the last one claimed, so that under a stream of single sends each turn carries more
    # than a handful (0: none). The turn waits as a scheduled job, not
    # inside a running one. 250 ms made a stream of single sends cheaper to deliver
    # (ops/bench e2e single: 2,524 msg/s at 100 ms, 2,742-2,765 at 250 ms; workers' CPU
    # per message ~116 -> ~66 us; p99 accept-to-sent 0.17 -> 0.51-0.61 s).
    dispatch_turn_gap_ms: float = 250.0
    worker_concurrency: int = 8
    lease_seconds: int = 60
    retry_base_seconds: float = 2.0
    retry_cap_seconds: float = 600.0
    # 1.0: full jitter (uniform between 0 and the exponential delay); 0.0: none.
    retry_jitter: float = 1.0
    # Status callbacks: retried with backoff (jittered) for 24 h.
    callback_retry_base_seconds: float = 5.0
    callback_retry_cap_seconds: float = 3600.0
    callback_timeout_seconds: float = 5.0
    # Runs that work a callbacks backlog at once, across all workers: the periodic one
    # and, while it finds more than a batch waiting, this many less one as jobs of their
    # own, which any worker on the callbacks queue takes (the periodic job is one run a
    # second however many workers there are; a process's runs share its one core).
    callback_jobs: Annotated[int, msgspec.Meta(ge=1)] = 4
    # Webhooks (status callbacks, inbound messages) never go to loopback, private,
    # link-local, CGNAT, unique-local, multicast or unspecified addresses, unless they
    # fall in one of these comma-separated CIDRs (core/webhook_policy.py).
    webhook_allowed_networks: str = ""
    # The provider used when the route table is empty.
    provider: str = "simulator"
    breaker_window_seconds: float = 30.0
    breaker_min_requests: int = 20
    breaker_error_rate: float = 0.5
    breaker_cooldown_seconds: float = 15.0
    breaker_probes: int = 5
    simulator_seed: int | None = None
    simulator_latency_ms: float = 0.0
    simulator_latency_jitter_ms: float = 0.0
    simulator_transient_rate: float = 0.0
    simulator_permanent_rate: float = 0.0
    simulator_dlr_delay_seconds: float = 1.0
    simulator_delivery_rate: float = 1.0
    # A long inbound message whose missing parts have not come this long after its
    # first is delivered with the parts that did (flagged incomplete).
    inbound_parts_timeout_seconds: float = 60.0
    # Failed authentications per client address and window before it gets 429s.
    auth_failures_limit: int = 20
    auth_failures_window_seconds: float = 60.0
    log_json: bool | None = None
    log_level: str = "INFO"
    # Reports: connections per API process to the reporting database, and how long one
    # report statement may run there.
    reporting_pool_max: int = 4
    report_statement_timeout_ms: int = 30_000
    # /metrics and the dashboard read the database at most this often per API process.
    metrics_cache_seconds: float = 1.0
    # When set, /metrics wants `Authorization: Bearer <token>`; unset, it is open (keep
    # it on a private network, as Prometheus targets usually are).
    metrics_token: str = ""
    # The SMPP listener (issue 9). `smsgw run` starts one on this port when it is set
    # (0: none); `smsgw smpp` listens here unless --port says otherwise (2775 when 0).
    smpp_port: int = 0
    # submit_sm of one bind accepted concurrently; past it the bind stops being read.
    smpp_window: int = 64
    # deliver_sm (receipts, inbound) of one bind waiting for deliver_sm_resp at once.
    smpp_deliver_window: int = 10
    # A bind quiet this long gets an enquire_link, and is closed if that goes unanswered
    # as long; a connection that has not bound within it is closed.
    smpp_enquire_link_seconds: float = 30.0
    # Parts of a long message whose other parts have not come within this are dropped.
    smpp_reassembly_seconds: float = 300.0
    # Receipts and inbound messages wait this long for a receiver bind, then are dropped.
    smpp_outbox_retention_hours: float = 72.0

    @property
    def direct_url(self) -> str:
        """The database itself, never through a transaction-mode pooler."""
        return self.direct_database_url or self.database_url

    def __post_init__(self) -> None:
        # A typo in a network must stop the process at start, not open or close
        # webhooks by surprise later.
        webhook_policy.parse_networks(self.webhook_allowed_networks)

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides: object) -> Settings:
        """Build settings from ``DATABASE_URL``, ``REPORTING_DATABASE_URL`` and ``SMSGW_*``."""
        raw: dict[str, object] = {}
        if "DATABASE_URL" in environ:
            raw["database_url"] = environ["DATABASE_URL"]
        if environ.get("REPORTING_DATABASE_URL"):
            raw["reporting_database_url"] = environ["REPORTING_DATABASE_URL"]
        if environ.get("DIRECT_DATABASE_URL"):
            raw["direct_database_url"] = environ["DIRECT_DATABASE_URL"]
        fields = {f.name: f for f in msgspec.structs.fields(cls)}
        for name in fields:
            key = "SMSGW_" + name.upper()
            if key in environ and name not in (
                "database_url",
                "reporting_database_url",
                "direct_database_url",
            ):
                raw[name] = environ[key]
        raw.update(overrides)
        try:
            # strict=False lets "8" become 8 and "true" become True, as env values are text.
            return msgspec.convert(raw, cls, strict=False)
        except msgspec.ValidationError as exc:
            raise SettingsError(f"invalid configuration: {exc}") from exc


ENVIRONMENT_HELP: dict[str, str] = {
    "DATABASE_URL": "PostgreSQL URL of the primary; unset: `smsgw run` starts an embedded one",
    "REPORTING_DATABASE_URL": "PostgreSQL URL for reports (a read replica); default: primary",
    "DIRECT_DATABASE_URL": "behind PgBouncer in transaction mode: the database itself, for "
    "workers' LISTEN, migrations and reports (default: DATABASE_URL)",
    "SMSGW_DB_PREPARED_STATEMENTS": "false behind a pooler without prepared statements "
    "(PgBouncer in transaction mode before 1.21) (true)",
    "SMSGW_ADMIN_TOKEN": "bearer token of the admin API; `smsgw run` generates one if unset",
    "SMSGW_DATA_DIR": "where `smsgw run` keeps the embedded PostgreSQL (default ./data)",
    "SMSGW_DB_POOL_MIN / SMSGW_DB_POOL_MAX": "connection pool bounds per process (2 / 20)",
    "SMSGW_MAX_REQUEST_BYTES": "request body limit, 413 above it (4194304)",
    "SMSGW_IDEMPOTENCY_TTL_SECONDS": "how long an Idempotency-Key replays (86400)",
    "SMSGW_ACCEPT_CALLS / SMSGW_ACCEPT_MAX_SENDS": "accept calls of single sends in flight "
    "per API process, and sends per call (2 / 100); 0 calls: one call per send",
    "SMSGW_PARTITIONS_AHEAD_DAYS": "daily partitions created ahead (7)",
    "SMSGW_RETENTION_DAYS": "days of message history kept (40)",
    "SMSGW_ROLLUP_SETTLE_HOURS": "an hour's rollups are final this long after it (6)",
    "SMSGW_ROLLUP_REFRESH_MINUTES": "unsettled hours are folded again this often (60)",
    "SMSGW_ROLLUP_RETENTION_DAYS": "days of hourly and daily rollups kept (397: 13 months)",
    "SMSGW_ROLLUP_OPEN_LAG_SECONDS / _STEP_SECONDS": "the hour in progress is folded up to "
    "this far behind the clock, its mark moving in steps of this many seconds; reports read "
    "raw messages after the mark (30 / 60; lag 0: closed hours only; step 0: every 20 s)",
    "SMSGW_DELIVERY_ALERT_MARGIN / _MIN_MESSAGES": "a (country, provider) alerts when its "
    "last hour's delivery rate is this far below its 7-day rate, with this many outcomes "
    "(0.10 / 100)",
    "SMSGW_PUMPING_MULTIPLE / _FLOOR": "a tenant's hourly sends to a destination above "
    "this multiple of its 7-day hourly median there, and above the floor, suspend it, "
    "unless the operator set a limit for the country (10 / 1000)",
    "SMSGW_PUMPING_COOL_OFF_SECONDS": "how long a pumping suspension lasts (43200: 12 h)",
    "SMSGW_DISPATCH_BATCH_SIZE": "messages one dispatch job claims per turn (200)",
    "SMSGW_WORKER_CONCURRENCY": "dispatch jobs one worker process runs at once (8)",
    "SMSGW_LEASE_SECONDS": "a claimed message returns to the queue after this (60)",
    "SMSGW_RETRY_BASE_SECONDS / SMSGW_RETRY_CAP_SECONDS": "backoff base and cap (2 / 600)",
    "SMSGW_RETRY_JITTER": "1 = full jitter, 0 = none (1)",
    "SMSGW_CALLBACK_RETRY_BASE_SECONDS / _CAP_SECONDS": "callback backoff (5 / 3600)",
    "SMSGW_CALLBACK_TIMEOUT_SECONDS": "per callback POST (5)",
    "SMSGW_CALLBACK_JOBS": "runs working a callbacks backlog at once, across all workers (4)",
    "SMSGW_WEBHOOK_ALLOWED_NETWORKS": "comma-separated CIDRs webhooks may reach although "
    "loopback, private, link-local, CGNAT or unique-local (none)",
    "SMSGW_PROVIDER": "the provider when no routes are configured (simulator)",
    "SMSGW_BREAKER_*": "WINDOW_SECONDS 30, MIN_REQUESTS 20, ERROR_RATE 0.5, COOLDOWN_SECONDS 15, "
    "PROBES 5",
    "SMSGW_SIMULATOR_*": "simulator latency, failure rates, receipt delay and delivery rate",
    "SMSGW_INBOUND_PARTS_TIMEOUT_SECONDS": "a long inbound message missing parts is delivered "
    "incomplete after (60) s",
    "SMSGW_AUTH_FAILURES_LIMIT / _WINDOW_SECONDS": "failed auths per address per window (20 / 60)",
    "SMSGW_LOG_JSON / SMSGW_LOG_LEVEL": "JSON logs (default: when not a terminal) and level "
    "(INFO: refused, failed and slow requests; DEBUG: every request)",
    "SMSGW_REPORTING_POOL_MAX": "connections per API process for reports (4)",
    "SMSGW_REPORT_STATEMENT_TIMEOUT_MS": "longest a report statement may run (30000)",
    "SMSGW_METRICS_CACHE_SECONDS": "/metrics and dashboard read the database at most every (1) s",
    "SMSGW_METRICS_TOKEN": "bearer token /metrics requires; unset: open",
    "SMSGW_SMPP_PORT": "SMPP listener port; `smsgw run` starts one when set (unset)",
    "SMSGW_SMPP_WINDOW / _DELIVER_WINDOW": "submits / deliver_sm in flight per bind (64 / 10)",
    "SMSGW_SMPP_ENQUIRE_LINK_SECONDS": "idle time before enquire_link, and its timeout (30)",
    "SMSGW_SMPP_REASSEMBLY_SECONDS": "parts of a long message wait this long for the rest (300)",
    "SMSGW_SMPP_OUTBOX_RETENTION_HOURS": "receipts wait this long for a receiver bind (72)",
}
