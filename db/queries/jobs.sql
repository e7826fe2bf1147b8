-- name: pending_job
-- The waiting job that holds a queueing lock, if any (procrastinate_jobs is procrastinate's
-- table; its unique index on queueing_lock WHERE status = 'todo' makes this one probe).
SELECT id, queue_name, scheduled_at FROM procrastinate_jobs
 WHERE queueing_lock = %(queueing_lock)s AND status = 'todo'

-- name: bring_forward
-- Move a waiting job earlier, and wake the workers listening on its queue the way
-- procrastinate's own insert trigger does (an UPDATE sends no notification by itself).
WITH moved AS (
    UPDATE procrastinate_jobs
       SET scheduled_at = %(scheduled_at)s
     WHERE id = %(id)s AND status = 'todo'
    RETURNING id, queue_name
)
SELECT pg_notify('procrastinate_queue_v1#' || queue_name,
                 json_build_object('type', 'job_inserted', 'job_id', id)::text),
       pg_notify('procrastinate_any_queue_v1',
                 json_build_object('type', 'job_inserted', 'job_id', id)::text)
  FROM moved
