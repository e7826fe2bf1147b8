-- 0010: daily rollups
-- (issue 27), so that a report over 30 days at 100M messages a day reads tens of
-- thousands of rows, not the 216M hourly rows of those days.

-- Daily cubes: the sums of the hourly rollups (message_rollups) of each UTC day, each
-- cut along the dimensions one family of reports groups by (and the two cross-tenant
-- cuts per hour too, for a window's partial days). A cube row of day D is the
-- sum of the hourly rows of D present now, always: a statement-level trigger on
-- message_rollups adds what a fold inserts and subtracts what it deletes, in the fold's
-- own transaction (whatever writes hourly rows, an older release's fold included). So
-- a day's cubes exist from its first folded hour on, also while late receipts and
-- scheduled sends keep its hours open for days, and are as exact as the hourly rows.
--
-- A tenant's own reports (by day, status, provider, country): one row per (day, tenant,
-- country, provider, status), read through the tenant's key.
CREATE TABLE daily_rollups (
    day date NOT NULL,
    tenant_id uuid NOT NULL,
    country text NOT NULL,
    provider text NOT NULL,
    status text NOT NULL,
    messages bigint NOT NULL,
    segments bigint NOT NULL,
    price bigint NOT NULL,
    cost bigint NOT NULL,
    PRIMARY KEY (tenant_id, day, country, provider, status)
);
-- Retention drops whole days; rows arrive in day order, so a BRIN index finds them.
CREATE INDEX daily_rollups_day_idx ON daily_rollups USING brin (day);

-- Operators' reports by tenant (usage, top tenants, spend, margin, billing): one row per
-- (day, tenant). `captured` and `captured_segments` count the captured statuses (sent,
-- delivered, undelivered), `revenue` and `cost` are their price and cost, as in the
-- ledger; `messages` and `segments` count every status.
CREATE TABLE daily_tenant_rollups (
    day date NOT NULL,
    tenant_id uuid NOT NULL,
    messages bigint NOT NULL,
    segments bigint NOT NULL,
    captured bigint NOT NULL,
    captured_segments bigint NOT NULL,
    revenue bigint NOT NULL,
    cost bigint NOT NULL,
    PRIMARY KEY (day, tenant_id)
);

-- Operators' reports by country, provider or status, and deliverability: one row per
-- (day, country, provider, status, currency: the tenant's, as money is never added
-- across currencies), with the latency buckets.
CREATE TABLE daily_route_rollups (
    day date NOT NULL,
    country text NOT NULL,
    provider text NOT NULL,
    status text NOT NULL,
    currency text NOT NULL,
    messages bigint NOT NULL,
    segments bigint NOT NULL,
    price bigint NOT NULL,
    cost bigint NOT NULL,
    sent_latency bigint[] NOT NULL,
    delivery_latency bigint[] NOT NULL,
    PRIMARY KEY (day, country, provider, status, currency)
);

-- The same two cuts per hour, for a window's partial days at either edge and reports by
-- hour across tenants: an edge hour reads 20,000 tenant rows, not 300,000 hourly rows.
CREATE TABLE hourly_tenant_rollups (
    hour timestamptz NOT NULL,
    tenant_id uuid NOT NULL,
    messages bigint NOT NULL,
    segments bigint NOT NULL,
    captured bigint NOT NULL,
    captured_segments bigint NOT NULL,
    revenue bigint NOT NULL,
    cost bigint NOT NULL,
    PRIMARY KEY (hour, tenant_id)
);
CREATE TABLE hourly_route_rollups (
    hour timestamptz NOT NULL,
    country text NOT NULL,
    provider text NOT NULL,
    status text NOT NULL,
    currency text NOT NULL,
    messages bigint NOT NULL,
    segments bigint NOT NULL,
    price bigint NOT NULL,
    cost bigint NOT NULL,
    sent_latency bigint[] NOT NULL,
    delivery_latency bigint[] NOT NULL,
    PRIMARY KEY (hour, country, provider, status, currency)
);

-- Two bucket arrays added element by element.
CREATE FUNCTION smsgw_add_buckets_v1(a bigint[], b bigint[])
    RETURNS bigint[]
    LANGUAGE sql IMMUTABLE STRICT
AS $$
    SELECT array_agg(x + y ORDER BY i) FROM unnest(a, b) WITH ORDINALITY AS u (x, y, i)
$$;

-- Apply a change of message_rollups to the cubes: `changes` (a query over the trigger's
-- transition tables, each row with its sign) grouped per cube key and added; rows left
-- with no message are deleted. Retention sets smsgw.rollup_retention for its
-- transaction and drops the cubes' periods itself (no subtraction of a whole day).
CREATE FUNCTION smsgw_rollups_to_days_v1()
    RETURNS trigger
    LANGUAGE plpgsql
AS $$
DECLARE
    changes text;
    -- %1$s the changes, %2$I the cube, %3$I its period column, %4$s the period of c.
    tenants text := $q$
        WITH c AS (%1$s)
        INSERT INTO %2$I AS d (%3$I, tenant_id, messages, segments, captured,
                               captured_segments, revenue, cost)
        SELECT %4$s, c.tenant_id, sum(c.sign * c.messages), sum(c.sign * c.segments),
               coalesce(sum(c.sign * c.messages) FILTER (WHERE c.captured), 0),
               coalesce(sum(c.sign * c.segments) FILTER (WHERE c.captured), 0),
               coalesce(sum(c.sign * c.price) FILTER (WHERE c.captured), 0),
               coalesce(sum(c.sign * c.cost) FILTER (WHERE c.captured), 0)
          FROM (SELECT *, status IN ('sent', 'delivered', 'undelivered') AS captured
                  FROM c) c
         GROUP BY 1, 2
        ON CONFLICT (%3$I, tenant_id) DO UPDATE
           SET messages = d.messages + excluded.messages,
               segments = d.segments + excluded.segments,
               captured = d.captured + excluded.captured,
               captured_segments = d.captured_segments + excluded.captured_segments,
               revenue = d.revenue + excluded.revenue, cost = d.cost + excluded.cost
        $q$;
    routes text := $q$
        WITH c AS (%1$s)
        INSERT INTO %2$I AS d (%3$I, country, provider, status, currency, messages, segments,
                               price, cost, sent_latency, delivery_latency)
        SELECT %4$s, c.country, c.provider, c.status, t.currency, sum(c.sign * c.messages),
               sum(c.sign * c.segments), sum(c.sign * c.price), sum(c.sign * c.cost),
               ARRAY[sum(c.sign * c.sent_latency[1]), sum(c.sign * c.sent_latency[2]),
                     sum(c.sign * c.sent_latency[3]), sum(c.sign * c.sent_latency[4]),
                     sum(c.sign * c.sent_latency[5]), sum(c.sign * c.sent_latency[6]),
                     sum(c.sign * c.sent_latency[7]), sum(c.sign * c.sent_latency[8]),
                     sum(c.sign * c.sent_latency[9]), sum(c.sign * c.sent_latency[10]),
                     sum(c.sign * c.sent_latency[11]), sum(c.sign * c.sent_latency[12])]
                   ::bigint[],
               ARRAY[sum(c.sign * c.delivery_latency[1]), sum(c.sign * c.delivery_latency[2]),
                     sum(c.sign * c.delivery_latency[3]), sum(c.sign * c.delivery_latency[4]),
                     sum(c.sign * c.delivery_latency[5]), sum(c.sign * c.delivery_latency[6]),
                     sum(c.sign * c.delivery_latency[7]), sum(c.sign * c.delivery_latency[8]),
                     sum(c.sign * c.delivery_latency[9]),
                     sum(c.sign * c.delivery_latency[10]),
                     sum(c.sign * c.delivery_latency[11]),
                     sum(c.sign * c.delivery_latency[12])]::bigint[]
          FROM c JOIN tenants t ON t.id = c.tenant_id
         GROUP BY 1, 2, 3, 4, 5
        ON CONFLICT (%3$I, country, provider, status, currency) DO UPDATE
           SET messages = d.messages + excluded.messages,
               segments = d.segments + excluded.segments,
               price = d.price + excluded.price, cost = d.cost + excluded.cost,
               sent_latency = smsgw_add_buckets_v1(d.sent_latency, excluded.sent_latency),
               delivery_latency = smsgw_add_buckets_v1(d.delivery_latency,
                                                       excluded.delivery_latency)
        $q$;
    emptied text := $q$
        WITH c AS (%1$s)
        DELETE FROM %2$I d USING (SELECT DISTINCT %4$s AS period FROM c) k
         WHERE d.%3$I = k.period AND d.messages = 0
        $q$;
    day text := $q$(c.hour AT TIME ZONE 'UTC')::date$q$;
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('smsgw.rollup_retention', true) = 'on' THEN
        RETURN NULL;
    END IF;
    changes := CASE TG_OP
        WHEN 'INSERT' THEN 'SELECT 1::bigint AS sign, * FROM added'
        WHEN 'DELETE' THEN 'SELECT -1::bigint AS sign, * FROM gone'
        ELSE 'SELECT -1::bigint AS sign, * FROM gone UNION ALL SELECT 1::bigint, * FROM added'
    END;
    EXECUTE format($q$
        WITH c AS (%s)
        INSERT INTO daily_rollups AS d (day, tenant_id, country, provider, status, messages,
                                        segments, price, cost)
        SELECT (c.hour AT TIME ZONE 'UTC')::date, c.tenant_id, c.country, c.provider,
               c.status, sum(c.sign * c.messages), sum(c.sign * c.segments),
               sum(c.sign * c.price), sum(c.sign * c.cost)
          FROM c
         GROUP BY 1, 2, 3, 4, 5
        ON CONFLICT (tenant_id, day, country, provider, status) DO UPDATE
           SET messages = d.messages + excluded.messages,
               segments = d.segments + excluded.segments,
               price = d.price + excluded.price, cost = d.cost + excluded.cost
        $q$, changes);
    EXECUTE format(tenants, changes, 'daily_tenant_rollups', 'day', day);
    EXECUTE format(tenants, changes, 'hourly_tenant_rollups', 'hour', 'c.hour');
    EXECUTE format(routes, changes, 'daily_route_rollups', 'day', day);
    EXECUTE format(routes, changes, 'hourly_route_rollups', 'hour', 'c.hour');
    IF TG_OP <> 'INSERT' THEN
        -- Only a subtraction can leave a row with no message.
        EXECUTE format($q$
            WITH c AS (%s)
            DELETE FROM daily_rollups d
             USING (SELECT DISTINCT (hour AT TIME ZONE 'UTC')::date AS day, tenant_id,
                           country, provider, status FROM c) k
             WHERE d.messages = 0 AND d.tenant_id = k.tenant_id AND d.day = k.day
               AND d.country = k.country AND d.provider = k.provider
               AND d.status = k.status
            $q$, changes);
        EXECUTE format(emptied, changes, 'daily_tenant_rollups', 'day', day);
        EXECUTE format(emptied, changes, 'hourly_tenant_rollups', 'hour', 'c.hour');
        EXECUTE format(emptied, changes, 'daily_route_rollups', 'day', day);
        EXECUTE format(emptied, changes, 'hourly_route_rollups', 'hour', 'c.hour');
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER message_rollups_to_days_inserted
    AFTER INSERT ON message_rollups REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION smsgw_rollups_to_days_v1();
CREATE TRIGGER message_rollups_to_days_updated
    AFTER UPDATE ON message_rollups REFERENCING OLD TABLE AS gone NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION smsgw_rollups_to_days_v1();
CREATE TRIGGER message_rollups_to_days_deleted
    AFTER DELETE ON message_rollups REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION smsgw_rollups_to_days_v1();

-- The cubes of the hourly rollups folded before this migration.
INSERT INTO daily_rollups (day, tenant_id, country, provider, status, messages, segments,
                           price, cost)
SELECT (hour AT TIME ZONE 'UTC')::date, tenant_id, country, provider, status, sum(messages),
       sum(segments), sum(price), sum(cost)
  FROM message_rollups
 GROUP BY 1, 2, 3, 4, 5;
INSERT INTO daily_tenant_rollups (day, tenant_id, messages, segments, captured,
                                  captured_segments, revenue, cost)
SELECT day, tenant_id, sum(messages), sum(segments),
       coalesce(sum(messages) FILTER (WHERE captured), 0),
       coalesce(sum(segments) FILTER (WHERE captured), 0),
       coalesce(sum(price) FILTER (WHERE captured), 0),
       coalesce(sum(cost) FILTER (WHERE captured), 0)
  FROM (SELECT *, status IN ('sent', 'delivered', 'undelivered') AS captured
          FROM daily_rollups) d
 GROUP BY 1, 2;
INSERT INTO daily_route_rollups (day, country, provider, status, currency, messages,
                                 segments, price, cost, sent_latency, delivery_latency)
SELECT (r.hour AT TIME ZONE 'UTC')::date, r.country, r.provider, r.status, t.currency,
       sum(r.messages), sum(r.segments), sum(r.price), sum(r.cost),
       ARRAY[sum(r.sent_latency[1]), sum(r.sent_latency[2]), sum(r.sent_latency[3]),
             sum(r.sent_latency[4]), sum(r.sent_latency[5]), sum(r.sent_latency[6]),
             sum(r.sent_latency[7]), sum(r.sent_latency[8]), sum(r.sent_latency[9]),
             sum(r.sent_latency[10]), sum(r.sent_latency[11]), sum(r.sent_latency[12])]
           ::bigint[],
       ARRAY[sum(r.delivery_latency[1]), sum(r.delivery_latency[2]),
             sum(r.delivery_latency[3]), sum(r.delivery_latency[4]),
             sum(r.delivery_latency[5]), sum(r.delivery_latency[6]),
             sum(r.delivery_latency[7]), sum(r.delivery_latency[8]),
             sum(r.delivery_latency[9]), sum(r.delivery_latency[10]),
             sum(r.delivery_latency[11]), sum(r.delivery_latency[12])]::bigint[]
  FROM message_rollups r JOIN tenants t ON t.id = r.tenant_id
 GROUP BY 1, 2, 3, 4, 5;
INSERT INTO hourly_tenant_rollups (hour, tenant_id, messages, segments, captured,
                                   captured_segments, revenue, cost)
SELECT hour, tenant_id, sum(messages), sum(segments),
       coalesce(sum(messages) FILTER (WHERE captured), 0),
       coalesce(sum(segments) FILTER (WHERE captured), 0),
       coalesce(sum(price) FILTER (WHERE captured), 0),
       coalesce(sum(cost) FILTER (WHERE captured), 0)
  FROM (SELECT *, status IN ('sent', 'delivered', 'undelivered') AS captured
          FROM message_rollups) r
 GROUP BY 1, 2;
INSERT INTO hourly_route_rollups (hour, country, provider, status, currency, messages,
                                  segments, price, cost, sent_latency, delivery_latency)
SELECT r.hour, r.country, r.provider, r.status, t.currency,
       sum(r.messages), sum(r.segments), sum(r.price), sum(r.cost),
       ARRAY[sum(r.sent_latency[1]), sum(r.sent_latency[2]), sum(r.sent_latency[3]),
             sum(r.sent_latency[4]), sum(r.sent_latency[5]), sum(r.sent_latency[6]),
             sum(r.sent_latency[7]), sum(r.sent_latency[8]), sum(r.sent_latency[9]),
             sum(r.sent_latency[10]), sum(r.sent_latency[11]), sum(r.sent_latency[12])]
           ::bigint[],
       ARRAY[sum(r.delivery_latency[1]), sum(r.delivery_latency[2]),
             sum(r.delivery_latency[3]), sum(r.delivery_latency[4]),
             sum(r.delivery_latency[5]), sum(r.delivery_latency[6]),
             sum(r.delivery_latency[7]), sum(r.delivery_latency[8]),
             sum(r.delivery_latency[9]), sum(r.delivery_latency[10]),
             sum(r.delivery_latency[11]), sum(r.delivery_latency[12])]::bigint[]
  FROM message_rollups r JOIN tenants t ON t.id = r.tenant_id
 GROUP BY 1, 2, 3, 4, 5;

-- Fold one hour, as smsgw_fold_rollup_hour_v1, but by merging: rows whose key no message
-- has now are deleted, new keys inserted, and only rows whose sums changed updated. A
-- refold of an hour where a few receipts arrived writes those rows only, and the daily
-- cubes' trigger works on them only. Folds of the same UTC day queue on an advisory lock
-- (their cube rows are the same).
CREATE FUNCTION smsgw_fold_rollup_hour_v2(p_hour timestamptz, p_settled boolean)
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
    PERFORM pg_advisory_xact_lock(hashtext('smsgw_rollup_day'),
                                  hashtext(to_char(p_hour AT TIME ZONE 'UTC', 'YYYYMMDD')));
    IF to_regclass(format('messages_%s', to_char(p_hour AT TIME ZONE 'UTC', 'YYYYMMDD')))
       IS NULL THEN
        INSERT INTO rollup_hours AS r (hour, folded_at, final, messages)
        VALUES (p_hour, now(), true,
                coalesce((SELECT sum(messages) FROM message_rollups WHERE hour = p_hour), 0))
        ON CONFLICT (hour) DO UPDATE SET final = true;
        RETURN true;
    END IF;
    WITH placed AS (
        SELECT m.tenant_id, m.status, m.segments, m.price, coalesce(m.cost, 0) AS cost,
               coalesce(m.provider, '') AS provider,
               coalesce(p8.country, p7.country, p6.country, p5.country, p4.country,
                        p3.country, p2.country, 'ZZ') AS country,
               CASE WHEN m.sent_at IS NOT NULL THEN width_bucket(
                   extract(epoch FROM m.sent_at - m.created_at)::double precision * 1000,
                   bounds) END AS sb,
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
    ), fresh AS (
        SELECT p_hour AS hour, tenant_id, country, provider, status, count(*) AS messages,
               sum(segments)::bigint AS segments, sum(price)::bigint AS price,
               sum(cost)::bigint AS cost,
               ARRAY[count(*) FILTER (WHERE sb = 0), count(*) FILTER (WHERE sb = 1),
                     count(*) FILTER (WHERE sb = 2), count(*) FILTER (WHERE sb = 3),
                     count(*) FILTER (WHERE sb = 4), count(*) FILTER (WHERE sb = 5),
                     count(*) FILTER (WHERE sb = 6), count(*) FILTER (WHERE sb = 7),
                     count(*) FILTER (WHERE sb = 8), count(*) FILTER (WHERE sb = 9),
                     count(*) FILTER (WHERE sb = 10), count(*) FILTER (WHERE sb = 11)]
                   AS sent_latency,
               ARRAY[count(*) FILTER (WHERE db = 0), count(*) FILTER (WHERE db = 1),
                     count(*) FILTER (WHERE db = 2), count(*) FILTER (WHERE db = 3),
                     count(*) FILTER (WHERE db = 4), count(*) FILTER (WHERE db = 5),
                     count(*) FILTER (WHERE db = 6), count(*) FILTER (WHERE db = 7),
                     count(*) FILTER (WHERE db = 8), count(*) FILTER (WHERE db = 9),
                     count(*) FILTER (WHERE db = 10), count(*) FILTER (WHERE db = 11)]
                   AS delivery_latency
          FROM placed
         GROUP BY tenant_id, country, provider, status
    ), gone AS (
        DELETE FROM message_rollups r
         WHERE r.hour = p_hour
           AND NOT EXISTS (SELECT 1 FROM fresh f
                            WHERE f.tenant_id = r.tenant_id AND f.country = r.country
                              AND f.provider = r.provider AND f.status = r.status)
    ), merged AS (
        INSERT INTO message_rollups AS r (hour, tenant_id, country, provider, status,
                                          messages, segments, price, cost, sent_latency,
                                          delivery_latency)
        SELECT * FROM fresh
        ON CONFLICT (hour, tenant_id, country, provider, status) DO UPDATE
           SET messages = excluded.messages, segments = excluded.segments,
               price = excluded.price, cost = excluded.cost,
               sent_latency = excluded.sent_latency,
               delivery_latency = excluded.delivery_latency
         WHERE (r.messages, r.segments, r.price, r.cost, r.sent_latency, r.delivery_latency)
               IS DISTINCT FROM (excluded.messages, excluded.segments, excluded.price,
                                 excluded.cost, excluded.sent_latency,
                                 excluded.delivery_latency)
    )
    SELECT coalesce(sum(messages), 0),
           coalesce(sum(messages) FILTER (WHERE status IN ('scheduled', 'queued', 'sending')),
                    0)
      INTO total, pending
      FROM fresh;
    INSERT INTO rollup_hours AS r (hour, folded_at, final, messages)
    VALUES (p_hour, now(), p_settled AND pending = 0, total)
    ON CONFLICT (hour) DO UPDATE
        SET folded_at = excluded.folded_at, final = excluded.final,
            messages = excluded.messages;
    RETURN p_settled AND pending = 0;
END;
$$;

-- The first midnight (UTC) at or after p_starts: the window's whole days run from it to
-- the last midnight at or before its end. With p_hours (a report by hour) none: infinity.
CREATE FUNCTION smsgw_first_whole_day_v1(p_starts timestamptz, p_hours boolean)
    RETURNS timestamptz
    LANGUAGE sql IMMUTABLE
AS $$
    SELECT CASE WHEN p_hours THEN 'infinity'::timestamptz
                ELSE date_trunc('day', p_starts - interval '1 microsecond', 'UTC')
                     + interval '1 day' END
$$;

-- The raw messages after the last folded hour in [p_starts, p_ends), one row each, in
-- smsgw_usage_v1's shape (no latency buckets), of one tenant or of all.
CREATE FUNCTION smsgw_usage_raw_v1(p_starts timestamptz, p_ends timestamptz,
                                   p_tenant_id uuid)
    RETURNS TABLE (hour timestamptz, tenant_id uuid, country text, provider text,
                   status text, messages bigint, segments bigint, price bigint,
                   cost bigint, sent_latency bigint[], delivery_latency bigint[])
    LANGUAGE sql STABLE
AS $$
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

-- What a tenant's reports read besides whole days: the hourly rollups of the folded
-- hours in the window's partial days at either edge, and the raw messages after the
-- last folded hour. With p_hours, every folded hour of the window (no whole days:
-- reports by hour). A cube day holds exactly the hourly rows of that day, so cubes for
-- the whole days and these answer what smsgw_usage_v1 answers. p_starts and p_ends are
-- whole hours. The cross-tenant readers below do the same on the hourly cubes.
CREATE FUNCTION smsgw_usage_edges_v1(p_starts timestamptz, p_ends timestamptz,
                                     p_tenant_id uuid, p_hours boolean)
    RETURNS TABLE (hour timestamptz, tenant_id uuid, country text, provider text,
                   status text, messages bigint, segments bigint, price bigint,
                   cost bigint, sent_latency bigint[], delivery_latency bigint[])
    LANGUAGE sql STABLE
AS $$
    -- Before the first whole day (or every folded hour, by hour).
    SELECT r.hour, r.tenant_id, r.country, r.provider, r.status, r.messages, r.segments,
           r.price, r.cost, r.sent_latency, r.delivery_latency
      FROM message_rollups r
     WHERE r.hour >= p_starts
       AND r.hour < least(p_ends, smsgw_first_whole_day_v1(p_starts, p_hours),
                          coalesce((SELECT max(h.hour) + interval '1 hour' FROM rollup_hours h),
                                   '-infinity'))
       AND (p_tenant_id IS NULL OR r.tenant_id = p_tenant_id)
    UNION ALL
    -- After the last whole day.
    SELECT r.hour, r.tenant_id, r.country, r.provider, r.status, r.messages, r.segments,
           r.price, r.cost, r.sent_latency, r.delivery_latency
      FROM message_rollups r
     WHERE r.hour >= greatest(date_trunc('day', p_ends, 'UTC'),
                              smsgw_first_whole_day_v1(p_starts, p_hours))
       AND r.hour < least(p_ends,
                          coalesce((SELECT max(h.hour) + interval '1 hour' FROM rollup_hours h),
                                   '-infinity'))
       AND (p_tenant_id IS NULL OR r.tenant_id = p_tenant_id)
    UNION ALL
    SELECT * FROM smsgw_usage_raw_v1(p_starts, p_ends, p_tenant_id)
$$;

-- A tenant's reports (or, with p_tenant_id NULL, all tenants'): smsgw_usage_v1's rows
-- without latencies, `at` the start of the row's period: a whole day of the window from
-- daily_rollups, or an hour at its edges (smsgw_usage_edges_v1). With p_hours, hours
-- only (a report by hour).
CREATE FUNCTION smsgw_usage_v2(p_starts timestamptz, p_ends timestamptz, p_tenant_id uuid,
                               p_hours boolean)
    RETURNS TABLE (at timestamptz, tenant_id uuid, country text, provider text,
                   status text, messages bigint, segments bigint, price bigint, cost bigint)
    LANGUAGE sql STABLE
