-- Reports. They run on the reporting pool (a replica when REPORTING_DATABASE_URL is set),
-- always over a window of `created_at`, so only that window's daily partitions are read.
-- `spent` is money captured: the hold of a message a provider accepted (sent, then
-- delivered or undelivered); held, released and never-sent messages spent nothing.

-- name: tenant_usage_by_day
SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS key,
       count(*) AS messages,
       coalesce(sum(segments), 0)::bigint AS segments,
       coalesce(sum(price) FILTER (WHERE status IN ('sent', 'delivered', 'undelivered')),
                0)::bigint AS spent
  FROM messages
 WHERE tenant_id = %(tenant_id)s AND created_at >= %(starts)s AND created_at < %(ends)s
 GROUP BY 1
 ORDER BY 1

-- name: tenant_usage_by_status
SELECT status AS key,
       count(*) AS messages,
       coalesce(sum(segments), 0)::bigint AS segments,
       coalesce(sum(price) FILTER (WHERE status IN ('sent', 'delivered', 'undelivered')),
                0)::bigint AS spent
  FROM messages
 WHERE tenant_id = %(tenant_id)s AND created_at >= %(starts)s AND created_at < %(ends)s
 GROUP BY 1
 ORDER BY 1

-- name: tenant_usage_by_provider
-- Messages never handed to a provider (canceled, expired waiting, no route) have none.
SELECT provider AS key,
       count(*) AS messages,
       coalesce(sum(segments), 0)::bigint AS segments,
       coalesce(sum(price) FILTER (WHERE status IN ('sent', 'delivered', 'undelivered')),
                0)::bigint AS spent
  FROM messages
 WHERE tenant_id = %(tenant_id)s AND created_at >= %(starts)s AND created_at < %(ends)s
 GROUP BY 1
 ORDER BY 1 NULLS LAST

