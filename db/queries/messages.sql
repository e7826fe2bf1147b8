-- name: accept
-- The hold and the messages in one statement (their first history rows come from the
-- messages_inserted trigger): the balance
-- UPDATE is conditional, so when credit is short nothing at all is inserted and the
-- statement returns zero rows. Takes the messages as a JSON array of objects.
WITH hold AS (
    UPDATE balances
       SET available = available - %(total)s, held = held + %(total)s
     WHERE tenant_id = %(tenant_id)s AND available >= %(total)s
    RETURNING tenant_id
), accepted AS (
    INSERT INTO messages (
        id, created_at, tenant_id, status, to_number, sender, body, encoding, segments,
        price, callback_url, client_reference, send_at, expires_at, next_attempt_at,
        updated_at)
    SELECT m.id, m.created_at, hold.tenant_id, m.status, m.to_number, m.sender, m.body,
           m.encoding, m.segments, m.price, m.callback_url, m.client_reference, m.send_at,
           m.expires_at, coalesce(m.send_at, m.created_at), m.created_at
      FROM hold, json_to_recordset(%(messages)s::json) AS m(
        id uuid, created_at timestamptz, status text, to_number text, sender text, body text,
        encoding text, segments smallint, price bigint, callback_url text,
        client_reference text, send_at timestamptz, expires_at timestamptz)
    RETURNING id, created_at, tenant_id, status, price
), holds AS (
    INSERT INTO ledger_message_entries (message_created_at, message_id, tenant_id, kind, amount)
    SELECT created_at, id, tenant_id, 'hold', price FROM accepted
)
SELECT count(*) AS accepted FROM accepted

-- name: get_message
SELECT * FROM messages
 WHERE created_at = %(created_at)s AND id = %(id)s AND tenant_id = %(tenant_id)s

-- name: cancel_message
-- Only a scheduled or queued message can be canceled; its hold is released in the same
-- statement. A message a dispatcher has just claimed is `sending` and is left alone.
WITH canceled AS (
    UPDATE messages
       SET status = 'canceled', updated_at = clock_timestamp(), next_attempt_at = NULL
     WHERE created_at = %(created_at)s AND id = %(id)s AND tenant_id = %(tenant_id)s
       AND status IN ('scheduled', 'queued')
    RETURNING *
), released AS (
    INSERT INTO ledger_message_entries (message_created_at, message_id, tenant_id, kind, amount)
    SELECT created_at, id, tenant_id, 'release', price FROM canceled
    ON CONFLICT DO NOTHING
    RETURNING amount
), refund AS (
    UPDATE balances
       SET held = held - r.amount, available = available + r.amount
      FROM (SELECT sum(amount) AS amount FROM released) AS r
     WHERE tenant_id = %(tenant_id)s AND r.amount IS NOT NULL
)
SELECT * FROM canceled

-- name: list_messages
-- Newest first, keyset-paginated on (created_at, id); NULL filters are off.
SELECT * FROM messages
 WHERE tenant_id = %(tenant_id)s
   AND (%(status)s::text IS NULL OR status = %(status)s::text)
   AND (%(to_number)s::text IS NULL OR to_number = %(to_number)s::text)
   AND created_at > coalesce(%(created_after)s::timestamptz, '-infinity')
   AND created_at < coalesce(%(created_before)s::timestamptz, 'infinity')
   AND (%(before_id)s::uuid IS NULL
        OR (created_at, id) < (%(before_created_at)s::timestamptz, %(before_id)s::uuid))
 ORDER BY created_at DESC, id DESC
 LIMIT %(limit)s
