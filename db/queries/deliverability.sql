-- Delivery analytics per destination country and provider, from smsgw_usage_by_route_v3
-- (the daily route cube for whole days, hourly rollups at the window's edges, raw
-- messages after the rollups' newest fold mark), and the deliverability alerts.

-- name: report
-- Outcomes and latency buckets per (period, country, provider) of messages a provider
-- was given; the buckets are summed element by element (NULL where no row has any: raw
-- messages only). Keyset-paginated.
WITH outcomes AS (
    SELECT CASE %(period)s::text
               WHEN 'day' THEN to_char(u.at AT TIME ZONE 'UTC', 'YYYY-MM-DD')
               WHEN 'hour' THEN to_char(u.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24":00:00Z"')
               ELSE ''
           END AS period,
           u.country, u.provider, u.status, u.messages, u.sent_latency, u.delivery_latency
      FROM smsgw_usage_by_route_v3(%(starts)s, %(ends)s, %(period)s::text = 'hour',
                                   %(period)s::text = 'window') u
     WHERE u.provider <> ''
       AND (%(country)s::text IS NULL OR u.country = %(country)s::text)
       AND (%(provider)s::text IS NULL OR u.provider = %(provider)s::text)
), counts AS (
    SELECT period, country, provider,
           sum(messages)::bigint AS messages,
           coalesce(sum(messages) FILTER (WHERE status = 'delivered'), 0)::bigint AS delivered,
           coalesce(sum(messages) FILTER (WHERE status = 'undelivered'), 0)::bigint
               AS undelivered,
           coalesce(sum(messages) FILTER (WHERE status = 'failed'), 0)::bigint AS failed,
           coalesce(sum(messages) FILTER (WHERE status = 'expired'), 0)::bigint AS expired,
           coalesce(sum(messages) FILTER (WHERE status = 'sent'), 0)::bigint
               AS awaiting_receipt,
           CASE WHEN count(sent_latency) > 0 THEN
               ARRAY[sum(sent_latency[1]), sum(sent_latency[2]), sum(sent_latency[3]),
                     sum(sent_latency[4]), sum(sent_latency[5]), sum(sent_latency[6]),
                     sum(sent_latency[7]), sum(sent_latency[8]), sum(sent_latency[9]),
                     sum(sent_latency[10]), sum(sent_latency[11]), sum(sent_latency[12])]
                   ::bigint[]
           END AS sent_latency,
           CASE WHEN count(delivery_latency) > 0 THEN
               ARRAY[sum(delivery_latency[1]), sum(delivery_latency[2]), sum(delivery_latency[3]),
                     sum(delivery_latency[4]), sum(delivery_latency[5]), sum(delivery_latency[6]),
                     sum(delivery_latency[7]), sum(delivery_latency[8]), sum(delivery_latency[9]),
                     sum(delivery_latency[10]), sum(delivery_latency[11]),
                     sum(delivery_latency[12])]::bigint[]
           END AS delivery_latency
      FROM outcomes
     GROUP BY 1, 2, 3
)
SELECT * FROM counts
 WHERE %(after_period)s::text IS NULL
    OR (period, country, provider)
       > (%(after_period)s::text, %(after_country)s::text, %(after_provider)s::text)
 ORDER BY period, country, provider
 LIMIT %(limit)s

-- name: rates
-- Per (country, provider): delivered and known (delivered, undelivered, failed, expired)
-- in the recent window and in the baseline before it (two windows, so that a cube's day
-- never mixes the two).
SELECT u.country, u.provider,
       coalesce(sum(u.messages) FILTER (WHERE u.recent AND u.status = 'delivered'),
                0)::bigint AS hour_delivered,
       coalesce(sum(u.messages) FILTER (WHERE u.recent), 0)::bigint AS hour_known,
       coalesce(sum(u.messages) FILTER (WHERE NOT u.recent AND u.status = 'delivered'),
                0)::bigint AS week_delivered,
       coalesce(sum(u.messages) FILTER (WHERE NOT u.recent), 0)::bigint AS week_known
  FROM (SELECT true AS recent, r.*
          FROM smsgw_usage_by_route_v3(%(recent)s, %(ends)s, false, false) r
        UNION ALL
        SELECT false, w.* FROM smsgw_usage_by_route_v3(%(starts)s, %(recent)s, false, false) w) u
 WHERE u.provider <> '' AND u.status IN ('delivered', 'undelivered', 'failed', 'expired')
 GROUP BY 1, 2

-- name: alerts
SELECT country, provider, evaluated_at, hour_known, hour_rate, week_known, week_rate,
       firing, since
  FROM delivery_alerts
 ORDER BY country, provider

-- name: save_alerts
-- The judged pairs, all at once; pairs not judged this time are dropped (no traffic).
WITH judged AS (
    SELECT * FROM json_to_recordset(%(alerts)s::json) AS j (
        country text, provider text, hour_known bigint, hour_rate double precision,
        week_known bigint, week_rate double precision, firing boolean, since timestamptz)
), gone AS (
    DELETE FROM delivery_alerts a
     WHERE NOT EXISTS (SELECT 1 FROM judged j
                        WHERE j.country = a.country AND j.provider = a.provider)
)
INSERT INTO delivery_alerts AS a (country, provider, evaluated_at, hour_known, hour_rate,
                                  week_known, week_rate, firing, since)
SELECT country, provider, %(at)s, hour_known, hour_rate, week_known, week_rate, firing, since
  FROM judged
ON CONFLICT (country, provider) DO UPDATE
   SET evaluated_at = excluded.evaluated_at, hour_known = excluded.hour_known,
       hour_rate = excluded.hour_rate, week_known = excluded.week_known,
       week_rate = excluded.week_rate, firing = excluded.firing, since = excluded.since

-- name: add_event
INSERT INTO operator_events (at, kind, detail) VALUES (%(at)s, %(kind)s, %(detail)s::jsonb)

-- name: events
-- Newest first, keyset-paginated on id.
SELECT id, at, kind, detail
  FROM operator_events
 WHERE (%(kind)s::text IS NULL OR kind = %(kind)s::text)
   AND (%(before_id)s::bigint IS NULL OR id < %(before_id)s::bigint)
 ORDER BY id DESC
 LIMIT %(limit)s
