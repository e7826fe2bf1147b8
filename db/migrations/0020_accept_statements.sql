-- 0020: the accept's statements made cheaper (issue 23: a batch to numbers spread over
-- a country; issue 24: the coalesced single sends within 5% of the code before them).
--
-- 1. The pumping counters as one tally row per accept call. Each call upserted a
-- destination_counts row per distinct (tenant, country, rate prefix) it accepted for: a
-- batch of 1,000 to numbers spread over the US (a card with its ~600 area-code ranges)
-- made ~600 upserts, ~6.7 us a message of a ~25 us accept (pg_stat_statements), and a
-- coalesced call of 10 single sends of 10 tenants made 10. Now a call appends one
-- unindexed row holding its counts in arrays, and the pumping job adds them into
-- destination_counts (slot 0) before it judges: the same sums, one round (10 s) behind
-- at most, as before. Slots other than 0 are still folded, for the accepts of a
-- process started before this migration.
--
-- 2. The tenant's rating inlined (smsgw_rating_v2, below): the coalesced call of 10 single
-- sends of 10 tenants called the PL/pgSQL smsgw_rating_v1 once per tenant.
--
-- 3. The coalesced call in fewer statements: its six result queries as one, the tally
-- and the receipt requests as parts of the write's statement (each PL/pgSQL statement
-- has its executor start-up and end).
--
-- 4. The cubes' first two trigger functions dropped: 0013 and 0019 moved the triggers to
-- smsgw_rollups_to_days_v2 and v3, and nothing calls v1 or v2 (v3 and
-- smsgw_rollups_into_cubes_v1 hold the statements they had).
--
-- A coalesced call of 10 single sends of 10 tenants (each with its API key) took 0.87
-- of the time of the call before this migration (600 alternating calls on one server,
-- twice: 0.872, 0.868); the rating alone made it 0.90. The three accepts are replaced
-- in place (unreleased since 1.0.0; the same contract and answers).

CREATE TABLE destination_tallies (
    hour timestamptz NOT NULL,
    tenant_ids uuid[] NOT NULL,
    countries text[] NOT NULL,
    prefixes text[] NOT NULL,
    counts integer[] NOT NULL
);

-- A tenant's rating (smsgw_rating_v1's rule) as a set-returning SQL function, one row
-- (none for an unknown tenant): PostgreSQL inlines it into the calling statement, whose
-- cached plan then carries the two version lookups. Called as a PL/pgSQL function (v1
-- since 0015) it cost a coalesced call of 10 single sends a function call per tenant:
-- the call took 0.90 of its time with this one inlined (600 alternating calls).
CREATE FUNCTION smsgw_rating_v2(p_tenant_id uuid, p_at timestamptz)
    RETURNS SETOF smsgw_rating_v1
    LANGUAGE sql STABLE
AS $$
    SELECT o.id, o.name, o.version, o.lengths, k.id, k.name, k.version, k.lengths,
           CASE WHEN o.id IS NULL AND k.lengths = '{0}'
                THEN (SELECT r.price FROM rate_card_rates r
                       WHERE r.version_id = k.id AND r.prefix = '')
           END
      FROM tenants t
      LEFT JOIN LATERAL (
          SELECT v.id, c.name, v.version, v.lengths
            FROM rate_cards c JOIN rate_card_versions v ON v.card_id = c.id
           WHERE c.tenant_id = t.id AND v.effective_at <= p_at
           ORDER BY v.effective_at DESC, v.version DESC
           LIMIT 1) AS o ON true
      LEFT JOIN LATERAL (
          SELECT v.id, c.name, v.version, v.lengths
            FROM rate_cards c JOIN rate_card_versions v ON v.card_id = c.id
           WHERE c.id = coalesce(t.rate_card_id,
                                 (SELECT d.id FROM rate_cards d WHERE d.name = t.tier))
             AND v.effective_at <= p_at
           ORDER BY v.effective_at DESC, v.version DESC
           LIMIT 1) AS k ON true
     WHERE t.id = p_tenant_id
