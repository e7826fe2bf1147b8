-- name: record
INSERT INTO receipts_inbox
    (provider, provider_message_id, status, error_code, occurred_at, available_at)
SELECT provider, provider_message_id, status, error_code, occurred_at, available_at
  FROM json_to_recordset(%(receipts)s::json) AS r(
        provider text, provider_message_id text, status text, error_code text,
        occurred_at timestamptz, available_at timestamptz)

-- name: any_due
-- An idle inbox costs one probe of its due index. The statement below, with nothing
-- due, still starts its UPDATE of messages, and a plan made from a young partition's
-- statistics (few `sent` rows, provider ids still NULL) read today's partition whole
-- and sorted it before finding nothing to join (170 ms a run at 360,000 messages, every
-- second, with receipts held back an hour).
SELECT EXISTS (SELECT 1 FROM receipts_inbox WHERE available_at <= now()) AS any_due

-- name: apply_due
-- Match due receipts to their messages by (provider, provider_message_id) and move
-- `sent` messages to delivered/undelivered. A matched receipt is consumed whether it
-- changed anything or not (a duplicate finds the message final already); an unmatched
-- one waits with backoff, since its submit response may not be stored yet, and is
-- dropped once it is older than the horizon.
WITH due AS (
    SELECT id, provider, provider_message_id, status, error_code, occurred_at,
           received_at, attempts
      FROM receipts_inbox
     WHERE available_at <= now()
     ORDER BY available_at
     LIMIT %(limit)s
       FOR UPDATE SKIP LOCKED
), matched AS (
    SELECT d.id AS receipt_id, d.status AS new_status, d.error_code, d.occurred_at,
           m.created_at, m.id
      FROM due d
      JOIN messages m ON m.provider = d.provider AND m.provider_message_id = d.provider_message_id
     WHERE m.created_at > now() - make_interval(secs => %(horizon_seconds)s)
), applied AS (
    UPDATE messages m
       SET status = x.new_status,
           delivered_at = CASE WHEN x.new_status = 'delivered'
                               THEN least(x.occurred_at, clock_timestamp()) END,
           error_code = x.error_code,
           error_message = CASE WHEN x.new_status = 'undelivered'
                                THEN 'the carrier reported the message undelivered' END,
           updated_at = clock_timestamp()
      FROM matched x
     WHERE m.created_at = x.created_at AND m.id = x.id AND m.status = 'sent'
    RETURNING m.id
), consumed AS (
    DELETE FROM receipts_inbox r
     USING due d
     WHERE r.id = d.id
       AND (EXISTS (SELECT 1 FROM matched x WHERE x.receipt_id = d.id)
            OR d.received_at < now() - make_interval(secs => %(horizon_seconds)s))
    RETURNING r.id
), waiting AS (
    UPDATE receipts_inbox r
       SET attempts = r.attempts + 1,
           available_at = now() + make_interval(secs => least(300, 2 ^ least(r.attempts, 9)))
      FROM due d
     WHERE r.id = d.id
       AND NOT EXISTS (SELECT 1 FROM matched x WHERE x.receipt_id = d.id)
       AND d.received_at >= now() - make_interval(secs => %(horizon_seconds)s)
    RETURNING r.id
)
SELECT (SELECT count(*) FROM due) AS due,
       (SELECT count(*) FROM applied) AS applied,
       (SELECT count(*) FROM consumed) AS consumed,
       (SELECT count(*) FROM waiting) AS waiting
