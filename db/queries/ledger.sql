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
