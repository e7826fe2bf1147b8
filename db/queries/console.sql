-- name: insert_link
INSERT INTO console_links (token_sha256, purpose, audience, tenant_id, email, expires_at)
VALUES (%(token_sha256)s, %(purpose)s, %(audience)s, %(tenant_id)s, %(email)s,
        now() + make_interval(secs => %(ttl_seconds)s))

-- name: peek_link
-- A link still good, without using it (the invitation page shows its address).
SELECT purpose, audience, tenant_id, email, expires_at
  FROM console_links
 WHERE token_sha256 = %(token_sha256)s AND purpose = %(purpose)s
   AND used_at IS NULL AND expires_at > now()

-- name: use_link
-- One use: a second use, or one past its expiry, finds nothing.
UPDATE console_links SET used_at = now()
 WHERE token_sha256 = %(token_sha256)s AND purpose = %(purpose)s
   AND used_at IS NULL AND expires_at > now()
RETURNING purpose, audience, tenant_id, email

-- name: upsert_user
-- An invitation accepted: the address's user at the link's tenant gets its password.
-- The tenant's first user is its owner; those the owner invites are members.
INSERT INTO console_users (id, tenant_id, email, password_hash, role)
SELECT %(id)s, %(tenant_id)s, %(email)s, %(password_hash)s,
       CASE WHEN EXISTS (SELECT 1 FROM console_users WHERE tenant_id = %(tenant_id)s)
            THEN 'member' ELSE 'owner' END
ON CONFLICT (email) DO UPDATE SET password_hash = excluded.password_hash
 WHERE console_users.tenant_id = excluded.tenant_id
RETURNING id, tenant_id, email, password_hash, role

-- name: find_user
SELECT id, tenant_id, email, password_hash, role FROM console_users WHERE email = %(email)s

-- name: list_users
SELECT id, email, role, password_hash IS NOT NULL AS active, created_at
  FROM console_users WHERE tenant_id = %(tenant_id)s ORDER BY email

-- name: insert_session
INSERT INTO console_sessions (id_sha256, audience, tenant_id, user_id, csrf_token, expires_at)
VALUES (%(id_sha256)s, %(audience)s, %(tenant_id)s, %(user_id)s, %(csrf_token)s,
        now() + make_interval(secs => %(ttl_seconds)s))

-- name: find_session
SELECT s.audience, s.tenant_id, s.user_id, s.csrf_token, s.expires_at, u.email
  FROM console_sessions s LEFT JOIN console_users u ON u.id = s.user_id
 WHERE s.id_sha256 = %(id_sha256)s AND s.revoked_at IS NULL AND s.expires_at > now()

-- name: revoke_session
UPDATE console_sessions SET revoked_at = now()
 WHERE id_sha256 = %(id_sha256)s AND revoked_at IS NULL

-- name: list_tenants
-- Keyset on (lower(name), id): the index tenants_name_idx, whatever the page.
SELECT t.id, t.name, t.tier, t.rate_limit_mps, t.currency, t.created_at,
       t.suspended_at, b.available, b.held, b.captured
  FROM tenants t JOIN balances b ON b.tenant_id = t.id
 WHERE (%(id)s::uuid IS NULL OR t.id = %(id)s::uuid)
   AND (%(name_prefix)s::text IS NULL OR lower(t.name) LIKE %(name_prefix)s::text)
   AND (%(after_name)s::text IS NULL
        OR (lower(t.name), t.id) > (%(after_name)s::text, %(after_id)s::uuid))
 ORDER BY lower(t.name), t.id
 LIMIT %(limit)s

-- name: list_api_keys
SELECT id, prefix, created_at, revoked_at
  FROM api_keys WHERE tenant_id = %(tenant_id)s
 ORDER BY revoked_at IS NOT NULL, created_at DESC
 LIMIT 200

-- name: purge_expired
-- Sessions and links a day past their end (expired, or signed out): nothing reads them.
WITH sessions AS (
    DELETE FROM console_sessions
     WHERE expires_at < now() - interval '1 day' OR revoked_at < now() - interval '1 day'
    RETURNING 1
), links AS (
    DELETE FROM console_links WHERE expires_at < now() - interval '1 day' RETURNING 1
)
SELECT (SELECT count(*) FROM sessions) + (SELECT count(*) FROM links) AS purged
