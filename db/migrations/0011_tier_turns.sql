-- 0011: dispatch turns per tier (issue 6).
--
-- Until now each tenant had its own waiting dispatch job. With many tenants sending a
-- message or two each, nearly every accept found its tenant's job already taken by a
-- worker and inserted a new one: one procrastinate job (insert, NOTIFY, fetch, finish)
-- per message, the very cost DESIGN.md's throughput design avoids. Now a tenant with
-- something to send has a row in `dispatch_queue`, and a dispatch job is a turn of a
-- whole tier: it serves the tier's longest-waiting tenants, a batch each, in one claim
-- and one settle. The number of jobs follows the load, not the number of tenants.
--
-- Deploy the workers before the API: jobs of the new kind carry a tier, which workers
-- of the previous release do not understand. Their waiting per-tenant jobs are still
-- run by the new workers (they queue their tenant here).

-- The tenants with scheduled or queued messages, one row each (deleted when nothing is
-- left). Written only under the tenant's balance row lock (accepts hold it already),
-- so an accept and a dispatcher's recount never miss each other's messages.
CREATE TABLE dispatch_queue (
    tenant_id uuid PRIMARY KEY REFERENCES tenants (id),
    tier text NOT NULL,
    -- When the tenant next has something due; a tenant just served goes to the back of
    -- the line (no earlier than that turn), so turns rotate among waiting tenants.
    due_at timestamptz NOT NULL,
    -- No scheduled or queued message of the tenant was created before this. The claim
    -- bounds created_at by it, so PostgreSQL reads only the daily partitions that can
    -- hold one (without it, each tenant's claim probed every partition's index).
    oldest timestamptz NOT NULL
) WITH (fillfactor = 70, autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000);
CREATE INDEX dispatch_queue_due_idx ON dispatch_queue (tier, due_at);

-- A waiting procrastinate job under the queueing lock `p_lock` that runs no later than
-- `p_due` (NULL or past: now). Inserting through procrastinate's own versioned function
-- keeps its trigger (the NOTIFY) and defaults. Returns what it took: waiting,
-- brought_forward, deferred or raced.
CREATE FUNCTION smsgw_ensure_job_v1(
    p_lock text, p_queue text, p_task text, p_args jsonb, p_due timestamptz)
    RETURNS text
    LANGUAGE plpgsql
AS $$
DECLARE
    run_at timestamptz := CASE WHEN p_due > now() THEN p_due END;
    waiting record;
BEGIN
    SELECT id, queue_name, scheduled_at INTO waiting
      FROM procrastinate_jobs WHERE queueing_lock = p_lock AND status = 'todo';
    IF FOUND THEN
        IF waiting.scheduled_at IS NOT NULL AND (run_at IS NULL OR waiting.scheduled_at > run_at)
        THEN
            -- Bring it forward, and wake the queue's workers as an insert would.
            UPDATE procrastinate_jobs SET scheduled_at = run_at
             WHERE id = waiting.id AND status = 'todo';
            PERFORM pg_notify('procrastinate_queue_v1#' || waiting.queue_name,
                              json_build_object('type', 'job_inserted', 'job_id', waiting.id)::text);
            PERFORM pg_notify('procrastinate_any_queue_v1',
                              json_build_object('type', 'job_inserted', 'job_id', waiting.id)::text);
            RETURN 'brought_forward';
        END IF;
        RETURN 'waiting';
    END IF;
    BEGIN
        PERFORM procrastinate_defer_jobs_v1(ARRAY[ROW(
            p_queue, p_task, 0, NULL, p_lock, p_args, run_at
        )::procrastinate_job_to_defer_v1]);
    EXCEPTION WHEN unique_violation THEN
        -- Another transaction queued one first: that one will do.
        RETURN 'raced';
    END;
    RETURN 'deferred';
END;
$$;

-- The per-tenant rule of 0006, for processes of the previous release during a deploy.
CREATE OR REPLACE FUNCTION smsgw_ensure_dispatch_v1(
    p_tenant_id uuid, p_queue text, p_task text, p_due timestamptz)
    RETURNS text
    LANGUAGE sql
