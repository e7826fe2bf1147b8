-- 0005: who may send as whom (issue 24). A message's sender must be the tenant's own: a
-- number it owns, or an alphanumeric sender ID registered for it (approved, and for the
-- destination's country when the registration names countries), unless the operator let
-- the tenant send from any sender (`sender_policy` 'any', for legacy integrations). A
-- sender must also keep its destination country's rule (`country_sender_rules`: are
-- alphanumeric senders allowed, only when registered for the country, or not at all; are
-- numeric senders allowed). A message without a sender gets the tenant's sender for the
-- destination's country, else the operator's default sender for it. All of it is decided
-- inside the one accept statement (smsgw_sender_v1, called by smsgw_accept_v6,
-- smsgw_accept_sends_v3 and smsgw_accept_one_v3), so a refusal writes nothing.
--
-- The accept functions of 1.0.0 (smsgw_accept_v4, smsgw_accept_sends_v1,
-- smsgw_accept_one_v1) stay for processes of that release during a deploy, as 0002 left
-- them. The versions 0002 added (smsgw_accept_v5, smsgw_accept_sends_v2,
-- smsgw_accept_one_v2) were never in a release and nothing calls them now: dropped.
--
-- Beside the senders, two tenant settings of the same issue: smart encoding by default,
-- and quiet hours (with the message's `quiet_until`).

-- 'own': only the tenant's numbers and sender IDs; 'any': any sender (an operator's
-- choice for a legacy integration; its change is logged by the admin API).
ALTER TABLE tenants ADD COLUMN sender_policy text NOT NULL DEFAULT 'own'
    CHECK (sender_policy IN ('own', 'any'));
ALTER TABLE tenants ADD COLUMN sender_policy_changed_at timestamptz;

-- Smart encoding by default for the tenant's messages (a message's `smart_encoding`
-- overrides it): characters with a GSM-7 look-alike are replaced when that makes the
-- whole body GSM-7 (core/smart_encoding.py), so a pasted curly quote does not double the
-- segments. The replacing is done before the accept; only the setting lives here.
ALTER TABLE tenants ADD COLUMN smart_encoding boolean NOT NULL DEFAULT false;

-- Quiet hours in the recipient's local time (core/quiet_hours.py): a message that would
-- leave between start and end (end before start: across midnight) waits as `scheduled`
-- until end, unless it says `quiet_hours: false`. NULL: none. The accept sets the
-- message's send_at; `quiet_until` on the message says why it waits (NULL on the others;
-- nullable without default, so adding it rewrites no partition).
ALTER TABLE tenants ADD COLUMN quiet_hours_start time;
ALTER TABLE tenants ADD COLUMN quiet_hours_end time;
ALTER TABLE tenants ADD CONSTRAINT tenants_quiet_hours_check CHECK (
    (quiet_hours_start IS NULL) = (quiet_hours_end IS NULL)
    AND (quiet_hours_start IS NULL OR quiet_hours_start <> quiet_hours_end));
ALTER TABLE messages ADD COLUMN quiet_until timestamptz;

-- The country of an owned number (NULL for a short code or an alphanumeric sender), so a
-- message without a sender finds the tenant's number in its destination's country with
-- one index probe.
ALTER TABLE owned_numbers ADD COLUMN country text CHECK (country ~ '^[A-Z]{2}$');
UPDATE owned_numbers SET country = smsgw_country_v1(number) WHERE number LIKE '+%';
CREATE INDEX owned_numbers_country_idx ON owned_numbers (tenant_id, country, created_at);

