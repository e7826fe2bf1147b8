-- 0003: upstream providers, the route table, and per-provider health shared by every
-- worker (circuit breaker, throttling, sends-per-second budget).

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
