-- 0019: no index of ledger entries by tenant (issue 6).
--
-- No statement of the gateway reads ledger_message_entries by tenant alone: holds,
-- captures and releases find their entry by (message_created_at, message_id, phase),
-- the invariant check and the roll-up of a dropped day read whole partitions. The
-- index was still written by every hold at accept and every settle, one more B-tree
-- insert per message on each. A tenant's entries are found through its messages
-- (messages_tenant_created_idx) joined on the primary key.

DROP INDEX ledger_message_entries_tenant_idx;
