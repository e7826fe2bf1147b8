-- name: add_number
-- Nothing when the number is owned already (by this tenant or another). A number's
-- country lets a message without a sender find it (smsgw_sender_v1).
INSERT INTO owned_numbers (number, tenant_id, country)
VALUES (%(number)s, %(tenant_id)s,
        CASE WHEN left(%(number)s, 1) = '+' THEN smsgw_country_v1(%(number)s) END)
ON CONFLICT (number) DO NOTHING
RETURNING number, tenant_id, created_at

-- name: get_number
SELECT number, tenant_id, created_at FROM owned_numbers WHERE number = %(number)s

-- name: list_numbers
SELECT number, tenant_id, created_at FROM owned_numbers
 WHERE tenant_id = %(tenant_id)s
 ORDER BY created_at, number

-- name: delete_number
DELETE FROM owned_numbers WHERE tenant_id = %(tenant_id)s AND number = %(number)s
RETURNING number

-- name: find_owner
-- The tenant owning one of `numbers` (the spellings of an inbound destination).
SELECT o.number, t.id, t.name, t.tier, t.rate_limit_mps, t.price_per_segment, t.currency,
       t.webhook_secret, t.created_at, t.inbound_url, t.help_reply,
       t.inbound_format, t.smart_encoding, t.quiet_hours_start, t.quiet_hours_end
  FROM owned_numbers o JOIN tenants t ON t.id = o.tenant_id
 WHERE o.number = ANY (%(numbers)s::text[])
 ORDER BY array_position(%(numbers)s::text[], o.number)
 LIMIT 1
