-- name: claim_candidates
-- A tenant's turn: lock up to `limit` due messages no other worker holds. The caller
-- routes them, then marks, postpones, expires or fails each, in this transaction.
SELECT created_at, id, status, to_number, provider, attempts, expires_at, segments
  FROM messages
 WHERE tenant_id = %(tenant_id)s AND status IN ('scheduled', 'queued')
   AND next_attempt_at <= now()
 ORDER BY next_attempt_at
 LIMIT %(limit)s
   FOR UPDATE SKIP LOCKED

-- name: mark_sending
-- The claim proper: `sending` under a lease, with its provider; attempts + 1 names it.
-- In this and the statements below, `oldest`/`newest` (the keys' range of created_at)
-- let PostgreSQL prune the daily partitions: the join on the JSON keys alone cannot, so
-- every key would probe every partition's primary key (a cost that grows with history).
UPDATE messages m
   SET status = 'sending',
       attempts = m.attempts + 1,
       provider = r.provider,
       lease_expires_at = now() + make_interval(secs => %(lease_seconds)s),
       next_attempt_at = NULL,
       updated_at = clock_timestamp()
  FROM json_to_recordset(%(claims)s::json) AS r(created_at timestamptz, id uuid, provider text)
 WHERE m.created_at = r.created_at AND m.id = r.id AND m.tenant_id = %(tenant_id)s
   AND m.created_at BETWEEN %(oldest)s AND %(newest)s
RETURNING m.created_at, m.id, m.attempts, m.provider, m.to_number, m.sender, m.body,
          m.encoding, m.segments, m.expires_at

-- name: postpone
-- Routable later (breaker open, throttled, out of budget): wait without an attempt.
UPDATE messages m
   SET next_attempt_at = %(until)s
  FROM json_to_recordset(%(keys)s::json) AS r(created_at timestamptz, id uuid)
 WHERE m.created_at = r.created_at AND m.id = r.id AND m.tenant_id = %(tenant_id)s
   AND m.created_at BETWEEN %(oldest)s AND %(newest)s

-- name: expire
-- Messages whose validity ended while they waited: expired, hold released.
WITH expired AS (
    UPDATE messages m
       SET status = 'expired', next_attempt_at = NULL,
           error_code = 'validity_expired',
           error_message = 'the validity period ended before the message was sent',
           updated_at = clock_timestamp()
      FROM json_to_recordset(%(keys)s::json) AS r(created_at timestamptz, id uuid)
     WHERE m.created_at = r.created_at AND m.id = r.id AND m.tenant_id = %(tenant_id)s
       AND m.created_at BETWEEN %(oldest)s AND %(newest)s
       AND m.status IN ('scheduled', 'queued')
    RETURNING m.created_at, m.id, m.tenant_id, m.price
), released AS (
    INSERT INTO ledger_message_entries (message_created_at, message_id, tenant_id, kind, amount)
    SELECT created_at, id, tenant_id, 'release', price FROM expired
    ON CONFLICT DO NOTHING
    RETURNING amount
)
UPDATE balances
   SET held = held - r.amount, available = available + r.amount
  FROM (SELECT sum(amount) AS amount FROM released) AS r
 WHERE tenant_id = %(tenant_id)s AND r.amount IS NOT NULL

-- name: settle
-- The outcome of one claim, one row per message: `sent` captures the hold, `failed` and
-- `expired` release it, `queued` schedules a retry. A message is settled only by the
-- claim that sent it (same attempts) and only once: a late or repeated settle changes
-- nothing, and the (message, phase) key of the ledger refuses a second settlement.
WITH results AS (
    SELECT * FROM json_to_recordset(%(results)s::json) AS r(
        id uuid, created_at timestamptz, attempts smallint, outcome text,
        provider_message_id text, error_code text, error_message text,
        next_attempt_at timestamptz)
), settled AS (
    UPDATE messages m
       SET status = r.outcome,
           provider_message_id = coalesce(r.provider_message_id, m.provider_message_id),
           error_code = r.error_code,
           error_message = r.error_message,
           next_attempt_at = r.next_attempt_at,
           lease_expires_at = NULL,
           sent_at = CASE WHEN r.outcome = 'sent' THEN clock_timestamp() ELSE m.sent_at END,
           updated_at = clock_timestamp()
      FROM results r
     WHERE m.created_at = r.created_at AND m.id = r.id AND m.tenant_id = %(tenant_id)s
       AND m.created_at BETWEEN %(oldest)s AND %(newest)s
       AND m.attempts = r.attempts AND m.status IN ('sending', 'queued', 'scheduled')
    RETURNING m.created_at, m.id, m.tenant_id, m.status, m.price
), entries AS (
    INSERT INTO ledger_message_entries (message_created_at, message_id, tenant_id, kind, amount)
    SELECT created_at, id, tenant_id,
           CASE WHEN status = 'sent' THEN 'capture' ELSE 'release' END, price
      FROM settled
     WHERE status IN ('sent', 'failed', 'expired')
    ON CONFLICT DO NOTHING
    RETURNING kind, amount
), totals AS (
    SELECT coalesce(sum(amount) FILTER (WHERE kind = 'capture'), 0) AS captured,
           coalesce(sum(amount) FILTER (WHERE kind = 'release'), 0) AS released
      FROM entries
), balance AS (
    UPDATE balances b
       SET held = b.held - t.captured - t.released,
           captured = b.captured + t.captured,
           available = b.available + t.released
      FROM totals t
     WHERE b.tenant_id = %(tenant_id)s AND (t.captured > 0 OR t.released > 0)
)
SELECT status, count(*) AS messages FROM settled GROUP BY status

-- name: lock_balance
-- Orders this transaction after every accept of the tenant that is in flight: the
-- statement that follows sees their messages (see jobs/scheduler.py).
SELECT tenant_id FROM balances WHERE tenant_id = %(tenant_id)s FOR NO KEY UPDATE

-- name: next_due
SELECT min(next_attempt_at) AS next_due
  FROM messages
 WHERE tenant_id = %(tenant_id)s AND status IN ('scheduled', 'queued')

-- name: recover_leases
-- Messages whose worker died mid-send go back to the queue (at-least-once upstream; the
-- settle's attempts check keeps the billing exactly-once).
WITH lapsed AS (
    SELECT created_at, id FROM messages
     WHERE status = 'sending' AND lease_expires_at < now()
     ORDER BY lease_expires_at
     LIMIT %(limit)s
       FOR UPDATE SKIP LOCKED
)
UPDATE messages m
   SET status = 'queued', next_attempt_at = now(), lease_expires_at = NULL,
       error_code = 'lease_expired',
       error_message = 'the worker sending this message stopped; it was queued again',
       updated_at = clock_timestamp()
  FROM lapsed
 WHERE m.created_at = lapsed.created_at AND m.id = lapsed.id
RETURNING m.tenant_id

-- name: tenants_without_dispatch
-- Every tenant with scheduled or queued messages should have a dispatch job waiting or
-- running; this finds those that do not (a skip scan over the due index, one probe per
-- tenant), for the safety net.
WITH RECURSIVE pending AS (
    (SELECT tenant_id FROM messages
      WHERE status IN ('scheduled', 'queued')
      ORDER BY tenant_id LIMIT 1)
    UNION ALL
    SELECT (SELECT m.tenant_id FROM messages m
             WHERE m.status IN ('scheduled', 'queued') AND m.tenant_id > pending.tenant_id
             ORDER BY m.tenant_id LIMIT 1)
      FROM pending
     WHERE pending.tenant_id IS NOT NULL
)
SELECT p.tenant_id FROM pending p
 WHERE p.tenant_id IS NOT NULL
   AND NOT EXISTS (
        SELECT 1 FROM procrastinate_jobs j
         WHERE j.queueing_lock = 'dispatch:' || p.tenant_id
           AND j.status IN ('todo', 'doing'))

-- name: tenant_tier
SELECT tier FROM tenants WHERE id = %(tenant_id)s

-- name: tenant_dispatch_info
SELECT tier, rate_limit_mps FROM tenants WHERE id = %(tenant_id)s

-- name: take_tenant_segments
SELECT smsgw_take_tenant_segments_v1(%(tenant_id)s, %(wanted)s, %(rate)s) AS granted
