-- 0019: the open hour folded as it goes (issue 27: reports read raw messages for a short
-- tail only). Hours were folded once closed, by a job every 5 minutes, so a report read
-- the raw messages after the last closed hour: up to ~65 minutes of traffic, millions of
-- messages at 100M a day. Now the job (every 20 s) also folds the hour in progress, up
-- to a mark SMSGW_ROLLUP_OPEN_LAG_SECONDS (30) behind the clock in whole steps of
-- SMSGW_ROLLUP_OPEN_STEP_SECONDS (60), adding only the messages between the last mark and
-- the new one (read by primary key range); reports read rollups before the newest mark
-- and raw messages after it (30 s to about 2 minutes of traffic). The open hour's rows
-- stay out of the cubes until its closing fold puts them in, once: rewriting the cubes'
-- rows at every open fold cost two thirds of it; reports read them beside the cubes.

-- How far a fold of the hour went: its messages created before folded_through are in
-- its rollups (an hour's end once folded whole), as of the fold whose folded_at is
-- through_as_of. A later fold by an older release (v1..v3, which know nothing of the
-- mark) leaves folded_at different: that fold read the whole closed hour, so the mark is
-- the hour's end. NULL for hours folded before this migration: whole.
ALTER TABLE rollup_hours ADD COLUMN folded_through timestamptz;
ALTER TABLE rollup_hours ADD COLUMN through_as_of timestamptz;

-- Whether the hour's rollup rows are in the cubes (daily, hourly, weekly and monthly:
-- smsgw_rollups_to_days_v3). false while the hour is open: its folds every minute write
-- message_rollups only, and the hour's rows enter the cubes once, in the transaction of
-- its closing fold (smsgw_cube_rollup_hour_v1), so that the cubes are the sums of the
-- hourly rows of the hours in them at every commit. Rewriting the cubes' rows at each
-- open fold cost about two thirds of the open folds' CPU. Reports read the rows of the
-- hours not in the cubes beside the cubes. true for every hour folded before (and for
-- rows whose hour has no rollup_hours row: the cubes hold them).
ALTER TABLE rollup_hours ADD COLUMN in_cubes boolean NOT NULL DEFAULT true;
CREATE INDEX rollup_hours_out_of_cubes_idx ON rollup_hours (hour) WHERE NOT in_cubes;

-- One row of message_rollups added to the cubes (sign 1) or taken out (-1).
CREATE TYPE smsgw_rollup_signed_v1 AS (
    sign bigint,
    hour timestamptz,
    tenant_id uuid,
    country text,
    provider text,
    status text,
    messages bigint,
    segments bigint,
    price bigint,
    cost bigint,
    sent_latency bigint[],
    delivery_latency bigint[]
);

-- Add signed rows of message_rollups to every cube, as smsgw_rollups_to_days_v2 adds a
-- statement's changes (the same statements, reading the rows from an array rather than
-- the trigger's transition tables, so that the closing fold can put a whole hour in);
-- p_subtracts when some are taken out (a row may be left with no message).
CREATE FUNCTION smsgw_rollups_into_cubes_v1(p_changes smsgw_rollup_signed_v1[],
                                            p_subtracts boolean)
    RETURNS void
    LANGUAGE plpgsql
