-- 0018: the shared accept call queues only the tenants that need it (issue 6).
--
-- smsgw_accept_sends_v1 called smsgw_queue_tenant_v1 once per tenant of the call. Under
-- single sends from many tenants that was a call per send (pg_stat_statements, ops/bench
-- single: 153,194 calls, 1.2 s of 22 s), and nearly every one only read a queue row that
-- was already due as early. The rows are now read in one join and the function is called
-- for the others only. Same arguments, same outcomes: replaced in place.

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
        -- Only the tenants whose queue row is missing, of another tier, or due later
        -- than these sends: for the others smsgw_queue_tenant_v1 would only read the row
        -- (as it usually does under load), and a call per tenant cost ~8 us a send.
        -- The rows are read under the balance locks taken above, which every writer of
        -- dispatch_queue takes first.
        FOR r IN
            SELECT g.tenant_id, g.tier, g.due, g.oldest
              FROM (SELECT s.tenant_id, s.tier,
                           min(coalesce(s.send_at, s.created_at)) AS due,
                           min(s.created_at) AS oldest
                      FROM unnest(kept) AS s
                     GROUP BY s.tenant_id, s.tier) AS g
              LEFT JOIN dispatch_queue q ON q.tenant_id = g.tenant_id
             WHERE NOT coalesce(q.tier = g.tier AND q.due_at <= g.due
                                AND q.oldest <= g.oldest, false)
             ORDER BY g.tier, g.tenant_id
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
