-- name: accept
-- Destination rules, senders, opt-outs, price, hold (within credit and the spend caps),
-- messages, ledger, pumping counters and the tenant's queue row in one call
-- (smsgw_accept_v7).
SELECT accepted, available, tokens, opted_out, not_priced, sender_refused, rates, cap_room
  FROM smsgw_accept_v7(%(tenant_id)s, %(rate)s, %(messages)s::json,
                       %(queue)s, %(task)s, %(honour_opt_outs)s)

-- name: accept_one
-- One message: the same as `accept` with typed arguments (smsgw_accept_one_v4).
SELECT accepted, available, tokens, opted_out, stale, not_priced, price, price_per_segment,
       rate_card, rate_card_version, rate_prefix, sender, sender_refused, retry_at, cap_room
  FROM smsgw_accept_one_v4(
    %(tenant_id)s, %(rate)s, %(queue)s, %(task)s, %(honour_opt_outs)s, %(id)s,
    %(created_at)s, %(status)s, %(to_number)s, %(sender)s, %(body)s, %(encoding)s,
    %(segments)s::smallint, %(price)s, %(callback_url)s, %(client_reference)s,
    %(send_at)s, %(expires_at)s, %(facade)s, %(messaging_service_sid)s, %(key_id)s,
    %(to_country)s, %(quiet_until)s, %(smart)s, %(quiet_start)s::time, %(quiet_end)s::time)

-- name: accept_sends
-- Single sends of any tenants, each with its own outcome (smsgw_accept_sends_v4).
SELECT id, outcome, available, tokens, price, price_per_segment, rate_card,
       rate_card_version, rate_prefix, sender, refusal, retry_at, cap_room
  FROM smsgw_accept_sends_v4(%(sends)s::json, %(task)s)

-- name: quote
-- The rate a send to `to_number` would be held at now: the accept's own lookup, and
-- whether the tenant's geo permissions let it send there (`refusal`; NULL: they do).
SELECT g.refusal,
       q.price_per_segment, q.rate_card, q.rate_card_version, q.rate_prefix
  FROM (SELECT smsgw_rating_v1(%(tenant_id)s, now()) AS rating OFFSET 0) AS t
  CROSS JOIN smsgw_geo_refusal_v2(%(tenant_id)s, %(to_country)s::text) AS g
  LEFT JOIN LATERAL smsgw_rate_v1(t.rating, %(to_number)s) AS q ON true

-- name: get_message
SELECT * FROM messages
 WHERE created_at = %(created_at)s AND id = %(id)s AND tenant_id = %(tenant_id)s

-- name: cancel_message
-- Only a scheduled or queued message can be canceled; its hold is released in the same
-- statement. A message a dispatcher has just claimed is `sending` and is left alone.
WITH canceled AS (
    UPDATE messages
       SET status = 'canceled', updated_at = clock_timestamp(), next_attempt_at = NULL
     WHERE created_at = %(created_at)s AND id = %(id)s AND tenant_id = %(tenant_id)s
       AND status IN ('scheduled', 'queued')
    RETURNING *
), released AS (
    INSERT INTO ledger_message_entries (message_created_at, message_id, tenant_id, kind, amount)
    SELECT created_at, id, tenant_id, 'release', price FROM canceled
    ON CONFLICT DO NOTHING
    RETURNING amount, message_created_at
), refund AS (
    -- A message accepted this UTC day (month) gives its money back to the spend caps.
    UPDATE balances
       SET held = held - r.amount, available = available + r.amount,
           day_spent = CASE WHEN spend_day = smsgw_spend_day_v1() AND r.today
                            THEN greatest(day_spent - r.amount, 0) ELSE day_spent END,
           month_spent = CASE WHEN spend_month = smsgw_spend_month_v1() AND r.this_month
                              THEN greatest(month_spent - r.amount, 0) ELSE month_spent END
      FROM (SELECT sum(amount) AS amount,
                   bool_and((message_created_at AT TIME ZONE 'UTC')::date
                            = smsgw_spend_day_v1()) AS today,
                   bool_and(date_trunc('month', message_created_at AT TIME ZONE 'UTC')::date
                            = smsgw_spend_month_v1()) AS this_month
              FROM released) AS r
     WHERE tenant_id = %(tenant_id)s AND r.amount IS NOT NULL
)
SELECT * FROM canceled

-- name: list_messages
-- Newest first, keyset-paginated on (created_at, id); NULL filters are off. A statement
-- per shape of filter (below), each with its index, so that the plan a prepared
-- statement settles on fits every call of it: one statement with an optional status and
-- recipient got a generic plan reading the tenant's every message to find none. The
-- cursor's `created_at <=` bound (the row comparison alone is not an index condition in
-- a generic plan) starts the scan at the cursor and skips the newer days' partitions.
SELECT * FROM messages
 WHERE tenant_id = %(tenant_id)s
   AND created_at > coalesce(%(created_after)s::timestamptz, '-infinity')
   AND created_at < coalesce(%(created_before)s::timestamptz, 'infinity')
   AND created_at <= coalesce(%(before_created_at)s::timestamptz, 'infinity')
   AND (%(before_id)s::uuid IS NULL
        OR (created_at, id) < (%(before_created_at)s::timestamptz, %(before_id)s::uuid))
 ORDER BY created_at DESC, id DESC
 LIMIT %(limit)s