AS $$
DECLARE
    changes text := 'SELECT * FROM unnest($1::smsgw_rollup_signed_v1[])';
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
        $q$, changes) USING p_changes;
    EXECUTE format(tenants, changes, 'daily_tenant_rollups', 'day', day) USING p_changes;
    EXECUTE format(tenants, changes, 'weekly_tenant_rollups', 'week', week) USING p_changes;
    EXECUTE format(tenants, changes, 'monthly_tenant_rollups', 'month', month)
        USING p_changes;
    EXECUTE format(tenants, changes, 'hourly_tenant_rollups', 'hour', 'c.hour')
        USING p_changes;
    EXECUTE format(routes, changes, 'daily_route_rollups', 'day', day) USING p_changes;
    EXECUTE format(routes, changes, 'weekly_route_rollups', 'week', week) USING p_changes;
    EXECUTE format(routes, changes, 'monthly_route_rollups', 'month', month) USING p_changes;
    EXECUTE format(routes, changes, 'hourly_route_rollups', 'hour', 'c.hour')
        USING p_changes;
    IF p_subtracts THEN
        -- Only a subtraction can leave a row with no message.
        EXECUTE format($q$
            WITH c AS (%s)
            DELETE FROM daily_rollups d
             USING (SELECT DISTINCT (hour AT TIME ZONE 'UTC')::date AS day, tenant_id,
                           country, provider, status FROM c) k
             WHERE d.messages = 0 AND d.tenant_id = k.tenant_id AND d.day = k.day
               AND d.country = k.country AND d.provider = k.provider
               AND d.status = k.status
            $q$, changes) USING p_changes;
        EXECUTE format(emptied, changes, 'daily_tenant_rollups', 'day', day) USING p_changes;
        EXECUTE format(emptied, changes, 'weekly_tenant_rollups', 'week', week)
            USING p_changes;
        EXECUTE format(emptied, changes, 'monthly_tenant_rollups', 'month', month)
            USING p_changes;
        EXECUTE format(emptied, changes, 'hourly_tenant_rollups', 'hour', 'c.hour')
            USING p_changes;
        EXECUTE format(emptied, changes, 'daily_route_rollups', 'day', day) USING p_changes;
        EXECUTE format(emptied, changes, 'weekly_route_rollups', 'week', week)
            USING p_changes;
        EXECUTE format(emptied, changes, 'monthly_route_rollups', 'month', month)
            USING p_changes;
        EXECUTE format(emptied, changes, 'hourly_route_rollups', 'hour', 'c.hour')
            USING p_changes;
    END IF;
END;
$$;

-- smsgw_rollups_to_days_v2, but the rows of an hour not in the cubes (rollup_hours.
-- in_cubes false: the open hour) are left out: an open fold's statement costs the
-- trigger one look at its rows and nothing more. Whatever writes message_rollups (an
-- older release's fold included) goes through it, so the cubes stay the sums of the
-- rows of the hours in them.
CREATE FUNCTION smsgw_rollups_to_days_v3()
    RETURNS trigger
    LANGUAGE plpgsql
AS $$
DECLARE
    changes smsgw_rollup_signed_v1[];
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('smsgw.rollup_retention', true) = 'on' THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(ROW(1::bigint, a.*)::smsgw_rollup_signed_v1) INTO changes
          FROM added a
         WHERE NOT EXISTS (SELECT 1 FROM rollup_hours h
                            WHERE h.hour = a.hour AND NOT h.in_cubes);
    ELSIF TG_OP = 'DELETE' THEN
        SELECT array_agg(ROW(-1::bigint, g.*)::smsgw_rollup_signed_v1) INTO changes
          FROM gone g
         WHERE NOT EXISTS (SELECT 1 FROM rollup_hours h
                            WHERE h.hour = g.hour AND NOT h.in_cubes);
    ELSE
        SELECT array_agg(c) INTO changes
          FROM (SELECT ROW(-1::bigint, g.*)::smsgw_rollup_signed_v1 AS c FROM gone g
                 WHERE NOT EXISTS (SELECT 1 FROM rollup_hours h
                                    WHERE h.hour = g.hour AND NOT h.in_cubes)
                UNION ALL
                SELECT ROW(1::bigint, a.*)::smsgw_rollup_signed_v1 FROM added a
                 WHERE NOT EXISTS (SELECT 1 FROM rollup_hours h
                                    WHERE h.hour = a.hour AND NOT h.in_cubes)) s;
    END IF;
    IF changes IS NOT NULL THEN
        PERFORM smsgw_rollups_into_cubes_v1(changes, TG_OP <> 'INSERT');
    END IF;
    RETURN NULL;
END;
$$;

DROP TRIGGER message_rollups_to_days_inserted ON message_rollups;
DROP TRIGGER message_rollups_to_days_updated ON message_rollups;
DROP TRIGGER message_rollups_to_days_deleted ON message_rollups;
CREATE TRIGGER message_rollups_to_days_inserted
    AFTER INSERT ON message_rollups REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION smsgw_rollups_to_days_v3();
CREATE TRIGGER message_rollups_to_days_updated
    AFTER UPDATE ON message_rollups REFERENCING OLD TABLE AS gone NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION smsgw_rollups_to_days_v3();
CREATE TRIGGER message_rollups_to_days_deleted
    AFTER DELETE ON message_rollups REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION smsgw_rollups_to_days_v3();

-- Put a closed hour's rows into the cubes, once: when the hour is not in them, mark it
-- in and add its rows (then later writes of them go through the trigger). Called by the
-- closing fold (smsgw_fold_rollup_hour_v4) in its transaction: a closing fold killed
-- midway leaves the hour out, its rows as they were, and the hour due.
CREATE FUNCTION smsgw_cube_rollup_hour_v1(p_hour timestamptz)
    RETURNS void
    LANGUAGE plpgsql
AS $$
DECLARE
    changes smsgw_rollup_signed_v1[];
BEGIN
    UPDATE rollup_hours SET in_cubes = true WHERE hour = p_hour AND NOT in_cubes;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT array_agg(ROW(1::bigint, r.*)::smsgw_rollup_signed_v1) INTO changes
      FROM message_rollups r WHERE r.hour = p_hour;
    IF changes IS NOT NULL THEN
        PERFORM smsgw_rollups_into_cubes_v1(changes, false);
    END IF;
END;
$$;

-- Where reports' raw tail starts: the fold mark of the newest folded hour (an hour's end
-- when folded whole; '-infinity' when none is). Every hour before the newest is folded
-- whole (closed hours are folded oldest first, and the open hour's first fold waits for
-- the hour before it to be folded whole): rollups of the hours before the mark and raw
-- messages from it count each message once. Callers write (SELECT smsgw_rollup_tail_v1())
-- so that it is evaluated once per statement, in the statement's snapshot.
CREATE FUNCTION smsgw_rollup_tail_v1()
    RETURNS timestamptz
    LANGUAGE sql STABLE
