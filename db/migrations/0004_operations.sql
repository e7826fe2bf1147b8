-- 0004: what operators need to watch and report on the gateway.

-- Running totals of message status changes, read by /metrics and the dashboard: kept by
-- statement-level triggers on messages (one upsert per group per statement, however
-- many rows it touched). `slot` is the writing backend's pid, so two transactions never
-- update the same row: no lock waits and no deadlocks on the hot path. Rows of backends
-- that have exited are folded into slot 0 by smsgw_fold_message_counters_v1(), so the
-- table stays small; sums over slots only ever grow (Prometheus counters).
-- kind 'accepted': a message inserted (status queued or scheduled); kind 'changed': a
-- message entered `status` (sending, sent, delivered, undelivered, failed, expired,
-- canceled, or queued again for a retry).
CREATE TABLE message_counters (
    slot integer NOT NULL,
    kind text NOT NULL CHECK (kind IN ('accepted', 'changed')),
    status text NOT NULL,
    tier text NOT NULL,
    provider text NOT NULL DEFAULT '',
    n bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (slot, kind, status, tier, provider)
) WITH (fillfactor = 50);

CREATE FUNCTION smsgw_count_inserted_v1()
    RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    INSERT INTO message_counters AS c (slot, kind, status, tier, provider, n)
    SELECT pg_backend_pid(), 'accepted', n.status, t.tier, '', count(*)
      FROM new_rows n JOIN tenants t ON t.id = n.tenant_id
     GROUP BY n.status, t.tier
     ORDER BY n.status, t.tier
    ON CONFLICT (slot, kind, status, tier, provider) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END;
$$;

CREATE FUNCTION smsgw_count_changed_v1()
    RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    INSERT INTO message_counters AS c (slot, kind, status, tier, provider, n)
    SELECT pg_backend_pid(), 'changed', n.status, t.tier, coalesce(n.provider, ''), count(*)
      FROM new_rows n
      JOIN old_rows o ON o.created_at = n.created_at AND o.id = n.id
      JOIN tenants t ON t.id = n.tenant_id
     WHERE n.status <> o.status
     GROUP BY n.status, t.tier, coalesce(n.provider, '')
     ORDER BY n.status, t.tier, coalesce(n.provider, '')
    ON CONFLICT (slot, kind, status, tier, provider) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END;
$$;

CREATE TRIGGER messages_counted_insert AFTER INSERT ON messages
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION smsgw_count_inserted_v1();
CREATE TRIGGER messages_counted_update AFTER UPDATE ON messages
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION smsgw_count_changed_v1();

-- Moves the counts of backends that have exited into slot 0, in one statement, so no
-- count is lost or doubled whatever runs beside it. One caller at a time (the others
-- return 0 at once); returns how many rows were folded.
CREATE FUNCTION smsgw_fold_message_counters_v1()
    RETURNS integer
    LANGUAGE plpgsql
AS $$
DECLARE
    folded integer;
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtext('smsgw_fold_message_counters')) THEN
        RETURN 0;
    END IF;
    WITH gone AS (
        DELETE FROM message_counters c
         WHERE c.slot <> 0
           AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = c.slot)
        RETURNING c.kind, c.status, c.tier, c.provider, c.n
    ), moved AS (
        INSERT INTO message_counters AS c (slot, kind, status, tier, provider, n)
        SELECT 0, kind, status, tier, provider, sum(n)
          FROM gone
         GROUP BY kind, status, tier, provider
         ORDER BY kind, status, tier, provider
        ON CONFLICT (slot, kind, status, tier, provider) DO UPDATE SET n = c.n + excluded.n
    )
    SELECT count(*) INTO folded FROM gone;
    RETURN folded;
END;
$$;

-- The E.164 prefix that names a destination's country (ISO 3166 alpha-2), for reports
-- grouped by country. Generated from the phonenumbers metadata by ops/dialing_prefixes.py:
-- each calling code's main country, plus the finer prefixes of regions that share a code
-- (Canada's area codes in +1, Kazakhstan's +77...). The longest matching prefix wins.
CREATE TABLE dialing_prefixes (
    prefix text PRIMARY KEY CHECK (prefix ~ '^\+[0-9]{1,8}$'),
    country text NOT NULL CHECK (country ~ '^[A-Z]{2}$')
);

-- The country of an E.164 number, or NULL when no prefix matches.
CREATE FUNCTION smsgw_country_v1(p_number text)
    RETURNS text
    LANGUAGE sql STABLE
AS $$
    SELECT country FROM dialing_prefixes
     WHERE prefix IN (left(p_number, 2), left(p_number, 3), left(p_number, 4),
                      left(p_number, 5), left(p_number, 6), left(p_number, 7),
                      left(p_number, 8), left(p_number, 9))
     ORDER BY length(prefix) DESC
     LIMIT 1
$$;

