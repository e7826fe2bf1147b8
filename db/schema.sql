-- smsgw: the whole current schema (procrastinate's own schema is applied beside it by
-- `smsgw migrate`). Forward-only migrations live in db/migrations/; a test checks that a
-- database built from them equals one built from this file. Functions carry a version
-- suffix so that old and new code can run side by side during a deploy.

CREATE TABLE smsgw_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tenants (
    id uuid PRIMARY KEY,
    name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    tier text NOT NULL DEFAULT 'standard' CHECK (tier IN ('vip', 'premium', 'standard')),
    -- NULL: unlimited. Caps accepted sends per second and paces dispatch.
    rate_limit_mps integer CHECK (rate_limit_mps > 0),
    -- Micro-units of `currency` (1,000,000 = 1 unit) per segment.
    price_per_segment bigint NOT NULL CHECK (price_per_segment >= 0),
    currency text NOT NULL DEFAULT 'USD' CHECK (currency ~ '^[A-Z]{3}$'),
    -- Kept in clear: it keys the HMAC of every status callback.
    webhook_secret text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- A key is shown once as `smsgw_<prefix>_<secret>`; only the SHA-256 of the secret is
-- kept. The prefix finds the row, the digest is compared in constant time by the caller.
CREATE TABLE api_keys (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    prefix text NOT NULL UNIQUE,
    secret_sha256 bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
CREATE INDEX api_keys_tenant_idx ON api_keys (tenant_id);

-- Running totals of the ledger, one row per tenant. Every money movement is a single
-- conditional UPDATE of this row plus an append to the ledger, in one transaction.
-- The row lock also orders a tenant's accepts against its dispatcher (see jobs/dispatch).
CREATE TABLE balances (
    tenant_id uuid PRIMARY KEY REFERENCES tenants (id),
    credits bigint NOT NULL DEFAULT 0 CHECK (credits >= 0),
    available bigint NOT NULL DEFAULT 0 CHECK (available >= 0),
    held bigint NOT NULL DEFAULT 0 CHECK (held >= 0),
    captured bigint NOT NULL DEFAULT 0 CHECK (captured >= 0),
    CHECK (credits = available + held + captured)
) WITH (fillfactor = 50);

-- The append-only ledger, in two tables: credits are few and need a unique reference per
-- tenant; message entries are many and live in daily partitions beside their messages.
CREATE TABLE ledger_credits (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    amount bigint NOT NULL CHECK (amount > 0),
    reference text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, reference)
);

-- `phase` makes the key (message, phase): a message is held at most once and settled at
-- most once, so a capture and a release of the same message cannot both exist.
CREATE TABLE ledger_message_entries (
    message_created_at timestamptz NOT NULL,
    message_id uuid NOT NULL,
    tenant_id uuid NOT NULL,
    kind text NOT NULL CHECK (kind IN ('hold', 'capture', 'release')),
    phase text NOT NULL GENERATED ALWAYS AS (
        CASE WHEN kind = 'hold' THEN 'hold' ELSE 'settle' END
    ) STORED,
    amount bigint NOT NULL CHECK (amount >= 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (message_created_at, message_id, phase)
) PARTITION BY RANGE (message_created_at);
CREATE INDEX ledger_message_entries_tenant_idx ON ledger_message_entries (tenant_id);

CREATE VIEW ledger AS
    SELECT tenant_id, 'credit'::text AS kind, amount, NULL::uuid AS message_id,
           reference, created_at
      FROM ledger_credits
    UNION ALL
    SELECT tenant_id, kind, amount, message_id, NULL::text AS reference, created_at
      FROM ledger_message_entries;

-- The durable queue. Message ids are UUIDv7: `created_at` is the millisecond inside the
-- id, so a lookup by id alone is pruned to one partition (core/ids.py).
CREATE TABLE messages (
    id uuid NOT NULL,
    created_at timestamptz NOT NULL,
    tenant_id uuid NOT NULL,
    status text NOT NULL CHECK (status IN (
        'scheduled', 'queued', 'sending', 'sent', 'delivered', 'undelivered',
        'failed', 'expired', 'canceled')),
    to_number text NOT NULL,
    sender text,
    body text NOT NULL,
    encoding text NOT NULL CHECK (encoding IN ('GSM-7', 'UCS-2')),
    segments smallint NOT NULL CHECK (segments BETWEEN 1 AND 10),
    price bigint NOT NULL CHECK (price >= 0),
    callback_url text,
    client_reference text,
    send_at timestamptz,
    expires_at timestamptz NOT NULL,
    -- When a scheduled or queued message is next due (send_at, or a retry's backoff).
    next_attempt_at timestamptz,
    -- While `sending`: when the claim lapses and the message goes back to the queue.
    lease_expires_at timestamptz,
    attempts smallint NOT NULL DEFAULT 0,
    provider text,
    provider_message_id text,
    error_code text,
    error_message text,
    updated_at timestamptz NOT NULL,
    sent_at timestamptz,
    delivered_at timestamptz,
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);
CREATE INDEX messages_tenant_created_idx ON messages (tenant_id, created_at DESC, id DESC);
CREATE INDEX messages_due_idx ON messages (tenant_id, next_attempt_at)
    WHERE status IN ('scheduled', 'queued');
CREATE INDEX messages_lease_idx ON messages (lease_expires_at) WHERE status = 'sending';
CREATE INDEX messages_provider_ref_idx ON messages (provider, provider_message_id)
    WHERE provider_message_id IS NOT NULL;

-- Every status a message takes, with when; partitioned like messages so they age out together.
CREATE TABLE message_events (
    message_created_at timestamptz NOT NULL,
    message_id uuid NOT NULL,
    tenant_id uuid NOT NULL,
    status text NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp(),
    error_code text
) PARTITION BY RANGE (message_created_at);
CREATE INDEX message_events_message_idx ON message_events (message_id, at);

-- The first 202 answer to a (tenant, Idempotency-Key), replayed for 24 h. The row is
-- inserted first in the accept transaction, so a concurrent duplicate blocks on the
-- unique key until the first commits (then replays) or rolls back (then proceeds).
CREATE TABLE idempotency_keys (
    tenant_id uuid NOT NULL,
    key text NOT NULL,
    request_sha256 bytea NOT NULL,
    response jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);

-- Receipts from every upstream (HTTP webhook, SMPP deliver_sm, the simulator) land here
-- first: a receipt may arrive before the submit response that names its message has
-- been stored, so it waits and is retried instead of being lost.
CREATE TABLE receipts_inbox (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    provider text NOT NULL,
    provider_message_id text NOT NULL,
    status text NOT NULL CHECK (status IN ('delivered', 'undelivered')),
    error_code text,
    occurred_at timestamptz NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    available_at timestamptz NOT NULL DEFAULT now(),
    attempts integer NOT NULL DEFAULT 0
);
CREATE INDEX receipts_inbox_due_idx ON receipts_inbox (available_at);

-- One row per status change of a message that has a callback_url. `next_attempt_at` is
-- NULL once the callback is delivered or abandoned; while a sender works on a row it is
-- pushed ahead by the lease, so a crashed sender's rows come back by themselves.
CREATE TABLE callbacks (
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    created_at timestamptz NOT NULL DEFAULT now(),
    tenant_id uuid NOT NULL,
    message_id uuid NOT NULL,
    url text NOT NULL,
    payload jsonb NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz DEFAULT now(),
    last_status_code integer,
    last_error text,
    delivered_at timestamptz,
    abandoned_at timestamptz,
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);
CREATE INDEX callbacks_due_idx ON callbacks (next_attempt_at) WHERE next_attempt_at IS NOT NULL;
CREATE INDEX callbacks_message_idx ON callbacks (message_id);

-- Daily partitions from `p_from` for `p_days` more days, for every partitioned table.
-- Boundaries are UTC midnights. Safe to run concurrently and repeatedly.
CREATE FUNCTION smsgw_ensure_partitions_v1(p_from date, p_days integer)
    RETURNS integer
    LANGUAGE plpgsql
AS $$
DECLARE
    day date;
    parent text;
    child text;
    created integer := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('smsgw_ensure_partitions'));
    FOR day IN SELECT generate_series(p_from, p_from + p_days, interval '1 day')::date LOOP
        FOREACH parent IN ARRAY ARRAY[
            'messages', 'message_events', 'ledger_message_entries', 'callbacks'] LOOP
            child := parent || '_' || to_char(day, 'YYYYMMDD');
            IF to_regclass(quote_ident(child)) IS NULL THEN
                EXECUTE format(
                    'CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                    child, parent,
                    (day::timestamp AT TIME ZONE 'UTC'),
                    ((day + 1)::timestamp AT TIME ZONE 'UTC'));
                created := created + 1;
            END IF;
        END LOOP;
    END LOOP;
    RETURN created;
END;
$$;

CREATE TABLE providers (
    name text PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,31}$'),
    kind text NOT NULL CHECK (kind IN ('simulator', 'http', 'smpp')),
    -- Adapter settings (URL, credentials, window...): see README, "Providers".
    config jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- Submits per second across all workers; NULL: no limit.
    mps integer CHECK (mps > 0),
    enabled boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Candidates for a message: enabled routes whose prefix starts its number and whose
-- tier is its tenant's (or NULL, any tier). The lowest priority wins, then the lowest
-- cost; a route whose provider is unhealthy is skipped for the next.
CREATE TABLE routes (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    prefix text NOT NULL DEFAULT '+' CHECK (prefix ~ '^\+[0-9]{0,15}$'),
    tier text CHECK (tier IN ('vip', 'premium', 'standard')),
    provider text NOT NULL REFERENCES providers (name) ON UPDATE CASCADE ON DELETE CASCADE,
    priority integer NOT NULL DEFAULT 100,
    cost_per_segment bigint NOT NULL DEFAULT 0 CHECK (cost_per_segment >= 0),
    enabled boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX routes_provider_idx ON routes (provider);

-- One row per provider that has been used. The breaker counts outcomes over a rolling
-- window; `throttled_until` is set when the upstream asks us to slow down; `tokens`
-- is a token bucket refilled at the provider's mps.
CREATE TABLE provider_health (
    provider text PRIMARY KEY,
    state text NOT NULL DEFAULT 'closed' CHECK (state IN ('closed', 'open', 'half_open')),
    window_started_at timestamptz NOT NULL DEFAULT now(),
    window_successes integer NOT NULL DEFAULT 0,
    window_failures integer NOT NULL DEFAULT 0,
    opened_at timestamptz,
    probes_granted integer NOT NULL DEFAULT 0,
    latency_ms double precision,
    throttled_until timestamptz,
    tokens double precision NOT NULL DEFAULT 0,
    tokens_at timestamptz NOT NULL DEFAULT now(),
    changed_at timestamptz NOT NULL DEFAULT now(),
    sent_total bigint NOT NULL DEFAULT 0,
    failed_total bigint NOT NULL DEFAULT 0
) WITH (fillfactor = 50);

-- Outcomes of one batch sent to a provider, and the breaker's transitions:
-- closed -> open when the window holds at least p_min_requests outcomes and the failure
-- share reaches p_error_rate; half_open -> closed on a success, -> open on a failure.
-- (open -> half_open happens in smsgw_provider_health_v1 when the cool-down is over.)
CREATE FUNCTION smsgw_record_outcomes_v1(
    p_provider text, p_successes integer, p_failures integer, p_latency_ms double precision,
    p_window_seconds double precision, p_min_requests integer, p_error_rate double precision,
    p_throttle_seconds double precision)
    RETURNS TABLE (old_state text, new_state text)
    LANGUAGE plpgsql
AS $$
DECLARE
    h provider_health;
    successes integer;
    failures integer;
    next_state text;
BEGIN
    INSERT INTO provider_health (provider) VALUES (p_provider) ON CONFLICT DO NOTHING;
    SELECT * INTO h FROM provider_health WHERE provider = p_provider FOR UPDATE;
    IF h.window_started_at < now() - make_interval(secs => p_window_seconds) THEN
        successes := p_successes;
        failures := p_failures;
        h.window_started_at := now();
    ELSE
        successes := h.window_successes + p_successes;
        failures := h.window_failures + p_failures;
    END IF;
    next_state := h.state;
    IF h.state = 'closed' AND successes + failures >= p_min_requests
       AND failures::double precision / (successes + failures) >= p_error_rate THEN
        next_state := 'open';
    ELSIF h.state = 'half_open' AND p_failures > 0 THEN
        next_state := 'open';
    ELSIF h.state = 'half_open' AND p_successes > 0 THEN
        next_state := 'closed';
    END IF;
    UPDATE provider_health
       SET state = next_state,
           window_started_at = CASE WHEN next_state <> h.state THEN now()
                                    ELSE h.window_started_at END,
           window_successes = CASE WHEN next_state <> h.state THEN 0 ELSE successes END,
           window_failures = CASE WHEN next_state <> h.state THEN 0 ELSE failures END,
           opened_at = CASE WHEN next_state = 'open' AND h.state <> 'open' THEN now()
                            ELSE h.opened_at END,
           probes_granted = CASE WHEN next_state <> h.state THEN 0 ELSE h.probes_granted END,
           latency_ms = CASE WHEN p_latency_ms IS NULL THEN h.latency_ms
                             WHEN h.latency_ms IS NULL THEN p_latency_ms
                             ELSE 0.8 * h.latency_ms + 0.2 * p_latency_ms END,
           throttled_until = CASE WHEN p_throttle_seconds > 0
                                  THEN greatest(coalesce(h.throttled_until, now()),
                                                now() + make_interval(secs => p_throttle_seconds))
                                  ELSE h.throttled_until END,
           changed_at = CASE WHEN next_state <> h.state THEN now() ELSE h.changed_at END,
           sent_total = h.sent_total + p_successes,
           failed_total = h.failed_total + p_failures
     WHERE provider = p_provider;
    RETURN QUERY SELECT h.state, next_state;
END;
$$;

-- The health of every provider as a dispatcher sees it, moving breakers whose cool-down
-- is over to half_open first.
CREATE FUNCTION smsgw_provider_health_v1(p_cooldown_seconds double precision)
    RETURNS SETOF provider_health
    LANGUAGE plpgsql
AS $$
BEGIN
    UPDATE provider_health
       SET state = 'half_open', probes_granted = 0, changed_at = now()
     WHERE state = 'open' AND opened_at < now() - make_interval(secs => p_cooldown_seconds);
    RETURN QUERY SELECT * FROM provider_health;
END;
$$;

-- Permission to send `p_wanted` messages now: probes while half-open, and the
-- sends-per-second budget (a token bucket holding at most one second of sends).
CREATE FUNCTION smsgw_take_sends_v1(
    p_provider text, p_wanted integer, p_mps double precision, p_probes integer)
    RETURNS integer
    LANGUAGE plpgsql
AS $$
DECLARE
    h provider_health;
    allowed integer := p_wanted;
    refilled double precision;
BEGIN
    INSERT INTO provider_health (provider, tokens) VALUES (p_provider, coalesce(p_mps, 0))
    ON CONFLICT DO NOTHING;
    SELECT * INTO h FROM provider_health WHERE provider = p_provider FOR UPDATE;
    IF h.state = 'open' THEN
        RETURN 0;
    END IF;
    IF h.state = 'half_open' THEN
        allowed := least(allowed, greatest(0, p_probes - h.probes_granted));
    END IF;
    IF p_mps IS NOT NULL THEN
        refilled := least(p_mps, h.tokens
                          + p_mps * extract(epoch FROM clock_timestamp() - h.tokens_at));
        allowed := least(allowed, floor(refilled)::integer);
        UPDATE provider_health
           SET tokens = refilled - allowed, tokens_at = clock_timestamp()
         WHERE provider = p_provider;
    END IF;
    IF h.state = 'half_open' AND allowed > 0 THEN
        UPDATE provider_health SET probes_granted = probes_granted + allowed
         WHERE provider = p_provider;
    END IF;
    RETURN allowed;
END;
$$;

-- Status history and callbacks are written by triggers, so that no code path (nor an
-- operator's manual UPDATE) can change a status without leaving its trace. They are
-- statement-level with transition tables: one set-based INSERT per statement, however
-- many messages it touched.
CREATE FUNCTION smsgw_messages_inserted_v1()
    RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    INSERT INTO message_events (message_created_at, message_id, tenant_id, status, at)
    SELECT n.created_at, n.id, n.tenant_id, n.status, n.created_at FROM new_rows n;
    RETURN NULL;
END;
$$;

CREATE FUNCTION smsgw_messages_changed_v1()
    RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    WITH changes AS (
        -- A scheduled message claimed for sending passes through `queued` at its send_at.
        SELECT n.created_at, n.id, n.tenant_id, 'queued' AS status,
               coalesce(o.next_attempt_at, n.updated_at) AS at, NULL::text AS error_code,
               n.callback_url, n.segments, n.price, n.client_reference, 0 AS step
          FROM new_rows n JOIN old_rows o ON o.created_at = n.created_at AND o.id = n.id
         WHERE o.status = 'scheduled' AND n.status = 'sending'
        UNION ALL
        SELECT n.created_at, n.id, n.tenant_id, n.status, n.updated_at,
               -- The error explains a retry or an end; `sending` and `sent` carry none.
               CASE WHEN n.status IN ('queued', 'failed', 'expired', 'undelivered')
                    THEN n.error_code END,
               n.callback_url, n.segments, n.price, n.client_reference, 1 AS step
          FROM new_rows n JOIN old_rows o ON o.created_at = n.created_at AND o.id = n.id
         WHERE n.status <> o.status
    ), events AS (
        INSERT INTO message_events
            (message_created_at, message_id, tenant_id, status, at, error_code)
        SELECT created_at, id, tenant_id, status, at, error_code FROM changes
    )
    -- Tenants hear of every change after acceptance, one callback each.
    INSERT INTO callbacks (tenant_id, message_id, url, payload)
    SELECT tenant_id, id, callback_url,
           jsonb_build_object(
               'id', id, 'status', status, 'error_code', error_code,
               'segments', segments, 'price', price, 'client_reference', client_reference,
               'timestamp', to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
      FROM changes
     WHERE callback_url IS NOT NULL
     ORDER BY id, at, step;
    RETURN NULL;
END;
$$;

CREATE TRIGGER messages_inserted AFTER INSERT ON messages
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION smsgw_messages_inserted_v1();
CREATE TRIGGER messages_changed AFTER UPDATE ON messages
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION smsgw_messages_changed_v1();

-- The ledger invariant. Returns one row per violation; an empty result means, for every
-- tenant, credits = available + held + captured and the totals equal the ledger's sums,
-- and every message is held once, at its price, and settled as its status requires:
-- captured when sent/delivered/undelivered, released when failed/expired/canceled,
-- not yet settled otherwise.
CREATE FUNCTION smsgw_ledger_violations_v1()
    RETURNS TABLE (tenant_id uuid, message_id uuid, problem text)
    LANGUAGE sql STABLE
AS $$
    WITH entry_totals AS (
        SELECT e.tenant_id,
               sum(e.amount) FILTER (WHERE e.kind = 'hold') AS holds,
               sum(e.amount) FILTER (WHERE e.kind = 'capture') AS captures,
               sum(e.amount) FILTER (WHERE e.kind = 'release') AS releases
          FROM ledger_message_entries e GROUP BY e.tenant_id
    ), credit_totals AS (
        SELECT c.tenant_id, sum(c.amount) AS credits FROM ledger_credits c GROUP BY c.tenant_id
    ), tenant_checks AS (
        SELECT b.tenant_id,
               b.credits <> b.available + b.held + b.captured AS unbalanced,
               b.credits <> coalesce(ct.credits, 0) AS credits_off,
               b.held <> coalesce(et.holds, 0) - coalesce(et.captures, 0)
                         - coalesce(et.releases, 0) AS held_off,
               b.captured <> coalesce(et.captures, 0) AS captured_off
          FROM balances b
          LEFT JOIN credit_totals ct ON ct.tenant_id = b.tenant_id
          LEFT JOIN entry_totals et ON et.tenant_id = b.tenant_id
    ), per_message AS (
        SELECT m.tenant_id, m.id, m.status, m.price,
               count(e.*) FILTER (WHERE e.kind = 'hold') AS holds,
               sum(e.amount) FILTER (WHERE e.kind = 'hold') AS held_amount,
               count(e.*) FILTER (WHERE e.kind = 'capture') AS captures,
               count(e.*) FILTER (WHERE e.kind = 'release') AS releases,
               sum(e.amount) FILTER (WHERE e.kind <> 'hold') AS settled_amount
          FROM messages m
          LEFT JOIN ledger_message_entries e
                 ON e.message_created_at = m.created_at AND e.message_id = m.id
         GROUP BY m.tenant_id, m.id, m.status, m.price
    )
    SELECT tenant_id, NULL::uuid, 'credits <> available + held + captured'
      FROM tenant_checks WHERE unbalanced
    UNION ALL
    SELECT tenant_id, NULL::uuid, 'credits differ from the sum of credit entries'
      FROM tenant_checks WHERE credits_off
    UNION ALL
    SELECT tenant_id, NULL::uuid, 'held differs from holds minus settlements'
      FROM tenant_checks WHERE held_off
    UNION ALL
    SELECT tenant_id, NULL::uuid, 'captured differs from the sum of captures'
      FROM tenant_checks WHERE captured_off
    UNION ALL
    SELECT tenant_id, id, 'message not held exactly once at its price'
      FROM per_message WHERE holds <> 1 OR held_amount <> price
    UNION ALL
    SELECT tenant_id, id, 'settlement amount differs from the hold'
      FROM per_message WHERE settled_amount IS NOT NULL AND settled_amount <> held_amount
    UNION ALL
    SELECT tenant_id, id, 'status ' || status || ' but hold '
           || CASE WHEN captures > 0 THEN 'captured'
                   WHEN releases > 0 THEN 'released' ELSE 'unsettled' END
      FROM per_message
     WHERE (status IN ('sent', 'delivered', 'undelivered') AND (captures <> 1 OR releases <> 0))
        OR (status IN ('failed', 'expired', 'canceled') AND (releases <> 1 OR captures <> 0))
        OR (status IN ('scheduled', 'queued', 'sending') AND captures + releases <> 0)
    UNION ALL
    SELECT e.tenant_id, e.message_id, 'ledger entry without a message'
      FROM ledger_message_entries e
     WHERE NOT EXISTS (SELECT 1 FROM messages m
                        WHERE m.created_at = e.message_created_at AND m.id = e.message_id)
       AND e.kind = 'hold';
$$;

INSERT INTO smsgw_migrations (version, name) VALUES
    (1, 'initial'), (2, 'delivery'), (3, 'providers');
