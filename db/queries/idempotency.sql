-- name: claim_key
-- Inserted first in the accept transaction. A concurrent request with the same key waits
-- here on the unique index until the first one commits or rolls back. An entry older than
-- the replay window is taken over, as if it did not exist.
INSERT INTO idempotency_keys (tenant_id, key, request_sha256, response)
VALUES (%(tenant_id)s, %(key)s, %(request_sha256)s, %(response)s)
ON CONFLICT (tenant_id, key) DO UPDATE
   SET request_sha256 = excluded.request_sha256, response = excluded.response,
       created_at = now()
 WHERE idempotency_keys.created_at < now() - make_interval(secs => %(ttl_seconds)s)
RETURNING true AS claimed

-- name: get_key
-- `age` tells whether the entry is still inside the replay window; an older one awaits
-- purge_keys and is taken over by claim_key.
SELECT request_sha256, response, now() - created_at AS age FROM idempotency_keys
 WHERE tenant_id = %(tenant_id)s AND key = %(key)s

-- name: purge_keys
DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(secs => %(ttl_seconds)s)

-- name: set_response
UPDATE idempotency_keys SET response = %(response)s
 WHERE tenant_id = %(tenant_id)s AND key = %(key)s