-- name: list_messages_rare_status
-- As list_messages, of one of the statuses messages_tenant_rare_status_idx holds: the
-- constant list lets a generic plan use the partial index.
SELECT * FROM messages
 WHERE tenant_id = %(tenant_id)s
   AND status IN ('sent', 'failed', 'undelivered', 'expired', 'canceled')
   AND status = %(status)s::text
   AND created_at > coalesce(%(created_after)s::timestamptz, '-infinity')
   AND created_at < coalesce(%(created_before)s::timestamptz, 'infinity')
   AND created_at <= coalesce(%(before_created_at)s::timestamptz, 'infinity')
   AND (%(before_id)s::uuid IS NULL
        OR (created_at, id) < (%(before_created_at)s::timestamptz, %(before_id)s::uuid))
 ORDER BY created_at DESC, id DESC
 LIMIT %(limit)s

-- name: list_messages_waiting
-- As list_messages, queued or scheduled (messages_due_idx: the tenant's backlog).
SELECT * FROM messages
 WHERE tenant_id = %(tenant_id)s
   AND status IN ('scheduled', 'queued')
   AND status = %(status)s::text
   AND created_at > coalesce(%(created_after)s::timestamptz, '-infinity')
   AND created_at < coalesce(%(created_before)s::timestamptz, 'infinity')
   AND created_at <= coalesce(%(before_created_at)s::timestamptz, 'infinity')
   AND (%(before_id)s::uuid IS NULL
        OR (created_at, id) < (%(before_created_at)s::timestamptz, %(before_id)s::uuid))
 ORDER BY created_at DESC, id DESC
 LIMIT %(limit)s

-- name: list_messages_walking
-- As list_messages, delivered or sending: most messages are delivered, and those being
-- sent are the newest, so the newest-first walk finds a page at once.
SELECT * FROM messages
 WHERE tenant_id = %(tenant_id)s
   AND status = %(status)s::text
   AND created_at > coalesce(%(created_after)s::timestamptz, '-infinity')
   AND created_at < coalesce(%(created_before)s::timestamptz, 'infinity')
   AND created_at <= coalesce(%(before_created_at)s::timestamptz, 'infinity')
   AND (%(before_id)s::uuid IS NULL
        OR (created_at, id) < (%(before_created_at)s::timestamptz, %(before_id)s::uuid))
 ORDER BY created_at DESC, id DESC
 LIMIT %(limit)s

-- name: list_messages_to
-- As list_messages, to one recipient, of any status or of one. No index on messages
-- leads with the recipient (it would be written with every status change of every
-- message): message_recipients indexes them up to recipient_index.indexed_through (a
-- job, minutes behind the clock), and the tenant's messages after that instant are
-- walked newest first. From the index, each message is read by its primary key in the
-- index's order (OFFSET 0 keeps the planner from driving the search from the tenant's
-- whole history instead), its own tenant and number checked again: the index holds a
-- hash of them.
WITH mark AS MATERIALIZED (SELECT indexed_through AS at FROM recipient_index)
SELECT * FROM (
    (SELECT m.* FROM messages m
      WHERE m.tenant_id = %(tenant_id)s
        AND m.to_number = %(to_number)s::text
        AND m.created_at >= (SELECT at FROM mark)
        AND (%(status)s::text IS NULL OR m.status = %(status)s::text)
        AND m.created_at > coalesce(%(created_after)s::timestamptz, '-infinity')
        AND m.created_at < coalesce(%(created_before)s::timestamptz, 'infinity')
        AND m.created_at <= coalesce(%(before_created_at)s::timestamptz, 'infinity')
        AND (%(before_id)s::uuid IS NULL
             OR (m.created_at, m.id) < (%(before_created_at)s::timestamptz, %(before_id)s::uuid))
      ORDER BY m.created_at DESC, m.id DESC
      LIMIT %(limit)s)
    UNION ALL
    (SELECT m.* FROM message_recipients r
      CROSS JOIN LATERAL (
            SELECT * FROM messages
             WHERE id = r.message_id AND created_at = r.created_at
               AND tenant_id = %(tenant_id)s AND to_number = %(to_number)s::text
               AND (%(status)s::text IS NULL OR status = %(status)s::text)
            OFFSET 0) AS m
      WHERE r.recipient = smsgw_recipient_key_v1(%(tenant_id)s, %(to_number)s::text)
        AND r.created_at < (SELECT at FROM mark)
        AND r.created_at > coalesce(%(created_after)s::timestamptz, '-infinity')
        AND r.created_at < coalesce(%(created_before)s::timestamptz, 'infinity')
        AND r.created_at <= coalesce(%(before_created_at)s::timestamptz, 'infinity')
        AND (%(before_id)s::uuid IS NULL
             OR (r.created_at, r.message_id)
                < (%(before_created_at)s::timestamptz, %(before_id)s::uuid))
      ORDER BY r.created_at DESC, r.message_id DESC
      LIMIT %(limit)s)
) AS found
 ORDER BY created_at DESC, id DESC
 LIMIT %(limit)s

-- name: status_history
-- A message's statuses in order (the trigger writes one row per change).
SELECT status, at, error_code FROM message_events
 WHERE message_created_at = %(created_at)s AND message_id = %(id)s
   AND tenant_id = %(tenant_id)s
 ORDER BY at

-- name: index_recipients
-- Index the recipients of the messages created up to `through` (smsgw_index_recipients_v1).
SELECT smsgw_index_recipients_v1(%(through)s) AS indexed