-- Alphanumeric sender IDs registered for a tenant. `countries` NULL: valid wherever the
-- destination's rule allows unregistered alphanumeric senders; a list: also registered
-- for those countries (a country whose rule wants registration needs its name here).
-- Only an approved one may be sent from; a pending one waits for the operator.
CREATE TABLE sender_ids (
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    sender_id text NOT NULL CHECK (sender_id ~ '^[A-Za-z0-9 ]{1,11}$' AND sender_id ~ '[A-Za-z]'),
    countries text[] CHECK (
        countries IS NULL
        OR (cardinality(countries) BETWEEN 1 AND 300
            AND array_to_string(countries, ',') ~ '^[A-Z]{2}(,[A-Z]{2})*$')),
    status text NOT NULL CHECK (status IN ('approved', 'pending')),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, sender_id)
);

-- The sender rule of a destination country (ISO 3166 alpha-2), managed by the operator
-- (PUT /v1/admin/sender-rules/{country}). A country without a row: alphanumeric and
-- numeric senders allowed, no default sender. `alphanumeric`: 'allowed' (no
-- registration), 'registered' (only a sender ID registered for this country),
-- 'not_supported' (numeric senders only). `default_sender`: the operator's sender for
-- messages to the country that name none and whose tenant has none there. `source`: where
-- the rule comes from (the seed cites a public page; an operator's change says who).
CREATE TABLE country_sender_rules (
    country text PRIMARY KEY CHECK (country ~ '^[A-Z]{2}$'),
    alphanumeric text NOT NULL CHECK (alphanumeric IN ('allowed', 'registered', 'not_supported')),
    numeric_allowed boolean NOT NULL,
    default_sender text CHECK (length(default_sender) BETWEEN 1 AND 16),
    source text CHECK (length(source) <= 1000),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Each row's `source` is the public page its rule was read from (the carriers' rules
-- as a large gateway publishes them per country, and the regulator where there is one).
-- They change: an operator corrects a row with PUT /v1/admin/sender-rules/{country}.
INSERT INTO country_sender_rules (country, alphanumeric, numeric_allowed, source) VALUES
    ('US', 'not_supported', true,
     'https://www.twilio.com/en-us/guidelines/us/sms (alphanumeric sender ID not supported; '
     'A2P long codes need 10DLC registration: https://www.ctia.org/the-wireless-industry/'
     'industry-commitments/messaging-interoperability-sms-mms)'),
    ('CA', 'not_supported', true,
     'https://www.twilio.com/en-us/guidelines/ca/sms (alphanumeric sender ID not supported)'),
    ('GB', 'allowed', true,
     'https://www.twilio.com/en-us/guidelines/gb/sms (alphanumeric supported without '
     'registration; the SMS SenderID Protection Registry is voluntary: '
     'https://mobileecosystemforum.com/sms-sender-id-protection-registry/)'),
    ('DE', 'allowed', true,
     'https://www.twilio.com/en-us/guidelines/de/sms (alphanumeric supported without '
     'registration)'),
    ('FR', 'allowed', true,
     'https://www.twilio.com/en-us/guidelines/fr/sms (alphanumeric supported without '
     'registration; international numeric senders may be overwritten by carriers)'),
    ('IN', 'registered', false,
     'https://www.twilio.com/en-us/guidelines/in/sms and TRAI TCCCPR 2018 '
     '(https://www.trai.gov.in/release-publication/regulation): every commercial sender '
     'header registered on the DLT platform; unregistered and numeric senders blocked'),
    ('BR', 'not_supported', true,
     'https://www.twilio.com/en-us/guidelines/br/sms (alphanumeric sender ID not supported)'),
    ('NG', 'registered', false,
     'https://www.twilio.com/en-us/guidelines/ng/sms (alphanumeric sender ID pre-registration '
     'required; numeric sender ID not supported)'),
    ('ZA', 'not_supported', true,
     'https://www.twilio.com/en-us/guidelines/za/sms (alphanumeric sender ID not supported)'),
    ('AU', 'allowed', true,
     'https://www.twilio.com/en-us/guidelines/au/sms (alphanumeric supported; the ACMA '
     'SMS Sender ID Register labels unregistered IDs: https://www.acma.gov.au/'
     'sms-sender-id-register; make this ''registered'' when carriers block them)');

-- The sender a message leaves with, and why it may not (NULL: it may). `p_country`: the
-- destination's country (the caller knows it from parsing the number). A message that
-- names a sender: 'not_owned' (neither the tenant's number nor its approved sender ID
-- valid there, and the tenant may not send from any sender), else the country's rule:
-- 'alphanumeric_not_supported', 'alphanumeric_unregistered' (the country wants a
-- registration naming it), 'numeric_not_supported'. A message without one: the tenant's
-- number in that country (its oldest), else its approved sender ID valid there, else the
-- operator's default for the country, else none ('no_sender' only when the country's rule
-- wants a registered sender and takes no numeric one). One SELECT, so it is inlined into
-- the accept's statement: a few primary-key probes per message.
CREATE FUNCTION smsgw_sender_v1(p_tenant_id uuid, p_sender text, p_country text)
    RETURNS TABLE (sender text, refusal text)
    LANGUAGE sql STABLE
