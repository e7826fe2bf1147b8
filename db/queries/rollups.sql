-- Hourly rollups of messages: the folding job's statements (core/rollups.py). Reports
-- that read rollups are in reports.sql.

-- name: due_hours
-- The closed hours to fold, oldest first: never folded, or folded only up to a mark
-- inside the hour (the open hour's folds: it closed since), or still out of the cubes
-- (an older release's fold closed it: v4 puts it in), or not final and folded
-- longer ago than the refresh, or settled since their last fold. `at` is the clock (now). The
-- hours run from the lookback or the oldest messages partition, the later, plus hours
-- not final yet whose partition retention dropped (their fold makes them final).
WITH hours AS (
    SELECT generate_series(
               greatest(
                   date_trunc('hour',
                              %(at)s::timestamptz - make_interval(days => %(lookback_days)s),
                              'UTC'),
                   (SELECT min(to_date(right(c.relname, 8), 'YYYYMMDD'))::timestamp
                           AT TIME ZONE 'UTC'
                      FROM pg_inherits i
                      JOIN pg_class c ON c.oid = i.inhrelid
                      JOIN pg_class p ON p.oid = i.inhparent
                     WHERE p.relname = 'messages' AND c.relname ~ '^messages_[0-9]{8}$')),
               date_trunc('hour', %(at)s::timestamptz, 'UTC') - interval '1 hour',
               interval '1 hour') AS hour
    UNION
    SELECT hour FROM rollup_hours
     WHERE (NOT final OR NOT in_cubes)
       AND hour <= date_trunc('hour', %(at)s::timestamptz, 'UTC') - interval '1 hour'
)
SELECT h.hour, h.hour + make_interval(hours => %(settle_hours)s) <= %(at)s AS settled
  FROM hours h
  LEFT JOIN rollup_hours r ON r.hour = h.hour
 WHERE r.hour IS NULL
    OR (r.through_as_of = r.folded_at AND r.folded_through < r.hour + interval '1 hour')
    OR NOT r.in_cubes
    OR (NOT r.final
        AND (r.folded_at <= %(at)s::timestamptz - make_interval(mins => %(refresh_minutes)s)
             OR (h.hour + make_interval(hours => %(settle_hours)s) <= %(at)s
                 AND r.folded_at < h.hour + make_interval(hours => %(settle_hours)s))))
 ORDER BY h.hour
 LIMIT %(limit)s

-- name: fold_hour
-- The first fold of an hour reads all of it (or, when the open hour's folds went some
-- way, its messages after their mark); a refold its pending messages only, unless `full`
-- (repair) or the hour gained messages since (smsgw_fold_rollup_hour_v4).
SELECT smsgw_fold_rollup_hour_v4(%(hour)s, %(settled)s, %(full)s) AS final

-- name: fold_open_hour
-- The hour in progress, up to `through`: the messages after its last mark only.
SELECT smsgw_fold_rollup_hour_v4(date_trunc('hour', %(through)s::timestamptz, 'UTC'), false,
                                 false, %(through)s::timestamptz) AS final

-- name: messages_in
-- How many messages the rollups of these hours hold (a fold of empty hours is not news).
SELECT coalesce(sum(messages), 0) AS n FROM message_rollups WHERE hour = ANY (%(hours)s)

-- name: quiet_retention
-- For the rest of the transaction, deleting hourly rollups leaves the daily cubes alone
-- (smsgw_rollups_to_days_v3): retention drops the cubes' days itself, whole.
SELECT set_config('smsgw.rollup_retention', 'on', true)

-- name: drop_old
-- Rollups older than their retention, with their hours' marks; and the pending messages
-- of final hours (a fold of an hour whose raw messages are gone, or that becomes final,
-- deletes those already; an older release's fold, v2, keeps none and leaves them).
WITH gone AS (
    DELETE FROM message_rollups
     WHERE hour < date_trunc('day', now(), 'UTC') - make_interval(days => %(retention_days)s)
), pending_gone AS (
    DELETE FROM rollup_pending p
     WHERE p.hour < date_trunc('day', now(), 'UTC') - make_interval(days => %(retention_days)s)
        OR EXISTS (SELECT 1 FROM rollup_hours h WHERE h.hour = p.hour AND h.final)
)
DELETE FROM rollup_hours
 WHERE hour < date_trunc('day', now(), 'UTC') - make_interval(days => %(retention_days)s)

-- name: drop_old_periods
-- Before drop_old_days: the days it drops subtracted from their weeks' and months' cubes,
-- so that a week or a month is always the sum of its days still kept (a window over
-- kept days reads the same from either).
WITH weekly_tenant_rollups_less AS (
    UPDATE weekly_tenant_rollups p
       SET messages = p.messages - g.messages, segments = p.segments - g.segments,
           captured = p.captured - g.captured,
           captured_segments = p.captured_segments - g.captured_segments,
           revenue = p.revenue - g.revenue, cost = p.cost - g.cost
      FROM (SELECT date_trunc('week', day::timestamp)::date AS period, tenant_id,
                   sum(messages) AS messages, sum(segments) AS segments,
                   sum(captured) AS captured, sum(captured_segments) AS captured_segments,
                   sum(revenue) AS revenue, sum(cost) AS cost
              FROM daily_tenant_rollups
             WHERE day < (now() AT TIME ZONE 'UTC')::date - %(retention_days)s
             GROUP BY 1, 2) g
     WHERE p.week = g.period AND p.tenant_id = g.tenant_id
), monthly_tenant_rollups_less AS (
    UPDATE monthly_tenant_rollups p
       SET messages = p.messages - g.messages, segments = p.segments - g.segments,
           captured = p.captured - g.captured,
           captured_segments = p.captured_segments - g.captured_segments,
           revenue = p.revenue - g.revenue, cost = p.cost - g.cost
      FROM (SELECT date_trunc('month', day::timestamp)::date AS period, tenant_id,
                   sum(messages) AS messages, sum(segments) AS segments,
                   sum(captured) AS captured, sum(captured_segments) AS captured_segments,
                   sum(revenue) AS revenue, sum(cost) AS cost
              FROM daily_tenant_rollups
             WHERE day < (now() AT TIME ZONE 'UTC')::date - %(retention_days)s
             GROUP BY 1, 2) g
     WHERE p.month = g.period AND p.tenant_id = g.tenant_id
), weekly_route_rollups_less AS (
    UPDATE weekly_route_rollups p
       SET messages = p.messages - g.messages, segments = p.segments - g.segments,
           price = p.price - g.price, cost = p.cost - g.cost,
           sent_latency = smsgw_add_buckets_v1(p.sent_latency, g.sent_latency),
           delivery_latency = smsgw_add_buckets_v1(p.delivery_latency, g.delivery_latency)
      FROM (SELECT date_trunc('week', day::timestamp)::date AS period, country, provider,
                   status, currency, sum(messages) AS messages, sum(segments) AS segments,
                   sum(price) AS price, sum(cost) AS cost,
                   ARRAY[-sum(sent_latency[1]), -sum(sent_latency[2]), -sum(sent_latency[3]), -sum(sent_latency[4]),
                     -sum(sent_latency[5]), -sum(sent_latency[6]), -sum(sent_latency[7]), -sum(sent_latency[8]),
                     -sum(sent_latency[9]), -sum(sent_latency[10]), -sum(sent_latency[11]), -sum(sent_latency[12])]::bigint[] AS sent_latency,
                   ARRAY[-sum(delivery_latency[1]), -sum(delivery_latency[2]), -sum(delivery_latency[3]), -sum(delivery_latency[4]),
                     -sum(delivery_latency[5]), -sum(delivery_latency[6]), -sum(delivery_latency[7]), -sum(delivery_latency[8]),
                     -sum(delivery_latency[9]), -sum(delivery_latency[10]), -sum(delivery_latency[11]), -sum(delivery_latency[12])]::bigint[] AS delivery_latency
              FROM daily_route_rollups
             WHERE day < (now() AT TIME ZONE 'UTC')::date - %(retention_days)s
             GROUP BY 1, 2, 3, 4, 5) g
     WHERE p.week = g.period AND p.country = g.country AND p.provider = g.provider
       AND p.status = g.status AND p.currency = g.currency
)
    UPDATE monthly_route_rollups p
       SET messages = p.messages - g.messages, segments = p.segments - g.segments,
           price = p.price - g.price, cost = p.cost - g.cost,
           sent_latency = smsgw_add_buckets_v1(p.sent_latency, g.sent_latency),
           delivery_latency = smsgw_add_buckets_v1(p.delivery_latency, g.delivery_latency)
      FROM (SELECT date_trunc('month', day::timestamp)::date AS period, country, provider,
                   status, currency, sum(messages) AS messages, sum(segments) AS segments,
                   sum(price) AS price, sum(cost) AS cost,
                   ARRAY[-sum(sent_latency[1]), -sum(sent_latency[2]), -sum(sent_latency[3]), -sum(sent_latency[4]),
                     -sum(sent_latency[5]), -sum(sent_latency[6]), -sum(sent_latency[7]), -sum(sent_latency[8]),
                     -sum(sent_latency[9]), -sum(sent_latency[10]), -sum(sent_latency[11]), -sum(sent_latency[12])]::bigint[] AS sent_latency,
                   ARRAY[-sum(delivery_latency[1]), -sum(delivery_latency[2]), -sum(delivery_latency[3]), -sum(delivery_latency[4]),
                     -sum(delivery_latency[5]), -sum(delivery_latency[6]), -sum(delivery_latency[7]), -sum(delivery_latency[8]),
                     -sum(delivery_latency[9]), -sum(delivery_latency[10]), -sum(delivery_latency[11]), -sum(delivery_latency[12])]::bigint[] AS delivery_latency
              FROM daily_route_rollups
             WHERE day < (now() AT TIME ZONE 'UTC')::date - %(retention_days)s
             GROUP BY 1, 2, 3, 4, 5) g
     WHERE p.month = g.period AND p.country = g.country AND p.provider = g.provider
       AND p.status = g.status AND p.currency = g.currency

-- name: drop_emptied_periods
-- The weeks and months left with no message by drop_old_periods.
WITH weekly_tenants AS (
    DELETE FROM weekly_tenant_rollups WHERE messages = 0
), monthly_tenants AS (
    DELETE FROM monthly_tenant_rollups WHERE messages = 0
), weekly_routes AS (
    DELETE FROM weekly_route_rollups WHERE messages = 0
)
DELETE FROM monthly_route_rollups WHERE messages = 0

-- name: drop_old_days
-- The cubes of the same days (the same retention as the hourly rows: a window's partial
-- days at its edges are read from hourly rows).
WITH hourly_tenants_gone AS (
    DELETE FROM hourly_tenant_rollups
     WHERE hour < date_trunc('day', now(), 'UTC') - make_interval(days => %(retention_days)s)
), hourly_routes_gone AS (
    DELETE FROM hourly_route_rollups
     WHERE hour < date_trunc('day', now(), 'UTC') - make_interval(days => %(retention_days)s)
), tenants_gone AS (
    DELETE FROM daily_tenant_rollups
     WHERE day < (now() AT TIME ZONE 'UTC')::date - %(retention_days)s
), routes_gone AS (
    DELETE FROM daily_route_rollups
     WHERE day < (now() AT TIME ZONE 'UTC')::date - %(retention_days)s
)
DELETE FROM daily_rollups WHERE day < (now() AT TIME ZONE 'UTC')::date - %(retention_days)s

-- name: frontier
-- How far the rollups go (NULL: nothing folded): the newest fold mark, inside the open
-- hour while its folds keep up. Reports read rollups before it and raw messages after.
SELECT nullif(smsgw_rollup_tail_v1(), '-infinity') AS frontier
