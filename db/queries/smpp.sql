-- name: save_account
-- Create the tenant's SMPP account, or give it a new password (and whatever else is
-- passed; NULL keeps the current value, `set_networks` decides for allowed_networks).
INSERT INTO smpp_accounts AS a
       (tenant_id, system_id, password_hash, max_binds, allowed_networks)
VALUES (%(tenant_id)s, %(system_id)s, %(password_hash)s, coalesce(%(max_binds)s, 4),
        %(allowed_networks)s::cidr[])
ON CONFLICT (tenant_id) DO UPDATE
   SET system_id = coalesce(%(new_system_id)s, a.system_id),
       password_hash = excluded.password_hash,
       max_binds = coalesce(%(max_binds)s, a.max_binds),
       allowed_networks = CASE WHEN %(set_networks)s THEN excluded.allowed_networks
                               ELSE a.allowed_networks END,
       password_changed_at = clock_timestamp()
RETURNING tenant_id, system_id, max_binds, allowed_networks::text[] AS allowed_networks,
          created_at AS account_created_at, password_changed_at

-- name: update_account
UPDATE smpp_accounts
   SET max_binds = coalesce(%(max_binds)s, max_binds),
       allowed_networks = CASE WHEN %(set_networks)s THEN %(allowed_networks)s::cidr[]
                               ELSE allowed_networks END
 WHERE tenant_id = %(tenant_id)s
RETURNING tenant_id, system_id, max_binds, allowed_networks::text[] AS allowed_networks,
          created_at AS account_created_at, password_changed_at

-- name: get_account
SELECT tenant_id, system_id, max_binds, allowed_networks::text[] AS allowed_networks,
       created_at AS account_created_at, password_changed_at,
       smsgw_smpp_binds_v1(tenant_id) AS binds
  FROM smpp_accounts
 WHERE tenant_id = %(tenant_id)s

-- name: delete_account
DELETE FROM smpp_accounts WHERE tenant_id = %(tenant_id)s RETURNING tenant_id

-- name: find_account
-- What a bind needs: the account by system_id, and its tenant (every column, as
-- core.tenants reads them).
SELECT t.*, a.tenant_id, a.system_id, a.password_hash, a.max_binds,
       a.allowed_networks::text[] AS allowed_networks, a.created_at AS account_created_at,
       a.password_changed_at
  FROM smpp_accounts a JOIN tenants t ON t.id = a.tenant_id
 WHERE a.system_id = %(system_id)s

-- name: bound_tenants
-- The accounts and tenants of the tenants a listener holds binds for, re-read so that
-- price, tier and rate changes reach live binds, and a new password closes old binds.
SELECT t.*, a.tenant_id, a.system_id, a.max_binds,
       a.allowed_networks::text[] AS allowed_networks, a.created_at AS account_created_at,
       a.password_changed_at
  FROM tenants t LEFT JOIN smpp_accounts a ON a.tenant_id = t.id
 WHERE t.id = ANY(%(tenant_ids)s::uuid[])

-- name: take_slot
SELECT smsgw_smpp_take_slot_v1(%(tenant_id)s, %(max_binds)s, %(held)s::integer[]) AS slot

-- name: release_slot
SELECT pg_advisory_unlock(smsgw_smpp_slot_key_v1(%(tenant_id)s, %(slot)s)) AS released

-- name: lock_part_group
-- Parts of one message are taken one at a time, so they agree on the message's id.
SELECT pg_advisory_xact_lock(hashtextextended(
    'smsgw-smpp-parts:' || %(tenant_id)s || ':' || %(source)s || ':' || %(destination)s
    || ':' || %(reference)s || ':' || %(total)s, 0))

-- name: save_part
-- Store a part (a resent part replaces the first copy) under the message id its group
-- already has, or under `message_id` when it is the first part to arrive.
INSERT INTO smpp_parts AS p (tenant_id, source, destination, reference, total, number,
                             message_id, data_coding, payload, registered_delivery)
VALUES (%(tenant_id)s, %(source)s, %(destination)s, %(reference)s, %(total)s, %(number)s,
        coalesce((SELECT message_id FROM smpp_parts
                   WHERE tenant_id = %(tenant_id)s AND source = %(source)s
                     AND destination = %(destination)s AND reference = %(reference)s
                     AND total = %(total)s
                   LIMIT 1), %(message_id)s),
        %(data_coding)s, %(payload)s, %(registered_delivery)s)
