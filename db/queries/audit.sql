-- name: insert_event
INSERT INTO audit_events (actor_kind, actor_id, address, tenant_id, action, target, before, after)
VALUES (%(actor_kind)s, %(actor_id)s, %(address)s, %(tenant_id)s, %(action)s, %(target)s,
        %(before)s::jsonb, %(after)s::jsonb)
RETURNING id, at

-- name: list_events
-- Newest first, keyset-paginated on (at, id); NULL filters are off. `all_tenants` false
-- with a NULL tenant_id reads the operator-wide events (no tenant) only.
SELECT id, at, actor_kind, actor_id, address, tenant_id, action, target, before, after
  FROM audit_events
 WHERE (%(tenant_id)s::uuid IS NULL OR tenant_id = %(tenant_id)s::uuid)
   AND (%(since)s::timestamptz IS NULL OR at >= %(since)s::timestamptz)
   AND (%(until)s::timestamptz IS NULL OR at < %(until)s::timestamptz)
   AND (%(action)s::text IS NULL OR action = %(action)s::text)
   AND (%(after_at)s::timestamptz IS NULL
        OR (at, id) < (%(after_at)s::timestamptz, %(after_id)s::bigint))
 ORDER BY at DESC, id DESC
 LIMIT %(limit)s
