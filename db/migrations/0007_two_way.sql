-- 0007: two-way messaging (issue 8). Numbers a tenant owns, inbound messages (MO)
-- matched to them and posted to the tenant's inbound webhook, opt-out keywords and the
-- suppression list that accept honours, and the Twilio-compatible facade (credentials,
-- Twilio-format status callbacks).

-- Where a tenant hears of inbound messages, and what it answers to HELP (NULL: no
-- automatic answer).
ALTER TABLE tenants ADD COLUMN inbound_url text;
ALTER TABLE tenants ADD COLUMN help_reply text;

-- Numbers (E.164, short codes) and sender ids a tenant owns. One owner per number:
-- an inbound message is matched to its tenant by destination.
CREATE TABLE owned_numbers (
    number text PRIMARY KEY CHECK (length(number) BETWEEN 1 AND 16),
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX owned_numbers_tenant_idx ON owned_numbers (tenant_id, created_at);

-- Recipients who opted out: per (tenant, our number, their number); `number` '*' means
-- every number of the tenant (STOPALL, or an entry added through the API without one).
-- The accept path looks a recipient up by the primary key's prefix.
CREATE TABLE suppressions (
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    recipient text NOT NULL,
    number text NOT NULL,
    source text NOT NULL CHECK (source IN ('keyword', 'api')),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, recipient, number)
);

-- The Twilio facade's credentials, one account per tenant. The auth token is compared
-- by its SHA-256; it is also kept itself, like webhook_secret, because Twilio's
-- X-Twilio-Signature is an HMAC keyed by the token, which the gateway must compute.
CREATE TABLE twilio_accounts (
    account_sid text PRIMARY KEY CHECK (account_sid ~ '^AC[0-9a-f]{32}$'),
    tenant_id uuid NOT NULL UNIQUE REFERENCES tenants (id),
    token_sha256 bytea NOT NULL,
    auth_token text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    rotated_at timestamptz NOT NULL DEFAULT now()
);

-- Messages created through the Twilio facade ('twilio'; NULL: the REST API), so their
-- status callbacks go out in Twilio's format. Nullable without default: adding them
-- rewrites no partition.
ALTER TABLE messages ADD COLUMN facade text;
ALTER TABLE messages ADD COLUMN messaging_service_sid text;

-- What an outbox row is: 'status' (JSON status callback), 'twilio_status' (Twilio's
-- form-encoded status callback) or 'inbound' (an inbound message for inbound_url).
-- No CHECK: validating one would scan every partition of the outbox.
ALTER TABLE callbacks ADD COLUMN kind text NOT NULL DEFAULT 'status';

-- Inbound messages, whole (parts reassembled), partitioned by day like messages. Ids
-- are UUIDv7 whose millisecond is `received_at`.
CREATE TABLE inbound_messages (
    id uuid NOT NULL,
    received_at timestamptz NOT NULL,
    tenant_id uuid NOT NULL,
    -- The tenant's number it was sent to, and the sender's.
    to_number text NOT NULL,
    from_number text NOT NULL,
    body text NOT NULL,
    encoding text NOT NULL,
    -- Parts that arrived, and parts the sender's UDH announced; fewer arrived when the
    -- rest never came (delivered after the reassembly timeout, `complete` false).
    parts smallint NOT NULL DEFAULT 1,
    parts_expected smallint NOT NULL DEFAULT 1,
    complete boolean NOT NULL DEFAULT true,
    provider text NOT NULL,
    provider_message_id text,
    -- The opt-out keyword it carried: opt_out, opt_out_all, opt_in or help.
    keyword text,
    PRIMARY KEY (id, received_at)
) PARTITION BY RANGE (received_at);
CREATE INDEX inbound_messages_tenant_idx
    ON inbound_messages (tenant_id, received_at DESC, id DESC);

-- Parts of long inbound messages waiting for their siblings (UDH concatenation).
CREATE TABLE inbound_parts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id uuid NOT NULL,
    provider text NOT NULL,
    from_number text NOT NULL,
    to_number text NOT NULL,
    reference integer NOT NULL,
    total smallint NOT NULL CHECK (total BETWEEN 2 AND 255),
    number smallint NOT NULL CHECK (number BETWEEN 1 AND 255),
    data_coding smallint,
    payload bytea,
    text text,
    provider_message_id text,
    received_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, provider, from_number, to_number, reference, total, number)
);
CREATE INDEX inbound_parts_received_idx ON inbound_parts (received_at);

-- Provider message ids of inbound messages already taken, so a provider retrying its
-- webhook stores nothing twice; purged after a week.
CREATE TABLE inbound_seen (
    provider text NOT NULL,
    provider_message_id text NOT NULL,
    seen_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, provider_message_id)
);
CREATE INDEX inbound_seen_at_idx ON inbound_seen (seen_at);

-- Partitions: inbound_messages joins the daily set.
CREATE OR REPLACE FUNCTION smsgw_ensure_partitions_v1(p_from date, p_days integer)
    RETURNS integer
    LANGUAGE plpgsql
AS $$
DECLARE
    day date;
    parent text;
    child text;
    options text;
    created integer := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('smsgw_ensure_partitions'));
    FOR day IN SELECT generate_series(p_from, p_from + p_days, interval '1 day')::date LOOP
        FOREACH parent IN ARRAY ARRAY[
            'messages', 'message_events', 'ledger_message_entries', 'callbacks',
            'inbound_messages'] LOOP
            child := parent || '_' || to_char(day, 'YYYYMMDD');
            options := CASE parent
                WHEN 'messages' THEN 'fillfactor = 85, autovacuum_vacuum_scale_factor = 0.02,'
                                     ' autovacuum_analyze_scale_factor = 0.05'
                WHEN 'callbacks' THEN 'fillfactor = 80, autovacuum_vacuum_scale_factor = 0.05'
                ELSE 'autovacuum_vacuum_insert_scale_factor = 0.05' END;
            IF to_regclass(quote_ident(child)) IS NULL THEN
                EXECUTE format(
                    'CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L) WITH (%s)',
                    child, parent,
                    (day::timestamp AT TIME ZONE 'UTC'),
                    ((day + 1)::timestamp AT TIME ZONE 'UTC'),
                    options);
                created := created + 1;
            END IF;
        END LOOP;
    END LOOP;
    RETURN created;