AS $$
    SELECT coalesce(
        (SELECT CASE WHEN h.through_as_of = h.folded_at THEN h.folded_through
                     ELSE h.hour + interval '1 hour' END
           FROM rollup_hours h
          ORDER BY h.hour DESC
          LIMIT 1),
        '-infinity')
$$;

-- Add an hour's messages created in [p_from, p_to) to its rollups (merged into the rows
-- already there, which the cubes' trigger follows) and record those not final yet in
-- rollup_pending with their share, as a first fold does; returns how many messages were
-- added, how many of them are scheduled, queued or sending, and how many were recorded.
-- They are read by the range of their ids (UUIDv7), one statement (one snapshot).
CREATE FUNCTION smsgw_append_rollup_span_v1(p_hour timestamptz, p_from timestamptz,
                                            p_to timestamptz,
                                            OUT added bigint, OUT unsent bigint,
                                            OUT recorded bigint)
    LANGUAGE plpgsql
AS $$
DECLARE
    bounds double precision[] := smsgw_rollup_bounds_v1()::double precision[];
    first_id uuid := smsgw_first_id_v1(p_from);
    next_id uuid := smsgw_first_id_v1(p_to);
BEGIN
    WITH placed AS (
        SELECT m.id, m.created_at, m.tenant_id, m.status, m.segments, m.price,
               coalesce(m.cost, 0) AS cost, coalesce(m.provider, '') AS provider,
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
         WHERE m.id >= first_id AND m.id < next_id
           AND m.created_at >= p_from AND m.created_at < p_to
    ), fresh AS (
        SELECT p_hour AS hour, tenant_id, country, provider, status,
               count(*) AS messages, sum(segments)::bigint AS segments,
               sum(price)::bigint AS price, sum(cost)::bigint AS cost,
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
    ), merged AS (
        INSERT INTO message_rollups AS r (hour, tenant_id, country, provider, status,
                                          messages, segments, price, cost,
                                          sent_latency, delivery_latency)
        SELECT * FROM fresh
        ON CONFLICT (hour, tenant_id, country, provider, status) DO UPDATE
           SET messages = r.messages + excluded.messages,
               segments = r.segments + excluded.segments,
               price = r.price + excluded.price, cost = r.cost + excluded.cost,
               -- Element by element, spelled out, as smsgw_fold_rollup_hour_v3 does.
               sent_latency = ARRAY[
                   r.sent_latency[1] + excluded.sent_latency[1],
                   r.sent_latency[2] + excluded.sent_latency[2],
                   r.sent_latency[3] + excluded.sent_latency[3],
                   r.sent_latency[4] + excluded.sent_latency[4],
                   r.sent_latency[5] + excluded.sent_latency[5],
                   r.sent_latency[6] + excluded.sent_latency[6],
                   r.sent_latency[7] + excluded.sent_latency[7],
                   r.sent_latency[8] + excluded.sent_latency[8],
                   r.sent_latency[9] + excluded.sent_latency[9],
                   r.sent_latency[10] + excluded.sent_latency[10],
                   r.sent_latency[11] + excluded.sent_latency[11],
                   r.sent_latency[12] + excluded.sent_latency[12]],
               delivery_latency = ARRAY[
                   r.delivery_latency[1] + excluded.delivery_latency[1],
                   r.delivery_latency[2] + excluded.delivery_latency[2],
                   r.delivery_latency[3] + excluded.delivery_latency[3],
                   r.delivery_latency[4] + excluded.delivery_latency[4],
                   r.delivery_latency[5] + excluded.delivery_latency[5],
                   r.delivery_latency[6] + excluded.delivery_latency[6],
                   r.delivery_latency[7] + excluded.delivery_latency[7],
                   r.delivery_latency[8] + excluded.delivery_latency[8],
                   r.delivery_latency[9] + excluded.delivery_latency[9],
                   r.delivery_latency[10] + excluded.delivery_latency[10],
                   r.delivery_latency[11] + excluded.delivery_latency[11],
                   r.delivery_latency[12] + excluded.delivery_latency[12]]
    ), recorded AS (
        INSERT INTO rollup_pending (hour, message_id, created_at, tenant_id, country,
                                    provider, status, segments, price, cost,
                                    sent_bucket, delivery_bucket)
        SELECT p_hour, id, created_at, tenant_id, country, provider, status, segments,
               price, cost, sb, db
          FROM placed
         WHERE status IN ('scheduled', 'queued', 'sending', 'sent')
    )
    SELECT coalesce(sum(messages), 0),
           coalesce(sum(messages)
                    FILTER (WHERE status IN ('scheduled', 'queued', 'sending')), 0),
           coalesce(sum(messages)
                    FILTER (WHERE status IN ('scheduled', 'queued', 'sending', 'sent')), 0)
      INTO added, unsent, recorded
      FROM fresh;
