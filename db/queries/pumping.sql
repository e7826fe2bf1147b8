-- name: drain_tallies
-- The accepts' tally rows (one per accept call, counts in arrays) added into this
-- hour's counters (slot 0) and deleted, in one statement: a tally committed after this
-- statement's snapshot is left for the next round, none is added twice.
WITH drained AS (
    DELETE FROM destination_tallies
    RETURNING hour, tenant_ids, countries, prefixes, counts
), summed AS (
    SELECT d.hour, u.tenant_id, u.country, u.prefix, sum(u.n) AS n
      FROM drained d,
           unnest(d.tenant_ids, d.countries, d.prefixes, d.counts)
               AS u(tenant_id, country, prefix, n)
     GROUP BY 1, 2, 3, 4
)
INSERT INTO destination_counts AS c (tenant_id, country, prefix, hour, slot, n)
SELECT tenant_id, country, prefix, hour, 0, n FROM summed ORDER BY 1, 2, 3, 4
ON CONFLICT (tenant_id, country, prefix, hour, slot) DO UPDATE SET n = c.n + excluded.n

-- name: fold_counts
-- The slots of closed hours folded into slot 0, in one statement (no count lost or
-- doubled beside a late accept: it writes its own row again, folded next time); hours
-- older than 8 days (the learned limit reads 7) dropped. (Since 0020 the accepts write
-- tally rows, drained into slot 0; other slots come from a process started before it.)
WITH moved AS (
    DELETE FROM destination_counts
     WHERE hour < date_trunc('hour', now()) AND slot <> 0
    RETURNING tenant_id, country, prefix, hour, n
), summed AS (
    SELECT tenant_id, country, prefix, hour, sum(n) AS n FROM moved GROUP BY 1, 2, 3, 4
), old AS (
    DELETE FROM destination_counts WHERE hour < now() - interval '8 days'
)
INSERT INTO destination_counts AS c (tenant_id, country, prefix, hour, slot, n)
SELECT tenant_id, country, prefix, hour, 0, n FROM summed ORDER BY 1, 2, 3, 4
ON CONFLICT (tenant_id, country, prefix, hour, slot) DO UPDATE SET n = c.n + excluded.n

-- name: breaches
-- The destinations whose count this hour broke their limit: the operator's limit for
-- the country, else the learned one (`multiple` times the median of the trailing 168
-- closed hours, hours without traffic counting 0, and never under `floor`). Only keys
-- over the smaller bound are judged, so the medians are computed for few. A destination
-- suspended now, or lifted during this hour, is left alone (a lift holds for the hour).
WITH cur AS (
    SELECT c.tenant_id, c.country, c.prefix, sum(c.n)::bigint AS n
      FROM destination_counts c
     WHERE c.hour = date_trunc('hour', now())
     GROUP BY 1, 2, 3
), cand AS (
    SELECT cur.tenant_id, cur.country, cur.prefix, cur.n, pl.hourly_limit
      FROM cur
      LEFT JOIN pumping_limits pl ON pl.country = cur.country
     WHERE cur.n > coalesce(pl.hourly_limit, %(floor)s)
       AND NOT EXISTS (
            SELECT 1 FROM destination_suspensions s
             WHERE s.tenant_id = cur.tenant_id AND s.country = cur.country
               AND s.prefix = cur.prefix
               AND ((s.lifted_at IS NULL AND s.until > now())
                    OR s.lifted_at >= date_trunc('hour', now())))
), judged AS (
    SELECT cand.*, m.median,
           coalesce(cand.hourly_limit::double precision,
                    greatest(%(floor)s::double precision,
                             ceil(%(multiple)s * m.median)))::bigint AS hourly_max
      FROM cand
      LEFT JOIN LATERAL (
            SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY coalesce(h.n, 0)) AS median
              FROM generate_series(date_trunc('hour', now()) - interval '168 hours',
                                   date_trunc('hour', now()) - interval '1 hour',
                                   interval '1 hour') AS g(hour)
              LEFT JOIN (
                    SELECT d.hour, sum(d.n) AS n FROM destination_counts d
                     WHERE d.tenant_id = cand.tenant_id AND d.country = cand.country
                       AND d.prefix = cand.prefix
                       AND d.hour >= date_trunc('hour', now()) - interval '168 hours'
                       AND d.hour < date_trunc('hour', now())
                     GROUP BY d.hour) AS h ON h.hour = g.hour
      ) AS m ON cand.hourly_limit IS NULL
)
SELECT tenant_id, country, prefix, n, hourly_max, median,
       CASE WHEN hourly_limit IS NULL THEN 'learned' ELSE 'country_limit' END AS basis
  FROM judged
 WHERE n > hourly_max
 ORDER BY tenant_id, country, prefix

-- name: suspend
-- A new suspension of the destination (replacing an ended one); none when one is
-- active already.
INSERT INTO destination_suspensions AS s (tenant_id, country, prefix, until, cause)
VALUES (%(tenant_id)s, %(country)s, %(prefix)s,
        now() + make_interval(secs => %(cool_off_seconds)s), %(cause)s::jsonb)
ON CONFLICT (tenant_id, country, prefix) DO UPDATE
   SET id = gen_random_uuid(), suspended_at = now(), until = excluded.until,
       cause = excluded.cause, lifted_at = NULL, lifted_by = NULL
 WHERE NOT (s.lifted_at IS NULL AND s.until > now())
RETURNING id, tenant_id, country, prefix, suspended_at, until, cause, lifted_at, lifted_by

-- name: expire
-- Suspensions whose cool-off is over end ('expired'); their held messages were pushed to
-- this very end, so they are due again by themselves.
UPDATE destination_suspensions
   SET lifted_at = until, lifted_by = 'expired'
 WHERE lifted_at IS NULL AND until <= now()
RETURNING id, tenant_id, country, prefix, suspended_at, until, cause, lifted_at, lifted_by

-- name: hold_back
-- Queued and scheduled messages to an actively suspended destination wait for its end
-- (or their expiry, if sooner): dispatch does not claim them, so they are neither sent
-- nor billed. Run after every new suspension and on every round of the job, which
-- catches an accept that committed beside the suspension. Returns their tenants.
UPDATE messages m
   SET next_attempt_at = least(s.until, m.expires_at)
  FROM destination_suspensions s
 WHERE s.lifted_at IS NULL AND s.until > now()
   AND m.tenant_id = s.tenant_id AND m.status IN ('scheduled', 'queued')
   AND m.next_attempt_at < least(s.until, m.expires_at)
   AND starts_with(substr(m.to_number, 2), s.prefix)
   AND coalesce(smsgw_country_v1(m.to_number), '') = s.country
RETURNING m.tenant_id

-- name: active_count
SELECT count(*) AS n FROM destination_suspensions WHERE lifted_at IS NULL AND until > now()
