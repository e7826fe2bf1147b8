-- 0008: the SMPP server (issue 9). Tenants bind to smsgw as ESMEs: their credentials,
-- their bind slots, long messages waiting for their last part, which messages want a
-- delivery receipt, and the outbox of deliver_sm waiting for a receiver bind. Messages
-- submitted over SMPP carry `facade` 'smpp' (0007's column).

-- One SMPP account per tenant. The password (8 characters at most, SMPP 3.4) is shown
-- once and kept only as an scrypt hash: 8 characters are too few for a fast hash.
-- `allowed_networks` NULL: binds from anywhere. A new password moves
-- `password_changed_at`, and binds made before it are closed.
CREATE TABLE smpp_accounts (
    tenant_id uuid PRIMARY KEY REFERENCES tenants (id),
    system_id text NOT NULL UNIQUE CHECK (system_id ~ '^[!-~]{1,15}$'),
    password_hash text NOT NULL,
    max_binds integer NOT NULL DEFAULT 4 CHECK (max_binds BETWEEN 1 AND 64),
    allowed_networks cidr[],
    created_at timestamptz NOT NULL DEFAULT now(),
    password_changed_at timestamptz NOT NULL DEFAULT now()
);

-- Bind slots: a bind holds one of its tenant's `max_binds` session-level advisory locks
-- on the listener's slots connection, so the limit holds across listener processes and
-- a crashed listener's binds free their slots with its connection.
CREATE FUNCTION smsgw_smpp_slot_key_v1(p_tenant_id uuid, p_slot integer)
    RETURNS bigint
    LANGUAGE sql IMMUTABLE
AS $$
    SELECT hashtextextended('smsgw-smpp-bind:' || p_tenant_id || ':' || p_slot, 0)
$$;

-- The first free slot of the tenant, now held by this session; NULL when all are taken.
-- `p_held`: the slots this session holds already (advisory locks are re-entrant, so
-- the session must not take its own again).
CREATE FUNCTION smsgw_smpp_take_slot_v1(
    p_tenant_id uuid, p_max_binds integer, p_held integer[])
    RETURNS integer
    LANGUAGE plpgsql
AS $$
BEGIN
    FOR slot IN 0 .. p_max_binds - 1 LOOP
        IF slot <> ALL (p_held)
           AND pg_try_advisory_lock(smsgw_smpp_slot_key_v1(p_tenant_id, slot)) THEN
            RETURN slot;
        END IF;
    END LOOP;
    RETURN NULL;
END;
$$;

-- How many of the tenant's slots (0 .. 63) some listener holds: its binds right now.
CREATE FUNCTION smsgw_smpp_binds_v1(p_tenant_id uuid)
    RETURNS integer
    LANGUAGE sql STABLE
AS $$
    SELECT count(*)::integer
      FROM generate_series(0, 63) AS s(slot)
      JOIN pg_locks l
        ON l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
       AND l.classid = ((smsgw_smpp_slot_key_v1(p_tenant_id, s.slot) >> 32)
                        & x'ffffffff'::bigint)::oid
       AND l.objid = (smsgw_smpp_slot_key_v1(p_tenant_id, s.slot) & x'ffffffff'::bigint)::oid
$$;

-- Parts of a long message (UDH or SAR) waiting for the rest. Every part is answered
-- with the id the whole message gets, which the first part to arrive draws; the part
-- that completes the set is accepted with the others in one transaction, and they go.
-- Parts of a message that never completes are dropped after the reassembly timeout.
CREATE TABLE smpp_parts (
    tenant_id uuid NOT NULL,
    source text NOT NULL,
    destination text NOT NULL,
    reference integer NOT NULL,
    total smallint NOT NULL CHECK (total BETWEEN 2 AND 255),
    number smallint NOT NULL CHECK (number BETWEEN 1 AND total),
    message_id uuid NOT NULL,
    data_coding smallint NOT NULL,
    payload bytea NOT NULL,
    registered_delivery smallint NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, source, destination, reference, total, number)
);
CREATE INDEX smpp_parts_received_idx ON smpp_parts (received_at);

