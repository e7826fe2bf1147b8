-- 0012: a single send costs PostgreSQL less (issue 6).
--
-- Measured with pgbench on this 2-core machine, 64 clients, the accept statement alone:
-- smsgw_accept_v3 with one message ~3,450 calls/s. Two costs stood out. The message
-- went in as JSON, parsed three times (opt-outs, totals, insert) by a PL/pgSQL function
-- built for batches; and two statement-level AFTER INSERT triggers (the `queued` status
-- event, the `accepted` counter) each built a transition table and ran a function of
-- their own. A single send now has its own call with typed arguments, and every accept
-- writes its event and counter rows in its own statement, so the insert triggers go:
-- ~5,670 calls/s in the same comparison (ops/bench, "single ingest", for the whole path).
-- Updates of `messages` keep their triggers (status history, callbacks, counters,
-- SMPP receipts): the accept functions are the only writers of new messages.

DROP TRIGGER messages_inserted ON messages;
DROP TRIGGER messages_counted_insert ON messages;
DROP FUNCTION smsgw_messages_inserted_v1();
DROP FUNCTION smsgw_count_inserted_v1();

-- The tokens in a tenant's ingest bucket now: refilled at `p_rate` per second since
-- `p_at`, up to one second's worth (the rule of 0005 and 0010, written once). NULL when
-- the tenant has no rate limit.
CREATE FUNCTION smsgw_ingest_tokens_v1(
    p_tokens double precision, p_at timestamptz, p_rate double precision)
    RETURNS double precision
    LANGUAGE sql
AS $$
    SELECT least(p_rate, coalesce(p_tokens + p_rate * greatest(0, extract(epoch FROM clock_timestamp() - p_at)), p_rate))
$$;

-- One message: the same rules as smsgw_accept_v3 (opt-out, hold, ingest bucket, the row,
-- its hold entry, its first status event, the `accepted` counter, the tenant's queue
-- row), without JSON. p_queue is the tenant's tier. `stale`: p_key_id (when given) is
-- revoked or the tenant's settings changed, nothing written. `opted_out`: refused for
-- an opt-out, nothing written; otherwise `accepted` 0 means short credit or an empty
-- ingest bucket, and `available` and `tokens` say which. The same refusal, when a
-- concurrent send of the tenant took the last of it between the look and the hold, is
-- an error (SQLSTATE SMG01, DETAIL {"available", "tokens"}) that undoes the rows.
CREATE FUNCTION smsgw_accept_one_v1(
    p_tenant_id uuid, p_rate double precision, p_queue text, p_task text,
    p_honour_opt_outs boolean, p_id uuid, p_created_at timestamptz, p_status text,
    p_to_number text, p_sender text, p_body text, p_encoding text, p_segments smallint,
    p_price bigint, p_callback_url text, p_client_reference text, p_send_at timestamptz,
    p_expires_at timestamptz, p_facade text, p_messaging_service_sid text,
    p_key_id uuid)
    RETURNS TABLE (accepted integer, available bigint, tokens double precision,
                   opted_out boolean, stale boolean)
    LANGUAGE plpgsql
AS $$
DECLARE
    n integer;
    due timestamptz := coalesce(p_send_at, p_created_at);
    bal record;
