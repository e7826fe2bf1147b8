"""Alerts to tenants (issue 25, item 4): a balance crossing its threshold sends one
signed balance.low webhook through the callbacks outbox; each share of a cap reached
sends one spend.threshold, once per crossing."""

from __future__ import annotations

import json
import time

from core import alerts, callbacks
from tests import httpd, support, workers

PRICE = 7_900


async def _alert_events(conn) -> list[str]:
    cursor = await conn.execute(
        "SELECT payload ->> 'event' AS event FROM callbacks WHERE kind = 'alert'"
        " ORDER BY created_at, id"
    )
    return [row["event"] for row in await cursor.fetchall()]


async def test_a_balance_crossing_its_threshold_sends_one_signed_balance_low(
    api, conn, pool, settings, admin_headers
):
    tenant = await support.make_tenant(api, admin_headers, credit=10 * PRICE)
    with httpd.serve() as endpoint:
        set_up = await api.patch(
            "/v1/alerts",
            json={"alerts_url": endpoint.url, "low_balance_threshold": 5 * PRICE},
            headers=tenant.headers,
        )
        assert set_up.status_code == 200, set_up.text
        assert set_up.json()["low_balance_threshold"] == 5 * PRICE
        for i in range(5):
            assert (await support.send(api, tenant, body=f"m{i}")).status_code == 202
        # At the threshold, not under it: nothing yet.
        assert await alerts.check_crossings(pool) == 0
        assert (await support.send(api, tenant, body="m5")).status_code == 202
        assert await alerts.check_crossings(pool) == 1
        # Still under it: not told again.
        assert (await support.send(api, tenant, body="m6")).status_code == 202
        assert await alerts.check_crossings(pool) == 0
        assert await _alert_events(conn) == ["balance.low"]
        async with workers.in_process(settings, queues=["callbacks"]):

            async def received():
                return endpoint.received

            await workers.eventually(received, timeout=30)
        (request,) = endpoint.received
        assert callbacks.verify(
            tenant.webhook_secret,
            request.body,
            request.headers["x-smsgw-signature"],
            now=int(time.time()),
        )
        body = json.loads(request.body)
        assert body["event"] == "balance.low"
        assert body["tenant_id"] == tenant.id
        assert body["data"] == {"available": 4 * PRICE, "threshold": 5 * PRICE}

    # Back over the threshold re-arms it: the next crossing is told again.
    credited = await api.post(
        f"/v1/admin/tenants/{tenant.id}/credits",
        json={"amount": 10 * PRICE, "reference": "top-up"},
        headers=admin_headers,
    )
    assert credited.status_code == 201, credited.text
    assert await alerts.check_crossings(pool) == 0
    for i in range(9):
        assert (await support.send(api, tenant, body=f"n{i}")).status_code == 202
    assert await alerts.check_crossings(pool) == 1
    assert await _alert_events(conn) == ["balance.low", "balance.low"]
    low = await support.count(conn, "SELECT count(*) AS n FROM alert_state WHERE balance_low")
    assert low == 1
    metrics = (await api.get("/metrics", headers=admin_headers)).text
    assert "smsgw_tenants_below_balance_threshold 1.0" in metrics
    assert await support.violations(conn) == []


async def test_each_share_of_a_cap_is_told_once(api, conn, pool, admin_headers):
    tenant = await support.make_tenant(api, admin_headers, credit=100 * PRICE)
    patched = await api.patch(
        f"/v1/admin/tenants/{tenant.id}",
        json={"daily_spend_cap": 10 * PRICE, "alerts_url": "http://127.0.0.1:9/a"},
        headers=admin_headers,
    )
    assert patched.status_code == 200, patched.text
    for i in range(5):
        assert (await support.send(api, tenant, body=f"m{i}")).status_code == 202
    assert await alerts.check_crossings(pool) == 1
    assert await alerts.check_crossings(pool) == 0
    for i in range(5, 10):
        assert (await support.send(api, tenant, body=f"m{i}")).status_code == 202
    # 50% told already; 100% now (80% was passed on the way: the highest share is told).
    assert await alerts.check_crossings(pool) == 1
    cursor = await conn.execute(
        "SELECT payload -> 'data' AS data FROM callbacks WHERE kind = 'alert'"
        " ORDER BY created_at, id"
    )
    told = [row["data"] for row in await cursor.fetchall()]
    assert [(d["period"], d["percent"]) for d in told] == [("day", 50), ("day", 100)]
    assert told[-1]["spent"] == 10 * PRICE
    assert await support.violations(conn) == []
