-- name: ensure_partitions
SELECT smsgw_ensure_partitions_v2((now() AT TIME ZONE 'UTC')::date - 1, %(days_ahead)s) AS created

-- name: drop_partitions
SELECT day, dropped, detail
  FROM smsgw_drop_partitions_v2((now() AT TIME ZONE 'UTC')::date - %(retention_days)s)
