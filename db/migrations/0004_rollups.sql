-- 0004: hourly rollups of messages (issue 27), folded by a periodic job from closed
-- hours, read by reports over windows of up to 13 months; they outlive raw messages.

-- Hourly rollups of messages (issue 27): what reports over long windows read instead of
-- raw messages, kept for 13 months while raw messages go after SMSGW_RETENTION_DAYS.
-- One row per (hour of created_at, tenant, destination country, provider, status), folded
-- from the hour's messages by a periodic job (smsgw_fold_rollup_hour_v1), never by the
-- status trigger: the hot path pays nothing for them.
--
-- `price` and `cost` are sums over the row's messages (micro-units of the tenant's
-- currency; cost 0 where none was kept): revenue is the price of the captured statuses
-- (sent, delivered, undelivered), as in the ledger. The status is a dimension, so the
-- delivered and undelivered counts are the `messages` of those rows.
-- Latencies are counts per bucket of milliseconds (bounds in smsgw_rollup_bounds_v1():
-- bucket i counts values below bound i and at or above bound i-1; the last bucket is
-- the rest): accept to sent (sent_at - created_at) and sent to delivered
-- (delivered_at - sent_at), enough for p50 and p95 per group of rows.
CREATE TABLE message_rollups (
    hour timestamptz NOT NULL,
    tenant_id uuid NOT NULL,
    country text NOT NULL,
    provider text NOT NULL,
    status text NOT NULL,
    messages bigint NOT NULL,
    segments bigint NOT NULL,
    price bigint NOT NULL,
    cost bigint NOT NULL,
    sent_latency bigint[] NOT NULL,
    delivery_latency bigint[] NOT NULL,
    PRIMARY KEY (hour, tenant_id, country, provider, status)
);
CREATE INDEX message_rollups_tenant_idx ON message_rollups (tenant_id, hour);

-- Which hours are folded. An hour is folded when it closes and again every refresh
-- while its messages may still change; `final` once it is older than the settle time
-- and none of its messages is scheduled, queued or sending: a final hour is never folded
-- again, so rollups stay when retention drops its raw messages.
CREATE TABLE rollup_hours (
    hour timestamptz PRIMARY KEY,
    folded_at timestamptz NOT NULL,
    final boolean NOT NULL,
    messages bigint NOT NULL
);

-- Upper bounds (ms) of the latency buckets; a rollup array has one more element.
CREATE FUNCTION smsgw_rollup_bounds_v1()
    RETURNS integer[]
    LANGUAGE sql IMMUTABLE
AS $$
    SELECT '{100,250,500,1000,2000,5000,10000,30000,60000,300000,1800000}'::integer[]
$$;

-- Fold one hour: its rollup rows are replaced by a recomputation from its messages, in
-- the caller's transaction (one per hour: a fold killed midway leaves the hour as it
-- was). Folds of the same hour queue on an advisory lock. An hour whose messages
-- partition is gone (retention) keeps its rows and is marked final. Returns whether the
-- hour is final now.
CREATE FUNCTION smsgw_fold_rollup_hour_v1(p_hour timestamptz, p_settled boolean)
    RETURNS boolean
    LANGUAGE plpgsql
AS $$
DECLARE
    pending bigint;
    total bigint;
    bounds double precision[] := smsgw_rollup_bounds_v1()::double precision[];