AS $$
    SELECT coalesce(p_sender, d.sender),
           CASE
               WHEN p_sender IS NULL THEN
                   CASE WHEN d.sender IS NULL AND r.alphanumeric = 'registered'
                             AND NOT r.numeric_allowed THEN 'no_sender' END
               WHEN NOT (o.owned OR t.sender_policy = 'any') THEN 'not_owned'
               WHEN p_sender ~ '[A-Za-z]' THEN
                   CASE WHEN r.alphanumeric = 'not_supported'
                             THEN 'alphanumeric_not_supported'
                        WHEN r.alphanumeric = 'registered' AND NOT o.registered_here
                             THEN 'alphanumeric_unregistered' END
               WHEN NOT coalesce(r.numeric_allowed, true) THEN 'numeric_not_supported'
           END
      FROM tenants t
      LEFT JOIN country_sender_rules r ON r.country = p_country
      LEFT JOIN LATERAL (
          SELECT EXISTS (SELECT 1 FROM owned_numbers n
                          WHERE n.number = p_sender AND n.tenant_id = p_tenant_id)
                 OR EXISTS (SELECT 1 FROM sender_ids s
                             WHERE s.tenant_id = p_tenant_id AND s.sender_id = p_sender
                               AND s.status = 'approved'
                               AND (s.countries IS NULL OR p_country = ANY (s.countries)))
                     AS owned,
                 EXISTS (SELECT 1 FROM sender_ids s
                          WHERE s.tenant_id = p_tenant_id AND s.sender_id = p_sender
                            AND s.status = 'approved' AND p_country = ANY (s.countries))
                     AS registered_here
           WHERE p_sender IS NOT NULL) AS o ON true
      LEFT JOIN LATERAL (
          SELECT coalesce(
                     (SELECT n.number FROM owned_numbers n
                       WHERE n.tenant_id = p_tenant_id AND n.country = p_country
                         AND coalesce(r.numeric_allowed, true)
                       ORDER BY n.created_at, n.number LIMIT 1),
                     (SELECT s.sender_id FROM sender_ids s
                       WHERE s.tenant_id = p_tenant_id AND s.status = 'approved'
                         AND CASE coalesce(r.alphanumeric, 'allowed')
                                 WHEN 'allowed' THEN s.countries IS NULL
                                                     OR p_country = ANY (s.countries)
                                 WHEN 'registered' THEN p_country = ANY (s.countries)
                                 ELSE false END
                       ORDER BY s.created_at, s.sender_id LIMIT 1),
                     r.default_sender) AS sender
           WHERE p_sender IS NULL) AS d ON true
     WHERE t.id = p_tenant_id
$$;

