-- name: claim
-- Due callbacks, leased: their next attempt moves `lease_seconds` ahead, so a sender
-- that dies leaves them to be tried again then. The payload comes as the JSON text it is
-- posted as (`body`), not decoded only to be encoded again.
WITH due AS (
    SELECT id, created_at FROM callbacks
     WHERE next_attempt_at <= now()
     ORDER BY next_attempt_at
     LIMIT %(limit)s
       FOR UPDATE SKIP LOCKED
)
UPDATE callbacks c
   SET next_attempt_at = now() + make_interval(secs => %(lease_seconds)s),
       attempts = c.attempts + 1
  FROM due
 WHERE c.id = due.id AND c.created_at = due.created_at
RETURNING c.id, c.created_at, c.tenant_id, c.message_id, c.url, c.payload::text AS body,
          c.attempts, c.kind,
          (SELECT t.webhook_secret FROM tenants t WHERE t.id = c.tenant_id) AS webhook_secret,
          -- Twilio-format callbacks are signed with the account's auth token.
          (SELECT a.auth_token FROM twilio_accounts a WHERE a.tenant_id = c.tenant_id)
              AS twilio_auth_token,
          (SELECT a.account_sid FROM twilio_accounts a WHERE a.tenant_id = c.tenant_id)
              AS twilio_account_sid

-- name: finish
-- The attempts of a batch, as JSON rows (db.sql.json_rows).
UPDATE callbacks c
   SET last_status_code = r.status_code,
       last_error = r.error,
       delivered_at = CASE WHEN r.outcome = 'delivered' THEN now() END,
       abandoned_at = CASE WHEN r.outcome = 'abandoned' THEN now() END,
       next_attempt_at = r.next_attempt_at,
       last_attempt_at = now(),
       last_latency_ms = r.latency_ms
  FROM json_to_recordset(%(attempts)s::json)
       AS r(id uuid, created_at timestamptz, outcome text, status_code integer, error text,
            next_attempt_at timestamptz, latency_ms integer)
 WHERE c.id = r.id AND c.created_at = r.created_at

-- name: enqueue
-- One callback written by the code rather than the messages trigger (inbound messages).
INSERT INTO callbacks (tenant_id, message_id, url, payload, kind)
VALUES (%(tenant_id)s, %(message_id)s, %(url)s, %(payload)s, %(kind)s)

-- name: list_for_tenant
-- A tenant's webhook deliveries, newest first, keyset-paginated on (created_at, id)
-- (callbacks_tenant_idx). The signing secret is not read.
SELECT id, created_at, message_id, url, kind, payload ->> 'status' AS status, attempts,
       last_attempt_at, last_status_code, last_error, last_latency_ms, next_attempt_at,
       delivered_at, abandoned_at
  FROM callbacks
 WHERE tenant_id = %(tenant_id)s
   AND (created_at, id) < (coalesce(%(before_created_at)s::timestamptz, 'infinity'),
                           coalesce(%(before_id)s::uuid, 'ffffffff-ffff-ffff-ffff-ffffffffffff'))
 ORDER BY created_at DESC, id DESC
 LIMIT %(limit)s