AS $$
    SELECT smsgw_ensure_job_v1('dispatch:' || p_tenant_id, p_queue, p_task,
                               jsonb_build_object('tenant_id', p_tenant_id::text), p_due)
$$;

-- A turn of the tier `p_tier` will run no later than `p_due`: one waiting job per tier.
CREATE FUNCTION smsgw_ensure_tier_turn_v1(p_tier text, p_task text, p_due timestamptz)
    RETURNS text
    LANGUAGE sql
AS $$
    SELECT smsgw_ensure_job_v1('dispatch:tier:' || p_tier, p_tier, p_task,
                               jsonb_build_object('tier', p_tier), p_due)
$$;

-- The accept side: the tenant has messages due from `p_due`, none created before
-- `p_oldest`. The caller holds the tenant's balance row lock. Under load the row is
-- usually there already, due as early: then this only reads.
CREATE FUNCTION smsgw_queue_tenant_v1(
    p_tenant_id uuid, p_tier text, p_task text, p_due timestamptz, p_oldest timestamptz)
    RETURNS text
    LANGUAGE plpgsql
AS $$
DECLARE
    queued record;
    turn_coming boolean;
BEGIN
    SELECT q.tier, q.due_at, q.oldest INTO queued
      FROM dispatch_queue q WHERE q.tenant_id = p_tenant_id;
    turn_coming := FOUND AND queued.tier = p_tier AND queued.due_at <= p_due;
    IF turn_coming AND queued.oldest <= p_oldest THEN
        RETURN 'queued';
    END IF;
    INSERT INTO dispatch_queue AS q (tenant_id, tier, due_at, oldest)
    VALUES (p_tenant_id, p_tier, p_due, p_oldest)
    ON CONFLICT (tenant_id) DO UPDATE
       SET tier = excluded.tier,
           due_at = least(q.due_at, excluded.due_at),
           oldest = least(q.oldest, excluded.oldest);
    IF turn_coming THEN
        RETURN 'queued';
    END IF;
    -- A row due this early already had its turn coming (see smsgw_requeue_tenants_v1).
    RETURN smsgw_ensure_tier_turn_v1(p_tier, p_task, least(p_due, queued.due_at));
END;
$$;

-- The dispatcher side: recount the queue rows of `p_tenants` from their messages, then
-- make sure each tier concerned has a turn coming for its earliest due tenant. Tenant by
-- tenant, in id order (the order of every statement that locks several balance rows),
-- the balance row is locked first, so an accept of that tenant commits before the
-- recount (which sees its messages) or after it (and queues them itself). Messages that
-- are `sending` are not counted: the turn that sends them recounts when it settles.
-- A tenant the caller made nothing due for is skipped while an accept holds its row.
-- `p_oldest[i]`: the oldest created_at among messages of p_tenants[i] the caller has
-- just made due again (a retry, a lapsed lease), NULL if none; '-infinity' when not
-- known. `p_back_of_line`: the tenants were just served, so they are due no earlier than
-- now, behind those already waiting. Returns how many of them stay queued.
CREATE FUNCTION smsgw_requeue_tenants_v1(
    p_tenants uuid[], p_oldest timestamptz[], p_task text, p_back_of_line boolean)
    RETURNS integer
    LANGUAGE plpgsql
AS $$
DECLARE
    t record;
    bound timestamptz;
    next_due timestamptz;
    tenant_tier text;
    tiers text[] := '{}';
    queued integer := 0;
