-- Scratch tables for the ceilings (ops/bench/run.py): a balances-like table for the
-- hold, and message-like tables for pgbench and the trivial endpoint. They live in the
-- phase's own database, on the same server as the gateway's tables, and go with it.
CREATE SCHEMA bench_scratch;

CREATE TABLE bench_scratch.balances (
    tenant_id integer PRIMARY KEY,
    available bigint NOT NULL CHECK (available >= 0),
    held bigint NOT NULL DEFAULT 0
) WITH (fillfactor = 50);
INSERT INTO bench_scratch.balances (tenant_id, available)
SELECT g, 10000000000000 FROM generate_series(1, 1000) AS g;

CREATE TABLE bench_scratch.pgbench_messages (
    id bigint GENERATED ALWAYS AS IDENTITY,
    created_at timestamptz NOT NULL DEFAULT now(),
    tenant_id integer NOT NULL,
    status text NOT NULL,
    to_number text NOT NULL,
    body text NOT NULL,
    segments smallint NOT NULL,
    price bigint NOT NULL,
    PRIMARY KEY (id, created_at)
);
CREATE INDEX ON bench_scratch.pgbench_messages (tenant_id, created_at DESC, id DESC);

CREATE TABLE bench_scratch.trivial_messages (LIKE bench_scratch.pgbench_messages INCLUDING ALL);