END;
$$;

-- Fold one hour, as smsgw_fold_rollup_hour_v3, or the hour in progress up to p_through.
--
-- With p_through inside the hour (the open hour, folded every minute a little behind
-- the clock): only the messages created between the hour's fold mark and p_through are read
-- (smsgw_append_rollup_span_v1) and added; the mark moves to p_through. Messages folded
-- before are not read again (their status changes are taken in when the hour closes),
-- and the hour's pending messages are not counted (that would read them all): a crash
-- that emptied rollup_pending is found when the hour closes, as before. The hour's first
-- fold waits until the hour before it is folded whole (or has no messages partition), so
-- that only the newest folded hour is ever partial (smsgw_rollup_tail_v1). A mark never
-- moves back: a p_through at or before it does nothing.
--
-- Without p_through (a closed hour: the fold job's folds, repair with p_full): an hour
-- folded up to a mark inside it gets its messages after the mark added, then v3 refolds
-- its pending messages in the same transaction; v3 recomputes the whole hour when the
-- hour gained messages behind the mark (an accept that committed after the fold that
-- passed its instant: its id, so its created_at, is made before it commits), as it
-- does for an hour that gained messages since its first fold. v3 counts the hour's
-- messages until a fold has run 10 minutes after its end; a closing fold later than that
-- (workers were down) counts the messages before the mark itself. Any other closed hour
-- is folded by v3 as it was. Returns whether the hour is final now (never, while open).
--
-- The open hour's rows stay out of the cubes (rollup_hours.in_cubes false from its
-- first open fold): its folds write message_rollups and rollup_pending only. Its closing
-- fold, after v3, puts the hour's rows into the cubes once (smsgw_cube_rollup_hour_v1),
-- in the same transaction; so does any later fold of a closed hour still out of them (an
-- older release's v3 folded it at its close, or retention took its messages).
CREATE FUNCTION smsgw_fold_rollup_hour_v4(p_hour timestamptz, p_settled boolean,
                                          p_full boolean DEFAULT false,
                                          p_through timestamptz DEFAULT NULL)
    RETURNS boolean
    LANGUAGE plpgsql
AS $$
DECLARE
    hour_end timestamptz := p_hour + interval '1 hour';
    -- Whole milliseconds: message ids (UUIDv7) carry their created_at's millisecond.
    through timestamptz := least(coalesce(date_trunc('milliseconds', p_through), hour_end),
                                 hour_end);
    known rollup_hours;
    mark timestamptz;  -- how far the hour is folded (NULL: never)
    span record;
    is_final boolean;
BEGIN
    IF p_hour <> date_trunc('hour', p_hour, 'UTC') THEN
        RAISE EXCEPTION 'not an hour: %', p_hour;
    END IF;
    IF through <= p_hour THEN
        RETURN false;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('smsgw_rollup_day'),
                                  hashtext(to_char(p_hour AT TIME ZONE 'UTC', 'YYYYMMDD')));
    SELECT * INTO known FROM rollup_hours WHERE hour = p_hour;
    IF FOUND THEN
        mark := CASE WHEN known.through_as_of = known.folded_at THEN known.folded_through
                     ELSE hour_end END;
    END IF;
    IF to_regclass(format('messages_%s', to_char(p_hour AT TIME ZONE 'UTC', 'YYYYMMDD')))
       IS NULL THEN
        -- No raw messages (retention): v3 marks the hour final, keeping its rows (in
        -- the cubes, if they were not yet).
        IF through < hour_end THEN
            RETURN false;
        END IF;
        is_final := smsgw_fold_rollup_hour_v3(p_hour, p_settled, p_full);
        PERFORM smsgw_cube_rollup_hour_v1(p_hour);
        RETURN is_final;
    END IF;

    IF through < hour_end THEN
        IF mark >= through THEN
            RETURN false;
        END IF;
        IF mark IS NULL THEN
            IF NOT EXISTS (
                   SELECT 1 FROM rollup_hours h
                    WHERE h.hour = p_hour - interval '1 hour'
                      AND (h.through_as_of IS DISTINCT FROM h.folded_at
                           OR h.folded_through >= p_hour))
               AND to_regclass(format('messages_%s',
                                      to_char((p_hour - interval '1 hour') AT TIME ZONE 'UTC',
                                              'YYYYMMDD'))) IS NOT NULL THEN
                RETURN false;  -- the hour before is not folded whole yet
            END IF;
            -- Nothing of the hour is folded: no row of it may stay (the cubes lose any
            -- it had: the hour has no rollup_hours row, so they hold its rows).
            DELETE FROM message_rollups WHERE hour = p_hour;
            DELETE FROM rollup_pending WHERE hour = p_hour;
            -- From now until its closing fold the hour's rows stay out of the cubes.
            INSERT INTO rollup_hours (hour, folded_at, final, messages, pending_as_of,
                                      pending_rows, folded_through, through_as_of, in_cubes)
            VALUES (p_hour, now(), false, 0, now(), 0, p_hour, now(), false);
            mark := p_hour;
            known.messages := 0;
            known.pending_rows := 0;
            known.pending_as_of := now();
            known.folded_at := known.pending_as_of;
        END IF;
        SELECT * INTO span FROM smsgw_append_rollup_span_v1(p_hour, mark, through);
        INSERT INTO rollup_hours AS r (hour, folded_at, final, messages, pending_as_of,
                                       pending_rows, folded_through, through_as_of)
        VALUES (p_hour, now(), false, known.messages + span.added,
                -- Kept in step only while rollup_pending holds the hour's pending
                -- messages (else v3 reads the whole hour when it closes).
                CASE WHEN known.pending_as_of = known.folded_at THEN now()
                     ELSE known.pending_as_of END,
                known.pending_rows + span.recorded, through, now())
        ON CONFLICT (hour) DO UPDATE
            SET folded_at = excluded.folded_at, final = false,
                messages = excluded.messages, pending_as_of = excluded.pending_as_of,
                pending_rows = excluded.pending_rows,
                folded_through = excluded.folded_through,
                through_as_of = excluded.through_as_of;
        RETURN false;
    END IF;

    -- A closed hour. Whichever way it is folded, its rows then enter the cubes, once
    -- (smsgw_cube_rollup_hour_v1; nothing when they are in already): v3's writes of an
    -- hour still out of them cost the cubes nothing, and the cubes get the final rows.
    IF mark IS NULL OR mark >= hour_end OR p_full
       OR known.pending_as_of IS DISTINCT FROM known.folded_at THEN
        is_final := smsgw_fold_rollup_hour_v3(p_hour, p_settled, p_full);
    ELSIF now() >= p_hour + interval '70 minutes'
       AND known.messages <> (SELECT count(*) FROM messages
                               WHERE id >= smsgw_first_id_v1(p_hour)
                                 AND id < smsgw_first_id_v1(mark)
                                 AND created_at >= p_hour AND created_at < mark) THEN
        is_final := smsgw_fold_rollup_hour_v3(p_hour, p_settled, true);
    ELSE
        SELECT * INTO span FROM smsgw_append_rollup_span_v1(p_hour, mark, hour_end);
        UPDATE rollup_hours
           SET folded_at = now(), messages = messages + span.added, pending_as_of = now(),
               pending_rows = pending_rows + span.recorded, folded_through = hour_end,
               through_as_of = now()
         WHERE hour = p_hour;
        -- The same transaction: v3 finds its last fold's pending rows all there.
        is_final := smsgw_fold_rollup_hour_v3(p_hour, p_settled, false);
    END IF;
    PERFORM smsgw_cube_rollup_hour_v1(p_hour);
    RETURN is_final;