-- Messages whose ESME asked for a receipt: mode 1 (registered_delivery 1) for any final
-- state, 2 for failures only. Written in the accept's transaction, consumed by the
-- trigger below when the message reaches its final state.
CREATE TABLE smpp_receipt_requests (
    message_created_at timestamptz NOT NULL,
    message_id uuid NOT NULL,
    tenant_id uuid NOT NULL,
    mode smallint NOT NULL CHECK (mode IN (1, 2)),
    PRIMARY KEY (message_id, message_created_at)
);
CREATE INDEX smpp_receipt_requests_created_idx ON smpp_receipt_requests (message_created_at);

-- deliver_sm waiting for one of the tenant's receiver or transceiver binds: receipts
-- ('receipt') and mobile-originated messages ('mo'). A listener holding such a bind
-- claims rows (pushing `next_attempt_at` ahead as a lease), sends them, and deletes
-- each one on its deliver_sm_resp; while no bind is up they wait here.
CREATE TABLE smpp_outbox (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id uuid NOT NULL,
    kind text NOT NULL CHECK (kind IN ('receipt', 'mo')),
    message_id uuid,
    -- deliver_sm source_addr and destination_addr: for a receipt, the handset and the
    -- message's sender; for an inbound message, the handset and the tenant's number.
    source text NOT NULL,
    destination text NOT NULL DEFAULT '',
    -- Receipts: the message's final status and error; its first 20 characters.
    status text,
    error_code text,
    body text NOT NULL DEFAULT '',
    submitted_at timestamptz,
    done_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now()
) WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000);
CREATE INDEX smpp_outbox_due_idx ON smpp_outbox (tenant_id, next_attempt_at);
CREATE INDEX smpp_outbox_created_idx ON smpp_outbox (created_at);

-- Receipts are queued by the transaction that gives a message its final status,
-- whichever code path (receipt, dispatch settle, expiry, cancel) or operator did it.
CREATE FUNCTION smsgw_smpp_receipts_v1()
    RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    -- Most statements (claims, settles to `sent`) finish nothing: leave at once.
    IF NOT EXISTS (SELECT 1 FROM new_rows
                    WHERE status IN ('delivered', 'undelivered', 'failed', 'expired',
                                     'canceled')) THEN
        RETURN NULL;
    END IF;
    WITH finished AS (
        DELETE FROM smpp_receipt_requests r
         USING new_rows n, old_rows o
         WHERE r.message_id = n.id AND r.message_created_at = n.created_at
           AND o.id = n.id AND o.created_at = n.created_at
           AND n.status <> o.status
           AND n.status IN ('delivered', 'undelivered', 'failed', 'expired', 'canceled')
        RETURNING r.mode, n.tenant_id, n.id, n.to_number, n.sender, n.status, n.error_code,
                  n.body, n.created_at, n.delivered_at, n.updated_at
    )
    INSERT INTO smpp_outbox (tenant_id, kind, message_id, source, destination, status,
                             error_code, body, submitted_at, done_at)
    SELECT tenant_id, 'receipt', id, to_number, coalesce(sender, ''), status, error_code,
           left(body, 20), created_at, coalesce(delivered_at, updated_at)
      FROM finished
     WHERE mode = 1 OR status <> 'delivered'
     ORDER BY created_at, id;
    RETURN NULL;
END;
$$;

CREATE TRIGGER messages_smpp_receipts AFTER UPDATE ON messages
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION smsgw_smpp_receipts_v1();

-- Inbound messages (0007) to a tenant with an SMPP account go to its receiver binds as
-- well as to its inbound webhook.
CREATE FUNCTION smsgw_smpp_inbound_v1()
    RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    INSERT INTO smpp_outbox (tenant_id, kind, message_id, source, destination, body, done_at)
    SELECT n.tenant_id, 'mo', n.id, n.from_number, n.to_number, n.body, n.received_at
      FROM new_rows n
     WHERE EXISTS (SELECT 1 FROM smpp_accounts a WHERE a.tenant_id = n.tenant_id)
     ORDER BY n.received_at, n.id;
    RETURN NULL;
END;
$$;

CREATE TRIGGER inbound_messages_smpp AFTER INSERT ON inbound_messages
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION smsgw_smpp_inbound_v1();
