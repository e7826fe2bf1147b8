-- 0005: per-tenant rate limits (ingest and delivery pace), retention of old partitions
-- with ledger roll-ups, and autovacuum settings for the hot tables.

-- Ingest limit: a token bucket of requests per second, refilled at the tenant's
-- rate_limit_mps and holding one second's worth. It lives on the balance row because
-- every accept already locks that row: the check costs no extra lock.
ALTER TABLE balances
    ADD COLUMN ingest_tokens double precision,
    ADD COLUMN ingest_at timestamptz;

-- Delivery pace: segments per second, spent by dispatchers (a row of its own, so
-- dispatch never waits on an accept's balance lock for it).
CREATE TABLE tenant_pace (
    tenant_id uuid PRIMARY KEY REFERENCES tenants (id),
    tokens double precision NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
) WITH (fillfactor = 50);

-- Up to `p_wanted` segments the tenant may send now at `p_rate` segments per second;
-- the bucket holds one second of sends. A negative `p_wanted` gives segments back.
CREATE FUNCTION smsgw_take_tenant_segments_v1(
    p_tenant_id uuid, p_wanted integer, p_rate double precision)
    RETURNS integer
    LANGUAGE plpgsql
AS $$
DECLARE
    available double precision;
    granted integer;
BEGIN
    INSERT INTO tenant_pace (tenant_id, tokens) VALUES (p_tenant_id, p_rate)
    ON CONFLICT DO NOTHING;
    SELECT least(p_rate, tokens + p_rate * extract(epoch FROM clock_timestamp() - at))
      INTO available
      FROM tenant_pace WHERE tenant_id = p_tenant_id FOR UPDATE;
    granted := least(p_wanted, floor(available)::integer);
    UPDATE tenant_pace SET tokens = available - granted, at = clock_timestamp()
     WHERE tenant_id = p_tenant_id;
    RETURN granted;
END;
$$;

-- What the ledger held in partitions that retention dropped, so the invariant can still
-- be checked: holds, captures and releases per tenant and day.
CREATE TABLE ledger_rollups (
    tenant_id uuid NOT NULL,
    day date NOT NULL,
    holds bigint NOT NULL DEFAULT 0,
    captures bigint NOT NULL DEFAULT 0,
    releases bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, day)
);

-- Drop the daily partitions of days before `p_before`, rolling their ledger entries up
-- first. A day that still holds a message not yet settled (scheduled, queued, sending)
-- is kept and reported instead: dropping it would lose a hold. Returns one row per day.
CREATE FUNCTION smsgw_drop_partitions_v1(p_before date)
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
    -- Callbacks are partitioned by their own creation day; a day's outbox goes with it.
    FOR child IN
        SELECT c.relname
          FROM pg_inherits i
          JOIN pg_class c ON c.oid = i.inhrelid
          JOIN pg_class p ON p.oid = i.inhparent
         WHERE p.relname = 'callbacks' AND c.relname ~ '^callbacks_[0-9]{8}$'
           AND to_date(right(c.relname, 8), 'YYYYMMDD') < p_before
    LOOP
        EXECUTE format('DROP TABLE %I', child.relname);
    END LOOP;
END;
$$;

-- New daily partitions get autovacuum settings for their load: messages are updated two
-- to three times each (queued -> sending -> sent -> delivered), so a message partition is
-- vacuumed after 2% of it is dead rather than the default 20%, and leaves room on each
-- page for updates to stay on the page (HOT) when no indexed column changes.
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
            'messages', 'message_events', 'ledger_message_entries', 'callbacks'] LOOP
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

-- Small tables rewritten all day: vacuum them after a fixed number of dead rows, not a
-- share of a size that stays tiny.
ALTER TABLE balances SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000);
ALTER TABLE receipts_inbox SET (autovacuum_vacuum_scale_factor = 0,
                                autovacuum_vacuum_threshold = 5000);
ALTER TABLE provider_health SET (autovacuum_vacuum_scale_factor = 0,
                                 autovacuum_vacuum_threshold = 1000);

-- The invariant, now counting what retention rolled up.
CREATE OR REPLACE FUNCTION smsgw_ledger_violations_v1()
    RETURNS TABLE (tenant_id uuid, message_id uuid, problem text)
    LANGUAGE sql STABLE
AS $$
    WITH entry_totals AS (
        SELECT t.tenant_id, sum(t.holds) AS holds, sum(t.captures) AS captures,
               sum(t.releases) AS releases
          FROM (
            SELECT e.tenant_id,
                   sum(e.amount) FILTER (WHERE e.kind = 'hold') AS holds,
                   sum(e.amount) FILTER (WHERE e.kind = 'capture') AS captures,
                   sum(e.amount) FILTER (WHERE e.kind = 'release') AS releases
              FROM ledger_message_entries e GROUP BY e.tenant_id
            UNION ALL
            SELECT r.tenant_id, sum(r.holds), sum(r.captures), sum(r.releases)
              FROM ledger_rollups r GROUP BY r.tenant_id
          ) AS t
         GROUP BY t.tenant_id
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