END;
$$;

-- The reports' functions of 0010, 0012 and 0013 again, their raw tail starting at
-- smsgw_rollup_tail_v1 (the newest fold mark) instead of the last folded hour's end, and
-- read by the range of the messages' ids from there (UUIDv7: a range of the primary
-- key; a tail of a minute is a short walk of it, not a scan of the day's partition). The
-- open hour's rollup rows (its messages before the mark) count with the hours before
-- it: they are before the mark; they are not in the cubes until the hour closes, so
-- those reading cubes read them beside (smsgw_rollups_out_of_cubes_v1), where the
-- cubes would hold them. Same arguments and rows as the versions they follow:
-- raw_v3 as raw_v1, raw_v4 as raw_v2, edges_v3 as edges_v1, edges_v4 as edges_v2,
-- usage_v4 as usage_v2, usage_v5 as usage_v3, by_tenant_v3 and by_route_v3 as their v2
-- (with p_whole false: as their v1). p_starts is a whole hour, never infinite.

-- The hourly rows of the hours not in the cubes (rollup_hours.in_cubes false: the open
-- hour, its messages before its mark; a closed hour until a fold puts it in) that start
-- in [p_starts, p_ends), of one tenant or of all. Reports read them beside the cubes: one
-- hour's rows (a tenant's own through its key; across tenants up to about 300,000 at
-- 100M messages a day by the hour's end, where the hourly cubes hold 32,000).
CREATE FUNCTION smsgw_rollups_out_of_cubes_v1(p_starts timestamptz, p_ends timestamptz,
                                              p_tenant_id uuid)
    RETURNS SETOF message_rollups
    LANGUAGE sql STABLE