$$;

-- v1 answers through v2, so the rule is written once (the quote statement and a process
-- of a release before call v1).
CREATE OR REPLACE FUNCTION smsgw_rating_v1(p_tenant_id uuid, p_at timestamptz)
    RETURNS smsgw_rating_v1
    LANGUAGE plpgsql STABLE
AS $$
DECLARE
    found smsgw_rating_v1;
BEGIN
    SELECT g.* INTO found FROM smsgw_rating_v2(p_tenant_id, p_at) AS g;
    RETURN found;
END;
$$;

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
    -- What each message was priced at, as groups of the messages priced alike (a batch
    -- has few: a JSON array per message cost the call a tenth of its time).
    SELECT coalesce(sum(g.n), 0)::integer, coalesce(sum(g.total), 0), min(g.first_due),
           min(g.oldest),
           json_agg(json_build_array(g.price, g.price_per_segment, g.rate_card,
                                     g.rate_card_version, g.rate_prefix, g.sender, g.ids))
      INTO wanted, total, first_due, oldest, priced
      FROM (SELECT m.price, m.price_per_segment, m.rate_card, m.rate_card_version,
                   m.rate_prefix, m.sender, count(*) AS n, sum(m.price) AS total,
                   min(coalesce(m.send_at, m.created_at)) AS first_due,
                   min(m.created_at) AS oldest, array_agg(m.id) AS ids
              FROM unnest(drafts) AS m
             GROUP BY 1, 2, 3, 4, 5, 6) AS g;
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

CREATE OR REPLACE FUNCTION smsgw_accept_sends_v4(p_sends json, p_task text)
    RETURNS TABLE (id uuid, outcome text, available bigint, tokens double precision,
                   price bigint, price_per_segment bigint, rate_card text,
                   rate_card_version integer, rate_prefix text, sender text, refusal text,
                   retry_at timestamptz, cap_room bigint)
    LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
    sends smsgw_send_v3[];
    priced smsgw_send_v3[];
    kept smsgw_send_v3[];
    stale uuid[];
    unsent uuid[];
    unsent_why text[];
    unsent_until timestamptz[];
    opted_out uuid[];
    not_priced uuid[];
    set_aside uuid[];
    refused uuid[] := '{}';
    refused_credit bigint[] := '{}';
    refused_tokens double precision[] := '{}';
    refused_room bigint[] := '{}';
    left_room bigint;
    r record;
    current_tenant uuid;
    left_credit bigint;
    left_tokens double precision;
