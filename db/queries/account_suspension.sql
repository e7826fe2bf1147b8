-- name: lock_balance
-- Waits for the tenant's accepts in flight (each holds its balance row until it
-- commits), so the hold-back that follows sees their messages.
SELECT tenant_id FROM balances WHERE tenant_id = %(tenant_id)s FOR UPDATE

-- name: suspend
-- Suspended since the first suspension; a repeat only changes the reason.
UPDATE tenants
   SET suspended_at = coalesce(suspended_at, now()), suspension_reason = %(reason)s
 WHERE id = %(tenant_id)s
RETURNING suspended_at

-- name: resume
UPDATE tenants SET suspended_at = NULL, suspension_reason = NULL
 WHERE id = %(tenant_id)s AND suspended_at IS NOT NULL
RETURNING id

-- name: hold_back
-- The tenant's queued and scheduled messages wait until their expiry: dispatch does not
-- claim them, so they are neither sent nor billed; if the suspension outlives them they
-- expire and their holds are released, as any message past its validity.
UPDATE messages m
   SET next_attempt_at = m.expires_at
 WHERE m.tenant_id = %(tenant_id)s AND m.status IN ('scheduled', 'queued')
   AND m.next_attempt_at < m.expires_at
RETURNING m.id

-- name: release_held
-- On resume, the messages the suspension held back are due again now (a scheduled one
-- at its send_at), except those to a destination pumping protection still suspends,
-- which wait for that suspension as before.
UPDATE messages m
   SET next_attempt_at = greatest(coalesce(m.send_at, m.created_at), now())
 WHERE m.tenant_id = %(tenant_id)s AND m.status IN ('scheduled', 'queued')
   AND m.next_attempt_at = m.expires_at AND m.expires_at > now()
   AND NOT EXISTS (
       SELECT 1 FROM destination_suspensions s
        WHERE s.tenant_id = m.tenant_id AND s.lifted_at IS NULL AND s.until > now()
          AND starts_with(substr(m.to_number, 2), s.prefix))
RETURNING m.id

-- name: suspended_count
SELECT count(*) AS n FROM tenants WHERE suspended_at IS NOT NULL
