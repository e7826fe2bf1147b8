-- 0006: an accept is one call to the database. The hold, the messages, their ledger
-- entries and the dispatch job commit together in one statement's transaction (one
-- round trip instead of four), and the rule that keeps a dispatch job coming for a
-- tenant lives in one function, used by accepts and dispatchers alike.

-- Make sure a dispatch job for the tenant will run no later than `p_due` (NULL: now).
-- The caller holds the tenant's balance row lock, so this check and a dispatcher's own
-- "anything left?" check cannot interleave (see jobs/scheduler.py). Inserting through
-- procrastinate's own versioned function keeps its trigger (the NOTIFY) and defaults.
CREATE FUNCTION smsgw_ensure_dispatch_v1(
    p_tenant_id uuid, p_queue text, p_task text, p_due timestamptz)
    RETURNS text
    LANGUAGE plpgsql
AS $$
DECLARE
    lock_name text := 'dispatch:' || p_tenant_id;
    run_at timestamptz := CASE WHEN p_due > now() THEN p_due END;
    waiting record;
BEGIN
    SELECT id, queue_name, scheduled_at INTO waiting
      FROM procrastinate_jobs WHERE queueing_lock = lock_name AND status = 'todo';
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
            p_queue, p_task, 0, NULL, lock_name,
            jsonb_build_object('tenant_id', p_tenant_id::text), run_at
        )::procrastinate_job_to_defer_v1]);
    EXCEPTION WHEN unique_violation THEN
        -- Another transaction queued one first: that one will do.
        RETURN 'raced';
    END;
    RETURN 'deferred';
END;
$$;

-- Accept messages for a tenant: the conditional hold (and, with a rate, one token from
-- the ingest bucket), the messages and their ledger holds, then the dispatch job.
-- Returns the number accepted; when 0, nothing was written and `available` and
-- `tokens` say why (short of credit, or over the rate).
CREATE FUNCTION smsgw_accept_v1(
    p_tenant_id uuid, p_total bigint, p_rate double precision, p_messages json,
    p_queue text, p_task text, p_due timestamptz)
    RETURNS TABLE (accepted integer, available bigint, tokens double precision)
    LANGUAGE plpgsql
AS $$
DECLARE
    n integer;
BEGIN
    WITH hold AS (
        -- The bucket is computed from the row this UPDATE locks (re-read if a
        -- concurrent accept changed it first), so two accepts cannot spend one token.
        UPDATE balances b
           SET available = b.available - p_total, held = b.held + p_total,
               ingest_tokens = CASE WHEN p_rate IS NULL THEN b.ingest_tokens
                   ELSE least(p_rate, coalesce(b.ingest_tokens, p_rate)
                              + p_rate * extract(epoch FROM clock_timestamp()
                                                 - coalesce(b.ingest_at, clock_timestamp())))
                        - 1 END,
               ingest_at = CASE WHEN p_rate IS NULL THEN b.ingest_at ELSE clock_timestamp() END
         WHERE b.tenant_id = p_tenant_id AND b.available >= p_total
           AND (p_rate IS NULL
                OR least(p_rate, coalesce(b.ingest_tokens, p_rate)
                         + p_rate * extract(epoch FROM clock_timestamp()
                                            - coalesce(b.ingest_at, clock_timestamp()))) >= 1)
        RETURNING b.tenant_id
    ), inserted AS (
        INSERT INTO messages (
            id, created_at, tenant_id, status, to_number, sender, body, encoding, segments,
            price, callback_url, client_reference, send_at, expires_at, next_attempt_at,
            updated_at)
        SELECT m.id, m.created_at, hold.tenant_id, m.status, m.to_number, m.sender, m.body,
               m.encoding, m.segments, m.price, m.callback_url, m.client_reference,
               m.send_at, m.expires_at, coalesce(m.send_at, m.created_at), m.created_at
          FROM hold, json_to_recordset(p_messages) AS m(
            id uuid, created_at timestamptz, status text, to_number text, sender text,
            body text, encoding text, segments smallint, price bigint, callback_url text,
            client_reference text, send_at timestamptz, expires_at timestamptz)
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
                    ELSE least(p_rate, coalesce(b.ingest_tokens, p_rate)
                               + p_rate * extract(epoch FROM clock_timestamp()
                                                  - coalesce(b.ingest_at, clock_timestamp())))
               END
          FROM balances b WHERE b.tenant_id = p_tenant_id;
        RETURN;
    END IF;
    -- A new statement, so a new snapshot: it sees every accept of this tenant that
    -- committed while we waited for the balance row lock.
    PERFORM smsgw_ensure_dispatch_v1(p_tenant_id, p_queue, p_task, p_due);
    RETURN QUERY SELECT n, NULL::bigint, NULL::double precision;
END;
$$;
