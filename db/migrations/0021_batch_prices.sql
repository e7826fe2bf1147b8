-- 0021: a batch's accept answers what each message was priced at as arrays (issue 23: a
-- 50,000-prefix card within 5% of the flat price for batches spread over a country).
--
-- smsgw_accept_v7's `rates` grouped the messages priced alike, a JSON array per group
-- with its ids. A batch of 1,000 to numbers spread over the US touches ~600 of the
-- card's ranges, so it built ~600 groups (json_build_array per group, the aggregate's
-- states), and the API mapped each back onto its messages; the flat price makes one.
-- Now `rates` is seven arrays in one order, [[price], [price_per_segment], [rate_card],
-- [rate_card_version], [rate_prefix], [sender], [id]], whatever the prices: the call
-- cost 0.947 of its time on the card and 0.987 on the flat price (backend CPU, 60
-- alternating calls of each on one server). Replaced in place (unreleased since 1.0.0;
-- the same arguments and columns, the API of this release reads the new shape).

CREATE OR REPLACE FUNCTION smsgw_accept_v7(
    p_tenant_id uuid, p_rate double precision, p_messages json,
    p_queue text, p_task text, p_honour_opt_outs boolean)
    RETURNS TABLE (accepted integer, available bigint, tokens double precision,
                   opted_out uuid[], not_priced uuid[], sender_refused json, rates json,
                   due timestamptz, cap_room bigint)
    LANGUAGE plpgsql
AS $$
DECLARE
    drafts smsgw_draft_v3[];
    n integer;
    wanted integer;
    total bigint;
    first_due timestamptz;
    oldest timestamptz;
    refused uuid[] := '{}';
    unpriced uuid[] := '{}';
    unsent json;
    rating smsgw_rating_v1;
    priced json;
