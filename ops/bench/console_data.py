"""The data behind ops/bench/console.py: a tenant's messages over the last 30 days as the
gateway would have left them, written set-based.

One statement per day per set of tenants (generate_series, data-modifying CTEs), triggers
off for the load (session_replication_role = replica, as ops/bench/history.py loads the
growth phase's history), on two connections at once. Each message: a UUIDv7 id of its
millisecond, one of 100,000 recipients (US, GB and DE numbers), a status mix (92%
delivered, 2% sent, 3% undelivered, 2% failed, 1% expired; none canceled), one of two
providers, its price and cost. A sample (1 in 64, by id) also has what the status
trigger and the callbacks would have written: its status events and a delivered status
callback. Then the closed hours are folded into rollups by the worker's own fold
(`core.rollups.fold_due`), so the reports read cubes, hourly rows and the raw messages
of the current hour, as in production; suppressions, owned numbers and audit rows give
the account pages something to list.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import psycopg

from core import recipient_index, rollups
from core.settings import Settings
from db.pool import open_pool

DAYS = 30

CHUNK = """
WITH g AS (
    SELECT g, %(start_ms)s::bigint + (g::bigint * %(span_ms)s) / %(rows)s AS ms,
           md5(g::text || %(start_ms)s::text || %(tenants)s::text) AS h,
           (g::bigint * 7919 + %(start_ms)s / 86400000) %% 100000 AS k
      FROM generate_series(0, %(rows)s - 1) AS g
), shaped AS (
    SELECT (lpad(to_hex(g.ms), 12, '0') || '7' || substr(g.h, 1, 3) || '8'
            || substr(g.h, 4, 15))::uuid AS id,
           timestamptz 'epoch' + g.ms * interval '1 millisecond' AS at,
           (%(tenants)s::uuid[])[1 + g.g %% cardinality(%(tenants)s::uuid[])] AS tenant_id,
           CASE WHEN g.g %% 100 < 92 THEN 'delivered' WHEN g.g %% 100 < 94 THEN 'sent'
                WHEN g.g %% 100 < 97 THEN 'undelivered' WHEN g.g %% 100 < 99 THEN 'failed'
                ELSE 'expired' END AS status,
           CASE WHEN g.g %% 10 < 6 THEN '+1415' || lpad(g.k::text, 7, '0')
                WHEN g.g %% 10 < 9 THEN '+4477009' || lpad(g.k::text, 5, '0')
                ELSE '+49151' || lpad(g.k::text, 8, '0') END AS to_number,
           g.k, g.h, 'sim-' || (g.g %% 2) AS provider
      FROM g
), m AS (
    INSERT INTO messages (
        id, created_at, tenant_id, status, to_number, body, encoding, segments, price,
        price_per_segment, cost, expires_at, attempts, provider, provider_message_id,
        error_code, error_message, updated_at, sent_at, delivered_at)
    SELECT id, at, tenant_id, status, to_number, 'Your code is ' || lpad(k::text, 6, '0'),
           'GSM-7', 1, 7900, 7900, 3000, at + interval '4 hours', 1, provider, 'p-' || h,
           CASE status WHEN 'failed' THEN '21610' WHEN 'undelivered' THEN '30003' END,
           CASE status WHEN 'failed' THEN 'refused by the provider'
                       WHEN 'undelivered' THEN 'unreachable handset' END,
           at + interval '4 seconds',
           CASE WHEN status IN ('sent', 'delivered', 'undelivered')
                THEN at + interval '300 milliseconds' END,
           CASE WHEN status = 'delivered' THEN at + interval '4 seconds' END
      FROM shaped
    RETURNING id, created_at, tenant_id, status, callback_url
), sample AS (
    SELECT * FROM m WHERE right(id::text, 2) < '04'
), events AS (
    INSERT INTO message_events (message_created_at, message_id, tenant_id, status, at,
                                error_code)
    SELECT s.created_at, s.id, s.tenant_id, e.status, s.created_at + e.after,
           CASE WHEN e.status IN ('failed', 'undelivered') THEN '30003' END
      FROM sample s
     CROSS JOIN LATERAL (VALUES
             ('queued', interval '0', true),
             ('sending', interval '100 ms', true),
             ('sent', interval '300 ms', s.status IN ('sent', 'delivered', 'undelivered')),
             (s.status, interval '4 s', s.status <> 'sent')) AS e(status, after, happened)
     WHERE e.happened
), calls AS (
    INSERT INTO callbacks (created_at, tenant_id, message_id, url, payload, attempts,
                           next_attempt_at, last_status_code, delivered_at, last_attempt_at,
                           last_latency_ms)
    SELECT s.created_at + interval '5 s', s.tenant_id, s.id, 'https://hooks.example/sms',
           jsonb_build_object('id', s.id, 'status', s.status), 1, NULL, 200,
           s.created_at + interval '5 s', s.created_at + interval '5 s', 40
      FROM sample s
)
SELECT count(*) FROM m
"""


def _load_chunks(db_url: str, chunks: list[tuple[datetime, datetime, int, list[str]]]) -> int:
    written = 0
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute("SET synchronous_commit = off")
        conn.execute("SET work_mem = '256MB'")
        for start, end, rows, tenants in chunks:
            start_ms = int(start.timestamp() * 1000)
            params = {
                "start_ms": start_ms,
                "span_ms": int(end.timestamp() * 1000) - start_ms,
                "rows": rows,
                "tenants": tenants,
            }
            row = conn.execute(CHUNK, params).fetchone()
            written += int(row[0]) if row else 0
    return written


def load_messages(db_url: str, *, measured: str, messages: int, others: list[str]) -> int:
    """``messages`` for the measured tenant and a twentieth of that shared by ``others``,
    evenly over the last 30 days up to now; returns how many were written."""
    now = datetime.now(UTC)
    first = now - timedelta(days=DAYS)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("SELECT smsgw_ensure_partitions_v2(%s, %s)", (first.date(), DAYS + 1))
    chunks = []
    for day in range(DAYS):
        start, end = first + timedelta(days=day), first + timedelta(days=day + 1)
        share = messages // DAYS + (1 if day < messages % DAYS else 0)
        chunks.append((start, end, share, [measured]))
        if others:
            chunks.append((start, end, max(1, share // 20), others))
    halves = [chunks[0::2], chunks[1::2]]
    with ThreadPoolExecutor(max_workers=2) as pool:
        return sum(pool.map(lambda half: _load_chunks(db_url, half), halves))


def load_account(db_url: str, *, measured: str) -> None:
    """What the account pages list: 5,000 opt-outs, 20 owned numbers, 2,000 audit rows
    (the tenant's and others')."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO suppressions (tenant_id, recipient, number, source)"
            " SELECT %s, '+1415' || lpad((i * 17)::text, 7, '0'), '*', 'keyword'"
            " FROM generate_series(1, 5000) AS i",
            (measured,),
        )
        conn.execute(
            "INSERT INTO owned_numbers (number, tenant_id)"
            " SELECT '+1415555' || lpad(i::text, 4, '0'), %s FROM generate_series(1, 20) AS i",
            (measured,),
        )
        conn.execute(
            "INSERT INTO audit_events (at, actor_kind, actor_id, tenant_id, action, target,"
            " before, after)"
            " SELECT now() - i * interval '20 minutes', 'admin', NULL,"
            "        CASE WHEN i %% 2 = 0 THEN %s::uuid END, 'tenant.updated',"
            "        'tenant:' || i, jsonb_build_object('rate_limit_mps', i),"
            "        jsonb_build_object('rate_limit_mps', i + 1)"
            " FROM generate_series(1, 2000) AS i",
            (measured,),
        )


