-- 0013: the status-change counters are written by the trigger that records the status
-- events (issue 6).
--
-- Every UPDATE of messages ran two statement-level triggers that each joined the
-- statement's old and new rows to find the status changes: one wrote the events and
-- callbacks, the other the `changed` counters. In the e2e batch benchmark the counter
-- trigger alone was ~9% of PostgreSQL's statement time (pg_stat_statements: 8.6 s of
-- 1,767 calls in a 60 s phase). Now the changes are found once and both are written
-- from them; the counters count what they counted before (one per row whose status
-- changed, by new status, tenant tier and provider).

CREATE FUNCTION smsgw_messages_changed_v2()
    RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    WITH changes AS (
        -- A scheduled message claimed for sending passes through `queued` at its send_at.
        SELECT n.created_at, n.id, n.tenant_id, 'queued' AS status,
               coalesce(o.next_attempt_at, n.updated_at) AS at, NULL::text AS error_code,
               n.callback_url, n.segments, n.price, n.client_reference, 0 AS step,
               n.facade, n.to_number, n.sender, n.messaging_service_sid, n.provider
          FROM new_rows n JOIN old_rows o ON o.created_at = n.created_at AND o.id = n.id
         WHERE o.status = 'scheduled' AND n.status = 'sending'
        UNION ALL
        SELECT n.created_at, n.id, n.tenant_id, n.status, n.updated_at,
               -- The error explains a retry or an end; `sending` and `sent` carry none.
               CASE WHEN n.status IN ('queued', 'failed', 'expired', 'undelivered')
                    THEN n.error_code END,
               n.callback_url, n.segments, n.price, n.client_reference, 1 AS step,
               n.facade, n.to_number, n.sender, n.messaging_service_sid, n.provider
          FROM new_rows n JOIN old_rows o ON o.created_at = n.created_at AND o.id = n.id
         WHERE n.status <> o.status
    ), events AS (
        INSERT INTO message_events
            (message_created_at, message_id, tenant_id, status, at, error_code)
        SELECT created_at, id, tenant_id, status, at, error_code FROM changes
    ), counted AS (
        -- The status a row changed to, once per row (the implied `queued` of a claimed
        -- scheduled message is an event, not a change of the row).
        INSERT INTO message_counters AS c (slot, kind, status, tier, provider, n)
        SELECT pg_backend_pid(), 'changed', ch.status, t.tier, coalesce(ch.provider, ''),
               count(*)
          FROM changes ch JOIN tenants t ON t.id = ch.tenant_id
         WHERE ch.step = 1
         GROUP BY ch.status, t.tier, coalesce(ch.provider, '')
         ORDER BY ch.status, t.tier, coalesce(ch.provider, '')
        ON CONFLICT (slot, kind, status, tier, provider) DO UPDATE SET n = c.n + excluded.n
    )
    -- Tenants hear of every change after acceptance, one callback each.
    INSERT INTO callbacks (tenant_id, message_id, url, payload, kind)
    SELECT tenant_id, id, callback_url,
           CASE WHEN facade = 'twilio' THEN
               jsonb_build_object(
                   'id', id, 'status', status, 'error_code', error_code,
                   'to', to_number, 'from', sender,
                   'messaging_service_sid', messaging_service_sid)
           ELSE
               jsonb_build_object(
                   'id', id, 'status', status, 'error_code', error_code,
                   'segments', segments, 'price', price, 'client_reference', client_reference,
                   'timestamp', to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
           END,
           CASE WHEN facade = 'twilio' THEN 'twilio_status' ELSE 'status' END
      FROM changes
     WHERE callback_url IS NOT NULL
     ORDER BY id, at, step;
    RETURN NULL;
END;
$$;

DROP TRIGGER messages_counted_update ON messages;
DROP TRIGGER messages_changed ON messages;
CREATE TRIGGER messages_changed AFTER UPDATE ON messages
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION smsgw_messages_changed_v2();
DROP FUNCTION smsgw_count_changed_v1();
DROP FUNCTION smsgw_messages_changed_v1();