BEGIN
    FOR t IN
        SELECT u.tenant_id, min(u.oldest) AS oldest
          FROM unnest(p_tenants, p_oldest) AS u(tenant_id, oldest)
         GROUP BY u.tenant_id
         ORDER BY u.tenant_id
    LOOP
        IF t.oldest IS NULL THEN
            -- Nothing made due by the caller: a tenant whose accept is in flight keeps
            -- its row as it is (due, so a turn comes back to it) rather than have this
            -- recount wait, holding the rows it locked before, for the accept.
            PERFORM 1 FROM balances b WHERE b.tenant_id = t.tenant_id
               FOR NO KEY UPDATE SKIP LOCKED;
            IF NOT FOUND THEN
                SELECT q.tier INTO tenant_tier FROM dispatch_queue q
                 WHERE q.tenant_id = t.tenant_id;
                IF FOUND AND NOT tenant_tier = ANY (tiers) THEN
                    tiers := tiers || tenant_tier;
                END IF;
                CONTINUE;
            END IF;
        ELSE
            PERFORM 1 FROM balances b WHERE b.tenant_id = t.tenant_id FOR NO KEY UPDATE;
        END IF;
        SELECT least(q.oldest, t.oldest) INTO bound
          FROM dispatch_queue q WHERE q.tenant_id = t.tenant_id;
        IF NOT FOUND THEN
            bound := t.oldest;
        END IF;
        CONTINUE WHEN bound IS NULL;  -- no row and nothing made due: nothing to count
        SELECT min(m.next_attempt_at) INTO next_due
          FROM messages m
         WHERE m.tenant_id = t.tenant_id AND m.status IN ('scheduled', 'queued')
           AND m.created_at >= bound;
        IF next_due IS NULL THEN
            DELETE FROM dispatch_queue q WHERE q.tenant_id = t.tenant_id;
            CONTINUE;
        END IF;
        IF p_back_of_line THEN
            next_due := greatest(next_due, now());
        END IF;
        SELECT tn.tier INTO tenant_tier FROM tenants tn WHERE tn.id = t.tenant_id;
        INSERT INTO dispatch_queue AS q (tenant_id, tier, due_at, oldest)
        VALUES (t.tenant_id, tenant_tier, next_due, bound)
        ON CONFLICT (tenant_id) DO UPDATE
           SET tier = excluded.tier, due_at = excluded.due_at, oldest = excluded.oldest;
        IF NOT tenant_tier = ANY (tiers) THEN
            tiers := tiers || tenant_tier;
        END IF;
        queued := queued + 1;
    END LOOP;
    FOREACH tenant_tier IN ARRAY tiers LOOP
        PERFORM smsgw_ensure_tier_turn_v1(
            tenant_tier, p_task,
            (SELECT min(q.due_at) FROM dispatch_queue q WHERE q.tier = tenant_tier));
    END LOOP;
    RETURN queued;
END;
$$;

-- A settle's captures and releases applied to the balances, tenant by tenant in id
-- order: two transactions that settle for the same tenants lock their balance rows in
-- the same order, so they never deadlock. Returns how many balances changed.
CREATE FUNCTION smsgw_apply_settlement_v1(
    p_tenants uuid[], p_captured bigint[], p_released bigint[])
    RETURNS integer
    LANGUAGE plpgsql
AS $$
DECLARE
    t record;
    changed integer := 0;
BEGIN
    FOR t IN
        SELECT u.tenant_id, sum(u.captured) AS captured, sum(u.released) AS released
          FROM unnest(p_tenants, p_captured, p_released) AS u(tenant_id, captured, released)
         GROUP BY u.tenant_id
         ORDER BY u.tenant_id
    LOOP
        CONTINUE WHEN t.captured = 0 AND t.released = 0;
        UPDATE balances b
           SET held = b.held - t.captured - t.released,
               captured = b.captured + t.captured,
               available = b.available + t.released
         WHERE b.tenant_id = t.tenant_id;
        changed := changed + 1;
    END LOOP;
    RETURN changed;
END;
$$;

-- Accept as smsgw_accept_v2, the work queued as a tenant row of dispatch_queue and its
-- tier's turn (p_queue is the tier). NULL `p_task`: nothing is queued, and `due` tells
-- the caller when the accepted messages are due (smsgw_accept_v2 queues them its way).
CREATE FUNCTION smsgw_accept_v3(
    p_tenant_id uuid, p_rate double precision, p_messages json,
    p_queue text, p_task text, p_honour_opt_outs boolean)
    RETURNS TABLE (accepted integer, available bigint, tokens double precision,
                   opted_out uuid[], due timestamptz)
    LANGUAGE plpgsql
