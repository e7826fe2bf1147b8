-- A tenant's messages of a window for export, oldest first, on the reporting pool (the
-- tenant's index, the window's partitions only). The server formats every row (an
-- instant as ISO 8601 in UTC with a Z, microseconds only when there are some, as the
-- API writes them): COPY ... (FORMAT csv) for CSV, passed along as it comes; COPY ...
-- (FORMAT text) for JSON lines, which core/exports.py lays into JSON a chunk at a time.

-- name: tenant_messages
SELECT m.id, smsgw_instant_text_v1(m.created_at) AS created_at, m.status,
       m.to_number AS "to", m.sender AS "from", m.segments, m.encoding, m.price, m.provider,
       m.error_code, m.client_reference, smsgw_instant_text_v1(m.sent_at) AS sent_at,
       smsgw_instant_text_v1(m.delivered_at) AS delivered_at, m.body
  FROM messages m
 WHERE m.tenant_id = %(tenant_id)s AND m.created_at >= %(starts)s AND m.created_at < %(ends)s
 ORDER BY m.created_at, m.id

-- name: unbounded
-- For the rest of the export's transaction: no statement timeout. A CSV export is one
-- COPY statement as long as the window (10M rows: about a minute), where the reporting
-- session's timeout (SMSGW_REPORT_STATEMENT_TIMEOUT_MS) bounds one report's statement.
SELECT set_config('statement_timeout', '0', true)
