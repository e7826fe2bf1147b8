-- name: get_geo_permissions
-- A tenant's geo permissions (NULL row fields: none set, every country but the
-- high-risk ones) and the operator's high-risk countries.
SELECT t.id AS tenant_id, g.countries, coalesce(g.high_risk_enabled, '{}') AS high_risk_enabled,
       g.updated_at,
       ARRAY(SELECT h.country FROM high_risk_countries h ORDER BY h.country) AS high_risk
  FROM tenants t
  LEFT JOIN geo_permissions g ON g.tenant_id = t.id
 WHERE t.id = %(tenant_id)s

-- name: set_geo_permissions
-- No row when no tenant has the id.
INSERT INTO geo_permissions (tenant_id, countries, high_risk_enabled, updated_at)
SELECT t.id, %(countries)s, %(high_risk_enabled)s, now() FROM tenants t
 WHERE t.id = %(tenant_id)s
ON CONFLICT (tenant_id) DO UPDATE
   SET countries = excluded.countries, high_risk_enabled = excluded.high_risk_enabled,
       updated_at = excluded.updated_at
RETURNING tenant_id

-- name: high_risk_countries
SELECT country FROM high_risk_countries ORDER BY country

-- name: set_high_risk_countries
-- The whole list, replaced in one statement.
WITH gone AS (
    DELETE FROM high_risk_countries WHERE country <> ALL (%(countries)s::text[])
)
INSERT INTO high_risk_countries (country)
SELECT unnest(%(countries)s::text[])
ON CONFLICT (country) DO NOTHING

-- name: get_limits
-- A tenant's spend caps, what it spent this period (UTC) and its alert settings.
SELECT b.daily_spend_cap, b.monthly_spend_cap,
       CASE WHEN b.spend_day = smsgw_spend_day_v1() THEN b.day_spent ELSE 0 END AS day_spent,
       CASE WHEN b.spend_month = smsgw_spend_month_v1() THEN b.month_spent ELSE 0 END
           AS month_spent,
       t.alerts_url, t.low_balance_threshold, t.spend_alert_percents
  FROM tenants t JOIN balances b ON b.tenant_id = t.id
 WHERE t.id = %(tenant_id)s

-- name: set_caps
-- The caps are on the balance row (the accept's hold checks them under its lock).
UPDATE balances
   SET daily_spend_cap = CASE WHEN %(set_daily)s THEN %(daily)s::bigint
                              ELSE daily_spend_cap END,
       monthly_spend_cap = CASE WHEN %(set_monthly)s THEN %(monthly)s::bigint
                                ELSE monthly_spend_cap END
 WHERE tenant_id = %(tenant_id)s
RETURNING tenant_id

-- name: set_alert_settings
UPDATE tenants
   SET alerts_url = CASE WHEN %(set_url)s THEN %(alerts_url)s::text ELSE alerts_url END,
       low_balance_threshold = CASE WHEN %(set_threshold)s THEN %(threshold)s::bigint
                                    ELSE low_balance_threshold END,
       spend_alert_percents = coalesce(%(percents)s::smallint[], spend_alert_percents)
 WHERE id = %(tenant_id)s
RETURNING id

-- name: list_suspensions
-- Suspensions, newest first: the active ones only unless `all`; of one tenant or all.
SELECT s.id, s.tenant_id, s.country, s.prefix, s.suspended_at, s.until, s.cause,
       s.lifted_at, s.lifted_by,
       (s.lifted_at IS NULL AND s.until > now()) AS active
  FROM destination_suspensions s
 WHERE (%(tenant_id)s::uuid IS NULL OR s.tenant_id = %(tenant_id)s::uuid)
   AND (%(all)s OR (s.lifted_at IS NULL AND s.until > now()))
 ORDER BY s.suspended_at DESC, s.id
 LIMIT %(limit)s

-- name: lift
-- Lift an active suspension (of `tenant_id` when given: a tenant lifts only its own).
UPDATE destination_suspensions
   SET lifted_at = now(), lifted_by = %(by)s
 WHERE id = %(id)s AND (%(tenant_id)s::uuid IS NULL OR tenant_id = %(tenant_id)s::uuid)
   AND lifted_at IS NULL AND until > now()
RETURNING id, tenant_id, country, prefix, suspended_at, until, cause, lifted_at, lifted_by

-- name: release_held
-- The queued messages a suspension of (country, prefix) held back are due again now
-- (a scheduled one at its send_at). Held back means pushed to the suspension's end, or
-- to their expiry when that came first (suspend_due). Not while the operator has the
-- whole tenant suspended: its messages wait for the resume (core/account_suspension.py).
UPDATE messages m
   SET next_attempt_at = greatest(coalesce(m.send_at, m.created_at), now())
 WHERE m.tenant_id = %(tenant_id)s AND m.status IN ('scheduled', 'queued')
   AND m.next_attempt_at > now()
   AND (m.next_attempt_at = %(until)s OR m.next_attempt_at = m.expires_at)
   AND NOT EXISTS (SELECT 1 FROM tenants t
                    WHERE t.id = m.tenant_id AND t.suspended_at IS NOT NULL)
   AND starts_with(substr(m.to_number, 2), %(prefix)s)
   AND coalesce(smsgw_country_v1(m.to_number), '') = %(country)s
RETURNING m.id

-- name: enqueue_alert
-- A tenant's alert, into the callbacks outbox (signed and retried like a status
-- callback; its event id stands as the row's message_id); nothing when it has no
-- alerts_url.
INSERT INTO callbacks (tenant_id, message_id, url, payload, kind)
SELECT t.id, (%(payload)s::jsonb ->> 'id')::uuid, t.alerts_url, %(payload)s::jsonb, 'alert'
  FROM tenants t
 WHERE t.id = %(tenant_id)s AND t.alerts_url IS NOT NULL
RETURNING message_id AS event_id

-- name: pumping_limits
SELECT country, hourly_limit, updated_at FROM pumping_limits ORDER BY country

-- name: set_pumping_limit
INSERT INTO pumping_limits (country, hourly_limit, updated_at)
VALUES (%(country)s, %(hourly_limit)s, now())
ON CONFLICT (country) DO UPDATE
   SET hourly_limit = excluded.hourly_limit, updated_at = excluded.updated_at
RETURNING country, hourly_limit, updated_at

-- name: delete_pumping_limit
DELETE FROM pumping_limits WHERE country = %(country)s RETURNING country
