-- 0002: price by destination (issue 23). Rate cards, named and versioned: a version maps
-- destination prefixes to a price per segment and takes effect at its effective_at. A
-- tenant is on one card (its tier's card, named after the tier, when it has none) and may
-- have rates of its own, kept as a card of its own that only it uses. Every accept
-- prices its messages inside its one statement (smsgw_accept_v5, smsgw_accept_sends_v2,
-- smsgw_accept_one_v2) and stores on each message what it was priced at. A provider
-- may have a cost price list (a card of its own); a message stores what the route that
-- sent it cost, and a route that would send it at a loss is skipped unless allowed.
--
-- What existed migrates: each tier's price becomes a one-row card of that tier's name
-- (prefix '' covers every destination), and a tenant whose price was set apart from its
-- tier's gets that price as a rate of its own for every destination. Messages already
-- accepted keep their price. The accept functions of 1.0.0 stay for processes of that
-- release during a deploy; a later release drops them.

CREATE TABLE rate_cards (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- An operator's card: letters, digits, '.', '_', '-'. A tenant's own rates: 'tenant:'
    -- and its id, with tenant_id set. A provider's cost price list: 'provider:' and its
    -- name, with provider set.
    name text NOT NULL UNIQUE CHECK (
        name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'
        OR (tenant_id IS NOT NULL AND name = 'tenant:' || tenant_id::text)
        OR (provider IS NOT NULL AND name = 'provider:' || provider)),
    tenant_id uuid UNIQUE REFERENCES tenants (id),
    provider text UNIQUE REFERENCES providers (name) ON UPDATE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- A version is written whole (its rates in the same transaction) and never changed, so
-- an accept that reads its id reads all of its rates or none of them.
CREATE TABLE rate_card_versions (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    card_id bigint NOT NULL REFERENCES rate_cards (id),
    version integer NOT NULL CHECK (version > 0),
    effective_at timestamptz NOT NULL,
    rates integer NOT NULL CHECK (rates >= 0),
    -- The lengths of its prefixes, longest first: a lookup probes only these.
    lengths integer[] NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (card_id, version)
);
-- The version in effect at a time: the latest effective_at not after it, then the latest
-- version (one index probe).
CREATE INDEX rate_card_versions_effective_idx
    ON rate_card_versions (card_id, effective_at DESC, version DESC);

-- The prefix is E.164 digits without '+': '' covers everything, '44' the United
-- Kingdom, '447' its mobiles. Longest prefix wins. The primary key is the lookup's index:
-- a number's prefixes (of the lengths the version has) probed in one version; it carries
-- the price, so the probe reads the index alone (about half the time of a heap visit).
CREATE TABLE rate_card_rates (
    version_id bigint NOT NULL REFERENCES rate_card_versions (id),
    prefix text NOT NULL CHECK (prefix ~ '^[0-9]{0,15}$'),
    country text CHECK (country ~ '^[A-Z]{2}$'),
    network text,
    -- Micro-units per segment.
    price bigint NOT NULL CHECK (price >= 0),
    PRIMARY KEY (version_id, prefix) INCLUDE (price)
);

-- NULL: the tenant is on its tier's card (the card named after the tier).
ALTER TABLE tenants ADD COLUMN rate_card_id bigint REFERENCES rate_cards (id);

-- What a message was priced at, never changed after the accept. NULL on messages
-- accepted before rate cards, and on free answers (an automatic HELP reply).
ALTER TABLE messages ADD COLUMN price_per_segment bigint;
ALTER TABLE messages ADD COLUMN rate_card text;
ALTER TABLE messages ADD COLUMN rate_card_version integer;
ALTER TABLE messages ADD COLUMN rate_prefix text;
-- What the route that sent it cost (its provider's price list for the destination, else
-- the route's flat cost_per_segment), times the segments; set with the provider.
ALTER TABLE messages ADD COLUMN cost bigint;

-- The margin guard: a route that costs more per segment than a message's price per
-- segment is skipped for it, unless the operator allowed loss-making sends on it.
ALTER TABLE routes ADD COLUMN allow_loss boolean NOT NULL DEFAULT false;


-- How a tenant's messages are priced at a moment, read once per accept call: the version
-- in effect of its own rates and of its card (its tier's card when it has none), each
-- with its card's name, its number and the lengths of its prefixes (the only keys worth
-- probing). `flat`: the price when the tenant has no own rates and its card is one rate
-- for every destination (the tier cards of 1.0.0): no probe at all then.
CREATE TYPE smsgw_rating_v1 AS (
    own_version bigint, own_card text, own_number integer, own_lengths integer[],
    card_version bigint, card_name text, card_number integer, card_lengths integer[],
    flat bigint);

CREATE FUNCTION smsgw_rating_v1(p_tenant_id uuid, p_at timestamptz)
    RETURNS smsgw_rating_v1
    LANGUAGE sql STABLE
AS $$
    SELECT ROW(o.id, o.name, o.version, o.lengths, k.id, k.name, k.version, k.lengths,
               CASE WHEN o.id IS NULL AND k.lengths = '{0}'
                    THEN (SELECT r.price FROM rate_card_rates r
                           WHERE r.version_id = k.id AND r.prefix = '')
               END)::smsgw_rating_v1
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

-- The rate of a destination by `p`: the longest prefix of the tenant's own rates, else
-- the longest of its card's; no row when neither covers the number. One probe of
-- rate_card_rates' primary key, with a key per prefix length the versions have (a
-- number's prefixes of other lengths cannot match); none for a flat card.
CREATE FUNCTION smsgw_rate_v1(p smsgw_rating_v1, p_number text)
    RETURNS TABLE (price_per_segment bigint, rate_card text, rate_card_version integer,
                   rate_prefix text)
    LANGUAGE sql STABLE
AS $$
    SELECT p.flat, p.card_name, p.card_number, ''::text
     WHERE p.flat IS NOT NULL
    UNION ALL
    (SELECT r.price,
            CASE WHEN r.version_id = p.own_version THEN p.own_card ELSE p.card_name END,
            CASE WHEN r.version_id = p.own_version THEN p.own_number ELSE p.card_number END,
            r.prefix
       FROM rate_card_rates r
      WHERE p.flat IS NULL
        AND r.version_id IN (p.own_version, p.card_version)
        AND r.prefix = ANY (ARRAY(
              SELECT left(ltrim(p_number, '+'), l.n)
                FROM unnest(coalesce(p.own_lengths, '{}') || coalesce(p.card_lengths, '{}'))
                     AS l(n)
               WHERE l.n < length(p_number)))
      ORDER BY r.version_id IS NOT DISTINCT FROM p.own_version DESC, length(r.prefix) DESC
      LIMIT 1)
$$;

-- The cost per segment of each provider's own price list in effect now for each number
-- (longest prefix), in one set-based statement per dispatch claim: only providers with
-- a list, and numbers their list covers (the others fall back to the route's flat cost).
CREATE FUNCTION smsgw_provider_costs_v1(p_numbers text[])
    RETURNS TABLE (to_number text, provider text, cost_per_segment bigint)
    LANGUAGE sql STABLE
AS $$
    SELECT n.to_number, l.provider, q.price_per_segment
      FROM (SELECT c.provider,
                   ROW(NULL, NULL, NULL, NULL, v.id, c.name, v.version, v.lengths,
                       NULL)::smsgw_rating_v1 AS rating
              FROM rate_cards c
              JOIN LATERAL (
                  SELECT v.id, v.version, v.lengths FROM rate_card_versions v
                   WHERE v.card_id = c.id AND v.effective_at <= now()
                   ORDER BY v.effective_at DESC, v.version DESC
                   LIMIT 1) AS v ON true
             WHERE c.provider IS NOT NULL) AS l,
           unnest(p_numbers) AS n(to_number),
           LATERAL smsgw_rate_v1(l.rating, n.to_number) AS q
$$;

-- One message of a batch as the API sends it (core/accept.py: _rows), by name. `price`
-- NULL: priced by the accept from the tenant's rates; a number: that price (a free answer).
-- The rate fields are the accept's to fill.
CREATE TYPE smsgw_draft_v2 AS (
    id uuid, created_at timestamptz, status text, to_number text, sender text,
    body text, encoding text, segments smallint, price bigint, callback_url text,
    client_reference text, send_at timestamptz, expires_at timestamptz,
    facade text, messaging_service_sid text,
    price_per_segment bigint, rate_card text, rate_card_version integer, rate_prefix text);

-- smsgw_accept_v4, with each message priced inside the call: the versions of the
-- tenant's rates in effect at the transaction's start are read once, then each message
-- takes its destination's rate from them (smsgw_rate_v1). A message no rate covers is
-- refused and named in `not_priced`, as an opted-out one is in `opted_out`. `rates`:
-- per message priced, [id, price, price_per_segment, rate_card, rate_card_version,
-- rate_prefix], also when credit refused them (the caller says what was short).
CREATE FUNCTION smsgw_accept_v5(
    p_tenant_id uuid, p_rate double precision, p_messages json,
    p_queue text, p_task text, p_honour_opt_outs boolean)
    RETURNS TABLE (accepted integer, available bigint, tokens double precision,
                   opted_out uuid[], not_priced uuid[], rates json, due timestamptz)
    LANGUAGE plpgsql
AS $$
DECLARE
    drafts smsgw_draft_v2[];
    n integer;
    wanted integer;
    total bigint;
    first_due timestamptz;
    oldest timestamptz;
    refused uuid[] := '{}';
    unpriced uuid[] := '{}';
    rating smsgw_rating_v1;
    priced json;
BEGIN
    -- Fields are matched by name; a missing one is NULL, as with json_to_recordset.
    SELECT array_agg(m) INTO drafts
      FROM json_populate_recordset(NULL::smsgw_draft_v2, p_messages) AS m;
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
    rating := smsgw_rating_v1(p_tenant_id, now());
    SELECT coalesce(array_agg(m.id) FILTER (WHERE m.price IS NULL
                                              AND r.price_per_segment IS NULL), '{}'),
           array_agg(ROW(m.id, m.created_at, m.status, m.to_number, m.sender, m.body,
                         m.encoding, m.segments,
                         coalesce(m.price, r.price_per_segment * m.segments),
                         m.callback_url, m.client_reference, m.send_at, m.expires_at,
                         m.facade, m.messaging_service_sid, r.price_per_segment,
                         r.rate_card, r.rate_card_version, r.rate_prefix)::smsgw_draft_v2)
               FILTER (WHERE m.price IS NOT NULL OR r.price_per_segment IS NOT NULL)
      INTO unpriced, drafts
      FROM unnest(drafts) AS m
      LEFT JOIN LATERAL smsgw_rate_v1(rating, m.to_number) AS r ON m.price IS NULL;
    SELECT count(*), coalesce(sum(m.price), 0), min(coalesce(m.send_at, m.created_at)),
           min(m.created_at),
           json_agg(json_build_array(m.id, m.price, m.price_per_segment, m.rate_card,
                                     m.rate_card_version, m.rate_prefix))
      INTO wanted, total, first_due, oldest, priced
      FROM unnest(drafts) AS m;
    IF wanted = 0 THEN
        RETURN QUERY SELECT 0, NULL::bigint, NULL::double precision, refused, unpriced,
                            NULL::json, NULL::timestamptz;
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
            updated_at, facade, messaging_service_sid, price_per_segment, rate_card,
            rate_card_version, rate_prefix)
        SELECT m.id, m.created_at, hold.tenant_id, m.status, m.to_number, m.sender, m.body,
               m.encoding, m.segments, m.price, m.callback_url, m.client_reference,
               m.send_at, m.expires_at, coalesce(m.send_at, m.created_at), m.created_at,
               m.facade, m.messaging_service_sid, m.price_per_segment, m.rate_card,
               m.rate_card_version, m.rate_prefix
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
               refused, unpriced, priced, NULL::timestamptz
          FROM balances b WHERE b.tenant_id = p_tenant_id;
        RETURN;
    END IF;
    -- A new statement, so a new snapshot. NULL task: the caller queues the work itself.
    IF p_task IS NOT NULL THEN
        PERFORM smsgw_queue_tenant_v1(p_tenant_id, p_queue, p_task, first_due, oldest);
    END IF;
    RETURN QUERY SELECT n, NULL::bigint, NULL::double precision, refused, unpriced, priced,
                        first_due;
END;
$$;

-- One single send as the API sends it (core/coalesce.py), by name: smsgw_send_v1 with
-- `price` NULL (priced by the accept) and the rate fields the accept fills.
CREATE TYPE smsgw_send_v2 AS (
    tenant_id uuid, tier text, rate double precision, key_id uuid,
    id uuid, created_at timestamptz, status text, to_number text, sender text,
    body text, encoding text, segments smallint, price bigint, callback_url text,
    client_reference text, send_at timestamptz, expires_at timestamptz,
    facade text, messaging_service_sid text,
    -- An SMPP submit's registered_delivery (1, 2), NULL for none.
    receipt smallint,
    price_per_segment bigint, rate_card text, rate_card_version integer, rate_prefix text);

-- smsgw_accept_sends_v1, with each send priced inside the call: the versions of each
-- tenant's rates in effect at the transaction's start, read once per tenant in the
-- statement that prices every send. `outcome` adds 'not_priced' (no rate covers the
-- destination: nothing written); a send's key is no longer stale for a price change
-- (its price is taken here). An accepted or refused send carries its price and rate.
CREATE FUNCTION smsgw_accept_sends_v2(p_sends json, p_task text)
    RETURNS TABLE (id uuid, outcome text, available bigint, tokens double precision,
                   price bigint, price_per_segment bigint, rate_card text,
                   rate_card_version integer, rate_prefix text)
    LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
    sends smsgw_send_v2[];
    priced smsgw_send_v2[];
    kept smsgw_send_v2[];
    stale uuid[];
    opted_out uuid[];
    not_priced uuid[];
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
      FROM json_populate_recordset(NULL::smsgw_send_v2, p_sends) AS s;
    -- Stale keys, then opt-outs (smsgw_accept_one_v2's order).
    SELECT coalesce(array_agg(s.id), '{}') INTO stale FROM unnest(sends) AS s
     WHERE s.key_id IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
         WHERE k.id = s.key_id AND k.revoked_at IS NULL AND t.id = s.tenant_id
           AND t.tier = s.tier
           AND t.rate_limit_mps::double precision IS NOT DISTINCT FROM s.rate);
    SELECT coalesce(array_agg(s.id), '{}') INTO opted_out FROM unnest(sends) AS s
     WHERE s.id <> ALL (stale)
       AND EXISTS (
        SELECT 1 FROM suppressions x
         WHERE x.tenant_id = s.tenant_id AND x.recipient = s.to_number
           AND (s.sender IS NULL OR x.number IN ('*', s.sender)));
    set_aside := stale || opted_out;
    -- The price of each send left, in one statement: one version per card for the call.
    -- MATERIALIZED: each tenant's rating is read once, not once per send and field.
    WITH ratings AS MATERIALIZED (
        SELECT t.tenant_id, smsgw_rating_v1(t.tenant_id, now()) AS rating
          FROM (SELECT DISTINCT s.tenant_id FROM unnest(sends) AS s
                 WHERE s.id <> ALL (set_aside)) AS t
    )
    SELECT coalesce(array_agg(s.id) FILTER (WHERE s.price IS NULL
                                              AND q.price_per_segment IS NULL), '{}'),
           array_agg(ROW(s.tenant_id, s.tier, s.rate, s.key_id, s.id, s.created_at,
                         s.status, s.to_number, s.sender, s.body, s.encoding, s.segments,
                         coalesce(s.price, q.price_per_segment * s.segments),
                         s.callback_url, s.client_reference, s.send_at, s.expires_at,
                         s.facade, s.messaging_service_sid, s.receipt, q.price_per_segment,
                         q.rate_card, q.rate_card_version, q.rate_prefix)::smsgw_send_v2
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
               END AS tokens
          FROM unnest(priced) WITH ORDINALITY AS s
          LEFT JOIN balances b ON b.tenant_id = s.tenant_id
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
    -- The sends to write, picked out once.
    kept := ARRAY(SELECT s FROM unnest(priced) AS s WHERE s.id <> ALL (refused));
    WITH inserted AS (
        INSERT INTO messages (
            id, created_at, tenant_id, status, to_number, sender, body, encoding, segments,
            price, callback_url, client_reference, send_at, expires_at, next_attempt_at,
            updated_at, facade, messaging_service_sid, price_per_segment, rate_card,
            rate_card_version, rate_prefix)
        SELECT s.id, s.created_at, s.tenant_id, s.status, s.to_number, s.sender, s.body,
               s.encoding, s.segments, s.price, s.callback_url, s.client_reference,
               s.send_at, s.expires_at, coalesce(s.send_at, s.created_at), s.created_at,
               s.facade, s.messaging_service_sid, s.price_per_segment, s.rate_card,
               s.rate_card_version, s.rate_prefix
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
    -- An SMPP submit's receipt request, for the messages written only.
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
    RETURN QUERY SELECT u.id, 'stale', NULL::bigint, NULL::double precision, NULL::bigint,
                        NULL::bigint, NULL::text, NULL::integer, NULL::text
                   FROM unnest(stale) AS u(id);
    RETURN QUERY SELECT u.id, 'opted_out', NULL::bigint, NULL::double precision,
                        NULL::bigint, NULL::bigint, NULL::text, NULL::integer, NULL::text
                   FROM unnest(opted_out) AS u(id);
    RETURN QUERY SELECT u.id, 'not_priced', NULL::bigint, NULL::double precision,
                        NULL::bigint, NULL::bigint, NULL::text, NULL::integer, NULL::text
                   FROM unnest(not_priced) AS u(id);
    RETURN QUERY SELECT u.id, 'refused', u.available, u.tokens, s.price,
                        s.price_per_segment, s.rate_card, s.rate_card_version, s.rate_prefix
                   FROM unnest(refused, refused_credit, refused_tokens)
                        AS u(id, available, tokens)
                   JOIN unnest(priced) AS s ON s.id = u.id;
    RETURN QUERY SELECT s.id, 'accepted', NULL::bigint, NULL::double precision, s.price,
                        s.price_per_segment, s.rate_card, s.rate_card_version, s.rate_prefix
                   FROM unnest(kept) AS s;
END;
$$;

-- smsgw_accept_one_v1, with the message priced inside the call (p_price NULL: from the
-- tenant's rates in effect at the transaction's start; a number: that price, a free
-- answer's 0). `not_priced`: no rate covers the destination, nothing written. The key is
-- no longer stale for a price change. The price and rate come back with the outcome.
CREATE FUNCTION smsgw_accept_one_v2(
    p_tenant_id uuid, p_rate double precision, p_queue text, p_task text,
    p_honour_opt_outs boolean, p_id uuid, p_created_at timestamptz, p_status text,
    p_to_number text, p_sender text, p_body text, p_encoding text, p_segments smallint,
    p_price bigint, p_callback_url text, p_client_reference text, p_send_at timestamptz,
    p_expires_at timestamptz, p_facade text, p_messaging_service_sid text,
    p_key_id uuid)
    RETURNS TABLE (accepted integer, available bigint, tokens double precision,
                   opted_out boolean, stale boolean, not_priced boolean, price bigint,
                   price_per_segment bigint, rate_card text, rate_card_version integer,
                   rate_prefix text)
    LANGUAGE plpgsql
AS $$
DECLARE
    n integer;
    due timestamptz := coalesce(p_send_at, p_created_at);
    bal record;
    rating smsgw_rating_v1;
    rate record;
    total bigint := p_price;
BEGIN
    IF p_key_id IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
         WHERE k.id = p_key_id AND k.revoked_at IS NULL AND t.id = p_tenant_id
           AND t.tier = p_queue
           AND t.rate_limit_mps::double precision IS NOT DISTINCT FROM p_rate) THEN
        RETURN QUERY SELECT 0, NULL::bigint, NULL::double precision, false, true, false,
                            NULL::bigint, NULL::bigint, NULL::text, NULL::integer, NULL::text;
        RETURN;
    END IF;
    IF p_honour_opt_outs AND EXISTS (
        SELECT 1 FROM suppressions s
         WHERE s.tenant_id = p_tenant_id AND s.recipient = p_to_number
           AND (p_sender IS NULL OR s.number IN ('*', p_sender))) THEN
        RETURN QUERY SELECT 0, NULL::bigint, NULL::double precision, true, false, false,
                            NULL::bigint, NULL::bigint, NULL::text, NULL::integer, NULL::text;
        RETURN;
    END IF;
    IF p_price IS NULL THEN
        -- The versions in effect, then the probe of their rates: a version's rates are
        -- written with it and never change, so the second statement reads what the
        -- first one saw.
        rating := smsgw_rating_v1(p_tenant_id, now());
        SELECT q.* INTO rate FROM smsgw_rate_v1(rating, p_to_number) AS q;
        IF NOT FOUND THEN
            RETURN QUERY SELECT 0, NULL::bigint, NULL::double precision, false, false, true,
                                NULL::bigint, NULL::bigint, NULL::text, NULL::integer,
                                NULL::text;
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
           END AS tokens
      INTO bal FROM balances bb WHERE bb.tenant_id = p_tenant_id;
    IF NOT FOUND OR bal.available < total OR (p_rate IS NOT NULL AND bal.tokens < 1) THEN
        RETURN QUERY SELECT 0, bal.available, bal.tokens, false, false, false, total,
                            rate.price_per_segment, rate.rate_card, rate.rate_card_version,
                            rate.rate_prefix;
        RETURN;
    END IF;
    WITH inserted AS (
        INSERT INTO messages (
            id, created_at, tenant_id, status, to_number, sender, body, encoding, segments,
            price, callback_url, client_reference, send_at, expires_at, next_attempt_at,
            updated_at, facade, messaging_service_sid, price_per_segment, rate_card,
            rate_card_version, rate_prefix)
        VALUES (p_id, p_created_at, p_tenant_id, p_status, p_to_number, p_sender, p_body,
               p_encoding, p_segments, total, p_callback_url, p_client_reference,
               p_send_at, p_expires_at, due, p_created_at, p_facade, p_messaging_service_sid,
               rate.price_per_segment, rate.rate_card, rate.rate_card_version,
               rate.rate_prefix)
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
    VALUES (p_created_at, p_id, p_tenant_id, 'hold', total);
    UPDATE balances b
       SET available = b.available - total, held = b.held + total,
           ingest_tokens = CASE WHEN p_rate IS NULL THEN b.ingest_tokens
               ELSE smsgw_ingest_tokens_v1(b.ingest_tokens, b.ingest_at, p_rate)
                    - 1 END,
           ingest_at = CASE WHEN p_rate IS NULL THEN b.ingest_at ELSE clock_timestamp() END
     WHERE b.tenant_id = p_tenant_id AND b.available >= total
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
                        'price', total,
                        'tokens', CASE WHEN bal.available >= total
                                       THEN least(bal.tokens, 0) ELSE bal.tokens END)::text;
    END IF;
    IF p_task IS NOT NULL THEN
        PERFORM smsgw_queue_tenant_v1(p_tenant_id, p_queue, p_task, due, p_created_at);
    END IF;
    RETURN QUERY SELECT 1, NULL::bigint, NULL::double precision, false, false, false, total,
                        rate.price_per_segment, rate.rate_card, rate.rate_card_version,
                        rate.rate_prefix;
END;
$$;

-- The tier cards, each one row for every destination at the tier's price of 1.0.0, in
-- effect since before any message (1970: a time every client can read).
INSERT INTO rate_cards (name) VALUES ('standard'), ('premium'), ('vip');
INSERT INTO rate_card_versions (card_id, version, effective_at, rates, lengths)
SELECT c.id, 1, '1970-01-01 00:00:00+00', 1, '{0}' FROM rate_cards c;
INSERT INTO rate_card_rates (version_id, prefix, price)
SELECT v.id, '', CASE c.name WHEN 'standard' THEN 7900 WHEN 'premium' THEN 6500 ELSE 5000 END
  FROM rate_card_versions v JOIN rate_cards c ON c.id = v.card_id;

-- A tenant priced apart from its tier keeps its price, for every destination.
INSERT INTO rate_cards (name, tenant_id)
SELECT 'tenant:' || t.id::text, t.id
  FROM tenants t
 WHERE t.price_per_segment <> CASE t.tier WHEN 'standard' THEN 7900
                                          WHEN 'premium' THEN 6500 ELSE 5000 END;
INSERT INTO rate_card_versions (card_id, version, effective_at, rates, lengths)
SELECT c.id, 1, '1970-01-01 00:00:00+00', 1, '{0}' FROM rate_cards c
 WHERE c.tenant_id IS NOT NULL;
INSERT INTO rate_card_rates (version_id, prefix, price)
SELECT v.id, '', t.price_per_segment
  FROM rate_card_versions v
  JOIN rate_cards c ON c.id = v.card_id
  JOIN tenants t ON t.id = c.tenant_id;