-- name: top_tenants
-- Tenants by messages in the window, keyset-paginated on (messages, tenant_id).
WITH usage AS (
    SELECT tenant_id,
           count(*) AS messages,
           coalesce(sum(segments), 0)::bigint AS segments,
           coalesce(sum(price) FILTER (WHERE status IN ('sent', 'delivered', 'undelivered')),
                    0)::bigint AS spent
      FROM messages
     WHERE created_at >= %(starts)s AND created_at < %(ends)s
     GROUP BY tenant_id
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
-- (the last provider tried). The country is the longest dialing prefix matching the
-- number: a hash join per prefix length, not a lookup per row. Keyset-paginated on
-- (messages, provider, country).
WITH outcomes AS (
    SELECT m.provider,
           coalesce(p8.country, p7.country, p6.country, p5.country, p4.country,
                    p3.country, p2.country, 'ZZ') AS country,
           count(*) AS messages,
           count(*) FILTER (WHERE m.status = 'delivered') AS delivered,
           count(*) FILTER (WHERE m.status = 'undelivered') AS undelivered,
           count(*) FILTER (WHERE m.status = 'failed') AS failed,
           count(*) FILTER (WHERE m.status = 'expired') AS expired,
           count(*) FILTER (WHERE m.status = 'sent') AS awaiting_receipt,
           count(*) FILTER (WHERE m.status IN ('queued', 'sending')) AS in_progress
      FROM messages m
      LEFT JOIN dialing_prefixes p8 ON p8.prefix = left(m.to_number, 8)
      LEFT JOIN dialing_prefixes p7 ON p7.prefix = left(m.to_number, 7)
      LEFT JOIN dialing_prefixes p6 ON p6.prefix = left(m.to_number, 6)
      LEFT JOIN dialing_prefixes p5 ON p5.prefix = left(m.to_number, 5)
      LEFT JOIN dialing_prefixes p4 ON p4.prefix = left(m.to_number, 4)
      LEFT JOIN dialing_prefixes p3 ON p3.prefix = left(m.to_number, 3)
      LEFT JOIN dialing_prefixes p2 ON p2.prefix = left(m.to_number, 2)
     WHERE m.created_at >= %(starts)s AND m.created_at < %(ends)s
       AND m.provider IS NOT NULL
       AND (%(provider)s::text IS NULL OR m.provider = %(provider)s::text)
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
    SELECT tenant_id,
           count(*) AS messages,
           coalesce(sum(segments), 0)::bigint AS segments,
           coalesce(sum(price) FILTER (WHERE status IN ('sent', 'delivered', 'undelivered')),
                    0)::bigint AS spent
      FROM messages
     WHERE created_at >= %(starts)s AND created_at < %(ends)s
     GROUP BY tenant_id
)
SELECT t.tier, t.currency, count(*) AS tenants, sum(p.messages)::bigint AS messages,
       sum(p.segments)::bigint AS segments, sum(p.spent)::bigint AS spent
  FROM per_tenant p JOIN tenants t ON t.id = p.tenant_id
 GROUP BY t.tier, t.currency
 ORDER BY t.tier, t.currency

-- name: tenant_usage_by_country
-- The destination's country: the longest dialing prefix matching the number, a hash join
-- per prefix length (as in `delivery`); ZZ when none matches.
SELECT coalesce(p8.country, p7.country, p6.country, p5.country, p4.country,
                p3.country, p2.country, 'ZZ') AS key,
       count(*) AS messages,
       coalesce(sum(m.segments), 0)::bigint AS segments,
       coalesce(sum(m.price) FILTER (WHERE m.status IN ('sent', 'delivered', 'undelivered')),
                0)::bigint AS spent
  FROM messages m
  LEFT JOIN dialing_prefixes p8 ON p8.prefix = left(m.to_number, 8)
  LEFT JOIN dialing_prefixes p7 ON p7.prefix = left(m.to_number, 7)
  LEFT JOIN dialing_prefixes p6 ON p6.prefix = left(m.to_number, 6)
  LEFT JOIN dialing_prefixes p5 ON p5.prefix = left(m.to_number, 5)
  LEFT JOIN dialing_prefixes p4 ON p4.prefix = left(m.to_number, 4)
  LEFT JOIN dialing_prefixes p3 ON p3.prefix = left(m.to_number, 3)
  LEFT JOIN dialing_prefixes p2 ON p2.prefix = left(m.to_number, 2)
 WHERE m.tenant_id = %(tenant_id)s AND m.created_at >= %(starts)s AND m.created_at < %(ends)s
 GROUP BY 1
 ORDER BY 1

-- name: margin
-- Revenue (what was captured: the price of every message a provider accepted), cost
-- (what the routes that sent them cost; 0 for messages sent before costs were kept) and
-- their difference, per `group_by` (day, tenant, country, provider) and currency: money
-- is never added across currencies. The revenue of all rows is the ledger's captures.
WITH captured AS (
    SELECT CASE %(group_by)s::text
               WHEN 'day' THEN to_char(m.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')
               WHEN 'tenant' THEN m.tenant_id::text
               WHEN 'provider' THEN m.provider
               ELSE coalesce(p8.country, p7.country, p6.country, p5.country, p4.country,
                             p3.country, p2.country, 'ZZ')
           END AS key,
           t.currency, m.segments, m.price, coalesce(m.cost, 0) AS cost
      FROM messages m
      JOIN tenants t ON t.id = m.tenant_id
      LEFT JOIN dialing_prefixes p8
             ON %(group_by)s::text = 'country' AND p8.prefix = left(m.to_number, 8)
      LEFT JOIN dialing_prefixes p7
             ON %(group_by)s::text = 'country' AND p7.prefix = left(m.to_number, 7)
      LEFT JOIN dialing_prefixes p6
             ON %(group_by)s::text = 'country' AND p6.prefix = left(m.to_number, 6)
      LEFT JOIN dialing_prefixes p5
             ON %(group_by)s::text = 'country' AND p5.prefix = left(m.to_number, 5)
      LEFT JOIN dialing_prefixes p4
             ON %(group_by)s::text = 'country' AND p4.prefix = left(m.to_number, 4)
      LEFT JOIN dialing_prefixes p3
             ON %(group_by)s::text = 'country' AND p3.prefix = left(m.to_number, 3)
      LEFT JOIN dialing_prefixes p2
             ON %(group_by)s::text = 'country' AND p2.prefix = left(m.to_number, 2)
     WHERE m.created_at >= %(starts)s AND m.created_at < %(ends)s
       AND m.status IN ('sent', 'delivered', 'undelivered')
)
SELECT key, currency, count(*) AS messages, sum(segments)::bigint AS segments,
       sum(price)::bigint AS revenue, sum(cost)::bigint AS cost,
       (sum(price) - sum(cost))::bigint AS margin
  FROM captured
 GROUP BY key, currency
 ORDER BY key, currency
