-- Delivery analytics per destination country and provider, from smsgw_usage_by_route_v1
-- (the daily route cube for whole days, hourly rollups at the window's edges, raw
-- messages after the last folded hour), and the deliverability alerts.

-- name: report
-- Outcomes and latency buckets per (period, country, provider) of messages a provider
-- was given; the buckets are summed element by element. Keyset-paginated.
WITH outcomes AS (
    SELECT CASE %(period)s::text
               WHEN 'day' THEN to_char(u.at AT TIME ZONE 'UTC', 'YYYY-MM-DD')
               WHEN 'hour' THEN to_char(u.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24":00:00Z"')
               ELSE ''
           END AS period,
           u.country, u.provider, u.status, u.messages, u.sent_latency, u.delivery_latency
      FROM smsgw_usage_by_route_v1(%(starts)s, %(ends)s, %(period)s::text = 'hour') u
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
               AS awaiting_receipt
      FROM outcomes
     GROUP BY 1, 2, 3
), page AS (
    SELECT * FROM counts
     WHERE %(after_period)s::text IS NULL
        OR (period, country, provider)
           > (%(after_period)s::text, %(after_country)s::text, %(after_provider)s::text)
     ORDER BY period, country, provider
     LIMIT %(limit)s
), sent AS (
    SELECT o.period, o.country, o.provider, b.i, sum(b.n)::bigint AS n
      FROM outcomes o, unnest(o.sent_latency) WITH ORDINALITY AS b (n, i)
     WHERE (o.period, o.country, o.provider) IN (SELECT period, country, provider FROM page)
     GROUP BY 1, 2, 3, 4
), delivered AS (
    SELECT o.period, o.country, o.provider, b.i, sum(b.n)::bigint AS n
      FROM outcomes o, unnest(o.delivery_latency) WITH ORDINALITY AS b (n, i)
     WHERE (o.period, o.country, o.provider) IN (SELECT period, country, provider FROM page)
     GROUP BY 1, 2, 3, 4
)
SELECT p.*,
       (SELECT array_agg(s.n ORDER BY s.i) FROM sent s
         WHERE (s.period, s.country, s.provider) = (p.period, p.country, p.provider))
           AS sent_latency,
       (SELECT array_agg(d.n ORDER BY d.i) FROM delivered d
         WHERE (d.period, d.country, d.provider) = (p.period, p.country, p.provider))
           AS delivery_latency
  FROM page p
 ORDER BY p.period, p.country, p.provider

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
          FROM smsgw_usage_by_route_v1(%(recent)s, %(ends)s, false) r
        UNION ALL
        SELECT false, w.* FROM smsgw_usage_by_route_v1(%(starts)s, %(recent)s, false) w) u
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
