-- name: upsert_sender_id
-- A new registration, or the operator's change of one (its countries, its approval).
-- `created` is true for a new one.
INSERT INTO sender_ids AS s (tenant_id, sender_id, countries, status)
VALUES (%(tenant_id)s, %(sender_id)s, %(countries)s, %(status)s)
ON CONFLICT (tenant_id, sender_id) DO UPDATE
   SET countries = excluded.countries, status = excluded.status, updated_at = now()
RETURNING s.tenant_id, s.sender_id, s.countries, s.status, s.created_at, s.updated_at,
          (xmax = 0) AS created

-- name: list_sender_ids
SELECT tenant_id, sender_id, countries, status, created_at, updated_at
  FROM sender_ids
 WHERE tenant_id = %(tenant_id)s
 ORDER BY created_at, sender_id

-- name: delete_sender_id
DELETE FROM sender_ids WHERE tenant_id = %(tenant_id)s AND sender_id = %(sender_id)s
RETURNING sender_id

-- name: upsert_rule
INSERT INTO country_sender_rules AS r
       (country, alphanumeric, numeric_allowed, default_sender, source)
VALUES (%(country)s, %(alphanumeric)s, %(numeric_allowed)s, %(default_sender)s, %(source)s)
ON CONFLICT (country) DO UPDATE
   SET alphanumeric = excluded.alphanumeric, numeric_allowed = excluded.numeric_allowed,
       default_sender = excluded.default_sender, source = excluded.source,
       updated_at = now()
RETURNING r.country, r.alphanumeric, r.numeric_allowed, r.default_sender, r.source,
          r.updated_at

-- name: list_rules
SELECT country, alphanumeric, numeric_allowed, default_sender, source, updated_at
  FROM country_sender_rules
 ORDER BY country

-- name: get_rule
SELECT country, alphanumeric, numeric_allowed, default_sender, source, updated_at
  FROM country_sender_rules
 WHERE country = %(country)s

-- name: delete_rule
DELETE FROM country_sender_rules WHERE country = %(country)s RETURNING country

-- name: set_sender_policy
-- The time of a change is kept (an operator let a tenant send from any sender).
UPDATE tenants
   SET sender_policy = %(policy)s,
       sender_policy_changed_at = CASE WHEN sender_policy = %(policy)s
                                       THEN sender_policy_changed_at ELSE now() END
 WHERE id = %(tenant_id)s
RETURNING sender_policy, sender_policy_changed_at
