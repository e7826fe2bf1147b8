-- 0016: incremental refolds of the hourly rollups (issue 27: rollup upkeep within 5% of
-- the e2e throughput). A fold recomputed the whole hour when it closed and again every
-- refresh until it settled, about 7 times per message; now only the first fold reads
-- the whole hour, and a refold reads the messages that could still change.

-- The messages of a folded hour whose status is not final yet (scheduled, queued,
-- sending; sent, as its receipt may come), each with what the fold added for it to
-- message_rollups: its row's key (the country as the fold found it) and its share. A
-- refold reads these messages only, by primary key, takes back what was added for each
-- whose share changed and adds what it is now; a message whose status is final leaves
-- the table. The hour's rows go when the hour becomes final (or its raw messages go).
-- Unlogged: an hour's first fold may record most of its messages (receipts come after
-- it), and their WAL would cost as much as the rest of the fold. A crash, a promoted
-- replica or a base backup finds the table empty: rollup_hours.pending_rows then differs
-- from the rows found and the next fold reads the whole hour again.
CREATE UNLOGGED TABLE rollup_pending (
    hour timestamptz NOT NULL,
    message_id uuid NOT NULL,
    created_at timestamptz NOT NULL,
    tenant_id uuid NOT NULL,
    country text NOT NULL,
    provider text NOT NULL,
    status text NOT NULL,
    segments smallint NOT NULL,
    price bigint NOT NULL,
    cost bigint NOT NULL,
    -- width_bucket of the latencies (smsgw_rollup_bounds_v1), NULL while not measured.
    sent_bucket smallint,
    delivery_bucket smallint,
    PRIMARY KEY (hour, message_id)
);

-- The folded_at of the hour's last fold that kept rollup_pending (v3), and how many rows
-- it left there. A fold of an older release since (v1, v2: they keep no pending rows)
-- leaves folded_at different, a crash leaves fewer rows, and the next fold reads the
-- whole hour again.
ALTER TABLE rollup_hours ADD COLUMN pending_as_of timestamptz;
ALTER TABLE rollup_hours ADD COLUMN pending_rows bigint;

-- What a refold adds to one row of message_rollups (negative: takes back), in the
-- table's shape, whatever columns the table gains later.
CREATE TYPE smsgw_rollup_change_v1 AS (
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

-- Fold one hour, as smsgw_fold_rollup_hour_v2 (merging; folds of one UTC day queue on an
-- advisory lock; an hour whose messages partition is gone is final), but a refold is
-- incremental: when the hour's last fold kept its pending messages (pending_as_of,
-- pending_rows), only the messages of rollup_pending are read, by primary key, in one
-- statement (what it takes back and adds is what that statement saw), and the rows
-- their change touches written. Otherwise, or with p_full (repair), the whole hour is recomputed and its
-- pending messages recorded afresh. A message may commit into an hour after the hour's
-- first fold read it (its id, so its created_at, is made before the accept commits):
-- until a fold has run 10 minutes after the hour's end, a refold counts the hour's
-- messages first and, when they are more than the fold counted, recomputes the hour.
-- The hour's messages are found by the range of their ids (UUIDv7: created_at is the
-- id's millisecond, core/ids.py), so a fold reads the hour, not its whole day's
-- partition. Returns whether the hour is final now (settled, none of its messages
-- scheduled, queued or sending); a final hour has no pending rows left: a receipt after
-- that is not counted, as before.
CREATE FUNCTION smsgw_fold_rollup_hour_v3(p_hour timestamptz, p_settled boolean,
                                          p_full boolean DEFAULT false)
    RETURNS boolean
    LANGUAGE plpgsql
AS $$
DECLARE
    pending bigint;  -- messages scheduled, queued or sending: not final
    kept bigint;  -- rows left in rollup_pending
    total bigint;
    known rollup_hours;
    dropped uuid[];
    renewed rollup_pending[];
    changes smsgw_rollup_change_v1[];
    bounds double precision[] := smsgw_rollup_bounds_v1()::double precision[];
    zeros bigint[] := array_fill(0::bigint, ARRAY[12]);
    -- The least UUIDv7 of the hour's first millisecond and of the next hour's.
    first_id uuid := smsgw_first_id_v1(p_hour);
    next_id uuid := smsgw_first_id_v1(p_hour + interval '1 hour');