AS $$
    SELECT d.day::timestamp AT TIME ZONE 'UTC', d.tenant_id, d.country, d.provider,
           d.status, d.messages, d.segments, d.price, d.cost
      FROM daily_rollups d
     WHERE d.day >= (smsgw_first_whole_day_v1(p_starts, p_hours) AT TIME ZONE 'UTC')::date
       AND d.day < (p_ends AT TIME ZONE 'UTC')::date
       AND (p_tenant_id IS NULL OR d.tenant_id = p_tenant_id)
    UNION ALL
    SELECT e.hour, e.tenant_id, e.country, e.provider, e.status, e.messages, e.segments,
           e.price, e.cost
      FROM smsgw_usage_edges_v1(p_starts, p_ends, p_tenant_id, p_hours) e
$$;

-- Operators' reports by tenant: per period start (`at`, as in smsgw_usage_v2) and
-- tenant, all messages and segments, and the captured ones with their revenue and cost:
-- the daily tenant cube for whole days, the hourly one at the edges (every hour, by
-- hour), raw messages after the last folded hour.
CREATE FUNCTION smsgw_usage_by_tenant_v1(p_starts timestamptz, p_ends timestamptz,
                                         p_hours boolean)
    RETURNS TABLE (at timestamptz, tenant_id uuid, messages bigint, segments bigint,
                   captured bigint, captured_segments bigint, revenue bigint, cost bigint)
    LANGUAGE sql STABLE
