-- name: ensure_dispatch
SELECT smsgw_ensure_dispatch_v1(%(tenant_id)s, %(queue)s, %(task)s, %(due)s) AS action

-- name: move_waiting_job
-- A waiting job follows its tenant to another tier's queue.
UPDATE procrastinate_jobs SET queue_name = %(queue)s
 WHERE queueing_lock = %(queueing_lock)s AND status = 'todo' AND queue_name <> %(queue)s
RETURNING id