BEGIN
    IF p_hour <> date_trunc('hour', p_hour, 'UTC') THEN
        RAISE EXCEPTION 'not an hour: %', p_hour;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('smsgw_rollup_day'),
                                  hashtext(to_char(p_hour AT TIME ZONE 'UTC', 'YYYYMMDD')));
    IF to_regclass(format('messages_%s', to_char(p_hour AT TIME ZONE 'UTC', 'YYYYMMDD')))
       IS NULL THEN
        DELETE FROM rollup_pending WHERE hour = p_hour;
        INSERT INTO rollup_hours AS r (hour, folded_at, final, messages, pending_rows)
        VALUES (p_hour, now(), true,
                coalesce((SELECT sum(messages) FROM message_rollups WHERE hour = p_hour), 0),
                0)
        ON CONFLICT (hour) DO UPDATE SET final = true, pending_rows = 0;
        RETURN true;
    END IF;
    SELECT * INTO known FROM rollup_hours WHERE hour = p_hour;
    IF NOT p_full AND known.pending_as_of = known.folded_at
       AND known.pending_rows = (SELECT count(*) FROM rollup_pending WHERE hour = p_hour)
       AND (known.pending_as_of >= p_hour + interval '70 minutes'
            OR known.messages = (SELECT count(*) FROM messages
                                  WHERE id >= first_id AND id < next_id
                                    AND created_at >= p_hour
                                    AND created_at < p_hour + interval '1 hour')) THEN
        total := known.messages;
        -- One statement reads the pending messages (one snapshot: what is taken back and
        -- added below is what it saw) into arrays; the writes follow from those, and
        -- none is made when nothing changed (the cubes' statement triggers would run).
        WITH seen AS (
            SELECT p.message_id, p.created_at, p.tenant_id, p.country,
                   p.provider AS was_provider, p.status AS was_status,
                   p.segments AS was_segments, p.price AS was_price, p.cost AS was_cost,
                   p.sent_bucket AS was_sb, p.delivery_bucket AS was_db,
                   m.id IS NOT NULL AS present,
                   coalesce(m.provider, '') AS provider, m.status, m.segments, m.price,
                   coalesce(m.cost, 0) AS cost,
                   CASE WHEN m.sent_at IS NOT NULL THEN width_bucket(
                       extract(epoch FROM m.sent_at - m.created_at)::double precision * 1000,
                       bounds) END AS sb,
                   CASE WHEN m.delivered_at IS NOT NULL AND m.sent_at IS NOT NULL
                        THEN width_bucket(
                       extract(epoch FROM m.delivered_at - m.sent_at)::double precision * 1000,
                       bounds) END AS db
              FROM rollup_pending p
              LEFT JOIN messages m
                ON m.id = p.message_id AND m.created_at = p.created_at
               AND m.id >= first_id AND m.id < next_id
               AND m.created_at >= p_hour AND m.created_at < p_hour + interval '1 hour'
             WHERE p.hour = p_hour
        ), judged AS (
            SELECT *,
                   present AND (provider, status, segments, price, cost, sb, db)
                       IS DISTINCT FROM (was_provider, was_status, was_segments, was_price,
                                         was_cost, was_sb, was_db) AS shifted,
                   present AND status IN ('scheduled', 'queued', 'sending', 'sent') AS open
              FROM seen
        ), signed AS (
            SELECT -1 AS n, tenant_id, country, was_provider AS provider,
                   was_status AS status, was_segments::integer AS segments,
                   was_price AS price, was_cost AS cost, was_sb::integer AS sb,
                   was_db::integer AS db
              FROM judged WHERE shifted
            UNION ALL
            SELECT 1, tenant_id, country, provider, status, segments, price, cost, sb, db
              FROM judged WHERE shifted
        ), change AS (
            SELECT p_hour AS hour, tenant_id, country, provider, status,
                   sum(n)::bigint AS messages, sum(n * segments)::bigint AS segments,
                   sum(n * price)::bigint AS price, sum(n * cost)::bigint AS cost,
                   ARRAY[
                         coalesce(sum(n) FILTER (WHERE sb = 0), 0),
                         coalesce(sum(n) FILTER (WHERE sb = 1), 0),
                         coalesce(sum(n) FILTER (WHERE sb = 2), 0),
                         coalesce(sum(n) FILTER (WHERE sb = 3), 0),
                         coalesce(sum(n) FILTER (WHERE sb = 4), 0),
                         coalesce(sum(n) FILTER (WHERE sb = 5), 0),
                         coalesce(sum(n) FILTER (WHERE sb = 6), 0),
                         coalesce(sum(n) FILTER (WHERE sb = 7), 0),
                         coalesce(sum(n) FILTER (WHERE sb = 8), 0),
                         coalesce(sum(n) FILTER (WHERE sb = 9), 0),
                         coalesce(sum(n) FILTER (WHERE sb = 10), 0),
                         coalesce(sum(n) FILTER (WHERE sb = 11), 0)]::bigint[]
                       AS sent_latency,
                   ARRAY[
                         coalesce(sum(n) FILTER (WHERE db = 0), 0),
                         coalesce(sum(n) FILTER (WHERE db = 1), 0),
                         coalesce(sum(n) FILTER (WHERE db = 2), 0),
                         coalesce(sum(n) FILTER (WHERE db = 3), 0),
                         coalesce(sum(n) FILTER (WHERE db = 4), 0),
                         coalesce(sum(n) FILTER (WHERE db = 5), 0),
                         coalesce(sum(n) FILTER (WHERE db = 6), 0),
                         coalesce(sum(n) FILTER (WHERE db = 7), 0),
                         coalesce(sum(n) FILTER (WHERE db = 8), 0),
                         coalesce(sum(n) FILTER (WHERE db = 9), 0),
                         coalesce(sum(n) FILTER (WHERE db = 10), 0),
                         coalesce(sum(n) FILTER (WHERE db = 11), 0)]::bigint[]
                       AS delivery_latency
              FROM signed
             GROUP BY tenant_id, country, provider, status
        )
        SELECT (SELECT count(*) FILTER (WHERE open) FROM judged),
               (SELECT count(*) FILTER (WHERE present
                                        AND status IN ('scheduled', 'queued', 'sending'))
                  FROM judged),
               (SELECT array_agg(message_id) FROM judged WHERE shifted OR NOT open),
               (SELECT array_agg(ROW(p_hour, message_id, created_at, tenant_id, country,
                                     provider, status, segments, price, cost, sb::smallint,
                                     db::smallint)::rollup_pending)
                  FROM judged WHERE shifted AND open),
               (SELECT array_agg(c::smsgw_rollup_change_v1) FROM change c
                 WHERE (messages, segments, price, cost) <> (0, 0, 0, 0)
                    OR sent_latency <> zeros OR delivery_latency <> zeros)
          INTO kept, pending, dropped, renewed, changes;
        IF changes IS NOT NULL THEN
            WITH applied AS (
                SELECT d.*, r.messages + d.messages = 0 AS emptied
                  FROM unnest(changes) d
                  LEFT JOIN message_rollups r
                    ON r.hour = p_hour AND r.tenant_id = d.tenant_id
                   AND r.country = d.country AND r.provider = d.provider
                   AND r.status = d.status
            ), emptied AS (
                -- A row left with no message has nothing left (every message counts 1).
                DELETE FROM message_rollups r USING applied c
                 WHERE c.emptied AND r.hour = p_hour AND r.tenant_id = c.tenant_id
                   AND r.country = c.country AND r.provider = c.provider
                   AND r.status = c.status
            )
            INSERT INTO message_rollups AS r (hour, tenant_id, country, provider, status,
                                              messages, segments, price, cost,
                                              sent_latency, delivery_latency)
            SELECT hour, tenant_id, country, provider, status, messages, segments, price,
                   cost, sent_latency, delivery_latency
              FROM applied c WHERE NOT coalesce(c.emptied, false)
            ON CONFLICT (hour, tenant_id, country, provider, status) DO UPDATE
               SET messages = r.messages + excluded.messages,
                   segments = r.segments + excluded.segments,
                   price = r.price + excluded.price, cost = r.cost + excluded.cost,
                   -- Element by element, spelled out: cheaper than smsgw_add_buckets_v1.
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
                       r.delivery_latency[12] + excluded.delivery_latency[12]];
        END IF;
        IF dropped IS NOT NULL THEN
            -- Final now, or recorded again with their new share just below.
            DELETE FROM rollup_pending WHERE hour = p_hour AND message_id = ANY (dropped);
        END IF;
        IF renewed IS NOT NULL THEN
            INSERT INTO rollup_pending SELECT * FROM unnest(renewed);
        END IF;
    ELSE
        DELETE FROM rollup_pending WHERE hour = p_hour;
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
               AND m.created_at >= p_hour AND m.created_at < p_hour + interval '1 hour'
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
        ), gone AS (
            DELETE FROM message_rollups r
             WHERE r.hour = p_hour
               AND NOT EXISTS (SELECT 1 FROM fresh f
                                WHERE f.tenant_id = r.tenant_id AND f.country = r.country
                                  AND f.provider = r.provider AND f.status = r.status)
        ), merged AS (
            INSERT INTO message_rollups AS r (hour, tenant_id, country, provider, status,
                                              messages, segments, price, cost,
                                              sent_latency, delivery_latency)
            SELECT * FROM fresh
            ON CONFLICT (hour, tenant_id, country, provider, status) DO UPDATE
               SET messages = excluded.messages, segments = excluded.segments,
                   price = excluded.price, cost = excluded.cost,
                   sent_latency = excluded.sent_latency,
                   delivery_latency = excluded.delivery_latency
             WHERE (r.messages, r.segments, r.price, r.cost, r.sent_latency,
                    r.delivery_latency)
                   IS DISTINCT FROM (excluded.messages, excluded.segments, excluded.price,
                                     excluded.cost, excluded.sent_latency,
                                     excluded.delivery_latency)
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
                        FILTER (WHERE status IN ('scheduled', 'queued', 'sending', 'sent')),
                        0)
          INTO total, pending, kept
          FROM fresh;
    END IF;
    IF p_settled AND pending = 0 THEN
        DELETE FROM rollup_pending WHERE hour = p_hour;
        kept := 0;
    END IF;
    INSERT INTO rollup_hours AS r (hour, folded_at, final, messages, pending_as_of,
                                   pending_rows)
    VALUES (p_hour, now(), p_settled AND pending = 0, total, now(), kept)
    ON CONFLICT (hour) DO UPDATE
        SET folded_at = excluded.folded_at, final = excluded.final,
            messages = excluded.messages, pending_as_of = excluded.pending_as_of,
            pending_rows = excluded.pending_rows;
    RETURN p_settled AND pending = 0;
END;
$$;