AS $$
    SELECT d.day::timestamp AT TIME ZONE 'UTC', d.tenant_id, d.messages, d.segments,
           d.captured, d.captured_segments, d.revenue, d.cost
      FROM daily_tenant_rollups d
     WHERE d.day >= (smsgw_first_whole_day_v1(p_starts, p_hours) AT TIME ZONE 'UTC')::date
       AND d.day < (p_ends AT TIME ZONE 'UTC')::date
    UNION ALL
    SELECT h.hour, h.tenant_id, h.messages, h.segments, h.captured, h.captured_segments,
           h.revenue, h.cost
      FROM hourly_tenant_rollups h
     WHERE h.hour >= p_starts
       AND h.hour < least(p_ends, smsgw_first_whole_day_v1(p_starts, p_hours),
                          coalesce((SELECT max(r.hour) + interval '1 hour' FROM rollup_hours r),
                                   '-infinity'))
    UNION ALL
    SELECT h.hour, h.tenant_id, h.messages, h.segments, h.captured, h.captured_segments,
           h.revenue, h.cost
      FROM hourly_tenant_rollups h
     WHERE h.hour >= greatest(date_trunc('day', p_ends, 'UTC'),
                              smsgw_first_whole_day_v1(p_starts, p_hours))
       AND h.hour < least(p_ends,
                          coalesce((SELECT max(r.hour) + interval '1 hour' FROM rollup_hours r),
                                   '-infinity'))
    UNION ALL
    SELECT e.hour, e.tenant_id, e.messages, e.segments,
           CASE WHEN e.captured THEN e.messages ELSE 0 END,
           CASE WHEN e.captured THEN e.segments ELSE 0 END,
           CASE WHEN e.captured THEN e.price ELSE 0 END,
           CASE WHEN e.captured THEN e.cost ELSE 0 END
      FROM (SELECT *, status IN ('sent', 'delivered', 'undelivered') AS captured
              FROM smsgw_usage_raw_v1(p_starts, p_ends, NULL)) e