-- One message of a batch as the API sends it (core/accept.py: _rows), by name:
-- smsgw_draft_v2, the destination's country (`to_country`, ISO alpha-2, from the
-- number's parse), which the sender rules need, and `quiet_until` (it waits for the end
-- of the recipient's quiet hours).
CREATE TYPE smsgw_draft_v3 AS (
    id uuid, created_at timestamptz, status text, to_number text, sender text,
    body text, encoding text, segments smallint, price bigint, callback_url text,
    client_reference text, send_at timestamptz, expires_at timestamptz,
    facade text, messaging_service_sid text,
    price_per_segment bigint, rate_card text, rate_card_version integer, rate_prefix text,
    to_country text, quiet_until timestamptz);

-- smsgw_accept_v5, with each message's sender decided first (smsgw_sender_v1): a message
-- whose sender is refused is named with its reason in `sender_refused` ([[id, reason]]),
-- and a message without one takes the sender chosen for it, which the opt-out check
-- then uses and `rates` returns last: [id, price, price_per_segment, rate_card,
-- rate_card_version, rate_prefix, sender].
CREATE FUNCTION smsgw_accept_v6(
    p_tenant_id uuid, p_rate double precision, p_messages json,
    p_queue text, p_task text, p_honour_opt_outs boolean)
    RETURNS TABLE (accepted integer, available bigint, tokens double precision,
                   opted_out uuid[], not_priced uuid[], sender_refused json, rates json,
                   due timestamptz)
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
        SELECT k.asked, k.country, s.sender, s.refusal
          FROM (SELECT DISTINCT coalesce(m.sender, '') AS asked,
                       coalesce(m.to_country, '') AS country
                  FROM m) AS k
          LEFT JOIN LATERAL smsgw_sender_v1(p_tenant_id, nullif(k.asked, ''),
                                            nullif(k.country, '')) AS s ON true
    )
    SELECT coalesce(json_agg(json_build_array(m.id, s.refusal))
                        FILTER (WHERE s.refusal IS NOT NULL), '[]'),
           array_agg(ROW(m.id, m.created_at, m.status, m.to_number, s.sender, m.body,
                         m.encoding, m.segments, m.price, m.callback_url,
                         m.client_reference, m.send_at, m.expires_at, m.facade,
                         m.messaging_service_sid, NULL, NULL, NULL, NULL,
                         m.to_country, m.quiet_until)::smsgw_draft_v3)
               FILTER (WHERE s.refusal IS NULL)
      INTO unsent, drafts
      FROM m
      JOIN decided AS s ON s.asked = coalesce(m.sender, '')
                       AND s.country = coalesce(m.to_country, '');
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
                         r.rate_card, r.rate_card_version, r.rate_prefix,
                         m.to_country, m.quiet_until)::smsgw_draft_v3)
               FILTER (WHERE m.price IS NOT NULL OR r.price_per_segment IS NOT NULL)
      INTO unpriced, drafts
      FROM unnest(drafts) AS m
      LEFT JOIN LATERAL smsgw_rate_v1(rating, m.to_number) AS r ON m.price IS NULL;
    SELECT count(*), coalesce(sum(m.price), 0), min(coalesce(m.send_at, m.created_at)),
           min(m.created_at),
           json_agg(json_build_array(m.id, m.price, m.price_per_segment, m.rate_card,
                                     m.rate_card_version, m.rate_prefix, m.sender))
      INTO wanted, total, first_due, oldest, priced
      FROM unnest(drafts) AS m;
    IF wanted = 0 THEN
        RETURN QUERY SELECT 0, NULL::bigint, NULL::double precision, refused, unpriced,
                            unsent, NULL::json, NULL::timestamptz;
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
               refused, unpriced, unsent, priced, NULL::timestamptz
          FROM balances b WHERE b.tenant_id = p_tenant_id;
        RETURN;
    END IF;
    -- A new statement, so a new snapshot. NULL task: the caller queues the work itself.
    IF p_task IS NOT NULL THEN
        PERFORM smsgw_queue_tenant_v1(p_tenant_id, p_queue, p_task, first_due, oldest);
    END IF;
    RETURN QUERY SELECT n, NULL::bigint, NULL::double precision, refused, unpriced, unsent,
                        priced, first_due;