BEGIN
    IF p_hour <> date_trunc('hour', p_hour, 'UTC') THEN
        RAISE EXCEPTION 'not an hour: %', p_hour;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('smsgw_rollup'), hashtext(p_hour::text));
    IF to_regclass(format('messages_%s', to_char(p_hour AT TIME ZONE 'UTC', 'YYYYMMDD')))
       IS NULL THEN
        INSERT INTO rollup_hours AS r (hour, folded_at, final, messages)
        VALUES (p_hour, now(), true,
                coalesce((SELECT sum(messages) FROM message_rollups WHERE hour = p_hour), 0))
        ON CONFLICT (hour) DO UPDATE SET final = true;
        RETURN true;
    END IF;
    DELETE FROM message_rollups WHERE hour = p_hour;
    WITH placed AS (
        SELECT m.tenant_id, m.status, m.segments, m.price, coalesce(m.cost, 0) AS cost,
               coalesce(m.provider, '') AS provider,
               coalesce(p8.country, p7.country, p6.country, p5.country, p4.country,
                        p3.country, p2.country, 'ZZ') AS country,
               CASE WHEN m.sent_at IS NOT NULL THEN width_bucket(
                   extract(epoch FROM m.sent_at - m.created_at)::double precision * 1000, bounds) END AS sb,
               CASE WHEN m.delivered_at IS NOT NULL AND m.sent_at IS NOT NULL
                    THEN width_bucket(
                   extract(epoch FROM m.delivered_at - m.sent_at)::double precision * 1000,
                   bounds) END AS db
          FROM messages m
          LEFT JOIN dialing_prefixes p8 ON p8.prefix = left(m.to_number, 8)
          LEFT JOIN dialing_prefixes p7 ON p7.prefix = left(m.to_number, 7)
          LEFT JOIN dialing_prefixes p6 ON p6.prefix = left(m.to_number, 6)
          LEFT JOIN dialing_prefixes p5 ON p5.prefix = left(m.to_number, 5)
          LEFT JOIN dialing_prefixes p4 ON p4.prefix = left(m.to_number, 4)
          LEFT JOIN dialing_prefixes p3 ON p3.prefix = left(m.to_number, 3)
          LEFT JOIN dialing_prefixes p2 ON p2.prefix = left(m.to_number, 2)
         WHERE m.created_at >= p_hour AND m.created_at < p_hour + interval '1 hour'
    ), folded AS (
        INSERT INTO message_rollups (hour, tenant_id, country, provider, status, messages,
                                     segments, price, cost, sent_latency, delivery_latency)
        SELECT p_hour, tenant_id, country, provider, status, count(*), sum(segments),
               sum(price), sum(cost),
               ARRAY[count(*) FILTER (WHERE sb = 0), count(*) FILTER (WHERE sb = 1),
                     count(*) FILTER (WHERE sb = 2), count(*) FILTER (WHERE sb = 3),
                     count(*) FILTER (WHERE sb = 4), count(*) FILTER (WHERE sb = 5),
                     count(*) FILTER (WHERE sb = 6), count(*) FILTER (WHERE sb = 7),
                     count(*) FILTER (WHERE sb = 8), count(*) FILTER (WHERE sb = 9),
                     count(*) FILTER (WHERE sb = 10), count(*) FILTER (WHERE sb = 11)],
               ARRAY[count(*) FILTER (WHERE db = 0), count(*) FILTER (WHERE db = 1),
                     count(*) FILTER (WHERE db = 2), count(*) FILTER (WHERE db = 3),
                     count(*) FILTER (WHERE db = 4), count(*) FILTER (WHERE db = 5),
                     count(*) FILTER (WHERE db = 6), count(*) FILTER (WHERE db = 7),
                     count(*) FILTER (WHERE db = 8), count(*) FILTER (WHERE db = 9),
                     count(*) FILTER (WHERE db = 10), count(*) FILTER (WHERE db = 11)]
          FROM placed
         GROUP BY tenant_id, country, provider, status
        RETURNING status, messages
    )
    SELECT coalesce(sum(messages), 0),
           coalesce(sum(messages) FILTER (WHERE status IN ('scheduled', 'queued', 'sending')),
                    0)
      INTO total, pending
      FROM folded;
    INSERT INTO rollup_hours AS r (hour, folded_at, final, messages)
    VALUES (p_hour, now(), p_settled AND pending = 0, total)
    ON CONFLICT (hour) DO UPDATE
        SET folded_at = excluded.folded_at, final = excluded.final,
            messages = excluded.messages;
    RETURN p_settled AND pending = 0;
END;
$$;

