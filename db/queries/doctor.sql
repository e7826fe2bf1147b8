-- What `smsgw doctor` reads beyond the /metrics snapshot. Each statement reads a
-- catalogue or a small table.

-- name: partitions
-- The daily partitions of `messages` (named messages_YYYYMMDD by
-- smsgw_ensure_partitions_v1): whether today has one, and how many days ahead exist.
SELECT bool_or(day = today) AS has_today,
       max(day) AS last_day,
       max(day) - today AS days_ahead
  FROM (SELECT to_date(right(c.relname, 8), 'YYYYMMDD') AS day,
               (now() AT TIME ZONE 'UTC')::date AS today
          FROM pg_inherits i
          JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'messages'::regclass
           AND c.relname ~ '^messages_[0-9]{8}$') p
 GROUP BY today

-- name: workers
-- procrastinate's workers: registered, and alive (a heartbeat within `alive_seconds`).
SELECT count(*) AS registered,
       count(*) FILTER (
           WHERE last_heartbeat > now() - make_interval(secs => %(alive_seconds)s)) AS alive
  FROM procrastinate_workers

-- name: waiting_jobs
-- Jobs due and not taken, per queue, and how long the oldest has waited (since it was
-- due, or deferred when it had no time): a queue no worker serves shows here.
SELECT j.queue_name,
       count(*) AS jobs,
       extract(epoch FROM now() - min(coalesce(j.scheduled_at, d.at, now())))::float8
           AS oldest_seconds
  FROM procrastinate_jobs j
  LEFT JOIN LATERAL (
        SELECT min(e.at) AS at FROM procrastinate_events e
         WHERE e.job_id = j.id AND e.type = 'deferred') d ON true
 WHERE j.status = 'todo' AND (j.scheduled_at IS NULL OR j.scheduled_at <= now())
 GROUP BY j.queue_name
 ORDER BY j.queue_name

-- name: server_version
SELECT current_setting('server_version') AS version
