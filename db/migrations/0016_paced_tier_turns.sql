-- 0016: a tier's turns are paced by the time its next turn is queued for, not by a
-- running turn that sleeps (issue 6).
--
-- While a tier's turns came back small, a worker slept up to the turn gap inside the
-- running dispatch job before it claimed. A worker killed then left the job `doing`,
-- and accepts, seeing their tenants queued, queued no other turn: the tier waited for
-- the safety net (~40 s). Now the claim of a small turn sets when the tier's next turn
-- may start, and that turn waits as a scheduled job (`todo`, its scheduled_at), which
-- any worker takes when it comes due. A turn that follows a small one sets the pace as
-- it starts (its own statement, committed at once), so that what accepts queue during
-- its claim waits for the gap too. The pace is per tier across all workers.
--
-- And a bug of 0011: a turn whose tenants all drained queued no next turn, though other
-- tenants of the tier, beyond the turn's cap, were waiting. And one of 0006: a waiting
-- job brought forward just as a worker took it was reported brought forward, and no
-- job was queued for what the caller had not committed yet.

-- The earliest time a turn of the tier is queued to start. Set by the claim of a small
-- turn and at the start of the turn after it (core/delivery.py), put back to now by a
-- full one; a tier without a row, or whose time has passed, is served at once.
CREATE TABLE tier_pace (
    tier text PRIMARY KEY,
    not_before timestamptz NOT NULL,
    -- The tier's last turn was small: the next one sets the pace as it starts, so that
    -- what is queued during its claim waits for the gap too.
    small boolean NOT NULL DEFAULT false
);

-- As in 0011, and no earlier than the tier's pace: an accept of a tenant new to the
-- queue does not bring a paced turn forward.
CREATE OR REPLACE FUNCTION smsgw_ensure_tier_turn_v1(p_tier text, p_task text, p_due timestamptz)
    RETURNS text
    LANGUAGE sql
AS $$
    SELECT smsgw_ensure_job_v1(
        'dispatch:tier:' || p_tier, p_tier, p_task, jsonb_build_object('tier', p_tier),
        greatest(p_due, (SELECT p.not_before FROM tier_pace p WHERE p.tier = p_tier)))
$$;

-- As in 0011, and a drained tenant's tier gets its next turn too when other tenants wait
-- there: a turn serves at most so many tenants, and when all of those it served
-- drained, the others waited for the safety net (~10 s).
CREATE OR REPLACE FUNCTION smsgw_requeue_tenants_v1(
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
            -- Drained. Its tier still gets its next turn if other tenants wait there
            -- (0016): a turn serves at most so many tenants, and when all of those it
            -- served drained, the others waited for the safety net.
            DELETE FROM dispatch_queue q WHERE q.tenant_id = t.tenant_id
            RETURNING q.tier INTO tenant_tier;
            IF FOUND AND NOT tenant_tier = ANY (tiers) THEN
                tiers := tiers || tenant_tier;
            END IF;
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
        SELECT min(q.due_at) INTO next_due FROM dispatch_queue q WHERE q.tier = tenant_tier;
        IF next_due IS NOT NULL THEN
            PERFORM smsgw_ensure_tier_turn_v1(tenant_tier, p_task, next_due);
        END IF;
    END LOOP;
    RETURN queued;
END;
$$;

-- As in 0006, and a job a worker took between the look and the update is not taken for
-- waiting: another is queued.
CREATE OR REPLACE FUNCTION smsgw_ensure_job_v1(
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
            IF FOUND THEN
                PERFORM pg_notify('procrastinate_queue_v1#' || waiting.queue_name,
                                  json_build_object('type', 'job_inserted', 'job_id', waiting.id)::text);
                PERFORM pg_notify('procrastinate_any_queue_v1',
                                  json_build_object('type', 'job_inserted', 'job_id', waiting.id)::text);
                RETURN 'brought_forward';
            END IF;
            -- A worker took it meanwhile (0016), and may look before this transaction's
            -- rows are visible: queue another, as if none had been waiting.
        ELSE
            RETURN 'waiting';
        END IF;
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
