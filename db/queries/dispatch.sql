-- name: plan_key_batches
-- For the rest of the transaction (see mark_sending): no nested loop that re-reads the
-- JSON keys per message, and no partition read whole; the keys' rows are found through
-- the primary key (`id = ANY`) and hash-joined to the JSON.
SELECT set_config('enable_nestloop', 'off', true), set_config('enable_seqscan', 'off', true)

-- name: turn_tenants
-- A turn of a tier: its longest-waiting tenants first (round-robin, see dispatch_queue).
-- Nothing is locked here: two turns may pick the same tenants, and SKIP LOCKED in the
-- claim splits their messages between them.
SELECT q.tenant_id, q.oldest, t.tier, t.rate_limit_mps
  FROM dispatch_queue q
  JOIN tenants t ON t.id = q.tenant_id
 WHERE q.tier = %(tier)s AND q.due_at <= now()
 ORDER BY q.due_at
 LIMIT %(tenants)s

-- name: claim_candidates
-- Up to `per_tenant` due messages of each tenant of the turn, in due order, that no
-- other worker holds. The caller routes them, then marks, postpones, expires or fails
-- each, in this transaction. `created_at >= oldest` lets PostgreSQL skip the partitions
-- that cannot hold one.
SELECT m.created_at, m.id, m.tenant_id, m.status, m.to_number, m.provider, m.attempts,
       m.expires_at, m.segments, m.price_per_segment
  FROM unnest(%(tenant_ids)s::uuid[], %(oldest)s::timestamptz[]) AS t(tenant_id, oldest)
 CROSS JOIN LATERAL (
    SELECT created_at, id, tenant_id, status, to_number, provider, attempts, expires_at,
           segments, price_per_segment
      FROM messages
     WHERE tenant_id = t.tenant_id AND status IN ('scheduled', 'queued')
       AND next_attempt_at <= now() AND created_at >= t.oldest
     ORDER BY next_attempt_at
     LIMIT %(per_tenant)s
       FOR UPDATE SKIP LOCKED
 ) AS m

