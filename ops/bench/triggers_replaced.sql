-- The pair of status-change triggers that smsgw_messages_changed_v2 (one trigger)
-- replaced before 1.0.0, as the pre-release migrations last defined them: status history
-- and callbacks (with the Twilio facade's), and the change counters. Renamed old_* so they
-- sit beside today's; ops/bench/triggers.py installs them on a scratch database only.

CREATE FUNCTION old_smsgw_messages_changed_v1()
    RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    WITH changes AS (
        -- A scheduled message claimed for sending passes through `queued` at its send_at.
        SELECT n.created_at, n.id, n.tenant_id, 'queued' AS status,
               coalesce(o.next_attempt_at, n.updated_at) AS at, NULL::text AS error_code,
               n.callback_url, n.segments, n.price, n.client_reference, 0 AS step,
               n.facade, n.to_number, n.sender, n.messaging_service_sid
          FROM new_rows n JOIN old_rows o ON o.created_at = n.created_at AND o.id = n.id
         WHERE o.status = 'scheduled' AND n.status = 'sending'
        UNION ALL
        SELECT n.created_at, n.id, n.tenant_id, n.status, n.updated_at,
               -- The error explains a retry or an end; `sending` and `sent` carry none.
               CASE WHEN n.status IN ('queued', 'failed', 'expired', 'undelivered')
                    THEN n.error_code END,
               n.callback_url, n.segments, n.price, n.client_reference, 1 AS step,
               n.facade, n.to_number, n.sender, n.messaging_service_sid
          FROM new_rows n JOIN old_rows o ON o.created_at = n.created_at AND o.id = n.id
         WHERE n.status <> o.status
    ), events AS (
        INSERT INTO message_events
            (message_created_at, message_id, tenant_id, status, at, error_code)
        SELECT created_at, id, tenant_id, status, at, error_code FROM changes
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

CREATE FUNCTION old_smsgw_count_changed_v1()
    RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    INSERT INTO message_counters AS c (slot, kind, status, tier, provider, n)
    SELECT pg_backend_pid(), 'changed', n.status, t.tier, coalesce(n.provider, ''), count(*)
      FROM new_rows n
      JOIN old_rows o ON o.created_at = n.created_at AND o.id = n.id
      JOIN tenants t ON t.id = n.tenant_id
     WHERE n.status <> o.status
     GROUP BY n.status, t.tier, coalesce(n.provider, '')
     ORDER BY n.status, t.tier, coalesce(n.provider, '')
    ON CONFLICT (slot, kind, status, tier, provider) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END;
$$;
