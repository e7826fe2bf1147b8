-- name: insert_credit
-- A credit with a reference already used by this tenant inserts nothing.
INSERT INTO ledger_credits (tenant_id, amount, reference)
VALUES (%(tenant_id)s, %(amount)s, %(reference)s)
ON CONFLICT (tenant_id, reference) DO NOTHING
RETURNING id

-- name: add_credit
UPDATE balances
   SET credits = credits + %(amount)s, available = available + %(amount)s
 WHERE tenant_id = %(tenant_id)s
RETURNING available, held, captured

-- name: get_balance
SELECT b.available, b.held, b.captured, t.currency
  FROM balances b JOIN tenants t ON t.id = b.tenant_id
 WHERE b.tenant_id = %(tenant_id)s

-- name: violations
SELECT tenant_id, message_id, problem FROM smsgw_ledger_violations_v1()
 ORDER BY tenant_id, message_id

-- name: release_messages
-- Settles holds by release, for messages that will never be sent. Takes the
-- messages' (created_at, id) pairs and the tenant; returns the released total.
WITH released AS (
    INSERT INTO ledger_message_entries (message_created_at, message_id, tenant_id, kind, amount)
    SELECT m.created_at, m.id, m.tenant_id, 'release', m.price
      FROM messages m
      JOIN unnest(%(created_ats)s::timestamptz[], %(ids)s::uuid[]) AS k(created_at, id)
        ON m.created_at = k.created_at AND m.id = k.id
    RETURNING amount
), total AS (
    SELECT coalesce(sum(amount), 0) AS amount FROM released
)
UPDATE balances
   SET held = held - total.amount, available = available + total.amount
  FROM total
 WHERE tenant_id = %(tenant_id)s
RETURNING total.amount AS released
