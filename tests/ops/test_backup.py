"""Backups (`python -m ops.backup`): a dump of a database with real traffic restores into
a fresh database that holds the same rows, balances the books, and serves the gateway."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg import sql

from app.factory import create_app
from core.settings import Settings
from tests import support, workers
from tests.conftest import ADMIN_TOKEN, lifespan

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
SETTLED = ("delivered", "undelivered", "failed", "expired", "canceled")


def backup(*args: str | Path, database_url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "ops.backup", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def every_row(url: str) -> dict[str, list[str]]:
    """Each table (partitioned ones through their parent) -> its rows as sorted JSON."""
    with psycopg.connect(url, autocommit=True) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')"
                " AND NOT c.relispartition ORDER BY 1"
            )
        ]
        return {
            table: sorted(
                row[0]
                for row in conn.execute(
                    sql.SQL("SELECT to_jsonb(t)::text FROM {} AS t").format(sql.Identifier(table))
                )
            )
            for table in tables
        }


async def settle_traffic(
    api: httpx.AsyncClient, settings: Settings, conn: Any
) -> tuple[list[support.TenantHandle], list[str]]:
    """Two tenants with credit; messages delivered, failed and canceled, then one left
    queued (its hold and its dispatch job still open). Returns tenants and message ids."""
    alpha = await support.make_tenant(api, ADMIN, credit=1_000_000, name="alpha")
    beta = await support.make_tenant(api, ADMIN, credit=200_000, name="beta", tier="premium")
    ids = []
    for tenant, count in ((alpha, 6), (beta, 3)):
        for n in range(count):
            sent = await support.send(api, tenant, body=f"message {n} for {tenant.body['name']}")
            assert sent.status_code == 202, sent.text
            ids.append(sent.json()["id"])
    later = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    scheduled = await support.send(api, alpha, send_at=later)
    assert scheduled.status_code == 202, scheduled.text
    canceled = await api.post(
        f"/v1/messages/{scheduled.json()['id']}/cancel", headers=alpha.headers
    )
    assert canceled.status_code == 200, canceled.text
    ids.append(scheduled.json()["id"])

    async def all_settled() -> bool:
        cursor = await conn.execute(
            "SELECT count(*) AS n FROM messages WHERE status <> ALL(%s)", (list(SETTLED),)
        )
        row = await cursor.fetchone()
        return row is not None and row["n"] == 0

    # The simulator fails some messages for good (released), the rest are delivered: a
    # draw per message id, so at 0.3 all 9 were delivered one run in 25 (0.7^9); at 0.5
    # one in 250 has no failure or no delivery.
    async with workers.in_process(settings, simulator_permanent_rate=0.5):
        await workers.eventually(all_settled, timeout=60)
    waiting = await support.send(api, beta, body="still queued at backup time")
    assert waiting.status_code == 202, waiting.text
    ids.append(waiting.json()["id"])
    return [alpha, beta], ids


async def test_a_restored_dump_equals_the_source_and_serves_the_gateway(
    api, settings, conn, db_url, pg_server, tmp_path
):
    tenants, ids = await settle_traffic(api, settings, conn)
    balances = {t.id: await support.balance(api, t) for t in tenants}
    with psycopg.connect(db_url) as conn:
        statuses = {r[0] for r in conn.execute("SELECT DISTINCT status FROM messages")}
    assert {"delivered", "failed", "canceled", "queued"} <= statuses
    assert balances[tenants[1].id]["held"] > 0  # the queued message's hold is in the dump

    dump_file = tmp_path / "smsgw.dump"
    dumped = backup("dump", "--out", dump_file, database_url=db_url)
    assert dumped.returncode == 0, dumped.stderr
    assert dump_file.stat().st_size > 0
    assert not list(tmp_path.glob("*.partial"))

    name = f"restored_{uuid.uuid4().hex[:12]}"
    fresh = pg_server.janitor(name)  # an empty database: no schema at all
    fresh.init()
    restored_url = pg_server.url(name)
    try:
        restored = backup("restore", "--file", dump_file, "--database-url", restored_url)
        assert restored.returncode == 0, restored.stderr
        assert "ledger violations: 0" in restored.stdout
        assert f"{len(ids)} messages" in restored.stdout

        # Every table, smsgw's and procrastinate's, partitions included, row for row.
        source, copy = every_row(db_url), every_row(restored_url)
        assert "procrastinate_jobs" in copy
        assert copy == source
        with psycopg.connect(restored_url, autocommit=True) as conn:
            assert conn.execute("SELECT * FROM smsgw_ledger_violations_v1()").fetchall() == []

        # The gateway runs on the copy: the same keys, balances and messages; new sends work.
        await _serve_restored(restored_url, tenants, balances, ids)
        with psycopg.connect(restored_url, autocommit=True) as conn:
            assert conn.execute("SELECT * FROM smsgw_ledger_violations_v1()").fetchall() == []
    finally:
        fresh.drop()


async def _serve_restored(
    url: str,
    tenants: list[support.TenantHandle],
    balances: dict[str, dict[str, Any]],
    ids: list[str],
) -> None:
    settings = Settings.from_env({"DATABASE_URL": url, "SMSGW_ADMIN_TOKEN": ADMIN_TOKEN})
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        lifespan(app),
        httpx.AsyncClient(transport=transport, base_url="http://restored.test") as api,
    ):
        assert (await api.get("/ready")).status_code == 200
        for tenant in tenants:
            assert await support.balance(api, tenant) == balances[tenant.id]
        seen = {}
        for tenant in tenants:
            listed = await api.get("/v1/messages?limit=500", headers=tenant.headers)
            assert listed.status_code == 200, listed.text
            seen.update({m["id"]: m["status"] for m in listed.json()["messages"]})
        assert sorted(seen) == sorted(ids)
        sent = await support.send(api, tenants[0], body="after the restore")
        assert sent.status_code == 202, sent.text
        after = await support.balance(api, tenants[0])
        assert after["held"] == balances[tenants[0].id]["held"] + sent.json()["price"]


def test_restore_refuses_a_database_that_is_not_empty(db_url, tmp_path):
    dump_file = tmp_path / "smsgw.dump"
    assert backup("dump", "--out", dump_file, database_url=db_url).returncode == 0
    with psycopg.connect(db_url) as conn:
        before = conn.execute("SELECT count(*) FROM tenants").fetchone()

    refused = backup("restore", "--file", dump_file, "--database-url", db_url)

    assert refused.returncode == 1
    assert "restore into an empty one" in refused.stderr
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM tenants").fetchone() == before


def test_dump_without_a_database_url_says_so(tmp_path):
    refused = backup("dump", "--out", tmp_path / "x.dump")
    assert refused.returncode == 2
    assert "DATABASE_URL is not set" in refused.stderr
    assert not (tmp_path / "x.dump").exists()
