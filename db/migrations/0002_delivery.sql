-- 0002: delivery. Receipts wait in an inbox until their message can take them; status
-- callbacks are an outbox written in the same transaction as the status change.

-- Receipts from every upstream (HTTP webhook, SMPP deliver_sm, the simulator) land here
-- first: a receipt may arrive before the submit response that names its message has
-- been stored, so it waits and is retried instead of being lost.
CREATE TABLE receipts_inbox (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    provider text NOT NULL,
    provider_message_id text NOT NULL,
    status text NOT NULL CHECK (status IN ('delivered', 'undelivered')),
    error_code text,
    occurred_at timestamptz NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    available_at timestamptz NOT NULL DEFAULT now(),
    attempts integer NOT NULL DEFAULT 0
);
CREATE INDEX receipts_inbox_due_idx ON receipts_inbox (available_at);

-- One row per status change of a message that has a callback_url. `next_attempt_at` is
-- NULL once the callback is delivered or abandoned; while a sender works on a row it is
-- pushed ahead by the lease, so a crashed sender's rows come back by themselves.
CREATE TABLE callbacks (
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    created_at timestamptz NOT NULL DEFAULT now(),
    tenant_id uuid NOT NULL,
    message_id uuid NOT NULL,
    url text NOT NULL,
    payload jsonb NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz DEFAULT now(),
    last_status_code integer,
    last_error text,
    delivered_at timestamptz,
    abandoned_at timestamptz,
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);
CREATE INDEX callbacks_due_idx ON callbacks (next_attempt_at) WHERE next_attempt_at IS NOT NULL;
CREATE INDEX callbacks_message_idx ON callbacks (message_id);

CREATE OR REPLACE FUNCTION smsgw_ensure_partitions_v1(p_from date, p_days integer)
    RETURNS integer
    LANGUAGE plpgsql
AS $$
DECLARE
    day date;
    parent text;
    child text;
    created integer := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('smsgw_ensure_partitions'));
    FOR day IN SELECT generate_series(p_from, p_from + p_days, interval '1 day')::date LOOP
        FOREACH parent IN ARRAY ARRAY[
            'messages', 'message_events', 'ledger_message_entries', 'callbacks'] LOOP
            child := parent || '_' || to_char(day, 'YYYYMMDD');
            IF to_regclass(quote_ident(child)) IS NULL THEN
                EXECUTE format(
                    'CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                    child, parent,
                    (day::timestamp AT TIME ZONE 'UTC'),
                    ((day + 1)::timestamp AT TIME ZONE 'UTC'));
                created := created + 1;
            END IF;
        END LOOP;
    END LOOP;
    RETURN created;
END;
$$;

-- Status history and callbacks are written by triggers, so that no code path (nor an
-- operator's manual UPDATE) can change a status without leaving its trace. They are
-- statement-level with transition tables: one set-based INSERT per statement, however
-- many messages it touched.
CREATE FUNCTION smsgw_messages_inserted_v1()
    RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    INSERT INTO message_events (message_created_at, message_id, tenant_id, status, at)
    SELECT n.created_at, n.id, n.tenant_id, n.status, n.created_at FROM new_rows n;
    RETURN NULL;
END;
$$;

CREATE FUNCTION smsgw_messages_changed_v1()
    RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    WITH changes AS (
        -- A scheduled message claimed for sending passes through `queued` at its send_at.
        SELECT n.created_at, n.id, n.tenant_id, 'queued' AS status,
               coalesce(o.next_attempt_at, n.updated_at) AS at, NULL::text AS error_code,
               n.callback_url, n.segments, n.price, n.client_reference, 0 AS step
          FROM new_rows n JOIN old_rows o ON o.created_at = n.created_at AND o.id = n.id
         WHERE o.status = 'scheduled' AND n.status = 'sending'
        UNION ALL
        SELECT n.created_at, n.id, n.tenant_id, n.status, n.updated_at,
               -- The error explains a retry or an end; `sending` and `sent` carry none.
               CASE WHEN n.status IN ('queued', 'failed', 'expired', 'undelivered')
                    THEN n.error_code END,
               n.callback_url, n.segments, n.price, n.client_reference, 1 AS step
          FROM new_rows n JOIN old_rows o ON o.created_at = n.created_at AND o.id = n.id
         WHERE n.status <> o.status
    ), events AS (
        INSERT INTO message_events
            (message_created_at, message_id, tenant_id, status, at, error_code)
        SELECT created_at, id, tenant_id, status, at, error_code FROM changes
    )
    -- Tenants hear of every change after acceptance, one callback each.
    INSERT INTO callbacks (tenant_id, message_id, url, payload)
    SELECT tenant_id, id, callback_url,
           jsonb_build_object(
               'id', id, 'status', status, 'error_code', error_code,
               'segments', segments, 'price', price, 'client_reference', client_reference,
               'timestamp', to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
      FROM changes
     WHERE callback_url IS NOT NULL
     ORDER BY id, at, step;
    RETURN NULL;
END;
$$;

CREATE TRIGGER messages_inserted AFTER INSERT ON messages
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION smsgw_messages_inserted_v1();
CREATE TRIGGER messages_changed AFTER UPDATE ON messages
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION smsgw_messages_changed_v1();
