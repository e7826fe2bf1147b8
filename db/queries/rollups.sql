-- Hourly rollups of messages: the folding job's statements (core/rollups.py). Reports
-- that read rollups are in reports.sql.

-- name: due_hours
-- The closed hours to fold, oldest first: never folded, or not final and folded longer
-- ago than the refresh, or settled since their last fold. `at` is the clock (now). The
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
     WHERE NOT final
       AND hour <= date_trunc('hour', %(at)s::timestamptz, 'UTC') - interval '1 hour'
)
SELECT h.hour, h.hour + make_interval(hours => %(settle_hours)s) <= %(at)s AS settled
  FROM hours h
  LEFT JOIN rollup_hours r ON r.hour = h.hour
 WHERE r.hour IS NULL
    OR (NOT r.final
        AND (r.folded_at <= %(at)s::timestamptz - make_interval(mins => %(refresh_minutes)s)
             OR (h.hour + make_interval(hours => %(settle_hours)s) <= %(at)s
                 AND r.folded_at < h.hour + make_interval(hours => %(settle_hours)s))))
 ORDER BY h.hour
 LIMIT %(limit)s

-- name: fold_hour
SELECT smsgw_fold_rollup_hour_v2(%(hour)s, %(settled)s) AS final

-- name: messages_in
-- How many messages the rollups of these hours hold (a fold of empty hours is not news).
SELECT coalesce(sum(messages), 0) AS n FROM message_rollups WHERE hour = ANY (%(hours)s)

-- name: quiet_retention
-- For the rest of the transaction, deleting hourly rollups leaves the daily cubes alone
-- (smsgw_rollups_to_days_v1): retention drops the cubes' days itself, whole.
SELECT set_config('smsgw.rollup_retention', 'on', true)

-- name: drop_old
-- Rollups older than their retention, with their hours' marks.
WITH gone AS (
    DELETE FROM message_rollups
     WHERE hour < date_trunc('day', now(), 'UTC') - make_interval(days => %(retention_days)s)
)
DELETE FROM rollup_hours
 WHERE hour < date_trunc('day', now(), 'UTC') - make_interval(days => %(retention_days)s)

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
-- The end of the folded hours (NULL: none): reports read rollups before it and raw
-- messages after. Hours are folded oldest first, so those before it are all folded.
SELECT max(hour) + interval '1 hour' AS frontier
  FROM rollup_hours
