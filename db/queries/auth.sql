-- name: record_failure
-- One more failed attempt from `client` in the current window (a new window when the
-- last one is over); returns the count and when the window ends.
INSERT INTO auth_failures AS f (client, window_started_at, failures)
VALUES (%(client)s, now(), 1)
ON CONFLICT (client) DO UPDATE
   SET failures = CASE WHEN f.window_started_at < now() - make_interval(secs => %(window_seconds)s)
                       THEN 1 ELSE f.failures + 1 END,
       window_started_at = CASE WHEN f.window_started_at < now()
                                     - make_interval(secs => %(window_seconds)s)
                                THEN now() ELSE f.window_started_at END
RETURNING failures,
          extract(epoch FROM window_started_at + make_interval(secs => %(window_seconds)s) - now())
              AS seconds_left

-- name: purge_failures
DELETE FROM auth_failures
 WHERE window_started_at < now() - make_interval(secs => %(window_seconds)s)
