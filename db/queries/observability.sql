-- What /metrics and the dashboard read at scrape time. Each statement is cheap and
-- bounded: small tables, or partial indexes, with a cap where a table could be large.

-- name: message_counters
SELECT kind, status, tier, provider, sum(n)::bigint AS n
  FROM message_counters
 GROUP BY kind, status, tier, provider
 ORDER BY kind, status, tier, provider

-- name: fold_message_counters
SELECT smsgw_fold_message_counters_v1() AS folded

-- name: queue_depth
-- Due messages per tier and the oldest one's due time, through messages_due_idx (the
-- partial index of scheduled and queued messages). Counting stops at `cap` rows, so a
-- huge backlog reads as "at least cap" and the scrape stays cheap.
SELECT t.tier, count(*) AS depth, min(q.next_attempt_at) AS oldest_due
  FROM (SELECT tenant_id, next_attempt_at FROM messages
         WHERE status IN ('scheduled', 'queued') AND next_attempt_at <= now()
         LIMIT %(cap)s) q
  JOIN tenants t ON t.id = q.tenant_id
 GROUP BY t.tier

-- name: in_flight
-- Messages handed to a worker and not yet settled (messages_lease_idx), capped.
SELECT count(*) AS sending
  FROM (SELECT 1 FROM messages WHERE status = 'sending' LIMIT %(cap)s) s

-- name: ledger_totals
-- The balances of every tenant added up per currency: one row per tenant is read.
SELECT t.currency, count(*) AS tenants,
       sum(b.credits)::bigint AS credits, sum(b.available)::bigint AS available,
       sum(b.held)::bigint AS held, sum(b.captured)::bigint AS captured
  FROM balances b JOIN tenants t ON t.id = b.tenant_id
 GROUP BY t.currency
 ORDER BY t.currency

-- name: jobs
-- procrastinate's waiting and running jobs per queue (finished jobs are deleted).
SELECT queue_name, status, count(*) AS jobs
  FROM procrastinate_jobs
 WHERE status IN ('todo', 'doing')
 GROUP BY queue_name, status

-- name: callbacks_due
SELECT count(*) AS due
  FROM (SELECT 1 FROM callbacks WHERE next_attempt_at IS NOT NULL LIMIT %(cap)s) c

-- name: receipts_waiting
SELECT count(*) AS waiting FROM (SELECT 1 FROM receipts_inbox LIMIT %(cap)s) r

-- name: primary_wal
-- The primary's WAL position and its standbys as it sees them.
SELECT pg_current_wal_lsn()::text AS lsn

-- name: standbys
SELECT application_name, client_addr::text AS client_addr, state,
       pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint AS replay_lag_bytes,
       extract(epoch FROM replay_lag)::float8 AS replay_lag_seconds
  FROM pg_stat_replication
 ORDER BY application_name, client_addr

-- name: in_recovery
SELECT pg_is_in_recovery() AS in_recovery

-- name: replica_position
-- On a standby: what it has received and replayed, and how old the last replayed
-- transaction is (the caller counts it as lag only when the primary is ahead of the
-- replay: an idle primary is not lag, and WAL not yet received is).
SELECT pg_last_wal_receive_lsn()::text AS receive_lsn,
       pg_last_wal_replay_lsn()::text AS replay_lsn,
       pg_is_wal_replay_paused() AS paused,
       extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 AS lag_seconds