END;
$$;

-- Retention: as before, and inbound messages (no money in them) go with their day.
CREATE OR REPLACE FUNCTION smsgw_drop_partitions_v1(p_before date)
    RETURNS TABLE (day date, dropped boolean, detail text)
    LANGUAGE plpgsql
AS $$
DECLARE
    child record;
    suffix text;
    pending bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('smsgw_ensure_partitions'));
    FOR child IN
        SELECT c.relname, to_date(right(c.relname, 8), 'YYYYMMDD') AS d
          FROM pg_inherits i
          JOIN pg_class c ON c.oid = i.inhrelid
          JOIN pg_class p ON p.oid = i.inhparent
         WHERE p.relname = 'messages' AND c.relname ~ '^messages_[0-9]{8}$'
           AND to_date(right(c.relname, 8), 'YYYYMMDD') < p_before
         ORDER BY 2
    LOOP
        suffix := to_char(child.d, 'YYYYMMDD');
        EXECUTE format(
            'SELECT count(*) FROM %I WHERE status IN (''scheduled'', ''queued'', ''sending'')',
            'messages_' || suffix) INTO pending;
        IF pending > 0 THEN
            day := child.d; dropped := false;
            detail := pending || ' message(s) not settled yet';
            RETURN NEXT;
            CONTINUE;
        END IF;
        EXECUTE format(
            'INSERT INTO ledger_rollups AS r (tenant_id, day, holds, captures, releases)
             SELECT tenant_id, %L::date,
                    coalesce(sum(amount) FILTER (WHERE kind = ''hold''), 0),
                    coalesce(sum(amount) FILTER (WHERE kind = ''capture''), 0),
                    coalesce(sum(amount) FILTER (WHERE kind = ''release''), 0)
               FROM %I GROUP BY tenant_id
             ON CONFLICT (tenant_id, day) DO UPDATE
                SET holds = r.holds + excluded.holds,
                    captures = r.captures + excluded.captures,
                    releases = r.releases + excluded.releases',
            child.d, 'ledger_message_entries_' || suffix);
        EXECUTE format('DROP TABLE IF EXISTS %I, %I, %I',
            'messages_' || suffix, 'message_events_' || suffix,
            'ledger_message_entries_' || suffix);
        day := child.d; dropped := true; detail := 'dropped';
        RETURN NEXT;
    END LOOP;
    -- Callbacks and inbound messages are partitioned by their own day; they go with it.
    FOR child IN
        SELECT c.relname
          FROM pg_inherits i
          JOIN pg_class c ON c.oid = i.inhrelid
          JOIN pg_class p ON p.oid = i.inhparent
         WHERE p.relname IN ('callbacks', 'inbound_messages')
           AND c.relname ~ '^(callbacks|inbound_messages)_[0-9]{8}$'
           AND to_date(right(c.relname, 8), 'YYYYMMDD') < p_before
    LOOP
        EXECUTE format('DROP TABLE %I', child.relname);
    END LOOP;
END;
$$;

-- Status history and callbacks, as in 0002; a message made through the Twilio facade
-- gets a 'twilio_status' callback carrying what Twilio's format needs (to, from).
CREATE OR REPLACE FUNCTION smsgw_messages_changed_v1()
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

-- Accept, as smsgw_accept_v1, and inside the same call the opt-out rule: a message to a
-- recipient on the tenant's suppression list (for its sender, for every number, or
-- for any number when it names no sender) is refused and named in `opted_out`; the
-- others are held, inserted and dispatched. The total and the due time are those of
-- the messages accepted. `p_honour_opt_outs` false: an answer to HELP, which carriers
-- want answered even after a STOP. smsgw_accept_v1 stays for processes of the previous
-- release during a deploy (they do not see opt-outs).
CREATE FUNCTION smsgw_accept_v2(
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
                   ELSE least(p_rate, coalesce(b.ingest_tokens, p_rate)
                              + p_rate * extract(epoch FROM clock_timestamp()
                                                 - coalesce(b.ingest_at, clock_timestamp())))
                        - 1 END,
               ingest_at = CASE WHEN p_rate IS NULL THEN b.ingest_at ELSE clock_timestamp() END
         WHERE b.tenant_id = p_tenant_id AND b.available >= total
           AND (p_rate IS NULL
                OR least(p_rate, coalesce(b.ingest_tokens, p_rate)
                         + p_rate * extract(epoch FROM clock_timestamp()
                                            - coalesce(b.ingest_at, clock_timestamp()))) >= 1)
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
                    ELSE least(p_rate, coalesce(b.ingest_tokens, p_rate)
                               + p_rate * extract(epoch FROM clock_timestamp()
                                                  - coalesce(b.ingest_at, clock_timestamp())))
               END,
               refused
          FROM balances b WHERE b.tenant_id = p_tenant_id;
        RETURN;
    END IF;
    PERFORM smsgw_ensure_dispatch_v1(p_tenant_id, p_queue, p_task, due);
    RETURN QUERY SELECT n, NULL::bigint, NULL::double precision, refused;
END;
$$;