AS $$
    SELECT r.*
      FROM message_rollups r
     WHERE r.hour IN (SELECT h.hour FROM rollup_hours h
                       WHERE NOT h.in_cubes AND h.hour >= p_starts AND h.hour < p_ends)
       AND (p_tenant_id IS NULL OR r.tenant_id = p_tenant_id)
$$;

CREATE FUNCTION smsgw_usage_raw_v3(p_starts timestamptz, p_ends timestamptz,
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
               (SELECT smsgw_rollup_tail_v1()))
       AND m.id >= smsgw_first_id_v1(greatest(p_starts, (SELECT smsgw_rollup_tail_v1())))
       AND m.created_at < p_ends
       AND (p_tenant_id IS NULL OR m.tenant_id = p_tenant_id)
$$;

CREATE FUNCTION smsgw_usage_raw_v4(p_starts timestamptz, p_ends timestamptz,
                                   p_tenant_id uuid)
    RETURNS TABLE (hour timestamptz, tenant_id uuid, country text, provider text,
                   status text, messages bigint, segments bigint, price bigint,
                   cost bigint, sent_latency bigint[], delivery_latency bigint[])
    LANGUAGE sql STABLE
AS $$
    SELECT g.hour, g.tenant_id,
           coalesce(p8.country, p7.country, p6.country, p5.country, p4.country,
                    p3.country, p2.country, 'ZZ'),
           g.provider, g.status, g.messages, g.segments, g.price, g.cost,
           NULL::bigint[], NULL::bigint[]
      FROM (SELECT date_trunc('hour', m.created_at, 'UTC') AS hour, m.tenant_id,
                   left(m.to_number, 8) COLLATE "C" AS head,
                   coalesce(m.provider, '') COLLATE "C" AS provider,
                   m.status COLLATE "C" AS status, count(*) AS messages,
                   sum(m.segments)::bigint AS segments, sum(m.price)::bigint AS price,
                   sum(coalesce(m.cost, 0))::bigint AS cost
              FROM messages m
             WHERE m.created_at >= greatest(
                       p_starts,
                       (SELECT smsgw_rollup_tail_v1()))
               AND m.id >= smsgw_first_id_v1(
                       greatest(p_starts, (SELECT smsgw_rollup_tail_v1())))
               AND m.created_at < p_ends
               AND (p_tenant_id IS NULL OR m.tenant_id = p_tenant_id)
             GROUP BY 1, 2, 3, 4, 5) AS g
      LEFT JOIN dialing_prefixes p8 ON p8.prefix = left(g.head, 8)
      LEFT JOIN dialing_prefixes p7 ON p7.prefix = left(g.head, 7)
      LEFT JOIN dialing_prefixes p6 ON p6.prefix = left(g.head, 6)
      LEFT JOIN dialing_prefixes p5 ON p5.prefix = left(g.head, 5)
      LEFT JOIN dialing_prefixes p4 ON p4.prefix = left(g.head, 4)
      LEFT JOIN dialing_prefixes p3 ON p3.prefix = left(g.head, 3)
      LEFT JOIN dialing_prefixes p2 ON p2.prefix = left(g.head, 2)