BEGIN
    -- Fields are matched by name; a missing one is NULL, as with json_to_recordset. Each
    -- message's sender is decided in the same pass, once per sender and country (a
    -- batch has few of them): '' stands for none, which no sender is.
    WITH m AS (
        SELECT * FROM json_populate_recordset(NULL::smsgw_draft_v3, p_messages)
    ), decided AS MATERIALIZED (
        -- Once per (sender, country) of the call (a batch has few): the destination
        -- rules (geo permissions, then the tenant's suspended ranges there, NULL when
        -- none), then the sender. One pass over the messages for both: a pass of its own
        -- per country cost the batch accept a tenth more.
        SELECT k.asked, k.country, s.sender, coalesce(g.refusal, s.refusal) AS refusal,
               x.prefixes, x.untils
          FROM (SELECT DISTINCT coalesce(m.sender, '') AS asked,
                       coalesce(m.to_country, '') AS country
                  FROM m) AS k
          LEFT JOIN LATERAL smsgw_geo_refusal_v2(p_tenant_id, nullif(k.country, '')) AS g
                 ON p_honour_opt_outs
          LEFT JOIN LATERAL smsgw_suspended_v1(p_tenant_id, k.country) AS x
                 ON p_honour_opt_outs
          LEFT JOIN LATERAL smsgw_sender_v1(p_tenant_id, nullif(k.asked, ''),
                                            nullif(k.country, '')) AS s ON g.refusal IS NULL
    ), judged AS (
        -- A message to a suspended range: refused until the suspension's end (only
        -- read when its country has one).
        SELECT m.*, s.sender AS chosen, s.refusal AS rule,
               CASE WHEN s.refusal IS NULL AND s.prefixes IS NOT NULL THEN
                   (SELECT max(p.until) FROM unnest(s.prefixes, s.untils) AS p(prefix, until)
                     WHERE starts_with(substr(m.to_number, 2), p.prefix)) END AS held_until
          FROM m
          JOIN decided AS s ON s.asked = coalesce(m.sender, '')
                           AND s.country = coalesce(m.to_country, '')
    )
    SELECT coalesce(json_agg(json_build_array(
                        j.id, coalesce(j.rule, 'destination_suspended'), j.held_until))
                        FILTER (WHERE j.rule IS NOT NULL OR j.held_until IS NOT NULL), '[]'),
           array_agg(ROW(j.id, j.created_at, j.status, j.to_number, j.chosen, j.body,
                         j.encoding, j.segments, j.price, j.callback_url,
                         j.client_reference, j.send_at, j.expires_at, j.facade,
                         j.messaging_service_sid, NULL, NULL, NULL, NULL,
                         j.to_country, j.quiet_until)::smsgw_draft_v3)
               FILTER (WHERE j.rule IS NULL AND j.held_until IS NULL)
      INTO unsent, drafts
      FROM judged AS j;
    IF p_honour_opt_outs
       AND EXISTS (SELECT 1 FROM suppressions s WHERE s.tenant_id = p_tenant_id) THEN
        SELECT coalesce(array_agg(m.id), '{}') INTO refused
          FROM unnest(drafts) AS m
         WHERE EXISTS (
            SELECT 1 FROM suppressions s
             WHERE s.tenant_id = p_tenant_id AND s.recipient = m.to_number
               AND (m.sender IS NULL OR s.number IN ('*', m.sender)));
        IF cardinality(refused) > 0 THEN
            drafts := ARRAY(SELECT m FROM unnest(drafts) AS m WHERE m.id <> ALL (refused));
        END IF;
    END IF;
    -- One version per card for the whole call: now() is the transaction's start, and a
    -- version's rates are written with it, so every message is priced by one card state.
    SELECT g.* INTO rating FROM smsgw_rating_v2(p_tenant_id, now()) AS g;
    SELECT coalesce(array_agg(m.id) FILTER (WHERE m.price IS NULL
                                              AND r.price_per_segment IS NULL), '{}'),
           array_agg(ROW(m.id, m.created_at, m.status, m.to_number, m.sender, m.body,
                         m.encoding, m.segments,
                         coalesce(m.price, r.price_per_segment * m.segments),
                         m.callback_url, m.client_reference, m.send_at, m.expires_at,
                         m.facade, m.messaging_service_sid, r.price_per_segment,
                         r.rate_card, r.rate_card_version, r.rate_prefix,
                         m.to_country, m.quiet_until)::smsgw_draft_v3)
               FILTER (WHERE m.price IS NOT NULL OR r.price_per_segment IS NOT NULL)
      INTO unpriced, drafts
      FROM unnest(drafts) AS m
      LEFT JOIN LATERAL smsgw_rate_v1(rating, m.to_number) AS r ON m.price IS NULL;
    -- What each message was priced at, as arrays in one order (0021: groups of the
    -- messages priced alike were ~600 for a batch spread over a card's ranges, a JSON
    -- array each, ~2 us a message more than the flat price's one group).
    SELECT count(*)::integer, coalesce(sum(m.price), 0),
           min(coalesce(m.send_at, m.created_at)), min(m.created_at),
           json_build_array(array_agg(m.price), array_agg(m.price_per_segment),
                            array_agg(m.rate_card), array_agg(m.rate_card_version),
                            array_agg(m.rate_prefix), array_agg(m.sender), array_agg(m.id))
      INTO wanted, total, first_due, oldest, priced
      FROM unnest(drafts) AS m;
    IF wanted = 0 THEN
        RETURN QUERY SELECT 0, NULL::bigint, NULL::double precision, refused, unpriced,
                            unsent, NULL::json, NULL::timestamptz, NULL::bigint;
        RETURN;
    END IF;
    WITH hold AS (
        UPDATE balances b
           SET available = b.available - total, held = b.held + total,
               ingest_tokens = CASE WHEN p_rate IS NULL THEN b.ingest_tokens
                   ELSE smsgw_ingest_tokens_v1(b.ingest_tokens, b.ingest_at, p_rate)
                        - 1 END,
               ingest_at = CASE WHEN p_rate IS NULL THEN b.ingest_at ELSE clock_timestamp() END,
               day_spent = CASE WHEN b.spend_day = smsgw_spend_day_v1() THEN b.day_spent
                                ELSE 0 END + total,
               spend_day = smsgw_spend_day_v1(),
               month_spent = CASE WHEN b.spend_month = smsgw_spend_month_v1()
                                  THEN b.month_spent ELSE 0 END + total,
               spend_month = smsgw_spend_month_v1()
         WHERE b.tenant_id = p_tenant_id AND b.available >= total
           AND (p_rate IS NULL
                OR smsgw_ingest_tokens_v1(b.ingest_tokens, b.ingest_at, p_rate) >= 1)
           -- The spend caps, under the same row lock as the credit (an answer is exempt).
           AND (NOT p_honour_opt_outs
                OR coalesce(smsgw_cap_room_v1(b.daily_spend_cap, b.monthly_spend_cap,
                                              b.spend_day, b.day_spent, b.spend_month,
                                              b.month_spent) >= total, true))
        RETURNING b.tenant_id
    ), inserted AS (
        INSERT INTO messages (
            id, created_at, tenant_id, status, to_number, sender, body, encoding, segments,
            price, callback_url, client_reference, send_at, expires_at, next_attempt_at,
            updated_at, facade, messaging_service_sid, price_per_segment, rate_card,
            rate_card_version, rate_prefix, quiet_until)
        SELECT m.id, m.created_at, hold.tenant_id, m.status, m.to_number, m.sender, m.body,
               m.encoding, m.segments, m.price, m.callback_url, m.client_reference,
               m.send_at, m.expires_at, coalesce(m.send_at, m.created_at), m.created_at,
               m.facade, m.messaging_service_sid, m.price_per_segment, m.rate_card,
               m.rate_card_version, m.rate_prefix, m.quiet_until
          FROM hold, unnest(drafts) AS m
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
    ), destinations AS (
        -- The pumping counters: one tally row for the call, its counts per (country,
        -- prefix) in arrays (the pumping job adds them up).
        INSERT INTO destination_tallies (hour, tenant_ids, countries, prefixes, counts)
        SELECT date_trunc('hour', now()), array_agg(g.tenant_id), array_agg(g.country),
               array_agg(g.prefix), array_agg(g.n)
          FROM (SELECT hold.tenant_id, coalesce(m.to_country, '') AS country,
                       coalesce(m.rate_prefix, '') AS prefix, count(*)::integer AS n
                  FROM hold, unnest(drafts) AS m
                 GROUP BY 1, 2, 3) AS g
        HAVING count(*) > 0
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
               refused, unpriced, unsent, priced, NULL::timestamptz,
               CASE WHEN p_honour_opt_outs
                    THEN smsgw_cap_room_v1(b.daily_spend_cap, b.monthly_spend_cap,
                                           b.spend_day, b.day_spent, b.spend_month,
                                           b.month_spent) END
          FROM balances b WHERE b.tenant_id = p_tenant_id;
        RETURN;
    END IF;
    -- A new statement, so a new snapshot. NULL task: the caller queues the work itself.
    IF p_task IS NOT NULL THEN
        PERFORM smsgw_queue_tenant_v1(p_tenant_id, p_queue, p_task, first_due, oldest);
    END IF;
    RETURN QUERY SELECT n, NULL::bigint, NULL::double precision, refused, unpriced, unsent,
                        priced, first_due, NULL::bigint;
END;
$$;
