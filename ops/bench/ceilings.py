"""The database's ceilings, measured with pgbench in the same run as the gateway.

`pgbench` runs the hold-plus-insert transaction the issue names (a balance UPDATE and a
message INSERT on scratch tables): the machine's ceiling for the shape of an accept.
`pgbench_accept` runs the gateway's own single-send call, smsgw_accept_one_v4, on the
real schema with real tenants and keys: what the database alone can accept per second
with both cores and no API, so the single-send figure can be read against it (the API
shares the cores with the server; the rest of the gap is the API's CPU per message).
"""

from __future__ import annotations

import asyncio
import time

import psycopg
from psycopg.rows import dict_row

from core import exposure, tenants
from db import exposure as exposure_db
from ops.bench import load, measure
from ops.bench.phases import Bench, Outcome, scratch_tables
from ops.bench.server_stats import per_message

# One call as `POST /v1/messages` makes it for a cached key (core/accept.py,
# db/queries/messages.sql: accept_one): the key re-checked, opt-outs honoured, the tenant
# queued for dispatch, priced by its card (price NULL), no sender (the sender rules of
# its country looked up). The tenant's row of
# bench_scratch.accept_keys names its ids.
ACCEPT_SCRIPT = """\\set tenant random(1, :tenants)
SELECT a.accepted
  FROM bench_scratch.accept_keys k,
       smsgw_accept_one_v4(
           k.tenant_id, NULL, 'standard', 'smsgw.dispatch', true, gen_random_uuid(), now(),
           'queued', '+14155552671', NULL, 'bench message', 'GSM-7', 1::smallint, NULL,
           NULL, NULL, NULL, now() + interval '1 day', NULL, NULL, k.key_id, 'US', NULL,
           false, NULL, NULL) AS a
 WHERE k.n = :tenant;
"""


def pgbench_ceiling(bench: Bench, key: str) -> Outcome:
    with bench.database(key) as url:
        scratch_tables(url)
        return _pgbench(
            bench,
            key,
            url,
            "pgbench hold+insert",
            load.PGBENCH_SCRIPT,
            table="bench_scratch.pgbench_messages",
        )


def pgbench_accept(bench: Bench, key: str) -> Outcome:
    with bench.database(key) as url:
        scratch_tables(url)
        asyncio.run(_accept_keys(url, bench.plan.single_tenants))
        outcome = _pgbench(bench, key, url, "pgbench accept_one", ACCEPT_SCRIPT, table="messages")
        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute("SELECT count(*) FROM messages").fetchone()
    accepted = int(row[0]) if row else 0
    outcome.notes.insert(0, f"{accepted:,} messages accepted")
    return outcome


def _pgbench(
    bench: Bench, key: str, url: str, title: str, transaction: str, *, table: str
) -> Outcome:
    """``transaction`` run by pgbench; ``table``: where its rows land, for the chart."""
    p = bench.plan
    with bench.observe(key, url, None) as seen:
        t0 = time.time()
        result = load.run_pgbench(
            url,
            clients=p.connections,
            tenants=p.single_tenants,
            seconds=p.ingest_seconds,
            workdir=bench.dir(key),
            transaction=transaction,
        )
        t1 = time.time()
    bench.chart(title, t0, t1, t1, measure.series(url, t0, t1, table=table), seen)
    return Outcome(
        figures={"rate": result.rate, "p50_ms": result.p50_ms, "p99_ms": result.p99_ms},
        notes=[
            f"{result.transactions} tx",
            seen["cpu"],
            per_message(seen, result.transactions, "tx"),
        ],
    )


async def _accept_keys(url: str, count: int) -> None:
    """``count`` standard tenants with credit and a key each, made as the admin API makes
    them, listed in bench_scratch.accept_keys for the script."""
    async with await psycopg.AsyncConnection.connect(url, row_factory=dict_row) as conn:
        await conn.execute(
            "CREATE TABLE bench_scratch.accept_keys"
            " (n integer PRIMARY KEY, tenant_id uuid, key_id uuid, price bigint)"
        )
        for n in range(1, count + 1):
            tenant, issued = await tenants.create_tenant(
                conn, name=f"pgbench-{n}", tier="standard", rate_limit_mps=None
            )
            await tenants.add_credit(
                conn, tenant_id=tenant.id, amount=10**15, reference=f"pgbench-{n}"
            )
            # Issue 25: geo permissions and spend caps at work, never binding.
            await exposure.set_geo_permissions(
                conn, tenant_id=tenant.id, countries=None, high_risk_enabled=[]
            )
            await exposure_db.set_caps(
                conn,
                tenant_id=tenant.id,
                set_daily=True,
                daily=10**15,
                set_monthly=True,
                monthly=10**15,
            )
            await conn.execute(
                "INSERT INTO bench_scratch.accept_keys VALUES (%s, %s, %s, %s)",
                (n, tenant.id, issued.id, tenant.price_per_segment),
            )
        await conn.commit()