ON CONFLICT (tenant_id, source, destination, reference, total, number) DO UPDATE
   SET data_coding = excluded.data_coding, payload = excluded.payload,
       registered_delivery = excluded.registered_delivery, received_at = now()
RETURNING message_id

-- name: count_parts
SELECT count(*) AS parts FROM smpp_parts
 WHERE tenant_id = %(tenant_id)s AND source = %(source)s AND destination = %(destination)s
   AND reference = %(reference)s AND total = %(total)s

-- name: take_parts
-- All parts of a complete message, in order, removed (the caller's transaction puts
-- them back by rolling back if the message is refused).
DELETE FROM smpp_parts
 WHERE tenant_id = %(tenant_id)s AND source = %(source)s AND destination = %(destination)s
   AND reference = %(reference)s AND total = %(total)s
RETURNING number, message_id, data_coding, payload, registered_delivery

-- name: expire_parts
-- Parts whose message never completed within `seconds`: dropped, nothing billed; an
-- ESME that asked for receipts hears of the message it was given an id for as failed.
WITH expired AS (
    DELETE FROM smpp_parts
     WHERE received_at < now() - make_interval(secs => %(seconds)s)
    RETURNING tenant_id, source, destination, message_id, registered_delivery, received_at
), messages AS (
    SELECT tenant_id, source, destination, message_id, max(registered_delivery) AS wanted,
           min(received_at) AS submitted_at
      FROM expired
     GROUP BY tenant_id, source, destination, message_id
), receipts AS (
    INSERT INTO smpp_outbox (tenant_id, kind, message_id, source, destination, status,
                             error_code, submitted_at, done_at)
    SELECT tenant_id, 'receipt', message_id, destination, source, 'failed', 'incomplete',
           submitted_at, now()
      FROM messages
     WHERE wanted > 0
)
SELECT count(*) AS messages FROM messages

-- name: request_receipt
INSERT INTO smpp_receipt_requests (message_created_at, message_id, tenant_id, mode)
VALUES (%(message_created_at)s, %(message_id)s, %(tenant_id)s, %(mode)s)
ON CONFLICT DO NOTHING

-- name: forget_receipt
DELETE FROM smpp_receipt_requests WHERE message_id = %(message_id)s

-- name: purge_receipt_requests
-- Messages that never reached a final state within the receipt horizon (a carrier that
-- sent no receipt leaves them `sent`) will not get one.
DELETE FROM smpp_receipt_requests
 WHERE message_created_at < now() - make_interval(secs => %(seconds)s)

-- name: claim_outbox
-- Due deliver_sm for the given tenants, at most `per_tenant` each, leased for
-- `lease_seconds`; oldest first.
WITH due AS (
    SELECT x.id
      FROM unnest(%(tenant_ids)s::uuid[]) AS t(tenant_id)
     CROSS JOIN LATERAL (
        SELECT o.id FROM smpp_outbox o
         WHERE o.tenant_id = t.tenant_id AND o.next_attempt_at <= now()
         ORDER BY o.next_attempt_at, o.id
         LIMIT %(per_tenant)s
           FOR UPDATE SKIP LOCKED
     ) AS x
)
UPDATE smpp_outbox o
   SET next_attempt_at = now() + make_interval(secs => %(lease_seconds)s),
       attempts = o.attempts + 1
  FROM due
 WHERE o.id = due.id
RETURNING o.id, o.tenant_id, o.kind, o.message_id, o.source, o.destination, o.status,
          o.error_code, o.body, o.submitted_at, o.done_at, o.attempts

-- name: delete_outbox
DELETE FROM smpp_outbox WHERE id = ANY(%(ids)s::bigint[])

-- name: retry_outbox
-- Rows not acknowledged: due again after `delays` seconds each (0: as soon as a bind
-- can take them).
UPDATE smpp_outbox o
   SET next_attempt_at = now() + make_interval(secs => r.delay)
  FROM unnest(%(ids)s::bigint[], %(delays)s::double precision[]) AS r(id, delay)
 WHERE o.id = r.id

-- name: purge_outbox
-- deliver_sm that no bind took within the retention: given up.
DELETE FROM smpp_outbox WHERE created_at < now() - make_interval(secs => %(seconds)s)
