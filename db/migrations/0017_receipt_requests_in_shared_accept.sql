-- 0017: an SMPP submit that asks for a receipt shares an accept call too (issue 6).
--
-- Its receipt request was a transaction of its own, committed just before its accept:
-- with the accepts of a bind's window sharing calls (the listener since 0015's
-- coalescing), that was still a commit per submit. The shared call now writes it with
-- the message, and only for a message it accepts (nothing to forget after a refusal).
-- A caller that sends no `receipt` (an older process) gets NULL: nothing, as before.

ALTER TYPE smsgw_send_v1 ADD ATTRIBUTE receipt smallint;

CREATE OR REPLACE FUNCTION smsgw_accept_sends_v1(p_sends json, p_task text)
    RETURNS TABLE (id uuid, outcome text, available bigint, tokens double precision)
    LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
    sends smsgw_send_v1[];
    kept smsgw_send_v1[];
    stale uuid[];
    opted_out uuid[];
    set_aside uuid[];
    refused uuid[] := '{}';
    refused_credit bigint[] := '{}';
    refused_tokens double precision[] := '{}';
    r record;
    current_tenant uuid;
    left_credit bigint;
    left_tokens double precision;
BEGIN
    SELECT array_agg(s) INTO sends
      FROM json_populate_recordset(NULL::smsgw_send_v1, p_sends) AS s;
    -- Stale keys, then opt-outs (smsgw_accept_one_v1's order).
    SELECT coalesce(array_agg(s.id), '{}') INTO stale FROM unnest(sends) AS s
     WHERE s.key_id IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
         WHERE k.id = s.key_id AND k.revoked_at IS NULL AND t.id = s.tenant_id
           AND t.tier = s.tier
           AND t.rate_limit_mps::double precision IS NOT DISTINCT FROM s.rate
           AND t.price_per_segment * s.segments = s.price);
    SELECT coalesce(array_agg(s.id), '{}') INTO opted_out FROM unnest(sends) AS s
     WHERE s.id <> ALL (stale)
       AND EXISTS (
        SELECT 1 FROM suppressions x
         WHERE x.tenant_id = s.tenant_id AND x.recipient = s.to_number
           AND (s.sender IS NULL OR x.number IN ('*', s.sender)));
    set_aside := stale || opted_out;
    PERFORM 1 FROM balances b
     WHERE b.tenant_id IN (SELECT s.tenant_id FROM unnest(sends) AS s
                            WHERE s.id <> ALL (set_aside))
     ORDER BY b.tenant_id
       FOR NO KEY UPDATE;
    -- Each tenant's sends in the order they came: each takes its price and a token from
    -- what the ones before it left.
    FOR r IN
        SELECT s.id, s.tenant_id, s.price, b.available,
               CASE WHEN s.rate IS NULL THEN NULL::double precision
                    ELSE smsgw_ingest_tokens_v1(b.ingest_tokens, b.ingest_at, s.rate)
               END AS tokens
          FROM unnest(sends) WITH ORDINALITY AS s
          LEFT JOIN balances b ON b.tenant_id = s.tenant_id
         WHERE s.id <> ALL (set_aside)
         ORDER BY s.tenant_id, s.ordinality
    LOOP
        IF r.tenant_id IS DISTINCT FROM current_tenant THEN
            current_tenant := r.tenant_id;
            left_credit := r.available;
            left_tokens := r.tokens;
        END IF;
        IF left_credit IS NULL OR left_credit < r.price OR left_tokens < 1 THEN
            refused := refused || r.id;
            refused_credit := refused_credit || left_credit;
            refused_tokens := refused_tokens || left_tokens;
        ELSE
            left_credit := left_credit - r.price;
            left_tokens := left_tokens - 1;
        END IF;
    END LOOP;
    set_aside := set_aside || refused;
    -- The sends to write, picked out once.
    kept := ARRAY(SELECT s FROM unnest(sends) AS s WHERE s.id <> ALL (set_aside));
    WITH inserted AS (
        INSERT INTO messages (
            id, created_at, tenant_id, status, to_number, sender, body, encoding, segments,
            price, callback_url, client_reference, send_at, expires_at, next_attempt_at,
            updated_at, facade, messaging_service_sid)
        SELECT s.id, s.created_at, s.tenant_id, s.status, s.to_number, s.sender, s.body,
               s.encoding, s.segments, s.price, s.callback_url, s.client_reference,
               s.send_at, s.expires_at, coalesce(s.send_at, s.created_at), s.created_at,
               s.facade, s.messaging_service_sid
          FROM unnest(kept) AS s
        RETURNING messages.id, messages.created_at, messages.tenant_id, messages.status,
                  messages.price
    ), events AS (
        INSERT INTO message_events (message_created_at, message_id, tenant_id, status, at)
        SELECT i.created_at, i.id, i.tenant_id, i.status, i.created_at FROM inserted i
    ), holds AS (
        INSERT INTO ledger_message_entries
            (message_created_at, message_id, tenant_id, kind, amount)
        SELECT i.created_at, i.id, i.tenant_id, 'hold', i.price FROM inserted i
    )
    INSERT INTO message_counters AS c (slot, kind, status, tier, provider, n)
    SELECT pg_backend_pid(), 'accepted', i.status, s.tier, '', count(*)
      FROM inserted i JOIN unnest(kept) AS s ON s.id = i.id
     GROUP BY i.status, s.tier
     ORDER BY i.status, s.tier
    ON CONFLICT (slot, kind, status, tier, provider) DO UPDATE SET n = c.n + excluded.n;
    -- An SMPP submit's receipt request (0017), for the messages written only.
    INSERT INTO smpp_receipt_requests (message_created_at, message_id, tenant_id, mode)
    SELECT s.created_at, s.id, s.tenant_id, s.receipt FROM unnest(kept) AS s
     WHERE s.receipt IS NOT NULL
    ON CONFLICT DO NOTHING;
    UPDATE balances b
       SET available = b.available - t.total, held = b.held + t.total,
           ingest_tokens = CASE WHEN t.rate IS NULL THEN b.ingest_tokens
               ELSE smsgw_ingest_tokens_v1(b.ingest_tokens, b.ingest_at, t.rate) - t.n END,
           ingest_at = CASE WHEN t.rate IS NULL THEN b.ingest_at ELSE clock_timestamp() END
      FROM (SELECT s.tenant_id, sum(s.price) AS total, count(*) AS n, min(s.rate) AS rate
              FROM unnest(kept) AS s
             GROUP BY s.tenant_id) AS t
     WHERE b.tenant_id = t.tenant_id;
    IF p_task IS NOT NULL THEN
        FOR r IN
            SELECT s.tenant_id, s.tier, min(coalesce(s.send_at, s.created_at)) AS due,
                   min(s.created_at) AS oldest
              FROM unnest(kept) AS s
             GROUP BY s.tenant_id, s.tier
             ORDER BY s.tier, s.tenant_id
        LOOP
            PERFORM smsgw_queue_tenant_v1(r.tenant_id, r.tier, p_task, r.due, r.oldest);
        END LOOP;
    END IF;
    RETURN QUERY SELECT u.id, 'stale', NULL::bigint, NULL::double precision
                   FROM unnest(stale) AS u(id);
    RETURN QUERY SELECT u.id, 'opted_out', NULL::bigint, NULL::double precision
                   FROM unnest(opted_out) AS u(id);
    RETURN QUERY SELECT u.id, 'refused', u.available, u.tokens
                   FROM unnest(refused, refused_credit, refused_tokens)
                        AS u(id, available, tokens);
    RETURN QUERY SELECT s.id, 'accepted', NULL::bigint, NULL::double precision
                   FROM unnest(kept) AS s;
END;
$$;
