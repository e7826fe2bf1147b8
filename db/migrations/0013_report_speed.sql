-- 0013: reports and exports at full scale (issue 27, continued).

-- An instant as the API writes it: ISO 8601 in UTC with a Z, microseconds only when
-- there are some (Python's isoformat, msgspec's encoder). The export's rows are formatted
-- by the server with it, so the API process passes bytes along without decoding a row.
CREATE FUNCTION smsgw_instant_text_v1(p_at timestamptz)
    RETURNS text
    LANGUAGE sql STABLE
AS $$
    SELECT to_char(p_at AT TIME ZONE 'UTC',
                   CASE WHEN date_trunc('second', p_at AT TIME ZONE 'UTC') = p_at AT TIME ZONE 'UTC'
                        THEN 'YYYY-MM-DD"T"HH24:MI:SS"Z"'
                        ELSE 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"' END)
$$;

-- Weekly (ISO weeks, from Monday) and monthly cubes of the two cross-tenant cuts, so that
-- a report over a whole window (period=window: usage, deliverability, top tenants, ...)
-- reads a row per group and month or week, and days only at its edges: 30 days by
-- tenant read about 8 rows a tenant instead of 30, 13 months about 35 instead of 395.
-- Kept exactly like the daily cubes: a week's or a month's row is the sum of the hourly
-- rollups of its days present now (smsgw_rollups_to_days_v2 adds and subtracts each
-- change of message_rollups to them too), and retention subtracts the days it drops.
CREATE TABLE weekly_tenant_rollups (
    week date NOT NULL,
    tenant_id uuid NOT NULL,
    messages bigint NOT NULL,
    segments bigint NOT NULL,
    captured bigint NOT NULL,
    captured_segments bigint NOT NULL,
    revenue bigint NOT NULL,
    cost bigint NOT NULL,
    PRIMARY KEY (week, tenant_id)
);
CREATE TABLE monthly_tenant_rollups (
    month date NOT NULL,
    tenant_id uuid NOT NULL,
    messages bigint NOT NULL,
    segments bigint NOT NULL,
    captured bigint NOT NULL,
    captured_segments bigint NOT NULL,
    revenue bigint NOT NULL,
    cost bigint NOT NULL,
    PRIMARY KEY (month, tenant_id)
);
CREATE TABLE weekly_route_rollups (
    week date NOT NULL,
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
    PRIMARY KEY (week, country, provider, status, currency)
);
CREATE TABLE monthly_route_rollups (
    month date NOT NULL,
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
    PRIMARY KEY (month, country, provider, status, currency)
);

-- smsgw_rollups_to_days_v1, and the weekly and monthly cubes from the same changes.
CREATE FUNCTION smsgw_rollups_to_days_v2()
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
    week text := $q$date_trunc('week', c.hour AT TIME ZONE 'UTC')::date$q$;
    month text := $q$date_trunc('month', c.hour AT TIME ZONE 'UTC')::date$q$;
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
    EXECUTE format(tenants, changes, 'weekly_tenant_rollups', 'week', week);
    EXECUTE format(tenants, changes, 'monthly_tenant_rollups', 'month', month);
    EXECUTE format(tenants, changes, 'hourly_tenant_rollups', 'hour', 'c.hour');
    EXECUTE format(routes, changes, 'daily_route_rollups', 'day', day);
    EXECUTE format(routes, changes, 'weekly_route_rollups', 'week', week);
    EXECUTE format(routes, changes, 'monthly_route_rollups', 'month', month);
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
        EXECUTE format(emptied, changes, 'weekly_tenant_rollups', 'week', week);
        EXECUTE format(emptied, changes, 'monthly_tenant_rollups', 'month', month);
        EXECUTE format(emptied, changes, 'hourly_tenant_rollups', 'hour', 'c.hour');
        EXECUTE format(emptied, changes, 'daily_route_rollups', 'day', day);
        EXECUTE format(emptied, changes, 'weekly_route_rollups', 'week', week);
        EXECUTE format(emptied, changes, 'monthly_route_rollups', 'month', month);
        EXECUTE format(emptied, changes, 'hourly_route_rollups', 'hour', 'c.hour');
    END IF;
    RETURN NULL;
END;
$$;

DROP TRIGGER message_rollups_to_days_inserted ON message_rollups;
DROP TRIGGER message_rollups_to_days_updated ON message_rollups;
DROP TRIGGER message_rollups_to_days_deleted ON message_rollups;
CREATE TRIGGER message_rollups_to_days_inserted
    AFTER INSERT ON message_rollups REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION smsgw_rollups_to_days_v2();
CREATE TRIGGER message_rollups_to_days_updated
    AFTER UPDATE ON message_rollups REFERENCING OLD TABLE AS gone NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION smsgw_rollups_to_days_v2();
CREATE TRIGGER message_rollups_to_days_deleted
    AFTER DELETE ON message_rollups REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION smsgw_rollups_to_days_v2();

-- A window's whole days [p_first, p_end) cut into ranges of period starts to read: with
-- p_whole (a report over the whole window), the whole months, then the whole ISO weeks
-- of what is left on either side, then days; without it, days only. Each range is
-- (unit, starts, ends): the cube of `unit` rows whose period starts in [starts, ends).
CREATE FUNCTION smsgw_window_spans_v1(p_first date, p_end date, p_whole boolean)
    RETURNS TABLE (unit text, starts date, ends date)
    LANGUAGE sql IMMUTABLE
AS $$
    WITH months AS (
        SELECT CASE WHEN p_whole
                    THEN (date_trunc('month', (p_first - 1)::timestamp) + interval '1 month')::date
                    ELSE p_end END AS ms,
               CASE WHEN p_whole THEN date_trunc('month', p_end::timestamp)::date
                    ELSE p_end END AS me
    ), sides AS (
        -- What the months leave on either side (all of it when there is no whole month).
        SELECT p_first AS a, CASE WHEN ms < me THEN ms ELSE p_end END AS b FROM months
        UNION ALL
        SELECT CASE WHEN ms < me THEN me ELSE p_end END, p_end FROM months
    ), weeks AS (
        SELECT a, b,
               CASE WHEN p_whole
                    THEN (date_trunc('week', (a - 1)::timestamp) + interval '7 days')::date
                    ELSE b END AS ws,
               CASE WHEN p_whole THEN date_trunc('week', b::timestamp)::date ELSE b END AS we
          FROM sides
    )
    SELECT s.unit, s.starts, s.ends
      FROM (SELECT 'month' AS unit, ms AS starts, me AS ends FROM months
            UNION ALL
            SELECT 'week', ws, we FROM weeks
            UNION ALL
            SELECT 'day', a, CASE WHEN ws < we THEN ws ELSE b END FROM weeks
            UNION ALL
            SELECT 'day', we, b FROM weeks WHERE ws < we) s
     WHERE s.starts < s.ends
$$;

-- smsgw_usage_by_tenant_v1 with p_whole: a report over the whole window (no period)
-- reads whole months and weeks from their cubes (smsgw_window_spans_v1), days only at
-- their edges; `at` is then the start of the month, week or day read.
CREATE FUNCTION smsgw_usage_by_tenant_v2(p_starts timestamptz, p_ends timestamptz,
                                         p_hours boolean, p_whole boolean)
    RETURNS TABLE (at timestamptz, tenant_id uuid, messages bigint, segments bigint,
                   captured bigint, captured_segments bigint, revenue bigint, cost bigint)
    LANGUAGE sql STABLE
AS $$
    SELECT m.month::timestamp AT TIME ZONE 'UTC', m.tenant_id, m.messages, m.segments,
           m.captured, m.captured_segments, m.revenue, m.cost
      FROM smsgw_window_spans_v1(
               (smsgw_first_whole_day_v1(p_starts, p_hours) AT TIME ZONE 'UTC')::date,
               (p_ends AT TIME ZONE 'UTC')::date, p_whole) s
      JOIN monthly_tenant_rollups m
        ON s.unit = 'month' AND m.month >= s.starts AND m.month < s.ends
    UNION ALL
    SELECT w.week::timestamp AT TIME ZONE 'UTC', w.tenant_id, w.messages, w.segments,
           w.captured, w.captured_segments, w.revenue, w.cost
      FROM smsgw_window_spans_v1(
               (smsgw_first_whole_day_v1(p_starts, p_hours) AT TIME ZONE 'UTC')::date,
               (p_ends AT TIME ZONE 'UTC')::date, p_whole) s
      JOIN weekly_tenant_rollups w
        ON s.unit = 'week' AND w.week >= s.starts AND w.week < s.ends
    UNION ALL
    SELECT d.day::timestamp AT TIME ZONE 'UTC', d.tenant_id, d.messages, d.segments,
           d.captured, d.captured_segments, d.revenue, d.cost
      FROM smsgw_window_spans_v1(
               (smsgw_first_whole_day_v1(p_starts, p_hours) AT TIME ZONE 'UTC')::date,
               (p_ends AT TIME ZONE 'UTC')::date, p_whole) s
      JOIN daily_tenant_rollups d ON s.unit = 'day' AND d.day >= s.starts AND d.day < s.ends
    UNION ALL
    -- The partial days at the edges (every hour, by hour) and the raw tail, as
    -- smsgw_usage_by_tenant_v1.
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

-- smsgw_usage_by_route_v1 with p_whole, as smsgw_usage_by_tenant_v2.
CREATE FUNCTION smsgw_usage_by_route_v2(p_starts timestamptz, p_ends timestamptz,
                                        p_hours boolean, p_whole boolean)
    RETURNS TABLE (at timestamptz, country text, provider text, status text, currency text,
                   messages bigint, segments bigint, price bigint, cost bigint,
                   sent_latency bigint[], delivery_latency bigint[])
    LANGUAGE sql STABLE
AS $$
    SELECT m.month::timestamp AT TIME ZONE 'UTC', m.country, m.provider, m.status,
           m.currency, m.messages, m.segments, m.price, m.cost, m.sent_latency,
           m.delivery_latency
      FROM smsgw_window_spans_v1(
               (smsgw_first_whole_day_v1(p_starts, p_hours) AT TIME ZONE 'UTC')::date,
               (p_ends AT TIME ZONE 'UTC')::date, p_whole) s
      JOIN monthly_route_rollups m
        ON s.unit = 'month' AND m.month >= s.starts AND m.month < s.ends
    UNION ALL
    SELECT w.week::timestamp AT TIME ZONE 'UTC', w.country, w.provider, w.status,
           w.currency, w.messages, w.segments, w.price, w.cost, w.sent_latency,
           w.delivery_latency
      FROM smsgw_window_spans_v1(
               (smsgw_first_whole_day_v1(p_starts, p_hours) AT TIME ZONE 'UTC')::date,
               (p_ends AT TIME ZONE 'UTC')::date, p_whole) s
      JOIN weekly_route_rollups w
        ON s.unit = 'week' AND w.week >= s.starts AND w.week < s.ends
    UNION ALL
    SELECT d.day::timestamp AT TIME ZONE 'UTC', d.country, d.provider, d.status, d.currency,
           d.messages, d.segments, d.price, d.cost, d.sent_latency, d.delivery_latency
      FROM smsgw_window_spans_v1(
               (smsgw_first_whole_day_v1(p_starts, p_hours) AT TIME ZONE 'UTC')::date,
               (p_ends AT TIME ZONE 'UTC')::date, p_whole) s
      JOIN daily_route_rollups d ON s.unit = 'day' AND d.day >= s.starts AND d.day < s.ends
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

-- The weeks and months of the days already in the daily cubes (folds wait on the
-- triggers' change above, so none is missed or counted twice).
INSERT INTO weekly_tenant_rollups (week, tenant_id, messages, segments, captured,
    captured_segments, revenue, cost)
SELECT date_trunc('week', day::timestamp)::date, tenant_id, sum(messages), sum(segments), sum(captured),
       sum(captured_segments), sum(revenue), sum(cost)
  FROM daily_tenant_rollups
 GROUP BY 1, 2;
INSERT INTO monthly_tenant_rollups (month, tenant_id, messages, segments, captured,
    captured_segments, revenue, cost)
SELECT date_trunc('month', day::timestamp)::date, tenant_id, sum(messages), sum(segments), sum(captured),
       sum(captured_segments), sum(revenue), sum(cost)
  FROM daily_tenant_rollups
 GROUP BY 1, 2;
INSERT INTO weekly_route_rollups (week, country, provider, status, currency, messages,
    segments, price, cost, sent_latency, delivery_latency)
SELECT date_trunc('week', day::timestamp)::date, country, provider, status, currency, sum(messages), sum(segments),
       sum(price), sum(cost),
       ARRAY[sum(sent_latency[1]), sum(sent_latency[2]), sum(sent_latency[3]), sum(sent_latency[4]), sum(sent_latency[5]), sum(sent_latency[6]), sum(sent_latency[7]), sum(sent_latency[8]), sum(sent_latency[9]), sum(sent_latency[10]), sum(sent_latency[11]), sum(sent_latency[12])]::bigint[],
       ARRAY[sum(delivery_latency[1]), sum(delivery_latency[2]), sum(delivery_latency[3]), sum(delivery_latency[4]), sum(delivery_latency[5]), sum(delivery_latency[6]), sum(delivery_latency[7]), sum(delivery_latency[8]), sum(delivery_latency[9]), sum(delivery_latency[10]), sum(delivery_latency[11]), sum(delivery_latency[12])]::bigint[]
  FROM daily_route_rollups
 GROUP BY 1, 2, 3, 4, 5;
INSERT INTO monthly_route_rollups (month, country, provider, status, currency, messages,
    segments, price, cost, sent_latency, delivery_latency)
SELECT date_trunc('month', day::timestamp)::date, country, provider, status, currency, sum(messages), sum(segments),
       sum(price), sum(cost),
       ARRAY[sum(sent_latency[1]), sum(sent_latency[2]), sum(sent_latency[3]), sum(sent_latency[4]), sum(sent_latency[5]), sum(sent_latency[6]), sum(sent_latency[7]), sum(sent_latency[8]), sum(sent_latency[9]), sum(sent_latency[10]), sum(sent_latency[11]), sum(sent_latency[12])]::bigint[],
       ARRAY[sum(delivery_latency[1]), sum(delivery_latency[2]), sum(delivery_latency[3]), sum(delivery_latency[4]), sum(delivery_latency[5]), sum(delivery_latency[6]), sum(delivery_latency[7]), sum(delivery_latency[8]), sum(delivery_latency[9]), sum(delivery_latency[10]), sum(delivery_latency[11]), sum(delivery_latency[12])]::bigint[]
  FROM daily_route_rollups
 GROUP BY 1, 2, 3, 4, 5;
