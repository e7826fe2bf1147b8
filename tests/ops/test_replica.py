"""Reports on a real streaming replica (pg_basebackup of an embedded primary): they read
the standby, lag is visible in /metrics and the admin API, and the hot path never
waits for it."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from app.factory import create_app
from core.settings import Settings
from ops.replica import APPLICATION_NAME, create_replica
from smsgw.embedded import DATABASE, TEST_SETTINGS, EmbeddedPostgres
from tests import support
from tests.conftest import ADMIN_TOKEN, lifespan
from tests.workers import eventually

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture(scope="module")
def primary_and_replica() -> Iterator[tuple[EmbeddedPostgres, EmbeddedPostgres]]:
    base = Path(tempfile.mkdtemp(prefix="smsgw-replica-", dir="/tmp"))
    base.chmod(0o755)
    primary = EmbeddedPostgres(base / "primary", settings=dict(TEST_SETTINGS))
    replica: EmbeddedPostgres | None = None
    try:
        primary.start()
        with psycopg.connect(primary.url(DATABASE), autocommit=True) as conn:
            support.load_schema(conn)
        replica = create_replica(primary, base / "replica")
        yield primary, replica
    finally:
        if replica is not None:
            replica.destroy()
        primary.destroy()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
async def gateway(primary_and_replica) -> AsyncIterator[httpx.AsyncClient]:
    primary, replica = primary_and_replica
    settings = Settings.from_env(
        {
            "DATABASE_URL": primary.url(DATABASE),
            "REPORTING_DATABASE_URL": replica.url(DATABASE),
            "SMSGW_ADMIN_TOKEN": ADMIN_TOKEN,
            "SMSGW_METRICS_CACHE_SECONDS": "0",
        }
    )
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        lifespan(app),
        httpx.AsyncClient(transport=transport, base_url="http://smsgw.test") as client,
    ):
        yield client


async def queued_in_report(api: httpx.AsyncClient, tenant: support.TenantHandle) -> int:
    report = await api.get("/v1/reports/usage?group_by=status", headers=tenant.headers)
    assert report.status_code == 200, report.text
    return sum(r["messages"] for r in report.json()["rows"] if r["key"] == "queued")


async def metric(api: httpx.AsyncClient, name: str) -> float:
    text = (await api.get("/metrics")).text
    line = next(line for line in text.splitlines() if line.startswith(name + " "))
    return float(line.split()[1])


async def test_reports_read_the_replica_and_lag_is_reported(primary_and_replica, gateway):
    api = gateway
    _, replica = primary_and_replica
    tenant = await support.make_tenant(api, ADMIN, credit=1_000_000)
    for _ in range(3):
        assert (await support.send(api, tenant)).status_code == 202

    # Once the standby has replayed the writes, the report shows them.
    await eventually(lambda: _equals(queued_in_report(api, tenant), 3))
    status = (await api.get("/v1/admin/replication", headers=ADMIN)).json()
    assert status["reporting"] == "replica"
    assert status["in_recovery"] is True
    assert [s["application_name"] for s in status["standbys"]] == [APPLICATION_NAME]
    assert await metric(api, "smsgw_reporting_replica") == 1

    with psycopg.connect(replica.url(DATABASE), autocommit=True) as standby:
        standby.execute("SELECT pg_wal_replay_pause()")
        try:
            # The hot path goes on on the primary: sends are accepted and readable at once.
            sent = [await support.send(api, tenant) for _ in range(2)]
            assert [s.status_code for s in sent] == [202, 202]
            for s in sent:
                got = await api.get(f"/v1/messages/{s.json()['id']}", headers=tenant.headers)
                assert got.status_code == 200
            # The report is stale, and both the admin API and /metrics say how far behind.
            assert await queued_in_report(api, tenant) == 3
            behind = await eventually(lambda: _lagging(api))
            assert behind["replay_paused"] is True
            assert behind["lag_seconds"] > 0
            assert await metric(api, "smsgw_replication_lag_bytes") > 0
            assert await metric(api, "smsgw_replication_paused") == 1
            assert await metric(api, "smsgw_replication_lag_seconds") > 0
        finally:
            standby.execute("SELECT pg_wal_replay_resume()")

    await eventually(lambda: _equals(queued_in_report(api, tenant), 5))
    caught_up = await eventually(lambda: _caught_up(api))
    assert caught_up["replay_paused"] is False


async def _equals(awaitable, expected):
    return await awaitable == expected


async def _lagging(api):
    status = (await api.get("/v1/admin/replication", headers=ADMIN)).json()
    return status if status["lag_bytes"] > 0 else None


async def _caught_up(api):
    status = (await api.get("/v1/admin/replication", headers=ADMIN)).json()
    return status if status["lag_bytes"] == 0 and status["lag_seconds"] == 0 else None
