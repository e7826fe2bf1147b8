-- name: ensure_partitions
SELECT smsgw_ensure_partitions_v1((now() AT TIME ZONE 'UTC')::date - 1, %(days_ahead)s) AS created