BEGIN
    SELECT array_agg(s) INTO sends
      FROM json_populate_recordset(NULL::smsgw_send_v3, p_sends) AS s;
    -- Stale keys, then senders, then opt-outs (smsgw_accept_one_v3's order).
    SELECT coalesce(array_agg(s.id), '{}') INTO stale FROM unnest(sends) AS s
     WHERE s.key_id IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
         WHERE k.id = s.key_id AND k.revoked_at IS NULL AND t.id = s.tenant_id
           AND t.tier = s.tier
           AND t.rate_limit_mps::double precision IS NOT DISTINCT FROM s.rate
           AND t.smart_encoding IS NOT DISTINCT FROM s.smart
           AND t.quiet_hours_start IS NOT DISTINCT FROM s.quiet_start
           AND t.quiet_hours_end IS NOT DISTINCT FROM s.quiet_end);
    -- The sends left, each with its sender (decided once per tenant, sender and
    -- country; '' stands for none); in the order they came.
    -- The destination rules first, once per tenant and country: geo permissions, then
    -- the suspended ranges (NULL when none, the usual case).
    WITH exposure AS MATERIALIZED (
        SELECT c.tenant_id, c.country, x.prefixes, x.untils,
               g.refusal
          FROM (SELECT DISTINCT u.tenant_id, coalesce(u.to_country, '') AS country
                  FROM unnest(sends) AS u
                 WHERE u.id <> ALL (stale)) AS c
          LEFT JOIN LATERAL smsgw_geo_refusal_v2(c.tenant_id, nullif(c.country, '')) AS g
                 ON true
          LEFT JOIN LATERAL smsgw_suspended_v1(c.tenant_id, c.country) AS x ON true
    ), decided AS MATERIALIZED (
        SELECT k.tenant_id, k.asked, k.country, x.sender,
               coalesce(e.refusal, x.refusal) AS refusal, e.prefixes, e.untils
          FROM (SELECT DISTINCT u.tenant_id, coalesce(u.sender, '') AS asked,
                       coalesce(u.to_country, '') AS country
                  FROM unnest(sends) AS u
                 WHERE u.id <> ALL (stale)) AS k
          JOIN exposure AS e ON e.tenant_id = k.tenant_id AND e.country = k.country
          LEFT JOIN LATERAL smsgw_sender_v1(k.tenant_id, nullif(k.asked, ''),
                                            nullif(k.country, '')) AS x ON e.refusal IS NULL
    ), judged AS (
        SELECT s.*, d.sender AS chosen,
               coalesce(d.refusal, CASE WHEN h.until IS NOT NULL
                                        THEN 'destination_suspended' END) AS refusal,
               h.until AS held_until
          FROM unnest(sends) WITH ORDINALITY AS s
          JOIN decided AS d ON d.tenant_id = s.tenant_id AND d.asked = coalesce(s.sender, '')
                           AND d.country = coalesce(s.to_country, '')
          LEFT JOIN LATERAL (
                SELECT max(p.until) AS until
                  FROM unnest(d.prefixes, d.untils) AS p(prefix, until)
                 WHERE starts_with(substr(s.to_number, 2), p.prefix)) AS h
                 ON d.refusal IS NULL AND d.prefixes IS NOT NULL
         WHERE s.id <> ALL (stale)
    )
    SELECT coalesce(array_agg(s.id) FILTER (WHERE s.refusal IS NOT NULL), '{}'),
           coalesce(array_agg(s.refusal) FILTER (WHERE s.refusal IS NOT NULL), '{}'),
           coalesce(array_agg(s.held_until) FILTER (WHERE s.refusal IS NOT NULL), '{}'),
           array_agg(ROW(s.tenant_id, s.tier, s.rate, s.key_id, s.id, s.created_at,
                         s.status, s.to_number, s.chosen, s.body, s.encoding, s.segments,
                         s.price, s.callback_url, s.client_reference, s.send_at,
                         s.expires_at, s.facade, s.messaging_service_sid, s.receipt, NULL,
                         NULL, NULL, NULL, s.to_country, s.quiet_until, s.smart,
                         s.quiet_start, s.quiet_end)::smsgw_send_v3
                     ORDER BY s.ordinality)
               FILTER (WHERE s.refusal IS NULL)
      INTO unsent, unsent_why, unsent_until, sends
      FROM judged AS s;
    SELECT coalesce(array_agg(s.id), '{}') INTO opted_out FROM unnest(sends) AS s
     WHERE EXISTS (
        SELECT 1 FROM suppressions x
         WHERE x.tenant_id = s.tenant_id AND x.recipient = s.to_number
           AND (s.sender IS NULL OR x.number IN ('*', s.sender)));
    set_aside := opted_out;
    -- The price of each send left, in one statement: one version per card for the call.
    -- MATERIALIZED: each tenant's rating is read once, not once per send and field.
    WITH ratings AS MATERIALIZED (
        SELECT t.tenant_id, g::smsgw_rating_v1 AS rating
          FROM (SELECT DISTINCT s.tenant_id FROM unnest(sends) AS s
                 WHERE s.id <> ALL (set_aside)) AS t
          LEFT JOIN LATERAL smsgw_rating_v2(t.tenant_id, now()) AS g ON true
    )
    SELECT coalesce(array_agg(s.id) FILTER (WHERE s.price IS NULL
                                              AND q.price_per_segment IS NULL), '{}'),
           array_agg(ROW(s.tenant_id, s.tier, s.rate, s.key_id, s.id, s.created_at,
                         s.status, s.to_number, s.sender, s.body, s.encoding, s.segments,
                         coalesce(s.price, q.price_per_segment * s.segments),
                         s.callback_url, s.client_reference, s.send_at, s.expires_at,
                         s.facade, s.messaging_service_sid, s.receipt, q.price_per_segment,
                         q.rate_card, q.rate_card_version, q.rate_prefix,
                         s.to_country, s.quiet_until, s.smart, s.quiet_start,
                         s.quiet_end)::smsgw_send_v3
                     ORDER BY s.ordinality)
               FILTER (WHERE s.price IS NOT NULL OR q.price_per_segment IS NOT NULL)
      INTO not_priced, priced
      FROM unnest(sends) WITH ORDINALITY AS s
      LEFT JOIN ratings g ON g.tenant_id = s.tenant_id
      LEFT JOIN LATERAL smsgw_rate_v1(g.rating, s.to_number) AS q
             ON s.price IS NULL
     WHERE s.id <> ALL (set_aside);
    set_aside := set_aside || not_priced;
    PERFORM 1 FROM balances b
     WHERE b.tenant_id IN (SELECT s.tenant_id FROM unnest(priced) AS s)
     ORDER BY b.tenant_id
       FOR NO KEY UPDATE;
    -- Each tenant's sends in the order they came: each takes its price and a token from
    -- what the ones before it left.
    FOR r IN
        SELECT s.id, s.tenant_id, s.price, b.available,
               CASE WHEN s.rate IS NULL THEN NULL::double precision
                    ELSE smsgw_ingest_tokens_v1(b.ingest_tokens, b.ingest_at, s.rate)
               END AS tokens,
               smsgw_cap_room_v1(b.daily_spend_cap, b.monthly_spend_cap, b.spend_day,
                                 b.day_spent, b.spend_month, b.month_spent) AS room
          FROM unnest(priced) WITH ORDINALITY AS s
          LEFT JOIN balances b ON b.tenant_id = s.tenant_id
         ORDER BY s.tenant_id, s.ordinality
    LOOP
        IF r.tenant_id IS DISTINCT FROM current_tenant THEN
            current_tenant := r.tenant_id;
            left_credit := r.available;
            left_tokens := r.tokens;
            left_room := r.room;
        END IF;
        IF left_credit IS NULL OR left_credit < r.price OR left_tokens < 1
           OR left_room < r.price THEN
            refused := refused || r.id;
            refused_credit := refused_credit || left_credit;
            refused_tokens := refused_tokens || left_tokens;
            refused_room := refused_room || left_room;
        ELSE
            left_credit := left_credit - r.price;
            left_tokens := left_tokens - 1;
            left_room := left_room - r.price;
        END IF;
    END LOOP;
    -- The sends to write, picked out once.
    kept := ARRAY(SELECT s FROM unnest(priced) AS s WHERE s.id <> ALL (refused));
    WITH inserted AS (
        INSERT INTO messages (
            id, created_at, tenant_id, status, to_number, sender, body, encoding, segments,
            price, callback_url, client_reference, send_at, expires_at, next_attempt_at,
            updated_at, facade, messaging_service_sid, price_per_segment, rate_card,
            rate_card_version, rate_prefix, quiet_until)
        SELECT s.id, s.created_at, s.tenant_id, s.status, s.to_number, s.sender, s.body,
               s.encoding, s.segments, s.price, s.callback_url, s.client_reference,
               s.send_at, s.expires_at, coalesce(s.send_at, s.created_at), s.created_at,
               s.facade, s.messaging_service_sid, s.price_per_segment, s.rate_card,
               s.rate_card_version, s.rate_prefix, s.quiet_until
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
    ), tallied AS (
        -- The pumping counters: one tally row for the call, its counts per (tenant,
        -- country, prefix) in arrays (the pumping job adds them up).
        INSERT INTO destination_tallies (hour, tenant_ids, countries, prefixes, counts)
        SELECT date_trunc('hour', now()), array_agg(g.tenant_id), array_agg(g.country),
               array_agg(g.prefix), array_agg(g.n)
          FROM (SELECT s.tenant_id, coalesce(s.to_country, '') AS country,
                       coalesce(s.rate_prefix, '') AS prefix, count(*)::integer AS n
                  FROM unnest(kept) AS s
                 GROUP BY 1, 2, 3) AS g
        HAVING count(*) > 0
    ), receipts AS (
        -- An SMPP submit's receipt request, for the messages written only.
        INSERT INTO smpp_receipt_requests (message_created_at, message_id, tenant_id, mode)
        SELECT s.created_at, s.id, s.tenant_id, s.receipt FROM unnest(kept) AS s
         WHERE s.receipt IS NOT NULL
        ON CONFLICT DO NOTHING
    )
    INSERT INTO message_counters AS c (slot, kind, status, tier, provider, n)
    SELECT pg_backend_pid(), 'accepted', i.status, s.tier, '', count(*)
      FROM inserted i JOIN unnest(kept) AS s ON s.id = i.id
     GROUP BY i.status, s.tier
     ORDER BY i.status, s.tier
    ON CONFLICT (slot, kind, status, tier, provider) DO UPDATE SET n = c.n + excluded.n;
    UPDATE balances b
       SET available = b.available - t.total, held = b.held + t.total,
           ingest_tokens = CASE WHEN t.rate IS NULL THEN b.ingest_tokens
               ELSE smsgw_ingest_tokens_v1(b.ingest_tokens, b.ingest_at, t.rate) - t.n END,
           ingest_at = CASE WHEN t.rate IS NULL THEN b.ingest_at ELSE clock_timestamp() END,
           day_spent = CASE WHEN b.spend_day = smsgw_spend_day_v1() THEN b.day_spent
                            ELSE 0 END + t.total,
           spend_day = smsgw_spend_day_v1(),
           month_spent = CASE WHEN b.spend_month = smsgw_spend_month_v1()
                              THEN b.month_spent ELSE 0 END + t.total,
           spend_month = smsgw_spend_month_v1()
      FROM (SELECT s.tenant_id, sum(s.price) AS total, count(*) AS n, min(s.rate) AS rate
              FROM unnest(kept) AS s
             GROUP BY s.tenant_id) AS t
     WHERE b.tenant_id = t.tenant_id;
    IF p_task IS NOT NULL THEN
        -- As in smsgw_accept_sends_v1: only the tenants whose queue row is missing, of
        -- another tier, or due later than these sends, read under the balance locks.
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
    -- Every send's outcome, in one statement.
    RETURN QUERY SELECT u.id, 'stale', NULL::bigint, NULL::double precision, NULL::bigint,
                        NULL::bigint, NULL::text, NULL::integer, NULL::text, NULL::text,
                        NULL::text,
                        NULL::timestamptz, NULL::bigint
                   FROM unnest(stale) AS u(id)
    UNION ALL
    SELECT u.id, 'sender_refused', NULL::bigint, NULL::double precision,
                        NULL::bigint, NULL::bigint, NULL::text, NULL::integer, NULL::text,
                        NULL::text, u.why, u.until, NULL::bigint
                   FROM unnest(unsent, unsent_why, unsent_until) AS u(id, why, until)
    UNION ALL
    SELECT u.id, 'opted_out', NULL::bigint, NULL::double precision,
                        NULL::bigint, NULL::bigint, NULL::text, NULL::integer, NULL::text,
                        NULL::text, NULL::text, NULL::timestamptz, NULL::bigint
                   FROM unnest(opted_out) AS u(id)
    UNION ALL
    SELECT u.id, 'not_priced', NULL::bigint, NULL::double precision,
                        NULL::bigint, NULL::bigint, NULL::text, NULL::integer, NULL::text,
                        NULL::text, NULL::text, NULL::timestamptz, NULL::bigint
                   FROM unnest(not_priced) AS u(id)
    UNION ALL
    SELECT u.id, 'refused', u.available, u.tokens, s.price,
                        s.price_per_segment, s.rate_card, s.rate_card_version, s.rate_prefix,
                        s.sender, NULL::text, NULL::timestamptz, u.room
                   FROM unnest(refused, refused_credit, refused_tokens, refused_room)
                        AS u(id, available, tokens, room)
                   JOIN unnest(priced) AS s ON s.id = u.id
    UNION ALL
    SELECT s.id, 'accepted', NULL::bigint, NULL::double precision, s.price,
                        s.price_per_segment, s.rate_card, s.rate_card_version, s.rate_prefix,
                        s.sender, NULL::text, NULL::timestamptz, NULL::bigint
                   FROM unnest(kept) AS s;