$$;

-- Operators' reports by country, provider or status, and deliverability: per period
-- start (`at`), country, provider, status and the tenant's currency, with the latency
-- buckets (NULL for raw messages, as in smsgw_usage_v1): the daily route cube for whole
-- days, the hourly one at the edges (every hour, by hour), raw messages after the last
-- folded hour.
CREATE FUNCTION smsgw_usage_by_route_v1(p_starts timestamptz, p_ends timestamptz,
                                        p_hours boolean)
    RETURNS TABLE (at timestamptz, country text, provider text, status text, currency text,
                   messages bigint, segments bigint, price bigint, cost bigint,
                   sent_latency bigint[], delivery_latency bigint[])
    LANGUAGE sql STABLE
AS $$
    SELECT d.day::timestamp AT TIME ZONE 'UTC', d.country, d.provider, d.status, d.currency,
           d.messages, d.segments, d.price, d.cost, d.sent_latency, d.delivery_latency
      FROM daily_route_rollups d
     WHERE d.day >= (smsgw_first_whole_day_v1(p_starts, p_hours) AT TIME ZONE 'UTC')::date
       AND d.day < (p_ends AT TIME ZONE 'UTC')::date
    UNION ALL
    SELECT h.hour, h.country, h.provider, h.status, h.currency, h.messages, h.segments,
           h.price, h.cost, h.sent_latency, h.delivery_latency
      FROM hourly_route_rollups h
     WHERE h.hour >= p_starts
       AND h.hour < least(p_ends, smsgw_first_whole_day_v1(p_starts, p_hours),
                          coalesce((SELECT max(r.hour) + interval '1 hour' FROM rollup_hours r),
                                   '-infinity'))
    UNION ALL
    SELECT h.hour, h.country, h.provider, h.status, h.currency, h.messages, h.segments,
           h.price, h.cost, h.sent_latency, h.delivery_latency
      FROM hourly_route_rollups h
     WHERE h.hour >= greatest(date_trunc('day', p_ends, 'UTC'),
                              smsgw_first_whole_day_v1(p_starts, p_hours))
       AND h.hour < least(p_ends,
                          coalesce((SELECT max(r.hour) + interval '1 hour' FROM rollup_hours r),
                                   '-infinity'))
    UNION ALL
    SELECT e.hour, e.country, e.provider, e.status, t.currency, e.messages, e.segments,
           e.price, e.cost, e.sent_latency, e.delivery_latency
      FROM smsgw_usage_raw_v1(p_starts, p_ends, NULL) e
      JOIN tenants t ON t.id = e.tenant_id
$$;
