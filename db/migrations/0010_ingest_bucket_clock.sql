-- 0010: the ingest bucket of a tenant's first rate-limited request. The refill read
-- `clock_timestamp() - coalesce(ingest_at, clock_timestamp())`: two calls of a clock that
-- moves, so with no earlier request the elapsed time could come out a microsecond
-- negative, the full bucket one millionth short of a token, and that first request was
-- refused (as over the rate, or, when the second look rounded the other way, as short of
-- credit). An empty bucket row now means a full bucket, and elapsed time is never
-- negative (a clock stepped back refills nothing rather than draining the bucket).

CREATE OR REPLACE FUNCTION smsgw_accept_v1(
    p_tenant_id uuid, p_total bigint, p_rate double precision, p_messages json,
    p_queue text, p_task text, p_due timestamptz)
    RETURNS TABLE (accepted integer, available bigint, tokens double precision)
    LANGUAGE plpgsql
AS $$
DECLARE
    n integer;
BEGIN
    WITH hold AS (
        -- The bucket is computed from the row this UPDATE locks (re-read if a
        -- concurrent accept changed it first), so two accepts cannot spend one token.
        UPDATE balances b
           SET available = b.available - p_total, held = b.held + p_total,
               ingest_tokens = CASE WHEN p_rate IS NULL THEN b.ingest_tokens
                   ELSE least(p_rate, coalesce(b.ingest_tokens + p_rate * greatest(0, extract(epoch FROM clock_timestamp() - b.ingest_at)), p_rate))
                        - 1 END,
               ingest_at = CASE WHEN p_rate IS NULL THEN b.ingest_at ELSE clock_timestamp() END
         WHERE b.tenant_id = p_tenant_id AND b.available >= p_total
           AND (p_rate IS NULL
                OR least(p_rate, coalesce(b.ingest_tokens + p_rate * greatest(0, extract(epoch FROM clock_timestamp() - b.ingest_at)), p_rate)) >= 1)
        RETURNING b.tenant_id
    ), inserted AS (
        INSERT INTO messages (
            id, created_at, tenant_id, status, to_number, sender, body, encoding, segments,
            price, callback_url, client_reference, send_at, expires_at, next_attempt_at,
            updated_at)
        SELECT m.id, m.created_at, hold.tenant_id, m.status, m.to_number, m.sender, m.body,
               m.encoding, m.segments, m.price, m.callback_url, m.client_reference,
               m.send_at, m.expires_at, coalesce(m.send_at, m.created_at), m.created_at
          FROM hold, json_to_recordset(p_messages) AS m(
            id uuid, created_at timestamptz, status text, to_number text, sender text,
            body text, encoding text, segments smallint, price bigint, callback_url text,
            client_reference text, send_at timestamptz, expires_at timestamptz)
        RETURNING id, created_at, tenant_id, price
    ), holds AS (
        INSERT INTO ledger_message_entries
            (message_created_at, message_id, tenant_id, kind, amount)
        SELECT created_at, id, tenant_id, 'hold', price FROM inserted
    )
    SELECT count(*) INTO n FROM inserted;
    IF n = 0 THEN
        RETURN QUERY
        SELECT 0, b.available,
               CASE WHEN p_rate IS NULL THEN NULL::double precision
                    ELSE least(p_rate, coalesce(b.ingest_tokens + p_rate * greatest(0, extract(epoch FROM clock_timestamp() - b.ingest_at)), p_rate))
               END
          FROM balances b WHERE b.tenant_id = p_tenant_id;
        RETURN;
    END IF;
    -- A new statement, so a new snapshot: it sees every accept of this tenant that
    -- committed while we waited for the balance row lock.
    PERFORM smsgw_ensure_dispatch_v1(p_tenant_id, p_queue, p_task, p_due);
    RETURN QUERY SELECT n, NULL::bigint, NULL::double precision;
END;
$$;

CREATE OR REPLACE FUNCTION smsgw_accept_v2(
    p_tenant_id uuid, p_rate double precision, p_messages json,
    p_queue text, p_task text, p_honour_opt_outs boolean)
    RETURNS TABLE (accepted integer, available bigint, tokens double precision,
                   opted_out uuid[])
    LANGUAGE plpgsql
