-- 0003: webhooks a tenant can inspect, and inbound messages in Twilio's format (issue 26).
--
-- The callbacks outbox keeps, per delivery, its last attempt's time and latency beside
-- its status code or error, and is read per tenant newest first
-- (GET /v1/webhooks/deliveries): an index on the parent makes one per partition. The
-- new columns are nullable without default, so adding them rewrites no partition.
-- A tenant chooses the format of its inbound webhook: the gateway's JSON, or Twilio's
-- form-encoded incoming-message webhook signed with X-Twilio-Signature.

ALTER TABLE callbacks ADD COLUMN last_attempt_at timestamptz;
ALTER TABLE callbacks ADD COLUMN last_latency_ms integer;
CREATE INDEX callbacks_tenant_idx ON callbacks (tenant_id, created_at, id);

ALTER TABLE tenants ADD COLUMN inbound_format text NOT NULL DEFAULT 'json'
    CHECK (inbound_format IN ('json', 'twilio'));
