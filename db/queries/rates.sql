-- name: lock_card
-- The card, created if new, its row locked until the commit: versions of one card are
-- numbered one after another.
INSERT INTO rate_cards AS c (name, tenant_id, provider)
VALUES (%(name)s, %(tenant_id)s, %(provider)s)
ON CONFLICT (name) DO UPDATE SET name = c.name
RETURNING id, name, tenant_id

-- name: get_card
SELECT id, name, tenant_id, provider FROM rate_cards WHERE name = %(name)s

-- name: insert_version
-- A version and all its rates in one statement (set-based: a 50,000-row card is one
-- json_to_recordset), so no reader ever sees a version without its rates.
WITH version AS (
    INSERT INTO rate_card_versions (card_id, version, effective_at, rates, lengths)
    SELECT %(card_id)s, coalesce(max(v.version), 0) + 1,
           coalesce(%(effective_at)s::timestamptz, now()),
           json_array_length(%(rates)s::json),
           ARRAY(SELECT DISTINCT length(r.prefix)
                   FROM json_to_recordset(%(rates)s::json) AS r(prefix text)
                  ORDER BY 1 DESC)
      FROM rate_card_versions v WHERE v.card_id = %(card_id)s
    RETURNING id, version, effective_at, rates, created_at
), inserted AS (
    INSERT INTO rate_card_rates (version_id, prefix, country, network, price)
    SELECT version.id, r.prefix, nullif(r.country, ''), nullif(r.network, ''), r.price
      FROM version,
           json_to_recordset(%(rates)s::json)
               AS r(prefix text, country text, network text, price bigint)
)
SELECT id, version, effective_at, rates, created_at FROM version

-- name: analyze
-- Fresh statistics for the rates and their spans: before them the planner does not know
-- a new card's size, and the accepts right after a 50,000-rate import priced a seventh
-- slower (until autovacuum's own ANALYZE, a minute or more later).
ANALYZE rate_card_rates, rate_card_spans

-- name: versions
SELECT v.id, v.version, v.effective_at, v.rates, v.created_at
  FROM rate_card_versions v
 WHERE v.card_id = %(card_id)s
 ORDER BY v.version

-- name: version_in_effect
-- The version whose rates a send is priced by now (smsgw_rating_v1's rule).
SELECT v.id, v.version, v.effective_at, v.rates, v.created_at
  FROM rate_card_versions v
 WHERE v.card_id = %(card_id)s AND v.effective_at <= now()
 ORDER BY v.effective_at DESC, v.version DESC
 LIMIT 1

-- name: get_version
SELECT v.id, v.version, v.effective_at, v.rates, v.created_at
  FROM rate_card_versions v
 WHERE v.card_id = %(card_id)s AND v.version = %(version)s

-- name: rates
SELECT prefix, coalesce(country, '') AS country, coalesce(network, '') AS network, price
  FROM rate_card_rates
 WHERE version_id = %(version_id)s
 ORDER BY prefix

-- name: diff
-- What a new set of rates changes against a version (NULL: against nothing), in one
-- set-based join: a prefix added (old NULL), removed (new NULL), or its price changed.
WITH new AS (
    SELECT r.prefix, r.price
      FROM json_to_recordset(%(rates)s::json) AS r(prefix text, price bigint)
), old AS (
    SELECT r.prefix, r.price FROM rate_card_rates r WHERE r.version_id = %(version_id)s
)
SELECT coalesce(n.prefix, o.prefix) AS prefix, o.price AS old_price, n.price AS new_price
  FROM new n FULL JOIN old o ON o.prefix = n.prefix
 WHERE n.price IS DISTINCT FROM o.price
 ORDER BY 1

-- name: set_tenant_card
UPDATE tenants SET rate_card_id = %(card_id)s WHERE id = %(tenant_id)s RETURNING id

-- name: tenant_card
-- The card a tenant is on: its own choice, else its tier's.
SELECT c.id, c.name, t.rate_card_id IS NULL AS by_tier
  FROM tenants t
  JOIN rate_cards c ON c.id = coalesce(t.rate_card_id,
                                       (SELECT d.id FROM rate_cards d WHERE d.name = t.tier))
 WHERE t.id = %(tenant_id)s

-- name: own_rates_with_flat_price
-- A tenant's own rates in effect now, with `price` for every destination ('') in place
-- of the one it had: the rows of the new version PATCH price_per_segment writes.
SELECT r.prefix, coalesce(r.country, '') AS country, coalesce(r.network, '') AS network,
       r.price
  FROM rate_cards c
  JOIN LATERAL (
      SELECT v.id FROM rate_card_versions v
       WHERE v.card_id = c.id AND v.effective_at <= now()
       ORDER BY v.effective_at DESC, v.version DESC
       LIMIT 1) AS v ON true
  JOIN rate_card_rates r ON r.version_id = v.id
 WHERE c.tenant_id = %(tenant_id)s AND r.prefix <> ''

-- name: provider_exists
SELECT name FROM providers WHERE name = %(name)s