async def fold(db_url: str) -> int:
    """Every closed hour folded as the worker folds it (the settled ones for the last
    time); returns the number of hours."""
    settings = Settings.from_env({"DATABASE_URL": db_url})
    pool = await open_pool(db_url, min_size=1, max_size=2, name="bench-fold")
    try:
        total = 0
        while folded := await rollups.fold_due(pool, settings, limit=1000):
            total += folded
        return total
    finally:
        await pool.close()


async def index_recipients(db_url: str) -> int:
    """The search by recipient's index as the worker's job would have kept it all along
    (a couple of minutes behind the clock). The load wrote 30 days of history behind the
    job's back (created_at in the past, before the job's mark), so the index is made
    again from nothing, by the job's own function; returns the messages indexed."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("TRUNCATE message_recipients")
        conn.execute("UPDATE recipient_index SET indexed_through = '2000-01-01T00:00:00Z'")
    pool = await open_pool(db_url, min_size=1, max_size=1, name="bench-recipients")
    try:
        return await recipient_index.index_closed_minutes(pool)
    finally:
        await pool.close()


def settle(db_url: str) -> None:
    """As a running system's tables would be: vacuumed, analyzed, flushed."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "VACUUM (ANALYZE) messages, message_events, callbacks, message_rollups,"
            " message_recipients, daily_rollups, suppressions, audit_events"
        )
        conn.execute("CHECKPOINT")


def raw_tail(db_url: str, tenant: str) -> int:
    """The measured tenant's messages after the last folded hour: what a report reads raw."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM messages WHERE tenant_id = %s AND created_at >="
            " coalesce((SELECT max(hour) + interval '1 hour' FROM rollup_hours), '-infinity')",
            (tenant,),
        ).fetchone()
    return int(row[0]) if row else 0


def unfold_last_hour(db_url: str) -> tuple[object, ...] | None:
    """As in the minutes after an hour closes, before the worker folds it: the last
    folded hour's mark taken away, so reports read its messages raw. Returns the mark,
    for ``refold``."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        return conn.execute(
            "DELETE FROM rollup_hours WHERE hour = (SELECT max(hour) FROM rollup_hours)"
            " RETURNING hour, folded_at, final, messages"
        ).fetchone()


def refold(db_url: str, mark: tuple[object, ...] | None) -> None:
    if mark is not None:
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO rollup_hours (hour, folded_at, final, messages)"
                " VALUES (%s, %s, %s, %s)",
                mark,
            )