BEGIN
    IF p_key_id IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
         WHERE k.id = p_key_id AND k.revoked_at IS NULL AND t.id = p_tenant_id
           AND t.tier = p_queue
           AND t.rate_limit_mps::double precision IS NOT DISTINCT FROM p_rate
           AND t.price_per_segment * p_segments = p_price) THEN
        RETURN QUERY SELECT 0, NULL::bigint, NULL::double precision, false, true;
        RETURN;
    END IF;
    IF p_honour_opt_outs AND EXISTS (
        SELECT 1 FROM suppressions s
         WHERE s.tenant_id = p_tenant_id AND s.recipient = p_to_number
           AND (p_sender IS NULL OR s.number IN ('*', p_sender))) THEN
        RETURN QUERY SELECT 0, NULL::bigint, NULL::double precision, true, false;
        RETURN;
    END IF;
    -- The balance row is locked last, so it stays locked only for the hold, the queue
    -- row and the commit, not the inserts. An unlocked look first: a refusal writes
    -- nothing and waits for no one.
    SELECT bb.available,
           CASE WHEN p_rate IS NULL THEN NULL::double precision
                ELSE smsgw_ingest_tokens_v1(bb.ingest_tokens, bb.ingest_at, p_rate)
           END AS tokens
      INTO bal FROM balances bb WHERE bb.tenant_id = p_tenant_id;
    IF NOT FOUND OR bal.available < p_price OR (p_rate IS NOT NULL AND bal.tokens < 1) THEN
        RETURN QUERY SELECT 0, bal.available, bal.tokens, false, false;
        RETURN;
    END IF;
    WITH inserted AS (
        INSERT INTO messages (
            id, created_at, tenant_id, status, to_number, sender, body, encoding, segments,
            price, callback_url, client_reference, send_at, expires_at, next_attempt_at,
            updated_at, facade, messaging_service_sid)
        VALUES (p_id, p_created_at, p_tenant_id, p_status, p_to_number, p_sender, p_body,
               p_encoding, p_segments, p_price, p_callback_url, p_client_reference,
               p_send_at, p_expires_at, due, p_created_at, p_facade, p_messaging_service_sid)
    ), event AS (
        INSERT INTO message_events (message_created_at, message_id, tenant_id, status, at)
        VALUES (p_created_at, p_id, p_tenant_id, p_status, p_created_at)
    ), counted AS (
        INSERT INTO message_counters AS c (slot, kind, status, tier, provider, n)
        VALUES (pg_backend_pid(), 'accepted', p_status, p_queue, '', 1)
        ON CONFLICT (slot, kind, status, tier, provider) DO UPDATE SET n = c.n + 1
    )
    INSERT INTO ledger_message_entries
        (message_created_at, message_id, tenant_id, kind, amount)
    VALUES (p_created_at, p_id, p_tenant_id, 'hold', p_price);
    UPDATE balances b
       SET available = b.available - p_price, held = b.held + p_price,
           ingest_tokens = CASE WHEN p_rate IS NULL THEN b.ingest_tokens
               ELSE smsgw_ingest_tokens_v1(b.ingest_tokens, b.ingest_at, p_rate)
                    - 1 END,
           ingest_at = CASE WHEN p_rate IS NULL THEN b.ingest_at ELSE clock_timestamp() END
     WHERE b.tenant_id = p_tenant_id AND b.available >= p_price
       AND (p_rate IS NULL
            OR smsgw_ingest_tokens_v1(b.ingest_tokens, b.ingest_at, p_rate) >= 1);
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n = 0 THEN
        -- A concurrent send spent the credit or the bucket since the look above: undo
        -- the rows (the whole call fails) and say what is left, as a refusal would.
        SELECT bb.available,
               CASE WHEN p_rate IS NULL THEN NULL::double precision
                    ELSE smsgw_ingest_tokens_v1(bb.ingest_tokens, bb.ingest_at, p_rate)
               END AS tokens
          INTO bal FROM balances bb WHERE bb.tenant_id = p_tenant_id;
        RAISE EXCEPTION 'smsgw: refused by a concurrent send'
              USING ERRCODE = 'SMG01',
                    -- With credit left, the bucket was what ran out: say so even
                    -- if it has refilled since.
                    DETAIL = json_build_object(
                        'available', bal.available,
                        'tokens', CASE WHEN bal.available >= p_price
                                       THEN least(bal.tokens, 0) ELSE bal.tokens END)::text;
    END IF;
    IF p_task IS NOT NULL THEN
        PERFORM smsgw_queue_tenant_v1(p_tenant_id, p_queue, p_task, due, p_created_at);
    END IF;
    RETURN QUERY SELECT 1, NULL::bigint, NULL::double precision, false, false;
END;
$$;

-- Batches: as before, with the status event and the counter written in the statement
-- that inserts the messages (the insert triggers are gone). p_queue is the tenant's tier.
CREATE OR REPLACE FUNCTION smsgw_accept_v3(
    p_tenant_id uuid, p_rate double precision, p_messages json,
    p_queue text, p_task text, p_honour_opt_outs boolean)
    RETURNS TABLE (accepted integer, available bigint, tokens double precision,
                   opted_out uuid[], due timestamptz)
    LANGUAGE plpgsql
AS $$
DECLARE
    n integer;
    wanted integer;
    total bigint;
    first_due timestamptz;
    oldest timestamptz;
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
    SELECT count(*), coalesce(sum(m.price), 0), min(coalesce(m.send_at, m.created_at)),
           min(m.created_at)
      INTO wanted, total, first_due, oldest
      FROM json_to_recordset(p_messages) AS m(
        id uuid, created_at timestamptz, price bigint, send_at timestamptz)
     WHERE m.id <> ALL (refused);
    IF wanted = 0 THEN
        RETURN QUERY SELECT 0, NULL::bigint, NULL::double precision, refused,
                            NULL::timestamptz;
        RETURN;
    END IF;
    WITH hold AS (
        UPDATE balances b
           SET available = b.available - total, held = b.held + total,
               ingest_tokens = CASE WHEN p_rate IS NULL THEN b.ingest_tokens
                   ELSE smsgw_ingest_tokens_v1(b.ingest_tokens, b.ingest_at, p_rate)
                        - 1 END,
               ingest_at = CASE WHEN p_rate IS NULL THEN b.ingest_at ELSE clock_timestamp() END
         WHERE b.tenant_id = p_tenant_id AND b.available >= total
           AND (p_rate IS NULL
                OR smsgw_ingest_tokens_v1(b.ingest_tokens, b.ingest_at, p_rate) >= 1)
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
        RETURNING id, created_at, tenant_id, status, price
    ), events AS (
        INSERT INTO message_events (message_created_at, message_id, tenant_id, status, at)
        SELECT created_at, id, tenant_id, status, created_at FROM inserted
    ), counted AS (
        INSERT INTO message_counters AS c (slot, kind, status, tier, provider, n)
        SELECT pg_backend_pid(), 'accepted', i.status, p_queue, '', count(*)
          FROM inserted i
         GROUP BY i.status
         ORDER BY i.status
        ON CONFLICT (slot, kind, status, tier, provider) DO UPDATE SET n = c.n + excluded.n
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
                    ELSE smsgw_ingest_tokens_v1(b.ingest_tokens, b.ingest_at, p_rate)
               END,
               refused, NULL::timestamptz
          FROM balances b WHERE b.tenant_id = p_tenant_id;
        RETURN;
    END IF;
    -- A new statement, so a new snapshot. NULL task: the caller queues the work itself.
    IF p_task IS NOT NULL THEN
        PERFORM smsgw_queue_tenant_v1(p_tenant_id, p_queue, p_task, first_due, oldest);
    END IF;
    RETURN QUERY SELECT n, NULL::bigint, NULL::double precision, refused, first_due;
END;
$$;