END;
$$;

CREATE OR REPLACE FUNCTION smsgw_accept_one_v4(
    p_tenant_id uuid, p_rate double precision, p_queue text, p_task text,
    p_honour_opt_outs boolean, p_id uuid, p_created_at timestamptz, p_status text,
    p_to_number text, p_sender text, p_body text, p_encoding text, p_segments smallint,
    p_price bigint, p_callback_url text, p_client_reference text, p_send_at timestamptz,
    p_expires_at timestamptz, p_facade text, p_messaging_service_sid text,
    p_key_id uuid, p_to_country text, p_quiet_until timestamptz, p_smart boolean,
    p_quiet_start time, p_quiet_end time)
    RETURNS TABLE (accepted integer, available bigint, tokens double precision,
                   opted_out boolean, stale boolean, not_priced boolean, price bigint,
                   price_per_segment bigint, rate_card text, rate_card_version integer,
                   rate_prefix text, sender text, sender_refused text,
                   retry_at timestamptz, cap_room bigint)
    LANGUAGE plpgsql
AS $$
DECLARE
    n integer;
    due timestamptz := coalesce(p_send_at, p_created_at);
    bal record;
    rating smsgw_rating_v1;
    rate record;
    chosen record;
    total bigint := p_price;
    rule text;
    held_until timestamptz;
