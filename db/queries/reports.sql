-- Reports. They run on the reporting pool (a replica when REPORTING_DATABASE_URL is set),
-- always over a window of whole hours. They read the daily cubes for the window's whole
-- days, the hourly cubes (a tenant's: its hourly rollups) for its partial days and for
-- reports by hour, and the raw messages after the rollups' newest fold mark, a minute or
-- so behind the clock (smsgw_usage_v4 for a tenant, smsgw_usage_by_tenant_v3 and
-- smsgw_usage_by_route_v3 across tenants; core/rollups.py),
-- so a window of 13 months reads cube rows, not messages nor hourly rows. Only the live
-- dashboard reads messages (60 s of them).
-- `spent` (revenue) is money captured: the price of a message a provider accepted (sent,
-- then delivered or undelivered); held, released and never-sent messages spent nothing.
-- They run unprepared (the window decides the plan; the function is inlined with them).

-- name: tenant_usage
SELECT CASE %(group_by)s::text
           WHEN 'day' THEN to_char(u.at AT TIME ZONE 'UTC', 'YYYY-MM-DD')
           WHEN 'hour' THEN to_char(u.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24":00:00Z"')
           WHEN 'status' THEN u.status
           WHEN 'provider' THEN nullif(u.provider, '')
           ELSE u.country
       END AS key,
       sum(u.messages)::bigint AS messages,
       sum(u.segments)::bigint AS segments,
       coalesce(sum(u.price) FILTER (WHERE u.status IN ('sent', 'delivered', 'undelivered')),
                0)::bigint AS spent
  FROM smsgw_usage_v4(%(starts)s, %(ends)s, %(tenant_id)s, %(group_by)s::text = 'hour') u
 GROUP BY 1
 ORDER BY 1 NULLS LAST

-- name: tenant_usage_by_day_and_country
-- The console's charts (by day) and its table (by country) at once: one read of the raw
-- messages after the fold mark, the bulk of such a report's time, not two; and
-- through smsgw_usage_v5 (v3 on the mark), which looks their countries up per group,
-- not per message. (tenant_usage stays on v4, v2 on the mark: by anything but country the
-- planner drops its lookups altogether, and v5's grouping would cost more.)
SELECT to_char(u.at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day,
       u.country,
       sum(u.messages)::bigint AS messages,
       sum(u.segments)::bigint AS segments,
       coalesce(sum(u.price) FILTER (WHERE u.status IN ('sent', 'delivered', 'undelivered')),
                0)::bigint AS spent
  FROM smsgw_usage_v5(%(starts)s, %(ends)s, %(tenant_id)s, false) u
 GROUP BY 1, 2

-- name: top_tenants
-- Tenants by messages in the window, keyset-paginated on (messages, tenant_id).
WITH usage AS (
    SELECT u.tenant_id,
           sum(u.messages)::bigint AS messages,
           sum(u.segments)::bigint AS segments,
           sum(u.revenue)::bigint AS spent
      FROM smsgw_usage_by_tenant_v3(%(starts)s, %(ends)s, false, true) u
     GROUP BY u.tenant_id
)
SELECT u.tenant_id, t.name, t.tier, t.currency, u.messages, u.segments, u.spent
  FROM usage u JOIN tenants t ON t.id = u.tenant_id
 WHERE %(after_messages)s::bigint IS NULL
    OR (u.messages, u.tenant_id) < (%(after_messages)s::bigint, %(after_tenant_id)s::uuid)
 ORDER BY u.messages DESC, u.tenant_id DESC
 LIMIT %(limit)s

-- name: recent_top_tenants
-- The busiest tenants of the last moments, for the live dashboard. Message ids are
-- UUIDv7, so `id >= after_id` is a range on the primary key of the newest partition:
-- the cost follows the window's traffic, not the size of the day.
SELECT m.tenant_id, t.name, t.tier, count(*) AS messages
  FROM messages m JOIN tenants t ON t.id = m.tenant_id
 WHERE m.id >= %(after_id)s AND m.created_at >= %(after)s
 GROUP BY m.tenant_id, t.name, t.tier
 ORDER BY messages DESC, m.tenant_id
 LIMIT %(limit)s

-- name: delivery
-- Outcomes per provider and destination country for messages a provider was given
-- (the last provider tried). Keyset-paginated on (messages, provider, country).
WITH outcomes AS (
    SELECT u.provider, u.country,
           sum(u.messages)::bigint AS messages,
           coalesce(sum(u.messages) FILTER (WHERE u.status = 'delivered'), 0)::bigint
               AS delivered,
           coalesce(sum(u.messages) FILTER (WHERE u.status = 'undelivered'), 0)::bigint
               AS undelivered,
           coalesce(sum(u.messages) FILTER (WHERE u.status = 'failed'), 0)::bigint AS failed,
           coalesce(sum(u.messages) FILTER (WHERE u.status = 'expired'), 0)::bigint AS expired,
           coalesce(sum(u.messages) FILTER (WHERE u.status = 'sent'), 0)::bigint
               AS awaiting_receipt,
           coalesce(sum(u.messages) FILTER (WHERE u.status IN ('queued', 'sending')), 0)::bigint
               AS in_progress
      FROM smsgw_usage_by_route_v3(%(starts)s, %(ends)s, false, true) u
     WHERE u.provider <> ''
       AND (%(provider)s::text IS NULL OR u.provider = %(provider)s::text)
     GROUP BY 1, 2
)
SELECT provider, country, messages, delivered, undelivered, failed, expired,
       awaiting_receipt, in_progress
  FROM outcomes
 WHERE %(after_messages)s::bigint IS NULL
    OR (%(after_messages)s::bigint, provider, country)
       > (messages, %(after_provider)s::text, %(after_country)s::text)
 ORDER BY messages DESC, provider, country
 LIMIT %(limit)s

-- name: spend_by_tier
-- Per tier (the tenant's tier now) and currency: money is never added across currencies.
WITH per_tenant AS (
    SELECT u.tenant_id,
           sum(u.messages)::bigint AS messages,
           sum(u.segments)::bigint AS segments,
           sum(u.revenue)::bigint AS spent
      FROM smsgw_usage_by_tenant_v3(%(starts)s, %(ends)s, false, true) u
     GROUP BY u.tenant_id
)
SELECT t.tier, t.currency, count(*) AS tenants, sum(p.messages)::bigint AS messages,
       sum(p.segments)::bigint AS segments, sum(p.spent)::bigint AS spent
  FROM per_tenant p JOIN tenants t ON t.id = p.tenant_id
 GROUP BY t.tier, t.currency
 ORDER BY t.tier, t.currency

-- name: margin
-- Revenue (what was captured: the price of every message a provider accepted), cost
-- (what the routes that sent them cost; 0 for messages sent before costs were kept) and
-- their difference, per `group_by` (day, hour, country, provider, status; by tenant:
-- margin_by_tenant) and currency: money is never added across currencies. The revenue
-- of all rows is the ledger's captures.
SELECT CASE %(group_by)s::text
           WHEN 'day' THEN to_char(u.at AT TIME ZONE 'UTC', 'YYYY-MM-DD')
           WHEN 'hour' THEN to_char(u.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24":00:00Z"')
           WHEN 'provider' THEN u.provider
           WHEN 'status' THEN u.status
           ELSE u.country
       END AS key,
       u.currency, sum(u.messages)::bigint AS messages, sum(u.segments)::bigint AS segments,
       sum(u.price)::bigint AS revenue, sum(u.cost)::bigint AS cost,
       (sum(u.price) - sum(u.cost))::bigint AS margin
  FROM smsgw_usage_by_route_v3(%(starts)s, %(ends)s, %(group_by)s::text = 'hour',
                               %(group_by)s::text NOT IN ('day', 'hour')) u
 WHERE u.status IN ('sent', 'delivered', 'undelivered')
 GROUP BY 1, u.currency
 ORDER BY 1, u.currency

-- name: margin_by_tenant
-- The margin per tenant: its captured messages, their revenue and cost.
SELECT u.tenant_id::text AS key, t.currency, sum(u.captured)::bigint AS messages,
       sum(u.captured_segments)::bigint AS segments, sum(u.revenue)::bigint AS revenue,
       sum(u.cost)::bigint AS cost, (sum(u.revenue) - sum(u.cost))::bigint AS margin
  FROM smsgw_usage_by_tenant_v3(%(starts)s, %(ends)s, false, true) u
  JOIN tenants t ON t.id = u.tenant_id
 GROUP BY 1, t.currency
HAVING sum(u.captured) > 0
 ORDER BY 1, t.currency

-- name: admin_usage
-- Across tenants: messages, segments, revenue (captured) and its cost per `period` (day,
-- hour, or none: the whole window), key (`group_by`: country, provider, status; by
-- tenant: admin_usage_by_tenant) and currency. Keyset-paginated on (period, key,
-- currency); `limit` NULL: all rows.
WITH usage AS (
    SELECT CASE %(period)s::text
               WHEN 'day' THEN to_char(u.at AT TIME ZONE 'UTC', 'YYYY-MM-DD')
               WHEN 'hour' THEN to_char(u.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24":00:00Z"')
               ELSE ''
           END AS period,
           CASE %(group_by)s::text
               WHEN 'provider' THEN u.provider
               WHEN 'status' THEN u.status
               ELSE u.country
           END AS key,
           u.currency,
           sum(u.messages)::bigint AS messages,
           sum(u.segments)::bigint AS segments,
           coalesce(sum(u.price) FILTER (WHERE u.status IN ('sent', 'delivered', 'undelivered')),
                    0)::bigint AS revenue,
           coalesce(sum(u.cost) FILTER (WHERE u.status IN ('sent', 'delivered', 'undelivered')),
                    0)::bigint AS cost
      FROM smsgw_usage_by_route_v3(%(starts)s, %(ends)s, %(period)s::text = 'hour',
                                   %(period)s::text = 'window') u
     GROUP BY 1, 2, 3
)
SELECT period, key, currency, messages, segments, revenue, cost
  FROM usage
 WHERE %(after_period)s::text IS NULL
    OR (period, key, currency)
       > (%(after_period)s::text, %(after_key)s::text, %(after_currency)s::text)
 ORDER BY period, key, currency
 LIMIT %(limit)s

-- name: admin_usage_by_tenant
-- admin_usage by tenant, from the tenants' cubes: summed per period and tenant first,
-- then each tenant's currency and key (20,000 tenants joined, not every cube row).
WITH per_tenant AS (
    SELECT CASE %(period)s::text
               WHEN 'day' THEN to_char(u.at AT TIME ZONE 'UTC', 'YYYY-MM-DD')
               WHEN 'hour' THEN to_char(u.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24":00:00Z"')
               ELSE ''
           END AS period,
           u.tenant_id,
           sum(u.messages)::bigint AS messages,
           sum(u.segments)::bigint AS segments,
           sum(u.revenue)::bigint AS revenue,
           sum(u.cost)::bigint AS cost
      FROM smsgw_usage_by_tenant_v3(%(starts)s, %(ends)s, %(period)s::text = 'hour',
                                    %(period)s::text = 'window') u
     GROUP BY 1, 2
), usage AS (
    SELECT p.period, p.tenant_id::text AS key, t.currency, p.messages, p.segments,
           p.revenue, p.cost
      FROM per_tenant p JOIN tenants t ON t.id = p.tenant_id
)
SELECT period, key, currency, messages, segments, revenue, cost
  FROM usage
 WHERE %(after_period)s::text IS NULL
    OR (period, key, currency)
       > (%(after_period)s::text, %(after_key)s::text, %(after_currency)s::text)
 ORDER BY period, key, currency
 LIMIT %(limit)s

-- name: billing
-- Rollups by tenant and day for billing: every tenant's messages, segments, revenue
-- (captured) and cost per day of the window, read by a server-side cursor.
SELECT to_char(u.at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, u.tenant_id, t.currency,
       sum(u.messages)::bigint AS messages, sum(u.segments)::bigint AS segments,
       sum(u.revenue)::bigint AS revenue, sum(u.cost)::bigint AS cost
  FROM smsgw_usage_by_tenant_v3(%(starts)s, %(ends)s, false, false) u
  JOIN tenants t ON t.id = u.tenant_id
 GROUP BY 1, 2, 3
 ORDER BY 1, 2
