-- 0002: a placeholder on the `webhooks` branch only. The number belongs to issue 23's
-- migration (0002_rate_cards, branch `rate-cards`), which replaces this file when the
-- branches meet; the migrator wants its numbers without gaps, and 0003 is this branch's.
SELECT 1;
