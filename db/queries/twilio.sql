-- name: put_account
-- The tenant's account: created on first use; later a new token replaces the old one
-- (the SID stays).
INSERT INTO twilio_accounts AS a (account_sid, tenant_id, token_sha256, auth_token)
VALUES (%(account_sid)s, %(tenant_id)s, %(token_sha256)s, %(auth_token)s)
ON CONFLICT (tenant_id) DO UPDATE
   SET token_sha256 = excluded.token_sha256, auth_token = excluded.auth_token,
       rotated_at = now()
RETURNING a.account_sid, a.created_at, a.rotated_at

-- name: find_account
SELECT a.account_sid, a.token_sha256, t.id, t.name, t.tier, t.rate_limit_mps,
       t.price_per_segment, t.currency, t.webhook_secret, t.created_at, t.inbound_url,
       t.help_reply, t.inbound_format, t.smart_encoding, t.quiet_hours_start, t.quiet_hours_end
  FROM twilio_accounts a JOIN tenants t ON t.id = a.tenant_id
 WHERE a.account_sid = %(account_sid)s

-- name: first_number
-- The sender a MessagingServiceSid stands for: the tenant's oldest E.164 number.
SELECT number FROM owned_numbers
 WHERE tenant_id = %(tenant_id)s AND number LIKE '+%%'
 ORDER BY created_at, number
 LIMIT 1

-- name: outbound_older
-- A page of the facade's list, newest first, from before the cursor.
SELECT * FROM messages
 WHERE tenant_id = %(tenant_id)s
   AND (%(to)s::text IS NULL OR to_number = %(to)s::text)
   AND (%(from_number)s::text IS NULL OR sender = %(from_number)s::text)
   AND created_at >= coalesce(%(since)s::timestamptz, '-infinity')
   AND created_at < coalesce(%(until)s::timestamptz, 'infinity')
   AND (%(cursor_id)s::uuid IS NULL
        OR (created_at, id) < (%(cursor_at)s::timestamptz, %(cursor_id)s::uuid))
 ORDER BY created_at DESC, id DESC
 LIMIT %(limit)s

-- name: outbound_newer
-- The same, oldest first, from after the cursor (a previous page).
SELECT * FROM messages
 WHERE tenant_id = %(tenant_id)s
   AND (%(to)s::text IS NULL OR to_number = %(to)s::text)
   AND (%(from_number)s::text IS NULL OR sender = %(from_number)s::text)
   AND created_at >= coalesce(%(since)s::timestamptz, '-infinity')
   AND created_at < coalesce(%(until)s::timestamptz, 'infinity')
   AND (created_at, id) > (%(cursor_at)s::timestamptz, %(cursor_id)s::uuid)
 ORDER BY created_at, id
 LIMIT %(limit)s

-- name: inbound_older
SELECT * FROM inbound_messages
 WHERE tenant_id = %(tenant_id)s
   AND (%(to)s::text IS NULL OR to_number = %(to)s::text)
   AND (%(from_number)s::text IS NULL OR from_number = %(from_number)s::text)
   AND received_at >= coalesce(%(since)s::timestamptz, '-infinity')
   AND received_at < coalesce(%(until)s::timestamptz, 'infinity')
   AND (%(cursor_id)s::uuid IS NULL
        OR (received_at, id) < (%(cursor_at)s::timestamptz, %(cursor_id)s::uuid))
 ORDER BY received_at DESC, id DESC
 LIMIT %(limit)s

-- name: inbound_newer
SELECT * FROM inbound_messages
 WHERE tenant_id = %(tenant_id)s
   AND (%(to)s::text IS NULL OR to_number = %(to)s::text)
   AND (%(from_number)s::text IS NULL OR from_number = %(from_number)s::text)
   AND received_at >= coalesce(%(since)s::timestamptz, '-infinity')
   AND received_at < coalesce(%(until)s::timestamptz, 'infinity')
   AND (received_at, id) > (%(cursor_at)s::timestamptz, %(cursor_id)s::uuid)
 ORDER BY received_at, id
 LIMIT %(limit)s
