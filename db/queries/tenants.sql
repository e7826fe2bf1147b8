-- name: insert_tenant
INSERT INTO tenants (id, name, tier, rate_limit_mps, price_per_segment, currency, webhook_secret)
VALUES (%(id)s, %(name)s, %(tier)s, %(rate_limit_mps)s, %(price_per_segment)s, %(currency)s,
        %(webhook_secret)s)
RETURNING id, name, tier, rate_limit_mps, price_per_segment, currency, webhook_secret, created_at,
          inbound_url, help_reply, inbound_format, smart_encoding, quiet_hours_start,
          quiet_hours_end

-- name: insert_balance
INSERT INTO balances (tenant_id) VALUES (%(tenant_id)s)

-- name: get_tenant
SELECT t.id, t.name, t.tier, t.rate_limit_mps, t.price_per_segment, t.currency,
       t.webhook_secret, t.created_at, t.inbound_url, t.help_reply, t.inbound_format,
       t.sender_policy, t.smart_encoding, t.quiet_hours_start, t.quiet_hours_end,
       t.suspended_at, t.suspension_reason, b.available, b.held, b.captured,
       (SELECT c.name FROM rate_cards c
         WHERE c.id = coalesce(t.rate_card_id,
                               (SELECT d.id FROM rate_cards d WHERE d.name = t.tier)))
           AS rate_card
  FROM tenants t JOIN balances b ON b.tenant_id = t.id
 WHERE t.id = %(id)s

-- name: insert_api_key
INSERT INTO api_keys (id, tenant_id, prefix, secret_sha256)
VALUES (%(id)s, %(tenant_id)s, %(prefix)s, %(secret_sha256)s)
RETURNING id, tenant_id, prefix, created_at

-- name: revoke_api_key
UPDATE api_keys SET revoked_at = now()
 WHERE id = %(id)s AND revoked_at IS NULL
RETURNING id, tenant_id, revoked_at

-- name: lock_tenant
-- Holds a tenant's settings still until the caller's transaction ends, so what it reads
-- as "before" a change is what the change replaced (the audit trail). NO KEY UPDATE:
-- the foreign-key checks of sends (KEY SHARE) are not blocked.
SELECT id FROM tenants WHERE id = %(id)s FOR NO KEY UPDATE

-- name: api_key_exists
SELECT revoked_at FROM api_keys WHERE id = %(id)s

-- name: find_api_key
-- The live key with this prefix and its tenant; the caller compares the digest.
SELECT k.id AS key_id, k.secret_sha256, t.id, t.name, t.tier, t.rate_limit_mps,
       t.price_per_segment, t.currency, t.webhook_secret, t.created_at, t.inbound_url,
       t.help_reply, t.inbound_format, t.smart_encoding, t.quiet_hours_start,
       t.quiet_hours_end
  FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
 WHERE k.prefix = %(prefix)s AND k.revoked_at IS NULL

-- name: update_tenant
-- NULL parameters leave a column as it is, except rate_limit_mps, inbound_url and
-- help_reply, whose NULL means "none": the caller says with set_* whether to set them.
UPDATE tenants
   SET tier = coalesce(%(tier)s, tier),
       rate_limit_mps = CASE WHEN %(set_rate)s THEN %(rate_limit_mps)s ELSE rate_limit_mps END,
       price_per_segment = coalesce(%(price_per_segment)s, price_per_segment),
       inbound_url = CASE WHEN %(set_inbound_url)s THEN %(inbound_url)s ELSE inbound_url END,
       help_reply = CASE WHEN %(set_help_reply)s THEN %(help_reply)s ELSE help_reply END,
       inbound_format = coalesce(%(inbound_format)s, inbound_format),
       smart_encoding = coalesce(%(smart_encoding)s, smart_encoding),
       quiet_hours_start = CASE WHEN %(set_quiet_hours)s THEN %(quiet_hours_start)s::time
                                ELSE quiet_hours_start END,
       quiet_hours_end = CASE WHEN %(set_quiet_hours)s THEN %(quiet_hours_end)s::time
                              ELSE quiet_hours_end END
 WHERE id = %(id)s
RETURNING id

-- name: set_webhook_secret
UPDATE tenants SET webhook_secret = %(webhook_secret)s WHERE id = %(id)s RETURNING id
