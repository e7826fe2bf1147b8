-- 0011: reports and exports at full scale (issue 27, continued).

-- An instant as the API writes it: ISO 8601 in UTC with a Z, microseconds only when
-- there are some (Python's isoformat, msgspec's encoder). The export's rows are formatted
-- by the server with it, so the API process passes bytes along without decoding a row.
CREATE FUNCTION smsgw_instant_text_v1(p_at timestamptz)
    RETURNS text
    LANGUAGE sql STABLE
AS $$
    SELECT to_char(p_at AT TIME ZONE 'UTC',
                   CASE WHEN date_trunc('second', p_at AT TIME ZONE 'UTC') = p_at AT TIME ZONE 'UTC'
                        THEN 'YYYY-MM-DD"T"HH24:MI:SS"Z"'
                        ELSE 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"' END)
$$;