-- What reports read: the rollup rows of the folded hours in [p_starts, p_ends) and, after
-- the last folded hour, the raw messages (one row each), in the same shape; of one
-- tenant, or of all when p_tenant_id is NULL. Raw rows carry no latency buckets (NULL):
-- bucketing every row of the tail cost more than the rest of a report, so latency
-- quantiles come from folded hours only. Inlined into the calling query (plain
-- SQL, STABLE), so its filters reach the rollups' index and the messages' partitions.
-- p_starts is a whole hour (the caller aligns the window).
CREATE FUNCTION smsgw_usage_v1(p_starts timestamptz, p_ends timestamptz, p_tenant_id uuid)
    RETURNS TABLE (hour timestamptz, tenant_id uuid, country text, provider text,
                   status text, messages bigint, segments bigint, price bigint,
                   cost bigint, sent_latency bigint[], delivery_latency bigint[])
    LANGUAGE sql STABLE
AS $$
    SELECT r.hour, r.tenant_id, r.country, r.provider, r.status, r.messages, r.segments,
           r.price, r.cost, r.sent_latency, r.delivery_latency
      FROM message_rollups r
     WHERE r.hour >= p_starts
       AND r.hour < least(p_ends,
                          coalesce((SELECT max(h.hour) + interval '1 hour' FROM rollup_hours h),
                                   '-infinity'))
       AND (p_tenant_id IS NULL OR r.tenant_id = p_tenant_id)
    UNION ALL
    SELECT date_trunc('hour', m.created_at, 'UTC'), m.tenant_id,
           coalesce(p8.country, p7.country, p6.country, p5.country, p4.country,
                    p3.country, p2.country, 'ZZ'),
           coalesce(m.provider, ''), m.status, 1, m.segments, m.price, coalesce(m.cost, 0),
           NULL::bigint[], NULL::bigint[]
      FROM messages m
      LEFT JOIN dialing_prefixes p8 ON p8.prefix = left(m.to_number, 8)
      LEFT JOIN dialing_prefixes p7 ON p7.prefix = left(m.to_number, 7)
      LEFT JOIN dialing_prefixes p6 ON p6.prefix = left(m.to_number, 6)
      LEFT JOIN dialing_prefixes p5 ON p5.prefix = left(m.to_number, 5)
      LEFT JOIN dialing_prefixes p4 ON p4.prefix = left(m.to_number, 4)
      LEFT JOIN dialing_prefixes p3 ON p3.prefix = left(m.to_number, 3)
      LEFT JOIN dialing_prefixes p2 ON p2.prefix = left(m.to_number, 2)
     WHERE m.created_at >= greatest(
               p_starts,
               coalesce((SELECT max(h.hour) + interval '1 hour' FROM rollup_hours h),
                        '-infinity'))
       AND m.created_at < p_ends
       AND (p_tenant_id IS NULL OR m.tenant_id = p_tenant_id)
$$;

-- Deliverability alerts (core/deliverability.py): per (country, provider), the delivery
-- rate of the last closed hour against the 7 days before it, as last judged every 15
-- minutes; /metrics exports it (smsgw_delivery_rate, smsgw_delivery_alert).
CREATE TABLE delivery_alerts (
    country text NOT NULL,
    provider text NOT NULL,
    evaluated_at timestamptz NOT NULL,
    -- Messages whose fate is known (delivered, undelivered, failed, expired), and the
    -- share delivered of them; the rate is NULL while none is known.
    hour_known bigint NOT NULL,
    hour_rate double precision,
    week_known bigint NOT NULL,
    week_rate double precision,
    firing boolean NOT NULL,
    -- When the current alert began (NULL when not firing).
    since timestamptz,
    PRIMARY KEY (country, provider)
);

-- The operator's alert log: what the gateway noticed and when (an alert firing or
-- resolving), newest read first (GET /v1/admin/events).
CREATE TABLE operator_events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    kind text NOT NULL,
    detail jsonb NOT NULL
);
CREATE INDEX operator_events_at_idx ON operator_events (at);
