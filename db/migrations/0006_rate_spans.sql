-- Longest-prefix pricing in one index descent (issue 23: a 50,000-prefix card within 5%
-- of a flat price). A version's prefixes are laid out as disjoint spans of the digit
-- strings, in "C" order: each span [lo, hi) names the longest prefix covering every
-- number in it. A number's price is the span with the greatest lo <= its digits, when
-- its hi is above them: one probe, where smsgw_rate_v1 probed a key per prefix length.
--
-- The spans are derived from rate_card_rates by a trigger when a version's rates are
-- written, so every writer (an import, a tenant's own rates, a provider's cost list, an
-- older release during a rolling deploy) gets them; versions are never changed after.
CREATE TABLE rate_card_spans (
    version_id bigint NOT NULL REFERENCES rate_card_versions (id) ON DELETE CASCADE,
    -- "C": digits order as bytes, and ':' (after '9') ends the last span of a tree.
    lo text COLLATE "C" NOT NULL,
    hi text COLLATE "C" NOT NULL,
    prefix text NOT NULL,
    price bigint NOT NULL,
    PRIMARY KEY (version_id, lo) INCLUDE (hi, prefix, price)
);

-- The first digit string after every string that starts with `p`: '4479' -> '448',
-- '99' -> ':' (after all digit strings, so the empty prefix covers everything).
CREATE FUNCTION smsgw_prefix_end_v1(p text)
    RETURNS text
    LANGUAGE sql IMMUTABLE
AS $$
    -- No FROM: an expression the planner inlines into its callers.
    SELECT CASE WHEN rtrim(p, '9') = '' THEN ':'
                ELSE left(rtrim(p, '9'), -1) || chr(ascii(right(rtrim(p, '9'), 1)) + 1) END
$$;

-- A version's spans, by one sweep over its prefixes in order: prefixes nest (a prefix's
-- range holds its longer prefixes' ranges), so a stack of the open ones gives, between
-- two boundaries, the innermost (longest) prefix. Arrays grow by subscript (in place:
-- `a := a || x` would copy the array each time).
CREATE FUNCTION smsgw_fill_rate_spans_v1(p_version_id bigint)
    RETURNS integer
    LANGUAGE plpgsql
AS $$
DECLARE
    open_end text[] := '{}';
    open_prefix text[] := '{}';
    open_price bigint[] := '{}';
    depth integer := 0;
    pos text COLLATE "C" := '';
    los text[] := '{}';
    his text[] := '{}';
    prefixes text[] := '{}';
    prices bigint[] := '{}';
    n integer := 0;
    r record;
BEGIN
    FOR r IN SELECT x.prefix COLLATE "C" AS prefix, x.price
               FROM rate_card_rates x
              WHERE x.version_id = p_version_id
              ORDER BY x.prefix COLLATE "C" LOOP
        -- Close the prefixes whose range ends before this one starts; each leaves the
        -- rest of its range (after its last longer prefix) to itself.
        WHILE depth > 0 AND open_end[depth] COLLATE "C" <= r.prefix LOOP
            IF pos < open_end[depth] COLLATE "C" THEN
                n := n + 1;
                los[n] := pos; his[n] := open_end[depth];
                prefixes[n] := open_prefix[depth]; prices[n] := open_price[depth];
            END IF;
            pos := open_end[depth];
            depth := depth - 1;
        END LOOP;
        -- The enclosing prefix holds what lies between its last span and this one.
        IF depth > 0 AND pos < r.prefix THEN
            n := n + 1;
            los[n] := pos; his[n] := r.prefix;
            prefixes[n] := open_prefix[depth]; prices[n] := open_price[depth];
        END IF;
        pos := r.prefix;
        depth := depth + 1;
        open_end[depth] := smsgw_prefix_end_v1(r.prefix);
        open_prefix[depth] := r.prefix;
        open_price[depth] := r.price;
    END LOOP;
    WHILE depth > 0 LOOP
        IF pos < open_end[depth] COLLATE "C" THEN
            n := n + 1;
            los[n] := pos; his[n] := open_end[depth];
            prefixes[n] := open_prefix[depth]; prices[n] := open_price[depth];
        END IF;
        pos := open_end[depth];
        depth := depth - 1;
    END LOOP;
    INSERT INTO rate_card_spans (version_id, lo, hi, prefix, price)
    SELECT p_version_id, s.lo, s.hi, s.prefix, s.price
      FROM unnest(los, his, prefixes, prices) AS s(lo, hi, prefix, price);
    RETURN n;
END;
$$;

CREATE FUNCTION smsgw_rate_spans_written_v1()
    RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM smsgw_fill_rate_spans_v1(v.version_id)
       FROM (SELECT DISTINCT a.version_id FROM added a) AS v;
    RETURN NULL;
END;
$$;

CREATE TRIGGER rate_card_spans_written
    AFTER INSERT ON rate_card_rates
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION smsgw_rate_spans_written_v1();

SELECT smsgw_fill_rate_spans_v1(v.id) FROM rate_card_versions v ORDER BY v.id;

-- The span of a number in one version: its longest prefix there, with the price.
CREATE FUNCTION smsgw_rate_span_v1(p_version_id bigint, p_number text)
    RETURNS TABLE (price bigint, prefix text)
    LANGUAGE sql STABLE
AS $$
    SELECT s.price, s.prefix
      FROM (SELECT s.hi, s.price, s.prefix FROM rate_card_spans s
             WHERE s.version_id = p_version_id AND s.lo <= ltrim(p_number, '+')
             ORDER BY s.lo DESC
             LIMIT 1) AS s
     WHERE s.hi > ltrim(p_number, '+')
$$;

-- The same contract as before (the longest prefix of the tenant's own rates, else of its
-- card's; no row when neither covers the number), read from the spans: one probe of the
-- card, and of the tenant's own rates when it has some. The three branches exclude each
-- other, so no order is needed (a sort per message cost more than the probe). `lengths`
-- is unused now.
CREATE OR REPLACE FUNCTION smsgw_rate_v1(p smsgw_rating_v1, p_number text)
    RETURNS TABLE (price_per_segment bigint, rate_card text, rate_card_version integer,
                   rate_prefix text)
    LANGUAGE sql STABLE
AS $$
    SELECT p.flat, p.card_name, p.card_number, ''::text
     WHERE p.flat IS NOT NULL
    UNION ALL
    SELECT s.price, p.own_card, p.own_number, s.prefix
      FROM smsgw_rate_span_v1(p.own_version, p_number) AS s
     WHERE p.flat IS NULL
    UNION ALL
    SELECT s.price, p.card_name, p.card_number, s.prefix
      FROM smsgw_rate_span_v1(p.card_version, p_number) AS s
     WHERE p.flat IS NULL
       AND NOT EXISTS (SELECT FROM smsgw_rate_span_v1(p.own_version, p_number))
$$;
