"""Historic messages for the growth phase: N terminal `delivered` messages spread over the
past D days' daily partitions (made with smsgw_ensure_partitions_v2), each with what the
gateway would have left behind: its hold and capture in the ledger, its four status
events (queued, sending, sent, delivered), the tenant's balance moved from available to
captured, and the /metrics counters. So smsgw_ledger_violations_v1() still holds.

Set-based (generate_series, one statement per day writing all three tables through
data-modifying CTEs) with triggers off for the load (session_replication_role =
replica: the events they would write are written here, in full), on two connections
at once; then VACUUM ANALYZE and a CHECKPOINT, as the history of a running system
would long have been vacuumed and flushed.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta

import psycopg

DAY = """
WITH t AS (
    SELECT array_agg(id ORDER BY id) AS ids, array_agg(price_per_segment ORDER BY id) AS prices,
           count(*) AS n
      FROM tenants WHERE id = ANY(%(tenants)s::uuid[])
), g AS (
    SELECT g, %(day_ms)s::bigint + (g::bigint * 86400000) / %(rows)s AS ms,
           md5(g::text || %(day_ms)s::text) AS h
      FROM generate_series(0, %(rows)s - 1) AS g
), m AS (
    INSERT INTO messages (
        id, created_at, tenant_id, status, to_number, body, encoding, segments, price,
        expires_at, attempts, provider, provider_message_id, updated_at, sent_at,
        delivered_at)
    SELECT (lpad(to_hex(g.ms), 12, '0') || '7' || substr(g.h, 1, 3) || '8'
            || substr(g.h, 4, 15))::uuid,
           c.at, t.ids[1 + g.g %% t.n], 'delivered', '+14155552671', 'a historic message',
           'GSM-7', 1, t.prices[1 + g.g %% t.n], c.at + interval '4 hours', 1, 'simulator',
           'hist-' || g.h, c.at + interval '2 seconds', c.at + interval '200 milliseconds',
           c.at + interval '2 seconds'
      FROM g CROSS JOIN t
     CROSS JOIN LATERAL (SELECT timestamptz 'epoch' + g.ms * interval '1 millisecond') AS c(at)
    RETURNING id, created_at, tenant_id, price
), ledger AS (
    INSERT INTO ledger_message_entries
        (message_created_at, message_id, tenant_id, kind, amount, created_at)
    SELECT m.created_at, m.id, m.tenant_id, k.kind, m.price, m.created_at + k.after
      FROM m CROSS JOIN (VALUES ('hold', interval '0'),
                                ('capture', interval '200 milliseconds')) AS k(kind, after)
), events AS (
    INSERT INTO message_events (message_created_at, message_id, tenant_id, status, at)
    SELECT m.created_at, m.id, m.tenant_id, s.status, m.created_at + s.after
      FROM m CROSS JOIN (VALUES ('queued', interval '0'),
                                ('sending', interval '100 milliseconds'),
                                ('sent', interval '200 milliseconds'),
                                ('delivered', interval '2 seconds')) AS s(status, after)
)
SELECT tenant_id::text, count(*), sum(price) FROM m GROUP BY 1
"""

BALANCE = """
UPDATE balances SET available = available - %(amount)s, captured = captured + %(amount)s
 WHERE tenant_id = %(tenant)s::uuid
"""

COUNTERS = """
INSERT INTO message_counters AS c (slot, kind, status, tier, provider, n)
SELECT 0, k.kind, k.status, t.tier, k.provider, %(n)s
  FROM tenants t
 CROSS JOIN (VALUES ('accepted', 'queued', ''), ('changed', 'sending', 'simulator'),
                    ('changed', 'sent', 'simulator'), ('changed', 'delivered', 'simulator'))
       AS k(kind, status, provider)
 WHERE t.id = %(tenant)s::uuid
ON CONFLICT (slot, kind, status, tier, provider) DO UPDATE SET n = c.n + excluded.n
"""


Totals = dict[str, tuple[int, int]]  # tenant -> (messages, amount captured)


def _load_days(db_url: str, days: list[tuple[date, int]], tenants: list[str]) -> Totals:
    totals: Totals = {}
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute("SET synchronous_commit = off")
        conn.execute("SET work_mem = '256MB'")
        for day, rows in days:
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            params = {"tenants": tenants, "day_ms": int(start.timestamp() * 1000), "rows": rows}
            for tenant, n, amount in conn.execute(DAY, params).fetchall():
                count, total = totals.get(tenant, (0, 0))
                totals[tenant] = (count + int(n), total + int(amount))
    return totals


def load(db_url: str, *, rows: int, days: int, tenants: list[str]) -> float:
    """Loads the history; returns how long it took (seconds)."""
    started = time.monotonic()
    first = datetime.now(UTC).date() - timedelta(days=days)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("SELECT smsgw_ensure_partitions_v2(%s, %s)", (first, days - 1))
    plan = [
        (first + timedelta(days=i), rows // days + (1 if i < rows % days else 0))
        for i in range(days)
    ]
    halves = [[p for p in plan[k::2] if p[1] > 0] for k in (0, 1)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        parts = list(pool.map(lambda half: _load_days(db_url, half, tenants), halves))
    per_tenant: Totals = {}
    for part in parts:
        for tenant, (n, amount) in part.items():
            count, total = per_tenant.get(tenant, (0, 0))
            per_tenant[tenant] = (count + n, total + amount)
    with psycopg.connect(db_url, autocommit=True) as conn:
        with conn.transaction():
            for tenant, (n, amount) in sorted(per_tenant.items()):
                conn.execute(BALANCE, {"amount": amount, "tenant": tenant})
                conn.execute(COUNTERS, {"n": n, "tenant": tenant})
        conn.execute("VACUUM (ANALYZE) messages, message_events, ledger_message_entries")
        conn.execute("CHECKPOINT")
    return time.monotonic() - started
