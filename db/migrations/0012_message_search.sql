-- 0012: message search and a tenant's report tail (issue 28), for the consoles at 10M
-- messages. Search by status: with only (tenant_id, created_at, id) a search walked the
-- tenant's messages from the newest until it had a page: all of them for a status with
-- few or no messages (seconds at 10M). The rare statuses get an index of their own,
-- partial so that it costs the hot path little: a message's row versions enter it only
-- as `sent` and as a failure, never as queued, sending or delivered (in the database,
-- an accept and three status changes cost 2% more with it; a full index on (tenant_id,
-- status, ...) cost 30%, as did one on (tenant_id, to_number, ...) for a search by
-- recipient, which therefore has none: see db/queries/messages.sql). Queued and
-- scheduled messages are found by messages_due_idx, sending ones by messages_lease_idx,
-- delivered ones (most of them) by walking.
--
-- On a large messages table this build holds writes to it until done (an index on a
-- partitioned table cannot be built CONCURRENTLY in one statement): build the
-- partitions' indexes CONCURRENTLY first and attach them, or migrate in a quiet hour.
CREATE INDEX messages_tenant_rare_status_idx
    ON messages (tenant_id, status, created_at DESC, id DESC)
    WHERE status IN ('sent', 'failed', 'undelivered', 'expired', 'canceled');

-- A tenant's reports (the console's charts among them) read the raw messages after the
-- last folded hour: up to an hour and the fold's few minutes of traffic, 17,000
-- messages at 10M a month. v1 looked up each message's country (seven probes of
-- dialing_prefixes), about half of the charts' time at the end of an hour. v2 counts
-- them first by hour, tenant, the number's first 8 characters (all a country lookup
-- reads), provider and status, and looks up each group once: the same sums. Grouped in
-- byte order ("C"): a sort in the database's collation cost more than it saved.
CREATE FUNCTION smsgw_usage_raw_v2(p_starts timestamptz, p_ends timestamptz,
                                   p_tenant_id uuid)
    RETURNS TABLE (hour timestamptz, tenant_id uuid, country text, provider text,
                   status text, messages bigint, segments bigint, price bigint,
                   cost bigint, sent_latency bigint[], delivery_latency bigint[])
    LANGUAGE sql STABLE
AS $$
    SELECT g.hour, g.tenant_id,
           coalesce(p8.country, p7.country, p6.country, p5.country, p4.country,
                    p3.country, p2.country, 'ZZ'),
           g.provider, g.status, g.messages, g.segments, g.price, g.cost,
           NULL::bigint[], NULL::bigint[]
      FROM (SELECT date_trunc('hour', m.created_at, 'UTC') AS hour, m.tenant_id,
                   left(m.to_number, 8) COLLATE "C" AS head,
                   coalesce(m.provider, '') COLLATE "C" AS provider,
                   m.status COLLATE "C" AS status, count(*) AS messages,
                   sum(m.segments)::bigint AS segments, sum(m.price)::bigint AS price,
                   sum(coalesce(m.cost, 0))::bigint AS cost
              FROM messages m
             WHERE m.created_at >= greatest(
                       p_starts,
                       coalesce((SELECT max(h.hour) + interval '1 hour' FROM rollup_hours h),
                                '-infinity'))
               AND m.created_at < p_ends
               AND (p_tenant_id IS NULL OR m.tenant_id = p_tenant_id)
             GROUP BY 1, 2, 3, 4, 5) AS g
      LEFT JOIN dialing_prefixes p8 ON p8.prefix = left(g.head, 8)
      LEFT JOIN dialing_prefixes p7 ON p7.prefix = left(g.head, 7)
      LEFT JOIN dialing_prefixes p6 ON p6.prefix = left(g.head, 6)
      LEFT JOIN dialing_prefixes p5 ON p5.prefix = left(g.head, 5)
      LEFT JOIN dialing_prefixes p4 ON p4.prefix = left(g.head, 4)
      LEFT JOIN dialing_prefixes p3 ON p3.prefix = left(g.head, 3)
      LEFT JOIN dialing_prefixes p2 ON p2.prefix = left(g.head, 2)
$$;

-- smsgw_usage_edges_v1 and smsgw_usage_v2 on the raw tail of v2 (same arguments, same
-- rows). The console's charts (by day and country at once) read these. A report that
-- does not group by country stays on v2: there the planner drops v1's lookups, and
-- v2's grouping would cost more than it saves.
CREATE FUNCTION smsgw_usage_edges_v2(p_starts timestamptz, p_ends timestamptz,
                                     p_tenant_id uuid, p_hours boolean)
    RETURNS TABLE (hour timestamptz, tenant_id uuid, country text, provider text,
                   status text, messages bigint, segments bigint, price bigint,
                   cost bigint, sent_latency bigint[], delivery_latency bigint[])
    LANGUAGE sql STABLE
AS $$
    -- Before the first whole day (or every folded hour, by hour).
    SELECT r.hour, r.tenant_id, r.country, r.provider, r.status, r.messages, r.segments,
           r.price, r.cost, r.sent_latency, r.delivery_latency
      FROM message_rollups r
     WHERE r.hour >= p_starts
       AND r.hour < least(p_ends, smsgw_first_whole_day_v1(p_starts, p_hours),
                          coalesce((SELECT max(h.hour) + interval '1 hour' FROM rollup_hours h),
                                   '-infinity'))
       AND (p_tenant_id IS NULL OR r.tenant_id = p_tenant_id)
    UNION ALL
    -- After the last whole day.
    SELECT r.hour, r.tenant_id, r.country, r.provider, r.status, r.messages, r.segments,
           r.price, r.cost, r.sent_latency, r.delivery_latency
      FROM message_rollups r
     WHERE r.hour >= greatest(date_trunc('day', p_ends, 'UTC'),
                              smsgw_first_whole_day_v1(p_starts, p_hours))
       AND r.hour < least(p_ends,
                          coalesce((SELECT max(h.hour) + interval '1 hour' FROM rollup_hours h),
                                   '-infinity'))
       AND (p_tenant_id IS NULL OR r.tenant_id = p_tenant_id)
    UNION ALL
    SELECT * FROM smsgw_usage_raw_v2(p_starts, p_ends, p_tenant_id)
$$;

CREATE FUNCTION smsgw_usage_v3(p_starts timestamptz, p_ends timestamptz, p_tenant_id uuid,
                               p_hours boolean)
    RETURNS TABLE (at timestamptz, tenant_id uuid, country text, provider text,
                   status text, messages bigint, segments bigint, price bigint, cost bigint)
    LANGUAGE sql STABLE
AS $$
    SELECT d.day::timestamp AT TIME ZONE 'UTC', d.tenant_id, d.country, d.provider,
           d.status, d.messages, d.segments, d.price, d.cost
      FROM daily_rollups d
     WHERE d.day >= (smsgw_first_whole_day_v1(p_starts, p_hours) AT TIME ZONE 'UTC')::date
       AND d.day < (p_ends AT TIME ZONE 'UTC')::date
       AND (p_tenant_id IS NULL OR d.tenant_id = p_tenant_id)
    UNION ALL
    SELECT e.hour, e.tenant_id, e.country, e.provider, e.status, e.messages, e.segments,
           e.price, e.cost
      FROM smsgw_usage_edges_v2(p_starts, p_ends, p_tenant_id, p_hours) e
$$;
