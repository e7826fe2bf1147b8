-- 0018: a cheaper price lookup (issue 23: a 50,000-prefix card within 5% of the flat
-- price): the spans' index leaves mostly empty, and one probe a message.
--
-- A number's price is one backward probe of rate_card_spans' primary key with LIMIT 1,
-- but PostgreSQL 15's B-tree reads every entry from the probe's place to the start of
-- the leaf page before the LIMIT stops it, checking the keys of each: with full pages
-- (~130 spans a leaf) that reading was a third of the probe's time (perf: _bt_checkkeys
-- and the text comparisons under it). At fillfactor 10 a leaf holds ~13 spans: the
-- probe of one number, over 1,000 numbers spread across the card, took 4.5-8.6 against
-- 8.1-12.5 ms (alternating on one server), and 4.0 against 5.2 ms
-- for one number repeated. The index is ~8x larger (24 MB for a 50,000-prefix card);
-- versions are written in order at the index's right edge, so new versions keep the
-- setting. The rebuild holds the accepts that price by a card until it is done (about
-- a second per million spans).
ALTER INDEX rate_card_spans_pkey SET (fillfactor = 10);
REINDEX INDEX rate_card_spans_pkey;

-- smsgw_rate_v1's three branches each ran for every message: a tenant on a card alone
-- (the usual case) also probed its own rates (a NULL version) twice. Now a branch for
-- that case alone, the own-rates branches gated on the tenant having some: the same
-- answers, one probe a message; a batch of 1,000 on the card costs 2.3-2.4 instead of
-- 3.4-3.6 us a message more than the flat price (the accept in the database,
-- alternating). Replaced in place, as 0006 did: the same contract.
CREATE OR REPLACE FUNCTION smsgw_rate_v1(p smsgw_rating_v1, p_number text)
    RETURNS TABLE (price_per_segment bigint, rate_card text, rate_card_version integer,
                   rate_prefix text)
    LANGUAGE sql STABLE
AS $$
    SELECT p.flat, p.card_name, p.card_number, ''::text
     WHERE p.flat IS NOT NULL
    UNION ALL
    SELECT s.price, p.card_name, p.card_number, s.prefix
      FROM smsgw_rate_span_v1(p.card_version, p_number) AS s
     WHERE p.flat IS NULL AND p.own_version IS NULL
    UNION ALL
    SELECT s.price, p.own_card, p.own_number, s.prefix
      FROM smsgw_rate_span_v1(p.own_version, p_number) AS s
     WHERE p.flat IS NULL AND p.own_version IS NOT NULL
    UNION ALL
    SELECT s.price, p.card_name, p.card_number, s.prefix
      FROM smsgw_rate_span_v1(p.card_version, p_number) AS s
     WHERE p.flat IS NULL AND p.own_version IS NOT NULL
       AND NOT EXISTS (SELECT FROM smsgw_rate_span_v1(p.own_version, p_number))
$$;
