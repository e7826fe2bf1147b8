-- 0015: the accept's price lookup read once per call without being planned again (issue
-- 24's single sends; issue 23's rate cards).
--
-- smsgw_rating_v1 was a SQL function whose body has a FROM clause: PostgreSQL cannot
-- inline such a function, and runs it through its SQL-function executor, which plans
-- the body afresh in every statement that calls it (its plan lives only as long as the
-- calling statement). Every accept call (a coalesced call of single sends, a keyed
-- single send, a batch) thus planned the two lateral lookups of rate card versions:
-- ~0.5 ms of a call of 10 sends that took ~2.8 ms in the database (pg_stat_statements,
-- track = all, 300 calls). PL/pgSQL keeps a statement's plan for the session. The same
-- contract (arguments, result, what it reads), so it is replaced in place, as 0006
-- replaced smsgw_rate_v1's body: a process of the release before calls the same
-- function and gets the same answer.
CREATE OR REPLACE FUNCTION smsgw_rating_v1(p_tenant_id uuid, p_at timestamptz)
    RETURNS smsgw_rating_v1
    LANGUAGE plpgsql STABLE
AS $$
DECLARE
    found smsgw_rating_v1;
BEGIN
    SELECT o.id, o.name, o.version, o.lengths, k.id, k.name, k.version, k.lengths,
           CASE WHEN o.id IS NULL AND k.lengths = '{0}'
                THEN (SELECT r.price FROM rate_card_rates r
                       WHERE r.version_id = k.id AND r.prefix = '')
           END
      INTO found
      FROM tenants t
      LEFT JOIN LATERAL (
          SELECT v.id, c.name, v.version, v.lengths
            FROM rate_cards c JOIN rate_card_versions v ON v.card_id = c.id
           WHERE c.tenant_id = t.id AND v.effective_at <= p_at
           ORDER BY v.effective_at DESC, v.version DESC
           LIMIT 1) AS o ON true
      LEFT JOIN LATERAL (
          SELECT v.id, c.name, v.version, v.lengths
            FROM rate_cards c JOIN rate_card_versions v ON v.card_id = c.id
           WHERE c.id = coalesce(t.rate_card_id,
                                 (SELECT d.id FROM rate_cards d WHERE d.name = t.tier))
             AND v.effective_at <= p_at
           ORDER BY v.effective_at DESC, v.version DESC
           LIMIT 1) AS k ON true
     WHERE t.id = p_tenant_id;
    RETURN found;
END;
$$;
