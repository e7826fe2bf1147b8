-- name: add
-- `created` is false when the entry was there already (it is left as it was).
INSERT INTO suppressions AS s (tenant_id, recipient, number, source)
VALUES (%(tenant_id)s, %(recipient)s, %(number)s, %(source)s)
ON CONFLICT (tenant_id, recipient, number) DO UPDATE SET source = s.source
RETURNING recipient, number, source, created_at, (xmax = 0) AS created

-- name: remove
-- Every entry of the recipient, or only the one for `number` ('*': all numbers).
DELETE FROM suppressions
 WHERE tenant_id = %(tenant_id)s AND recipient = %(recipient)s
   AND (%(number)s::text IS NULL OR number = %(number)s::text)
RETURNING number

-- name: opt_in
-- START to one of our numbers lifts that number's entry and an all-numbers one.
DELETE FROM suppressions
 WHERE tenant_id = %(tenant_id)s AND recipient = %(recipient)s
   AND number IN (%(number)s, '*')
RETURNING number

-- name: list
-- Keyset-paginated on (recipient, number); NULL filters are off.
SELECT recipient, number, source, created_at FROM suppressions
 WHERE tenant_id = %(tenant_id)s
   AND (%(recipient)s::text IS NULL OR recipient = %(recipient)s::text)
   AND (%(after_recipient)s::text IS NULL
        OR (recipient, number) > (%(after_recipient)s::text, %(after_number)s::text))
 ORDER BY recipient, number
 LIMIT %(limit)s