END;
$$;

-- One single send as the API sends it (core/coalesce.py), by name: smsgw_send_v2, the
-- destination's country (`to_country`), which the sender rules need, and `quiet_until`.
CREATE TYPE smsgw_send_v3 AS (
    tenant_id uuid, tier text, rate double precision, key_id uuid,
    id uuid, created_at timestamptz, status text, to_number text, sender text,
    body text, encoding text, segments smallint, price bigint, callback_url text,
    client_reference text, send_at timestamptz, expires_at timestamptz,
    facade text, messaging_service_sid text,
    -- An SMPP submit's registered_delivery (1, 2), NULL for none.
    receipt smallint,
    price_per_segment bigint, rate_card text, rate_card_version integer, rate_prefix text,
    to_country text, quiet_until timestamptz,
    -- The tenant's settings the draft was made with (a cached key's): stale if changed.
    smart boolean, quiet_start time, quiet_end time);

-- smsgw_accept_sends_v2, with each send's sender decided after the stale keys (a key is
-- also stale when the tenant's smart encoding or quiet hours changed) (smsgw_sender_v1): `outcome` adds 'sender_refused' with its reason in `refusal`
-- (nothing written); the other sends go on with their sender, the one chosen for them
-- when they named none, which the opt-out check uses and `sender` returns.
CREATE FUNCTION smsgw_accept_sends_v3(p_sends json, p_task text)
    RETURNS TABLE (id uuid, outcome text, available bigint, tokens double precision,
                   price bigint, price_per_segment bigint, rate_card text,
                   rate_card_version integer, rate_prefix text, sender text, refusal text)
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
    WITH decided AS MATERIALIZED (
        SELECT k.tenant_id, k.asked, k.country, x.sender, x.refusal
          FROM (SELECT DISTINCT u.tenant_id, coalesce(u.sender, '') AS asked,
                       coalesce(u.to_country, '') AS country
                  FROM unnest(sends) AS u
                 WHERE u.id <> ALL (stale)) AS k
          LEFT JOIN LATERAL smsgw_sender_v1(k.tenant_id, nullif(k.asked, ''),
                                            nullif(k.country, '')) AS x ON true
    )
    SELECT coalesce(array_agg(s.id) FILTER (WHERE d.refusal IS NOT NULL), '{}'),
           coalesce(array_agg(d.refusal) FILTER (WHERE d.refusal IS NOT NULL), '{}'),
           array_agg(ROW(s.tenant_id, s.tier, s.rate, s.key_id, s.id, s.created_at,
                         s.status, s.to_number, d.sender, s.body, s.encoding, s.segments,
                         s.price, s.callback_url, s.client_reference, s.send_at,
                         s.expires_at, s.facade, s.messaging_service_sid, s.receipt, NULL,
                         NULL, NULL, NULL, s.to_country, s.quiet_until, s.smart,
                         s.quiet_start, s.quiet_end)::smsgw_send_v3
                     ORDER BY s.ordinality)
               FILTER (WHERE d.refusal IS NULL)
      INTO unsent, unsent_why, sends
      FROM unnest(sends) WITH ORDINALITY AS s
      JOIN decided AS d ON d.tenant_id = s.tenant_id AND d.asked = coalesce(s.sender, '')
                       AND d.country = coalesce(s.to_country, '')
     WHERE s.id <> ALL (stale);
    SELECT coalesce(array_agg(s.id), '{}') INTO opted_out FROM unnest(sends) AS s
     WHERE EXISTS (
        SELECT 1 FROM suppressions x
         WHERE x.tenant_id = s.tenant_id AND x.recipient = s.to_number
           AND (s.sender IS NULL OR x.number IN ('*', s.sender)));
    set_aside := opted_out;
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
                        NULL::bigint, NULL::text, NULL::integer, NULL::text, NULL::text,
                        NULL::text
                   FROM unnest(stale) AS u(id);
    RETURN QUERY SELECT u.id, 'sender_refused', NULL::bigint, NULL::double precision,
                        NULL::bigint, NULL::bigint, NULL::text, NULL::integer, NULL::text,
                        NULL::text, u.why
                   FROM unnest(unsent, unsent_why) AS u(id, why);
    RETURN QUERY SELECT u.id, 'opted_out', NULL::bigint, NULL::double precision,
                        NULL::bigint, NULL::bigint, NULL::text, NULL::integer, NULL::text,
                        NULL::text, NULL::text
                   FROM unnest(opted_out) AS u(id);
    RETURN QUERY SELECT u.id, 'not_priced', NULL::bigint, NULL::double precision,
                        NULL::bigint, NULL::bigint, NULL::text, NULL::integer, NULL::text,
                        NULL::text, NULL::text
                   FROM unnest(not_priced) AS u(id);
    RETURN QUERY SELECT u.id, 'refused', u.available, u.tokens, s.price,
                        s.price_per_segment, s.rate_card, s.rate_card_version, s.rate_prefix,
                        s.sender, NULL::text
                   FROM unnest(refused, refused_credit, refused_tokens)
                        AS u(id, available, tokens)
                   JOIN unnest(priced) AS s ON s.id = u.id;
    RETURN QUERY SELECT s.id, 'accepted', NULL::bigint, NULL::double precision, s.price,
                        s.price_per_segment, s.rate_card, s.rate_card_version, s.rate_prefix,
                        s.sender, NULL::text
                   FROM unnest(kept) AS s;
