-- Tenant suspension (issue 28): the operator stops a tenant's traffic (fraud, unpaid
-- invoices, a compromised account) without deleting anything. While `suspended_at` is
-- set, every accept refuses the tenant's messages ('tenant_suspended'), whichever door
-- they came through, and its queued messages wait (core/account_suspension.py). The
-- tenant can still sign in, read its messages and reports.
ALTER TABLE tenants ADD COLUMN suspended_at timestamptz;
ALTER TABLE tenants ADD COLUMN suspension_reason text
    CHECK (suspension_reason IS NULL OR length(suspension_reason) BETWEEN 1 AND 500);
ALTER TABLE tenants ADD CONSTRAINT tenants_suspended_with_reason
    CHECK ((suspended_at IS NULL) = (suspension_reason IS NULL));

-- The refusal of a (tenant, destination country) before its sender is judged, read once
-- per distinct (tenant, country) of an accept by smsgw_accept_v7, smsgw_accept_sends_v4
-- and smsgw_accept_one_v4: a suspended tenant first, then geo permissions. Replaced in
-- place rather than versioned: the function and its three callers came after 1.0.0
-- (migration 0009) and no release calls it. A CASE without FROM, so the planner inlines
-- it into the accept's statement; the tenant's row is one primary-key probe.
CREATE OR REPLACE FUNCTION smsgw_geo_refusal_v1(p_tenant_id uuid, p_country text)
    RETURNS text
    LANGUAGE sql STABLE
AS $$
    SELECT CASE
        WHEN EXISTS (SELECT 1 FROM tenants t
                      WHERE t.id = p_tenant_id AND t.suspended_at IS NOT NULL)
            THEN 'tenant_suspended'
        WHEN EXISTS (SELECT 1 FROM geo_permissions g
                      WHERE g.tenant_id = p_tenant_id AND g.countries IS NOT NULL
                        AND NOT coalesce(p_country, '') = ANY (g.countries))
          OR (EXISTS (SELECT 1 FROM high_risk_countries h WHERE h.country = p_country)
              AND NOT EXISTS (SELECT 1 FROM geo_permissions g
                               WHERE g.tenant_id = p_tenant_id
                                 AND p_country = ANY (g.high_risk_enabled)))
            THEN 'destination_not_permitted'
    END
$$;
