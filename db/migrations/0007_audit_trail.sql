-- 0007: the audit trail (issue 25, item 5). Every change an operator or a tenant makes
-- to settings through the API (tenants, keys, credit, numbers, sender IDs and rules,
-- rate cards and cost lists, providers and routes, SMPP and Twilio credentials,
-- suppressions) writes one row here, in the transaction of the change itself: the
-- change and its row commit together or not at all (core/audit.py).
--
-- Not partitioned: changes of settings come a few per tenant per day, against millions
-- of messages, so the table stays small for years; partitions would buy nothing a
-- plain table with two indexes does not give, and dropping old partitions (the reason
-- to partition messages) is exactly what an append-only log must not allow.
-- No foreign key to tenants: the log outlives what it names, and a row must never be
-- changed or removed because a tenant was.
CREATE TABLE audit_events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    -- Who: 'admin' (the admin token), 'api_key' (a tenant key, by its id), 'console_user'
    -- (issue 28), 'system' (the operator's own tools: `smsgw run`, `smsgw rates`).
    -- Never a secret.
    actor_kind text NOT NULL
        CHECK (actor_kind IN ('admin', 'api_key', 'console_user', 'system')),
    actor_id text,
    -- The client's address as the API saw it (see README, Security, behind a balancer).
    address text,
    tenant_id uuid,
    -- A dotted name: tenant.updated, api_key.created, credit.topped_up, ...
    action text NOT NULL CHECK (action ~ '^[a-z_]+(\.[a-z_]+)+$'),
    target text NOT NULL,
    -- What changed, secrets masked: the changed fields before and after (NULL before a
    -- creation, NULL after a removal).
    before jsonb,
    after jsonb
);
-- GET /v1/audit and /v1/admin/audit?tenant_id=: a tenant's events newest first.
CREATE INDEX audit_events_tenant_idx ON audit_events (tenant_id, at DESC, id DESC);
-- GET /v1/admin/audit without a tenant: every event newest first (from/to on `at`).
CREATE INDEX audit_events_at_idx ON audit_events (at DESC, id DESC);

-- Append-only: no row is ever changed or removed, by the product or by hand.
CREATE FUNCTION smsgw_audit_append_only_v1() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP
          USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_events_append_only
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION smsgw_audit_append_only_v1();
CREATE TRIGGER audit_events_no_truncate
    BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION smsgw_audit_append_only_v1();
