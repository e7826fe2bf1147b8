-- name: list_providers
-- `has_costs`: the provider has a cost price list of its own (a card, see rate_cards).
SELECT p.name, p.kind, p.config, p.mps, p.enabled, p.updated_at,
       EXISTS (SELECT 1 FROM rate_cards c WHERE c.provider = p.name) AS has_costs
  FROM providers p ORDER BY p.name

-- name: list_routes
SELECT id, prefix, tier, provider, priority, cost_per_segment, enabled, allow_loss
  FROM routes ORDER BY priority, cost_per_segment, length(prefix) DESC, id

-- name: health
SELECT * FROM smsgw_provider_health_v1(%(cooldown_seconds)s)

-- name: take_sends
SELECT smsgw_take_sends_v1(%(provider)s, %(wanted)s, %(mps)s, %(probes)s) AS allowed

-- name: record_outcomes
SELECT old_state, new_state FROM smsgw_record_outcomes_v1(
    %(provider)s, %(successes)s, %(failures)s, %(latency_ms)s, %(window_seconds)s,
    %(min_requests)s, %(error_rate)s, %(throttle_seconds)s)

-- name: upsert_provider
INSERT INTO providers (name, kind, config, mps, enabled)
VALUES (%(name)s, %(kind)s, %(config)s, %(mps)s, %(enabled)s)
ON CONFLICT (name) DO UPDATE
   SET kind = excluded.kind, config = excluded.config, mps = excluded.mps,
       enabled = excluded.enabled, updated_at = now()
RETURNING name, kind, mps, enabled, created_at, updated_at

-- name: insert_route
INSERT INTO routes (prefix, tier, provider, priority, cost_per_segment, enabled, allow_loss)
VALUES (%(prefix)s, %(tier)s, %(provider)s, %(priority)s, %(cost_per_segment)s, %(enabled)s,
        %(allow_loss)s)
RETURNING id, prefix, tier, provider, priority, cost_per_segment, enabled, allow_loss

-- name: lock_route
-- The route as it is, held still until the caller's transaction ends: an edit merges its
-- changes into this and records it as the state it replaced.
SELECT id, prefix, tier, provider, priority, cost_per_segment, enabled, allow_loss
  FROM routes WHERE id = %(id)s FOR NO KEY UPDATE

-- name: update_route
-- An edit in place: the route keeps its id (what the audit trail and the consoles name).
UPDATE routes
   SET prefix = %(prefix)s, tier = %(tier)s, provider = %(provider)s, priority = %(priority)s,
       cost_per_segment = %(cost_per_segment)s, enabled = %(enabled)s,
       allow_loss = %(allow_loss)s
 WHERE id = %(id)s
RETURNING id, prefix, tier, provider, priority, cost_per_segment, enabled, allow_loss

-- name: delete_route
DELETE FROM routes WHERE id = %(id)s RETURNING id

-- name: provider_status
-- What operators see: configuration and health side by side.
SELECT p.name, p.kind, p.mps, p.enabled, h.state, h.window_successes, h.window_failures,
       h.latency_ms, h.opened_at, h.throttled_until, h.changed_at, h.sent_total,
       h.failed_total
  FROM providers p LEFT JOIN provider_health h ON h.provider = p.name
UNION ALL
SELECT h.provider, NULL, NULL, NULL, h.state, h.window_successes, h.window_failures,
       h.latency_ms, h.opened_at, h.throttled_until, h.changed_at, h.sent_total,
       h.failed_total
  FROM provider_health h
 WHERE NOT EXISTS (SELECT 1 FROM providers p WHERE p.name = h.provider)
 ORDER BY 1