$$;

CREATE FUNCTION smsgw_usage_edges_v3(p_starts timestamptz, p_ends timestamptz,
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
                          (SELECT smsgw_rollup_tail_v1()))
       AND (p_tenant_id IS NULL OR r.tenant_id = p_tenant_id)
    UNION ALL
    -- After the last whole day.
    SELECT r.hour, r.tenant_id, r.country, r.provider, r.status, r.messages, r.segments,
           r.price, r.cost, r.sent_latency, r.delivery_latency
      FROM message_rollups r
     WHERE r.hour >= greatest(date_trunc('day', p_ends, 'UTC'),
                              smsgw_first_whole_day_v1(p_starts, p_hours))
       AND r.hour < least(p_ends,
                          (SELECT smsgw_rollup_tail_v1()))
       AND (p_tenant_id IS NULL OR r.tenant_id = p_tenant_id)
    UNION ALL
    SELECT * FROM smsgw_usage_raw_v3(p_starts, p_ends, p_tenant_id)
$$;

CREATE FUNCTION smsgw_usage_edges_v4(p_starts timestamptz, p_ends timestamptz,
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
                          (SELECT smsgw_rollup_tail_v1()))
       AND (p_tenant_id IS NULL OR r.tenant_id = p_tenant_id)
    UNION ALL
    -- After the last whole day.
    SELECT r.hour, r.tenant_id, r.country, r.provider, r.status, r.messages, r.segments,
           r.price, r.cost, r.sent_latency, r.delivery_latency
      FROM message_rollups r
     WHERE r.hour >= greatest(date_trunc('day', p_ends, 'UTC'),
                              smsgw_first_whole_day_v1(p_starts, p_hours))
       AND r.hour < least(p_ends,
                          (SELECT smsgw_rollup_tail_v1()))
       AND (p_tenant_id IS NULL OR r.tenant_id = p_tenant_id)
    UNION ALL
    SELECT * FROM smsgw_usage_raw_v4(p_starts, p_ends, p_tenant_id)
$$;

