-- A tenant's messages of a window for export, oldest first, read by a server-side cursor
-- on the reporting pool (the tenant's index, the window's partitions only).

-- name: tenant_messages
SELECT id, created_at, status, to_number, sender, segments, encoding, price, provider,
       error_code, client_reference, sent_at, delivered_at, body
  FROM messages
 WHERE tenant_id = %(tenant_id)s AND created_at >= %(starts)s AND created_at < %(ends)s
 ORDER BY created_at, id
