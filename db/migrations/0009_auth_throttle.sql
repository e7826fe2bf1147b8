-- 0009: failed authentication attempts per client address, shared by every API process,
-- so a key-guessing client is slowed down however many processes it spreads over.
CREATE UNLOGGED TABLE auth_failures (
    client text PRIMARY KEY,
    window_started_at timestamptz NOT NULL DEFAULT now(),
    failures integer NOT NULL DEFAULT 0
);
