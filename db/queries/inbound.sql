-- name: mark_seen
-- True the first time a provider's message id is seen.
INSERT INTO inbound_seen (provider, provider_message_id)
VALUES (%(provider)s, %(provider_message_id)s)
ON CONFLICT DO NOTHING
RETURNING true AS first

-- name: purge_seen
DELETE FROM inbound_seen WHERE seen_at < now() - make_interval(secs => %(seconds)s)

-- name: lock_group
-- Parts of one long message arrive on any connection: one at a time per message.
SELECT pg_advisory_xact_lock(hashtextextended(%(key)s, 0))

-- name: insert_part
INSERT INTO inbound_parts (tenant_id, provider, from_number, to_number, reference, total,
                           number, data_coding, payload, text, provider_message_id)
VALUES (%(tenant_id)s, %(provider)s, %(from_number)s, %(to_number)s, %(reference)s,
        %(total)s, %(number)s, %(data_coding)s, %(payload)s, %(text)s,
        %(provider_message_id)s)
ON CONFLICT DO NOTHING

-- name: group_parts
SELECT id, number, data_coding, payload, text, provider_message_id, received_at
  FROM inbound_parts
 WHERE tenant_id = %(tenant_id)s AND provider = %(provider)s
   AND from_number = %(from_number)s AND to_number = %(to_number)s
   AND reference = %(reference)s AND total = %(total)s
 ORDER BY number

-- name: delete_parts
DELETE FROM inbound_parts WHERE id = ANY (%(ids)s::bigint[])

-- name: stale_groups
-- Long messages whose first part came more than `seconds` ago and are still missing
-- parts: their siblings are not coming.
SELECT tenant_id, provider, from_number, to_number, reference, total
  FROM inbound_parts
 GROUP BY tenant_id, provider, from_number, to_number, reference, total
HAVING min(received_at) < now() - make_interval(secs => %(seconds)s)
 LIMIT %(limit)s

-- name: insert_message
INSERT INTO inbound_messages (id, received_at, tenant_id, to_number, from_number, body,
                              encoding, parts, parts_expected, complete, provider,
                              provider_message_id, keyword)
VALUES (%(id)s, %(received_at)s, %(tenant_id)s, %(to_number)s, %(from_number)s, %(body)s,
        %(encoding)s, %(parts)s, %(parts_expected)s, %(complete)s, %(provider)s,
        %(provider_message_id)s, %(keyword)s)

-- name: get_message
SELECT * FROM inbound_messages
 WHERE received_at = %(received_at)s AND id = %(id)s AND tenant_id = %(tenant_id)s

-- name: list_messages
-- Newest first, keyset-paginated on (received_at, id); NULL filters are off.
SELECT * FROM inbound_messages
 WHERE tenant_id = %(tenant_id)s
   AND (%(to_number)s::text IS NULL OR to_number = %(to_number)s::text)
   AND received_at > coalesce(%(created_after)s::timestamptz, '-infinity')
   AND received_at < coalesce(%(created_before)s::timestamptz, 'infinity')
   AND (%(before_id)s::uuid IS NULL
        OR (received_at, id) < (%(before_created_at)s::timestamptz, %(before_id)s::uuid))
 ORDER BY received_at DESC, id DESC
 LIMIT %(limit)s
