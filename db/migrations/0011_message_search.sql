-- 0011: message search (issue 28): a tenant's messages to one recipient, and of one
-- status, newest first, at any size of history. With only (tenant_id, created_at, id)
-- a search walked the tenant's messages from the newest until it had a page: all of
-- them for a recipient or a status with few or no messages (seconds at 10M). These
-- index entries are the cost: two more per row version of a message (a status change
-- writes a new version), paid on the hot path, for the consoles' and
-- `GET /v1/messages?to=&status=` searches.
--
-- On a large messages table this build holds writes to it until done (an index on a
-- partitioned table cannot be built CONCURRENTLY in one statement): build the
-- partitions' indexes CONCURRENTLY first and attach them, or migrate in a quiet hour.
CREATE INDEX messages_tenant_recipient_idx
    ON messages (tenant_id, to_number, created_at DESC, id DESC);
CREATE INDEX messages_tenant_status_idx
    ON messages (tenant_id, status, created_at DESC, id DESC);