-- name: mark_sending
-- The claim proper: `sending` under a lease, with its provider; attempts + 1 names it.
-- In this and the statements below, `oldest`/`newest` (the keys' range of created_at)
-- let PostgreSQL prune the daily partitions: the join on the JSON keys alone cannot, so
-- every key would probe every partition's primary key (a cost that grows with history).
-- `ids` gives the planner what the JSON cannot: how many rows, and the primary key to
-- find them by. Without it, a partition whose statistics were taken while it was still
-- small was read whole, or joined to the JSON row by row (1,000 keys: 170 ms, not 5).
-- The statements run unprepared, so each plan is made for the keys it is given, and
-- after plan_key_batches, so that neither of those plans is chosen whatever the
-- statistics say (a day's partition read whole cost more as the day filled up: the
-- growth benchmark's history made it 0.71 of the empty table).
UPDATE messages m
   SET status = 'sending',
       attempts = m.attempts + 1,
       provider = r.provider,
       cost = r.cost_per_segment * m.segments,
       lease_expires_at = now() + make_interval(secs => %(lease_seconds)s),
       next_attempt_at = NULL,
       updated_at = clock_timestamp()
  FROM json_to_recordset(%(claims)s::json)
           AS r(created_at timestamptz, id uuid, provider text, cost_per_segment bigint)
 WHERE m.created_at = r.created_at AND m.id = r.id
   AND m.created_at BETWEEN %(oldest)s AND %(newest)s AND m.id = ANY (%(ids)s::uuid[])
RETURNING m.created_at, m.id, m.attempts, m.provider, m.to_number, m.sender, m.body,
          m.encoding, m.segments, m.expires_at

-- name: postpone
-- Routable later (breaker open, throttled, out of budget): wait without an attempt.
UPDATE messages m
   SET next_attempt_at = %(until)s
  FROM json_to_recordset(%(keys)s::json) AS r(created_at timestamptz, id uuid)
 WHERE m.created_at = r.created_at AND m.id = r.id
   AND m.created_at BETWEEN %(oldest)s AND %(newest)s AND m.id = ANY (%(ids)s::uuid[])

-- name: settle
-- The outcome of one claim, one row per message: `sent` captures the hold, `failed` and
-- `expired` release it, `queued` schedules a retry. A message is settled only by the
-- claim that sent it (same attempts) and only once: a late or repeated settle changes
-- nothing, and the (message, phase) key of the ledger refuses a second settlement.
-- Returns, per tenant, what to add to its balance (apply_settlement) and the oldest
-- message it has due again (a retry), for the recount.
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
     WHERE m.created_at = r.created_at AND m.id = r.id
       AND m.created_at BETWEEN %(oldest)s AND %(newest)s AND m.id = ANY (%(ids)s::uuid[])
       AND m.attempts = r.attempts AND m.status IN ('sending', 'queued', 'scheduled')
    RETURNING m.created_at, m.id, m.tenant_id, m.status, m.price
), entries AS (
    INSERT INTO ledger_message_entries (message_created_at, message_id, tenant_id, kind, amount)
    SELECT created_at, id, tenant_id,
           CASE WHEN status = 'sent' THEN 'capture' ELSE 'release' END, price
      FROM settled
     WHERE status IN ('sent', 'failed', 'expired')
    ON CONFLICT DO NOTHING
    RETURNING tenant_id, kind, amount, message_created_at
), totals AS (
    -- Releases of messages accepted this UTC day (month) give their money back to the
    -- spend caps (smsgw_apply_settlement_v2).
    SELECT tenant_id,
           coalesce(sum(amount) FILTER (WHERE kind = 'capture'), 0) AS captured,
           coalesce(sum(amount) FILTER (WHERE kind = 'release'), 0) AS released,
           coalesce(sum(amount) FILTER (
               WHERE kind = 'release'
                 AND (message_created_at AT TIME ZONE 'UTC')::date = smsgw_spend_day_v1()),
               0) AS released_day,
           coalesce(sum(amount) FILTER (
               WHERE kind = 'release'
                 AND date_trunc('month', message_created_at AT TIME ZONE 'UTC')::date
                     = smsgw_spend_month_v1()),
               0) AS released_month
      FROM entries GROUP BY tenant_id
), outcomes AS (
    SELECT tenant_id, status, count(*) AS messages,
           min(created_at) FILTER (WHERE status = 'queued') AS due_again_oldest
      FROM settled GROUP BY tenant_id, status
)
SELECT o.tenant_id, o.status, o.messages, o.due_again_oldest,
       coalesce(t.captured, 0) AS captured, coalesce(t.released, 0) AS released,
       coalesce(t.released_day, 0) AS released_day,
       coalesce(t.released_month, 0) AS released_month
  FROM outcomes o LEFT JOIN totals t USING (tenant_id)

-- name: apply_settlement
-- The balances after a settle, tenant by tenant in id order (two turns settling for the
-- same tenants never wait for each other in opposite orders).
SELECT smsgw_apply_settlement_v2(%(tenant_ids)s::uuid[], %(captured)s::bigint[],
                                 %(released)s::bigint[], %(released_day)s::bigint[],
                                 %(released_month)s::bigint[]) AS tenants

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
RETURNING m.tenant_id, m.created_at

-- name: tenants_without_dispatch
-- Every tenant with scheduled or queued messages should have a dispatch_queue row; this
-- finds those that do not (a skip scan over the due index, one probe per tenant), for
-- the safety net.
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
   AND NOT EXISTS (SELECT 1 FROM dispatch_queue q WHERE q.tenant_id = p.tenant_id)

-- name: tiers_without_turn
-- Tiers with queued tenants but no dispatch turn waiting, or running in a live worker.
-- A turn left running by a worker that died (no heartbeat for `alive_seconds`) does not
-- count: while it looked like the tier's turn, accepts queued nothing and the tier
-- waited for the stalled-job recovery, a minute and more after the crash.
SELECT q.tier, min(q.due_at) AS due
  FROM dispatch_queue q
 GROUP BY q.tier
HAVING NOT EXISTS (
        SELECT 1 FROM procrastinate_jobs j
         WHERE j.queueing_lock = 'dispatch:tier:' || q.tier
           AND (j.status = 'todo'
                OR (j.status = 'doing' AND EXISTS (
                    SELECT 1 FROM procrastinate_workers w
                     WHERE w.id = j.worker_id
                       AND w.last_heartbeat > now() - make_interval(secs => %(alive_seconds)s)))))

-- name: requeue_tenants
SELECT smsgw_requeue_tenants_v1(%(tenant_ids)s::uuid[], %(oldest)s::timestamptz[],
                                %(task)s, %(back_of_line)s) AS queued

-- name: ensure_tier_turn
SELECT smsgw_ensure_tier_turn_v1(%(tier)s, %(task)s, %(due)s) AS action

-- name: start_paced_turn
-- A turn that follows a small one is likely small too: before it claims, and committed at
-- once, the tier's next turn is paced from now. Otherwise an accept of a tenant new to
-- the queue during its claim (the pace it sees is this turn's own, now past) would queue
-- a turn at once, a second one with a message or two. No row is touched after a full
-- turn, so turns draining a backlog do not write here.
UPDATE tier_pace SET not_before = now() + make_interval(secs => %(gap_seconds)s)
 WHERE tier = %(tier)s AND small

-- name: pace_tier
-- The claim of a small turn: the tier's next turn is queued to start no earlier than
-- `gap_seconds` from now (smsgw_ensure_tier_turn_v1).
INSERT INTO tier_pace AS p (tier, not_before, small)
VALUES (%(tier)s, now() + make_interval(secs => %(gap_seconds)s), true)
ON CONFLICT (tier) DO UPDATE SET not_before = excluded.not_before, small = true

-- name: unpace_tier
-- The claim of a full turn: the tier's next turn may start at once. The row is locked
-- only when a small turn had set it, so full turns of a tier claiming at the same time
-- do not wait for each other here.
UPDATE tier_pace SET not_before = now(), small = false
 WHERE tier = %(tier)s AND (small OR not_before > now())

-- name: ensure_next_turn
-- A turn that found no tenant due (made due later, after it was queued: a retry's
-- backoff): the tier's turn for the earliest of them, if any wait.
SELECT smsgw_ensure_tier_turn_v1(%(tier)s, %(task)s, min(q.due_at)) AS action
  FROM dispatch_queue q
 WHERE q.tier = %(tier)s
HAVING count(*) > 0

-- name: take_tenant_segments
SELECT smsgw_take_tenant_segments_v1(%(tenant_id)s, %(wanted)s, %(rate)s) AS granted

-- name: provider_costs
-- Each provider's cost per segment for each number, where its own price list covers it.
SELECT to_number, provider, cost_per_segment FROM smsgw_provider_costs_v1(%(numbers)s::text[])
