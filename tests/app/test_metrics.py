"""/metrics after a workload: the series an operator graphs and alerts on, with values
that match what happened."""

from __future__ import annotations

import re

import msgspec
import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.settings import Settings
from tests import support, workers

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Every scrape reads the database afresh (the default caches a second).
    return msgspec.structs.replace(settings, metrics_cache_seconds=0.0)


async def scrape(api) -> dict[tuple[str, frozenset], float]:
    response = await api.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


async def test_metrics_follow_a_workload(api, conn, settings, admin_headers):
    tenant = await support.make_tenant(api, admin_headers, credit=10_000_000, tier="vip")
    batch = {"messages": [{"to": support.VALID_TO, "body": f"m{i}"} for i in range(30)]}
    assert (
        await api.post("/v1/messages/batch", json=batch, headers=tenant.headers)
    ).status_code == 202
    single = await support.send(api, tenant)
    assert single.status_code == 202
    assert (
        await api.get(f"/v1/messages/{single.json()['id']}", headers=tenant.headers)
    ).status_code == 200

    # Accepted and waiting: the queue of the vip tier holds them, the others are empty.
    before = await scrape(api)
    assert value(before, "smsgw_database_up") == 1
    assert value(before, "smsgw_messages_accepted_total", tier="vip", status="queued") == 31
    assert value(before, "smsgw_queue_depth", tier="vip") == 31
    assert value(before, "smsgw_queue_depth", tier="standard") == 0
    assert value(before, "smsgw_queue_oldest_age_seconds", tier="vip") >= 0
    assert (
        value(before, "smsgw_ledger_balance_micros", currency="USD", account="held") == 31 * 5_000
    )

    async with workers.in_process(settings):
        await workers.eventually(lambda: _delivered(conn, tenant.id, 31), timeout=60)

    after = await scrape(api)
    assert value(after, "smsgw_queue_depth", tier="vip") == 0
    assert value(after, "smsgw_messages_in_flight") == 0
    settled = {"status": "sent", "tier": "vip", "provider": "simulator"}
    assert value(after, "smsgw_messages_settled_total", **settled) == 31
    assert value(after, "smsgw_messages_settled_total", **{**settled, "status": "delivered"}) == 31
    assert value(after, "smsgw_message_attempts_total", tier="vip", provider="simulator") == 31
    balance = await support.balance(api, tenant)
    assert (
        value(after, "smsgw_ledger_balance_micros", currency="USD", account="captured")
        == (balance["captured"])
        == 31 * 5_000
    )
    assert value(after, "smsgw_ledger_balance_micros", currency="USD", account="held") == 0
    assert value(after, "smsgw_tenants", currency="USD") == 1
    # Providers: breaker state as a one-hot gauge, totals and latency.
    assert value(after, "smsgw_provider_breaker_state", provider="simulator", state="closed") == 1
    assert value(after, "smsgw_provider_breaker_state", provider="simulator", state="open") == 0
    assert value(after, "smsgw_provider_accepted_total", provider="simulator") == 31
    assert value(after, "smsgw_provider_errors_total", provider="simulator") == 0
    assert value(after, "smsgw_provider_latency_seconds", provider="simulator") is not None
    # Reports read the primary here: no replica, no lag.
    assert value(after, "smsgw_reporting_replica") == 0
    assert value(after, "smsgw_replication_lag_bytes") == 0

    # HTTP: by route template and status, with latency histograms; never a raw path.
    posted = {"method": "POST", "route": "/v1/messages", "status": "202"}
    assert value(after, "smsgw_http_requests_total", **posted) == 1
    assert (
        value(after, "smsgw_http_requests_total", **{**posted, "route": "/v1/messages/batch"}) == 1
    )
    read = {"method": "GET", "route": "/v1/messages/{message_id}"}
    assert value(after, "smsgw_http_request_duration_seconds_count", **read) == 1
    assert value(after, "smsgw_http_request_duration_seconds_bucket", **read, le="+Inf") == 1
    routes = {dict(labels).get("route", "") for _, labels in after}
    assert not any(UUID.search(route) for route in routes), routes

    # Counters survive their writers: the worker's connections are gone; folding their
    # rows changes no total.
    await conn.execute("SELECT smsgw_fold_message_counters_v1()")
    cursor = await conn.execute("SELECT count(DISTINCT slot) AS slots FROM message_counters")
    assert (await cursor.fetchone())["slots"] <= 3  # slot 0 and this test's live backends
    folded = await scrape(api)
    for name in ("smsgw_messages_settled_total", "smsgw_messages_accepted_total"):
        assert {k: v for k, v in folded.items() if k[0] == name} == {
            k: v for k, v in after.items() if k[0] == name
        }


async def _delivered(conn, tenant_id, expected):
    cursor = await conn.execute(
        "SELECT count(*) AS n FROM messages WHERE tenant_id = %s AND status = 'delivered'",
        (tenant_id,),
    )
    return (await cursor.fetchone())["n"] == expected


async def test_metrics_can_require_a_token(settings, pool):
    import httpx

    from app.factory import create_app
    from tests.conftest import lifespan

    guarded = msgspec.structs.replace(settings, metrics_token="scrape-me")
    app = create_app(guarded, pool=pool)
    async with (
        lifespan(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://smsgw.test"
        ) as client,
    ):
        support.assert_problem(await client.get("/metrics"), 401, "unauthorized")
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
        support.assert_problem(wrong, 401, "unauthorized")
        right = await client.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
        assert right.status_code == 200
        assert "smsgw_queue_depth" in right.text
