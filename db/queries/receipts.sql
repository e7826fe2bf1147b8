-- name: record
INSERT INTO receipts_inbox
    (provider, provider_message_id, status, error_code, occurred_at, available_at)
SELECT provider, provider_message_id, status, error_code, occurred_at, available_at
  FROM json_to_recordset(%(receipts)s::json) AS r(
        provider text, provider_message_id text, status text, error_code text,
        occurred_at timestamptz, available_at timestamptz)

-- name: match
-- The messages that receipts arriving now name (`ord`: the receipt's place in the
-- batch): one probe of messages_provider_ref_idx each, as in take_due.
SELECT r.ord, m.created_at, m.id
  FROM json_to_recordset(%(receipts)s::json) AS r(
        ord integer, provider text, provider_message_id text)
  JOIN LATERAL (
    SELECT created_at, id FROM messages
     WHERE provider = r.provider AND provider_message_id = r.provider_message_id
       AND created_at > now() - make_interval(secs => %(horizon_seconds)s)
       AND created_at < now() + interval '1 hour'
    OFFSET 0
  ) m ON true

-- name: take_due
-- Up to `limit` due receipts, locked, each with the messages it names (a row with NULL
-- keys when none does yet): the caller applies, consumes or postpones them in this
-- transaction (core/receipts.py). Each receipt finds its messages through
-- messages_provider_ref_idx, one probe per receipt: OFFSET 0 keeps the lookup a
-- subquery run per receipt, so no statistics can turn it into a read of whole
-- partitions. (One statement with the UPDATE below did, with a young partition's
-- statistics: it read today's partition whole and sorted it on every run.) The upper
-- bound leaves out the days created ahead (7 by default), where no message sent yet can
-- be: each probe visits the horizon's partitions only (9 probes a receipt became 2 in a
-- young database; a message's id comes from an API's clock, and an hour covers any skew
-- between it and the server's).
WITH due AS (
    SELECT id, provider, provider_message_id, status, error_code, occurred_at, received_at
      FROM receipts_inbox
     WHERE available_at <= now()
     ORDER BY available_at
     LIMIT %(limit)s
       FOR UPDATE SKIP LOCKED
)
SELECT d.id AS receipt_id, d.status AS new_status, d.error_code, d.occurred_at,
       d.received_at < now() - make_interval(secs => %(horizon_seconds)s) AS expired,
       m.created_at, m.id
  FROM due d
  LEFT JOIN LATERAL (
    SELECT created_at, id FROM messages
     WHERE provider = d.provider AND provider_message_id = d.provider_message_id
       AND created_at > now() - make_interval(secs => %(horizon_seconds)s)
       AND created_at < now() + interval '1 hour'
    OFFSET 0
  ) m ON true

-- name: apply_matched
-- `sent` messages to delivered/undelivered, as their receipts say. A message already
-- final is left as it is (a duplicate receipt). Run after dispatch's plan_key_batches,
-- with the keys' range and ids (see db/queries/dispatch.sql, mark_sending).
UPDATE messages m
   SET status = r.new_status,
       -- The carrier's time, but never in the future nor before the message was
       -- recorded sent (a carrier's clock, or a receipt that beat a slow settle, would
       -- show a message delivered before it was sent).
       delivered_at = CASE WHEN r.new_status = 'delivered'
                           THEN greatest(m.sent_at, least(r.occurred_at, clock_timestamp()))
                      END,
       error_code = r.error_code,
       error_message = CASE WHEN r.new_status = 'undelivered'
                            THEN 'the carrier reported the message undelivered' END,
       updated_at = clock_timestamp()
  FROM json_to_recordset(%(receipts)s::json) AS r(
        created_at timestamptz, id uuid, new_status text, error_code text,
        occurred_at timestamptz)
 WHERE m.created_at = r.created_at AND m.id = r.id
   AND m.created_at BETWEEN %(oldest)s AND %(newest)s AND m.id = ANY (%(ids)s::uuid[])
   AND m.status = 'sent'

-- name: consume
-- Receipts matched (whether they changed anything or not), or too old to ever match.
DELETE FROM receipts_inbox WHERE id = ANY (%(ids)s::bigint[])

-- name: postpone
-- Receipts that match no message yet (their submit response may not be stored yet):
-- tried again with backoff, up to 5 minutes apart.
UPDATE receipts_inbox
   SET attempts = attempts + 1,
       available_at = now() + make_interval(secs => least(300, 2 ^ least(attempts, 9)))
 WHERE id = ANY (%(ids)s::bigint[])