END;
$$;

-- smsgw_accept_one_v2, with the sender decided after the key check (smsgw_sender_v1,
-- `p_to_country` the destination's country; the key is also stale when the tenant's
-- smart encoding or quiet hours are no longer `p_smart`, `p_quiet_start`, `p_quiet_end`): `sender_refused` gives the reason and
-- nothing is written; otherwise the sender (the one chosen when the message named none)
-- is the one the opt-out check uses, the row stores and `sender` returns.
CREATE FUNCTION smsgw_accept_one_v3(
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
                   rate_prefix text, sender text, sender_refused text)
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
                            NULL::text, NULL::text;
        RETURN;
    END IF;
    SELECT d.sender, d.refusal INTO chosen
      FROM smsgw_sender_v1(p_tenant_id, p_sender, p_to_country) AS d;
    IF chosen.refusal IS NOT NULL THEN
        RETURN QUERY SELECT 0, NULL::bigint, NULL::double precision, false, false, false,
                            NULL::bigint, NULL::bigint, NULL::text, NULL::integer, NULL::text,
                            NULL::text, chosen.refusal;
        RETURN;
    END IF;
    IF p_honour_opt_outs AND EXISTS (
        SELECT 1 FROM suppressions s
         WHERE s.tenant_id = p_tenant_id AND s.recipient = p_to_number
           AND (chosen.sender IS NULL OR s.number IN ('*', chosen.sender))) THEN
        RETURN QUERY SELECT 0, NULL::bigint, NULL::double precision, true, false, false,
                            NULL::bigint, NULL::bigint, NULL::text, NULL::integer, NULL::text,
                            chosen.sender, NULL::text;
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
                                NULL::text, chosen.sender, NULL::text;
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
                            rate.rate_prefix, chosen.sender, NULL::text;
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
                        rate.rate_prefix, chosen.sender, NULL::text;
END;
$$;

DROP FUNCTION smsgw_accept_v5(uuid, double precision, json, text, text, boolean);
DROP FUNCTION smsgw_accept_sends_v2(json, text);
DROP FUNCTION smsgw_accept_one_v2(
    uuid, double precision, text, text, boolean, uuid, timestamptz, text, text, text, text,
    text, smallint, bigint, text, text, timestamptz, timestamptz, text, text, uuid);
DROP TYPE smsgw_draft_v2;
DROP TYPE smsgw_send_v2;