AS $$
DECLARE
    n integer;
    wanted integer;
    total bigint;
    due timestamptz;
    refused uuid[] := '{}';
BEGIN
    IF p_honour_opt_outs THEN
        SELECT coalesce(array_agg(m.id), '{}') INTO refused
          FROM json_to_recordset(p_messages) AS m(id uuid, to_number text, sender text)
         WHERE EXISTS (
            SELECT 1 FROM suppressions s
             WHERE s.tenant_id = p_tenant_id AND s.recipient = m.to_number
               AND (m.sender IS NULL OR s.number IN ('*', m.sender)));
    END IF;
    SELECT count(*), coalesce(sum(m.price), 0), min(coalesce(m.send_at, m.created_at))
      INTO wanted, total, due
      FROM json_to_recordset(p_messages) AS m(
        id uuid, created_at timestamptz, price bigint, send_at timestamptz)
     WHERE m.id <> ALL (refused);
    IF wanted = 0 THEN
        RETURN QUERY SELECT 0, NULL::bigint, NULL::double precision, refused;
        RETURN;
    END IF;
    WITH hold AS (
        UPDATE balances b
           SET available = b.available - total, held = b.held + total,
               ingest_tokens = CASE WHEN p_rate IS NULL THEN b.ingest_tokens
                   ELSE least(p_rate, coalesce(b.ingest_tokens + p_rate * greatest(0, extract(epoch FROM clock_timestamp() - b.ingest_at)), p_rate))
                        - 1 END,
               ingest_at = CASE WHEN p_rate IS NULL THEN b.ingest_at ELSE clock_timestamp() END
         WHERE b.tenant_id = p_tenant_id AND b.available >= total
           AND (p_rate IS NULL
                OR least(p_rate, coalesce(b.ingest_tokens + p_rate * greatest(0, extract(epoch FROM clock_timestamp() - b.ingest_at)), p_rate)) >= 1)
        RETURNING b.tenant_id
    ), inserted AS (
        INSERT INTO messages (
            id, created_at, tenant_id, status, to_number, sender, body, encoding, segments,
            price, callback_url, client_reference, send_at, expires_at, next_attempt_at,
            updated_at, facade, messaging_service_sid)
        SELECT m.id, m.created_at, hold.tenant_id, m.status, m.to_number, m.sender, m.body,
               m.encoding, m.segments, m.price, m.callback_url, m.client_reference,
               m.send_at, m.expires_at, coalesce(m.send_at, m.created_at), m.created_at,
               m.facade, m.messaging_service_sid
          FROM hold, json_to_recordset(p_messages) AS m(
            id uuid, created_at timestamptz, status text, to_number text, sender text,
            body text, encoding text, segments smallint, price bigint, callback_url text,
            client_reference text, send_at timestamptz, expires_at timestamptz,
            facade text, messaging_service_sid text)
         WHERE m.id <> ALL (refused)
        RETURNING id, created_at, tenant_id, price
    ), holds AS (
        INSERT INTO ledger_message_entries
            (message_created_at, message_id, tenant_id, kind, amount)
        SELECT created_at, id, tenant_id, 'hold', price FROM inserted
    )
    SELECT count(*) INTO n FROM inserted;
    IF n = 0 THEN
        RETURN QUERY
        SELECT 0, b.available,
               CASE WHEN p_rate IS NULL THEN NULL::double precision
                    ELSE least(p_rate, coalesce(b.ingest_tokens + p_rate * greatest(0, extract(epoch FROM clock_timestamp() - b.ingest_at)), p_rate))
               END,
               refused
          FROM balances b WHERE b.tenant_id = p_tenant_id;
        RETURN;
    END IF;
    PERFORM smsgw_ensure_dispatch_v1(p_tenant_id, p_queue, p_task, due);
    RETURN QUERY SELECT n, NULL::bigint, NULL::double precision, refused;
END;
$$;