BEGIN
    IF p_key_id IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
         WHERE k.id = p_key_id AND k.revoked_at IS NULL AND t.id = p_tenant_id
           AND t.tier = p_queue
           AND t.rate_limit_mps::double precision IS NOT DISTINCT FROM p_rate
           AND t.smart_encoding IS NOT DISTINCT FROM p_smart
           AND t.quiet_hours_start IS NOT DISTINCT FROM p_quiet_start
           AND t.quiet_hours_end IS NOT DISTINCT FROM p_quiet_end) THEN
        RETURN QUERY SELECT 0, NULL::bigint, NULL::double precision, false, true, false,
                            NULL::bigint, NULL::bigint, NULL::text, NULL::integer, NULL::text,
                            NULL::text, NULL::text, NULL::timestamptz, NULL::bigint;
        RETURN;
    END IF;
    -- The destination rules first (an automatic answer is exempt): geo permissions,
    -- then a suspension of the range the number is in.
    IF p_honour_opt_outs THEN
        SELECT g.refusal INTO rule FROM smsgw_geo_refusal_v2(p_tenant_id, p_to_country) AS g;
        IF rule IS NULL THEN
            SELECT max(s.until) INTO held_until
              FROM destination_suspensions s
             WHERE s.tenant_id = p_tenant_id AND s.country = coalesce(p_to_country, '')
               AND s.lifted_at IS NULL AND s.until > now()
               AND starts_with(substr(p_to_number, 2), s.prefix);
            IF held_until IS NOT NULL THEN
                rule := 'destination_suspended';
            END IF;
        END IF;
        IF rule IS NOT NULL THEN
            RETURN QUERY SELECT 0, NULL::bigint, NULL::double precision, false, false, false,
                                NULL::bigint, NULL::bigint, NULL::text, NULL::integer,
                                NULL::text, NULL::text, rule, held_until, NULL::bigint;
            RETURN;
        END IF;
    END IF;
    SELECT d.sender, d.refusal INTO chosen
      FROM smsgw_sender_v1(p_tenant_id, p_sender, p_to_country) AS d;
    IF chosen.refusal IS NOT NULL THEN
        RETURN QUERY SELECT 0, NULL::bigint, NULL::double precision, false, false, false,
                            NULL::bigint, NULL::bigint, NULL::text, NULL::integer, NULL::text,
                            NULL::text, chosen.refusal, NULL::timestamptz, NULL::bigint;
        RETURN;
    END IF;
    IF p_honour_opt_outs AND EXISTS (
        SELECT 1 FROM suppressions s
         WHERE s.tenant_id = p_tenant_id AND s.recipient = p_to_number
           AND (chosen.sender IS NULL OR s.number IN ('*', chosen.sender))) THEN
        RETURN QUERY SELECT 0, NULL::bigint, NULL::double precision, true, false, false,
                            NULL::bigint, NULL::bigint, NULL::text, NULL::integer, NULL::text,
                            chosen.sender, NULL::text, NULL::timestamptz, NULL::bigint;
        RETURN;
    END IF;
    IF p_price IS NULL THEN
        -- The versions in effect, then the probe of their rates: a version's rates are
        -- written with it and never change, so the second statement reads what the
        -- first one saw.
        SELECT g.* INTO rating FROM smsgw_rating_v2(p_tenant_id, now()) AS g;
        SELECT q.* INTO rate FROM smsgw_rate_v1(rating, p_to_number) AS q;
        IF NOT FOUND THEN
            RETURN QUERY SELECT 0, NULL::bigint, NULL::double precision, false, false, true,
                                NULL::bigint, NULL::bigint, NULL::text, NULL::integer,
                                NULL::text, chosen.sender, NULL::text, NULL::timestamptz,
                                NULL::bigint;
            RETURN;
        END IF;
        total := rate.price_per_segment * p_segments;
    ELSE
        SELECT NULL::bigint AS price_per_segment, NULL::text AS rate_card,
               NULL::integer AS rate_card_version, NULL::text AS rate_prefix
          INTO rate;
    END IF;
    -- The balance row is locked last, so it stays locked only for the hold, the queue
    -- row and the commit, not the inserts. An unlocked look first: a refusal writes
    -- nothing and waits for no one.
    SELECT bb.available,
           CASE WHEN p_rate IS NULL THEN NULL::double precision
                ELSE smsgw_ingest_tokens_v1(bb.ingest_tokens, bb.ingest_at, p_rate)
           END AS tokens,
           CASE WHEN p_honour_opt_outs
                THEN smsgw_cap_room_v1(bb.daily_spend_cap, bb.monthly_spend_cap,
                                       bb.spend_day, bb.day_spent, bb.spend_month,
                                       bb.month_spent) END AS room
      INTO bal FROM balances bb WHERE bb.tenant_id = p_tenant_id;
    IF NOT FOUND OR bal.available < total OR (p_rate IS NOT NULL AND bal.tokens < 1)
       OR bal.room < total THEN
        RETURN QUERY SELECT 0, bal.available, bal.tokens, false, false, false, total,
                            rate.price_per_segment, rate.rate_card, rate.rate_card_version,
                            rate.rate_prefix, chosen.sender, NULL::text, NULL::timestamptz,
                            bal.room;
        RETURN;
    END IF;
    WITH inserted AS (
        INSERT INTO messages (
            id, created_at, tenant_id, status, to_number, sender, body, encoding, segments,
            price, callback_url, client_reference, send_at, expires_at, next_attempt_at,
            updated_at, facade, messaging_service_sid, price_per_segment, rate_card,
            rate_card_version, rate_prefix, quiet_until)
        VALUES (p_id, p_created_at, p_tenant_id, p_status, p_to_number, chosen.sender,
               p_body, p_encoding, p_segments, total, p_callback_url, p_client_reference,
               p_send_at, p_expires_at, due, p_created_at, p_facade, p_messaging_service_sid,
               rate.price_per_segment, rate.rate_card, rate.rate_card_version,
               rate.rate_prefix, p_quiet_until)
    ), event AS (
        INSERT INTO message_events (message_created_at, message_id, tenant_id, status, at)
        VALUES (p_created_at, p_id, p_tenant_id, p_status, p_created_at)
    ), counted AS (
        INSERT INTO message_counters AS c (slot, kind, status, tier, provider, n)
        VALUES (pg_backend_pid(), 'accepted', p_status, p_queue, '', 1)
        ON CONFLICT (slot, kind, status, tier, provider) DO UPDATE SET n = c.n + 1
    ), destination AS (
        -- The pumping counter of (country, prefix): a tally row (the pumping job adds
        -- them up).
        INSERT INTO destination_tallies (hour, tenant_ids, countries, prefixes, counts)
        VALUES (date_trunc('hour', now()), ARRAY[p_tenant_id],
                ARRAY[coalesce(p_to_country, '')], ARRAY[coalesce(rate.rate_prefix, '')],
                ARRAY[1])
    )
    INSERT INTO ledger_message_entries
        (message_created_at, message_id, tenant_id, kind, amount)
    VALUES (p_created_at, p_id, p_tenant_id, 'hold', total);
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
       -- The spend caps, under the same row lock as the credit.
       AND (NOT p_honour_opt_outs
            OR coalesce(smsgw_cap_room_v1(b.daily_spend_cap, b.monthly_spend_cap,
                                          b.spend_day, b.day_spent, b.spend_month,
                                          b.month_spent) >= total, true));
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n = 0 THEN
        -- A concurrent send spent the credit or the bucket since the look above: undo
        -- the rows (the whole call fails) and say what is left, as a refusal would.
        SELECT bb.available,
               CASE WHEN p_rate IS NULL THEN NULL::double precision
                    ELSE smsgw_ingest_tokens_v1(bb.ingest_tokens, bb.ingest_at, p_rate)
               END AS tokens,
               CASE WHEN p_honour_opt_outs
                    THEN smsgw_cap_room_v1(bb.daily_spend_cap, bb.monthly_spend_cap,
                                           bb.spend_day, bb.day_spent, bb.spend_month,
                                           bb.month_spent) END AS room
          INTO bal FROM balances bb WHERE bb.tenant_id = p_tenant_id;
        RAISE EXCEPTION 'smsgw: refused by a concurrent send'
              USING ERRCODE = 'SMG01',
                    -- With credit left, the bucket was what ran out: say so even
                    -- if it has refilled since.
                    DETAIL = json_build_object(
                        'available', bal.available,
                        'price', total,
                        'cap_room', bal.room,
                        'tokens', CASE WHEN bal.available >= total
                                            AND coalesce(bal.room >= total, true)
                                       THEN least(bal.tokens, 0) ELSE bal.tokens END)::text;
    END IF;
    IF p_task IS NOT NULL THEN
        PERFORM smsgw_queue_tenant_v1(p_tenant_id, p_queue, p_task, due, p_created_at);
    END IF;
    RETURN QUERY SELECT 1, NULL::bigint, NULL::double precision, false, false, false, total,
                        rate.price_per_segment, rate.rate_card, rate.rate_card_version,
                        rate.rate_prefix, chosen.sender, NULL::text, NULL::timestamptz,
                        NULL::bigint;
END;
$$;

DROP FUNCTION smsgw_rollups_to_days_v1();
DROP FUNCTION smsgw_rollups_to_days_v2();
