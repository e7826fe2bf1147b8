-- name: alert_candidates
-- Tenants with something to watch (a balance threshold or a cap) beside what they were
-- last told. Spend is of the current period (UTC).
SELECT t.id AS tenant_id, t.low_balance_threshold, t.spend_alert_percents,
       b.available, b.daily_spend_cap, b.monthly_spend_cap,
       CASE WHEN b.spend_day = smsgw_spend_day_v1() THEN b.day_spent ELSE 0 END AS day_spent,
       CASE WHEN b.spend_month = smsgw_spend_month_v1() THEN b.month_spent ELSE 0 END
           AS month_spent,
       smsgw_spend_day_v1() AS spend_day, smsgw_spend_month_v1() AS spend_month,
       coalesce(a.balance_low, false) AS was_low,
       CASE WHEN a.spend_day = smsgw_spend_day_v1() THEN a.day_percent ELSE 0 END
           AS told_day_percent,
       CASE WHEN a.spend_month = smsgw_spend_month_v1() THEN a.month_percent ELSE 0 END
           AS told_month_percent
  FROM balances b
  JOIN tenants t ON t.id = b.tenant_id
  LEFT JOIN alert_state a ON a.tenant_id = b.tenant_id
 WHERE t.low_balance_threshold IS NOT NULL OR b.daily_spend_cap IS NOT NULL
    OR b.monthly_spend_cap IS NOT NULL OR a.balance_low

-- name: save_state
INSERT INTO alert_state (tenant_id, balance_low, spend_day, day_percent, spend_month,
                         month_percent)
VALUES (%(tenant_id)s, %(balance_low)s, %(spend_day)s, %(day_percent)s, %(spend_month)s,
        %(month_percent)s)
ON CONFLICT (tenant_id) DO UPDATE
   SET balance_low = excluded.balance_low, spend_day = excluded.spend_day,
       day_percent = excluded.day_percent, spend_month = excluded.spend_month,
       month_percent = excluded.month_percent

-- name: below_threshold
-- Tenants whose available credit is under their threshold now (/metrics).
SELECT count(*) AS n
  FROM tenants t JOIN balances b ON b.tenant_id = t.id
 WHERE t.low_balance_threshold IS NOT NULL AND b.available < t.low_balance_threshold