CREATE FUNCTION smsgw_usage_v4(p_starts timestamptz, p_ends timestamptz, p_tenant_id uuid,
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
    -- The whole days' hours not in the cubes (the open hour, before its mark).
    SELECT o.hour, o.tenant_id, o.country, o.provider, o.status, o.messages, o.segments,
           o.price, o.cost
      FROM smsgw_rollups_out_of_cubes_v1(smsgw_first_whole_day_v1(p_starts, p_hours),
                                         date_trunc('day', p_ends, 'UTC'), p_tenant_id) o
    UNION ALL
    SELECT e.hour, e.tenant_id, e.country, e.provider, e.status, e.messages, e.segments,
           e.price, e.cost
      FROM smsgw_usage_edges_v3(p_starts, p_ends, p_tenant_id, p_hours) e
$$;

CREATE FUNCTION smsgw_usage_v5(p_starts timestamptz, p_ends timestamptz, p_tenant_id uuid,
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
    -- The whole days' hours not in the cubes (the open hour, before its mark).
    SELECT o.hour, o.tenant_id, o.country, o.provider, o.status, o.messages, o.segments,
           o.price, o.cost
      FROM smsgw_rollups_out_of_cubes_v1(smsgw_first_whole_day_v1(p_starts, p_hours),
                                         date_trunc('day', p_ends, 'UTC'), p_tenant_id) o
    UNION ALL
    SELECT e.hour, e.tenant_id, e.country, e.provider, e.status, e.messages, e.segments,
           e.price, e.cost
      FROM smsgw_usage_edges_v4(p_starts, p_ends, p_tenant_id, p_hours) e
$$;

CREATE FUNCTION smsgw_usage_by_tenant_v3(p_starts timestamptz, p_ends timestamptz,
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
                          (SELECT smsgw_rollup_tail_v1()))
    UNION ALL
    SELECT h.hour, h.tenant_id, h.messages, h.segments, h.captured, h.captured_segments,
           h.revenue, h.cost
      FROM hourly_tenant_rollups h
     WHERE h.hour >= greatest(date_trunc('day', p_ends, 'UTC'),
                              smsgw_first_whole_day_v1(p_starts, p_hours))
       AND h.hour < least(p_ends,
                          (SELECT smsgw_rollup_tail_v1()))
    UNION ALL
    -- The hours not in the cubes (the open hour, before its mark), whole days or not.
    SELECT o.hour, o.tenant_id, o.messages, o.segments,
           CASE WHEN o.captured THEN o.messages ELSE 0 END,
           CASE WHEN o.captured THEN o.segments ELSE 0 END,
           CASE WHEN o.captured THEN o.price ELSE 0 END,
           CASE WHEN o.captured THEN o.cost ELSE 0 END
      FROM (SELECT *, status IN ('sent', 'delivered', 'undelivered') AS captured
              FROM smsgw_rollups_out_of_cubes_v1(p_starts, p_ends, NULL)) o
    UNION ALL
    SELECT e.hour, e.tenant_id, e.messages, e.segments,
           CASE WHEN e.captured THEN e.messages ELSE 0 END,
           CASE WHEN e.captured THEN e.segments ELSE 0 END,
           CASE WHEN e.captured THEN e.price ELSE 0 END,
           CASE WHEN e.captured THEN e.cost ELSE 0 END
      FROM (SELECT *, status IN ('sent', 'delivered', 'undelivered') AS captured
              FROM smsgw_usage_raw_v3(p_starts, p_ends, NULL)) e
$$;

CREATE FUNCTION smsgw_usage_by_route_v3(p_starts timestamptz, p_ends timestamptz,
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
                          (SELECT smsgw_rollup_tail_v1()))
    UNION ALL
    SELECT h.hour, h.country, h.provider, h.status, h.currency, h.messages, h.segments,
           h.price, h.cost, h.sent_latency, h.delivery_latency
      FROM hourly_route_rollups h
     WHERE h.hour >= greatest(date_trunc('day', p_ends, 'UTC'),
                              smsgw_first_whole_day_v1(p_starts, p_hours))
       AND h.hour < least(p_ends,
                          (SELECT smsgw_rollup_tail_v1()))
    UNION ALL
    -- The hours not in the cubes (the open hour, before its mark), whole days or not.
    SELECT o.hour, o.country, o.provider, o.status, t.currency, o.messages, o.segments,
           o.price, o.cost, o.sent_latency, o.delivery_latency
      FROM smsgw_rollups_out_of_cubes_v1(p_starts, p_ends, NULL) o
      JOIN tenants t ON t.id = o.tenant_id
    UNION ALL
    SELECT e.hour, e.country, e.provider, e.status, t.currency, e.messages, e.segments,
           e.price, e.cost, e.sent_latency, e.delivery_latency
      FROM smsgw_usage_raw_v3(p_starts, p_ends, NULL) e
      JOIN tenants t ON t.id = e.tenant_id
$$;
