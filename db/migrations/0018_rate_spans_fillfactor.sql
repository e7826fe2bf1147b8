-- 0018: the price lookup's index leaves mostly empty (issue 23: a 50,000-prefix card
-- within 5% of the flat price).
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