INSERT INTO dialing_prefixes (prefix, country) VALUES
    ('+1', 'US'),
    ('+1204', 'CA'),
    ('+1226', 'CA'),
    ('+1236', 'CA'),
    ('+1242', 'BS'),
    ('+1246', 'BB'),
    ('+1249', 'CA'),
    ('+1250', 'CA'),
    ('+1257', 'CA'),
    ('+1263', 'CA'),
    ('+1264', 'AI'),
    ('+1268', 'AG'),
    ('+1273', 'CA'),
    ('+1284', 'VG'),
    ('+1289', 'CA'),
    ('+1306', 'CA'),
    ('+1340', 'VI'),
    ('+1343', 'CA'),
    ('+1345', 'KY'),
    ('+1354', 'CA'),
    ('+1365', 'CA'),
    ('+1367', 'CA'),
    ('+1368', 'CA'),
    ('+1382', 'CA'),
    ('+1403', 'CA'),
    ('+1416', 'CA'),
    ('+1418', 'CA'),
    ('+1428', 'CA'),
    ('+1431', 'CA'),
    ('+1437', 'CA'),
    ('+1438', 'CA'),
    ('+1441', 'BM'),
    ('+1450', 'CA'),
    ('+1468', 'CA'),
    ('+1473', 'GD'),
    ('+1474', 'CA'),
    ('+1506', 'CA'),
    ('+1514', 'CA'),
    ('+1519', 'CA'),
    ('+1548', 'CA'),
    ('+1579', 'CA'),
    ('+1581', 'CA'),
    ('+1584', 'CA'),
    ('+1587', 'CA'),
    ('+1600', 'CA'),
    ('+1604', 'CA'),
    ('+1613', 'CA'),
    ('+1622', 'CA'),
    ('+1633', 'CA'),
    ('+1639', 'CA'),
    ('+1647', 'CA'),
    ('+1649', 'TC'),
    ('+1658', 'JM'),
    ('+1664', 'MS'),
    ('+1670', 'MP'),
    ('+1671', 'GU'),
    ('+1672', 'CA'),
    ('+1683', 'CA'),
    ('+1684', 'AS'),
    ('+1705', 'CA'),
    ('+1709', 'CA'),
    ('+1721', 'SX'),
    ('+1742', 'CA'),
    ('+1753', 'CA'),
    ('+1758', 'LC'),
    ('+1767', 'DM'),
    ('+1778', 'CA'),
    ('+1780', 'CA'),
    ('+1782', 'CA'),
    ('+1784', 'VC'),
    ('+1787', 'PR'),
    ('+18001', 'DO'),
    ('+1807', 'CA'),
    ('+1809', 'DO'),
    ('+1819', 'CA'),
    ('+1825', 'CA'),
    ('+1829', 'DO'),
    ('+1849', 'DO'),
    ('+1867', 'CA'),
    ('+1868', 'TT'),
    ('+1869', 'KN'),
    ('+1873', 'CA'),
    ('+1876', 'JM'),
    ('+1879', 'CA'),
    ('+1902', 'CA'),
    ('+1905', 'CA'),
    ('+1939', 'PR'),
    ('+1942', 'CA'),
    ('+20', 'EG'),
    ('+211', 'SS'),
    ('+212', 'MA'),
    ('+213', 'DZ'),
    ('+216', 'TN'),
    ('+218', 'LY'),
    ('+220', 'GM'),
    ('+221', 'SN'),
    ('+222', 'MR'),
    ('+223', 'ML'),
    ('+224', 'GN'),
    ('+225', 'CI'),
    ('+226', 'BF'),
    ('+227', 'NE'),
    ('+228', 'TG'),
    ('+229', 'BJ'),
    ('+230', 'MU'),
    ('+231', 'LR'),
    ('+232', 'SL'),
    ('+233', 'GH'),
    ('+234', 'NG'),
    ('+235', 'TD'),
    ('+236', 'CF'),
    ('+237', 'CM'),
    ('+238', 'CV'),
    ('+239', 'ST'),
    ('+240', 'GQ'),
    ('+241', 'GA'),
    ('+242', 'CG'),
    ('+243', 'CD'),
    ('+244', 'AO'),
    ('+245', 'GW'),
    ('+246', 'IO'),
    ('+247', 'AC'),
    ('+248', 'SC'),
    ('+249', 'SD'),
    ('+250', 'RW'),
    ('+251', 'ET'),
    ('+252', 'SO'),
    ('+253', 'DJ'),
    ('+254', 'KE'),
    ('+255', 'TZ'),
    ('+256', 'UG'),
    ('+257', 'BI'),
    ('+258', 'MZ'),
    ('+260', 'ZM'),
    ('+261', 'MG'),
    ('+262', 'RE'),
    ('+263', 'ZW'),
    ('+264', 'NA'),
    ('+265', 'MW'),
    ('+266', 'LS'),
    ('+267', 'BW'),
    ('+268', 'SZ'),
    ('+269', 'KM'),
    ('+27', 'ZA'),
    ('+290', 'SH'),
    ('+2908', 'TA'),
    ('+291', 'ER'),
    ('+297', 'AW'),
    ('+298', 'FO'),
    ('+299', 'GL'),
    ('+30', 'GR'),
    ('+31', 'NL'),
    ('+32', 'BE'),
    ('+33', 'FR'),
    ('+34', 'ES'),
    ('+350', 'GI'),
    ('+351', 'PT'),
    ('+352', 'LU'),
    ('+353', 'IE'),
    ('+354', 'IS'),
    ('+355', 'AL'),
    ('+356', 'MT'),
    ('+357', 'CY'),
    ('+358', 'FI'),
    ('+35818', 'AX'),
    ('+359', 'BG'),
    ('+36', 'HU'),
    ('+370', 'LT'),
    ('+371', 'LV'),
    ('+372', 'EE'),
    ('+373', 'MD'),
    ('+374', 'AM'),
    ('+375', 'BY'),
    ('+376', 'AD'),
    ('+377', 'MC'),
    ('+378', 'SM'),
    ('+380', 'UA'),
    ('+381', 'RS'),
    ('+382', 'ME'),
    ('+383', 'XK'),
    ('+385', 'HR'),
    ('+386', 'SI'),
    ('+387', 'BA'),
    ('+389', 'MK'),
    ('+39', 'IT'),
    ('+3906698', 'VA'),
    ('+40', 'RO'),
    ('+41', 'CH'),
    ('+420', 'CZ'),
    ('+421', 'SK'),
    ('+423', 'LI'),
    ('+43', 'AT'),
    ('+44', 'GB'),
    ('+441624', 'IM'),
    ('+4474576', 'IM'),
    ('+447524', 'IM'),
    ('+447624', 'IM'),
    ('+45', 'DK'),
    ('+46', 'SE'),
    ('+47', 'NO'),
    ('+4779', 'SJ'),
    ('+48', 'PL'),
    ('+49', 'DE'),
    ('+500', 'FK'),
    ('+501', 'BZ'),
    ('+502', 'GT'),
    ('+503', 'SV'),
    ('+504', 'HN'),
    ('+505', 'NI'),
    ('+506', 'CR'),
    ('+507', 'PA'),
    ('+508', 'PM'),
    ('+509', 'HT'),
    ('+51', 'PE'),
    ('+52', 'MX'),
    ('+53', 'CU'),
    ('+54', 'AR'),
    ('+55', 'BR'),
    ('+56', 'CL'),
    ('+57', 'CO'),
    ('+58', 'VE'),
    ('+590', 'GP'),
    ('+591', 'BO'),
    ('+592', 'GY'),
    ('+593', 'EC'),
    ('+594', 'GF'),
    ('+595', 'PY'),
    ('+596', 'MQ'),
    ('+597', 'SR'),
    ('+598', 'UY'),
    ('+599', 'CW'),
    ('+5993', 'BQ'),
    ('+5994', 'BQ'),
    ('+5997', 'BQ'),
    ('+60', 'MY'),
    ('+61', 'AU'),
    ('+62', 'ID'),
    ('+63', 'PH'),
    ('+64', 'NZ'),
    ('+65', 'SG'),
    ('+66', 'TH'),
    ('+670', 'TL'),
    ('+672', 'NF'),
    ('+673', 'BN'),
    ('+674', 'NR'),
    ('+675', 'PG'),
    ('+676', 'TO'),
    ('+677', 'SB'),
    ('+678', 'VU'),
    ('+679', 'FJ'),
    ('+680', 'PW'),
    ('+681', 'WF'),
    ('+682', 'CK'),
    ('+683', 'NU'),
    ('+685', 'WS'),
    ('+686', 'KI'),
    ('+687', 'NC'),
    ('+688', 'TV'),
    ('+689', 'PF'),
    ('+690', 'TK'),
    ('+691', 'FM'),
    ('+692', 'MH'),
    ('+7', 'RU'),
    ('+77', 'KZ'),
    ('+81', 'JP'),
    ('+82', 'KR'),
    ('+84', 'VN'),
    ('+850', 'KP'),
    ('+852', 'HK'),
    ('+853', 'MO'),
    ('+855', 'KH'),
    ('+856', 'LA'),
    ('+86', 'CN'),
    ('+880', 'BD'),
    ('+886', 'TW'),
    ('+90', 'TR'),
    ('+91', 'IN'),
    ('+92', 'PK'),
    ('+93', 'AF'),
    ('+94', 'LK'),
    ('+95', 'MM'),
    ('+960', 'MV'),
    ('+961', 'LB'),
    ('+962', 'JO'),
    ('+963', 'SY'),
    ('+964', 'IQ'),
    ('+965', 'KW'),
    ('+966', 'SA'),
    ('+967', 'YE'),
    ('+968', 'OM'),
    ('+970', 'PS'),
    ('+971', 'AE'),
    ('+972', 'IL'),
    ('+973', 'BH'),
    ('+974', 'QA'),
    ('+975', 'BT'),
    ('+976', 'MN'),
    ('+977', 'NP'),
    ('+98', 'IR'),
    ('+992', 'TJ'),
    ('+993', 'TM'),
    ('+994', 'AZ'),
    ('+995', 'GE'),
    ('+996', 'KG'),
    ('+998', 'UZ');