AS $$
DECLARE
    n integer;
    wanted integer;
    total bigint;
    first_due timestamptz;
    oldest timestamptz;
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
    SELECT count(*), coalesce(sum(m.price), 0), min(coalesce(m.send_at, m.created_at)),
           min(m.created_at)
      INTO wanted, total, first_due, oldest
      FROM json_to_recordset(p_messages) AS m(
        id uuid, created_at timestamptz, price bigint, send_at timestamptz)
     WHERE m.id <> ALL (refused);
    IF wanted = 0 THEN
        RETURN QUERY SELECT 0, NULL::bigint, NULL::double precision, refused,
                            NULL::timestamptz;
        RETURN;
    END IF;
    WITH hold AS (
        UPDATE balances b
           SET available = b.available - total, held = b.held + total,
               ingest_tokens = CASE WHEN p_rate IS NULL THEN b.ingest_tokens
                   ELSE least(p_rate, coalesce(b.ingest_tokens + p_rate * greatest(0, extract(epoch FROM clock_timestamp() - b.ingest_at)), p_rate))
                        - 1 END,
               ingest_at = CASE WHEN p_rate IS NULL THEN b.ingest_at ELSE clock_timestamp() END
         WHERE b.tenant_id = p_tenant_id AND b.available >= total
           AND (p_rate IS NULL
                OR least(p_rate, coalesce(b.ingest_tokens + p_rate * greatest(0, extract(epoch FROM clock_timestamp() - b.ingest_at)), p_rate)) >= 1)
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
                    ELSE least(p_rate, coalesce(b.ingest_tokens + p_rate * greatest(0, extract(epoch FROM clock_timestamp() - b.ingest_at)), p_rate))
               END,
               refused, NULL::timestamptz
          FROM balances b WHERE b.tenant_id = p_tenant_id;
        RETURN;
    END IF;
    -- A new statement, so a new snapshot. NULL task: the caller queues the work itself.
    IF p_task IS NOT NULL THEN
        PERFORM smsgw_queue_tenant_v1(p_tenant_id, p_queue, p_task, first_due, oldest);
    END IF;
    RETURN QUERY SELECT n, NULL::bigint, NULL::double precision, refused, first_due;
END;
$$;

-- The previous release's accept: the same, then its per-tenant job.
CREATE OR REPLACE FUNCTION smsgw_accept_v2(
    p_tenant_id uuid, p_rate double precision, p_messages json,
    p_queue text, p_task text, p_honour_opt_outs boolean)
    RETURNS TABLE (accepted integer, available bigint, tokens double precision,
                   opted_out uuid[])
    LANGUAGE plpgsql
AS $$
DECLARE
    r record;
BEGIN
    SELECT * INTO r FROM smsgw_accept_v3(
        p_tenant_id, p_rate, p_messages, p_queue, NULL, p_honour_opt_outs) AS a;
    IF r.accepted > 0 THEN
        PERFORM smsgw_ensure_dispatch_v1(p_tenant_id, p_queue, p_task, r.due);
    END IF;
    RETURN QUERY SELECT r.accepted, r.available, r.tokens, r.opted_out;
END;
$$;

-- The accept of two releases back (0006): the same as smsgw_accept_v3 without opt-outs,
-- then its per-tenant job. (Its callers compute the total and due time themselves; they
-- equal what smsgw_accept_v3 computes from the messages.)
CREATE OR REPLACE FUNCTION smsgw_accept_v1(
    p_tenant_id uuid, p_total bigint, p_rate double precision, p_messages json,
    p_queue text, p_task text, p_due timestamptz)
    RETURNS TABLE (accepted integer, available bigint, tokens double precision)
    LANGUAGE plpgsql
AS $$
DECLARE
    r record;
BEGIN
    SELECT * INTO r FROM smsgw_accept_v3(
        p_tenant_id, p_rate, p_messages, p_queue, NULL, false) AS a;
    IF r.accepted > 0 THEN
        PERFORM smsgw_ensure_dispatch_v1(p_tenant_id, p_queue, p_task, p_due);
    END IF;
    RETURN QUERY SELECT r.accepted, r.available, r.tokens;
END;
$$;

-- Tenants with work waiting now (from the messages, in case of a crash mid-deploy).
INSERT INTO dispatch_queue (tenant_id, tier, due_at, oldest)
SELECT m.tenant_id, t.tier, min(m.next_attempt_at), min(m.created_at)
  FROM messages m JOIN tenants t ON t.id = m.tenant_id
 WHERE m.status IN ('scheduled', 'queued')
 GROUP BY m.tenant_id, t.tier;
