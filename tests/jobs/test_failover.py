"""Two HTTP aggregators behind two routes: an outage of the cheap one opens its breaker,
traffic moves to the other, nothing that the second route could carry fails, and the
breaker closes when the first recovers."""

from __future__ import annotations

from tests import aggregator, support, workers

BREAKER = {
    "breaker_min_requests": 10,
    "breaker_error_rate": 0.5,
    "breaker_window_seconds": 30,
    "breaker_cooldown_seconds": 1.0,
    "breaker_probes": 3,
    "dispatch_batch_size": 20,
}


async def _providers(api, admin_headers):
    response = await api.get("/v1/admin/providers", headers=admin_headers)
    assert response.status_code == 200
    return {p["name"]: p for p in response.json()}


async def _configure(api, admin_headers, name, peer, cost):
    put = await api.put(
        f"/v1/admin/providers/{name}",
        json={
            "kind": "http",
            "config": {
                "url": peer.url,
                "api_key": peer.api_key,
                "dlr_secret": peer.dlr_secret,
                "concurrency": 10,
                "timeout_seconds": 2,
            },
        },
        headers=admin_headers,
    )
    assert put.status_code == 200, put.text
    assert "config" not in put.json()  # secrets are never shown back
    route = await api.post(
        "/v1/admin/routes",
        json={"prefix": "+1", "provider": name, "cost_per_segment": cost},
        headers=admin_headers,
    )
    assert route.status_code == 201, route.text


async def test_an_outage_moves_traffic_to_the_next_route_and_the_breaker_recovers(
    api, conn, db_url, settings, admin_headers, tenant
):
    with (
        workers.api_process(db_url) as gateway,
        aggregator.running(mode="fail") as cheap,
        aggregator.running() as backup,
    ):
        cheap.dlr_url = f"{gateway}/v1/providers/cheap/dlr"
        backup.dlr_url = f"{gateway}/v1/providers/backup/dlr"
        await _configure(api, admin_headers, "cheap", cheap, cost=100)
        await _configure(api, admin_headers, "backup", backup, cost=300)
        await support.send_batch(api, tenant, 200)

        async with workers.in_process(settings, **BREAKER):

            async def all_delivered(expected):
                return (
                    await support.count(
                        conn, "SELECT count(*) AS n FROM messages WHERE status = 'delivered'"
                    )
                    == expected
                )

            await workers.eventually(lambda: all_delivered(200), timeout=60)
            during = await _providers(api, admin_headers)
            assert during["cheap"]["state"] in ("open", "half_open")
            # The cheap route saw the outage, the backup carried the traffic.
            assert len(cheap.refused) >= BREAKER["breaker_min_requests"]
            # (At-least-once upstream: a submit that timed out under load may be resent.)
            assert len({m["reference"] for m in backup.accepted}) == 200
            assert (
                await support.count(
                    conn, "SELECT count(*) AS n FROM messages WHERE status = 'failed'"
                )
                == 0
            )

            # The cheap aggregator recovers: probes pass, the breaker closes, and new
            # traffic goes back to the cheapest route.
            cheap.mode = "accept"
            await support.send_batch(api, tenant, 100)
            await workers.eventually(lambda: all_delivered(300), timeout=60)

            async def closed():
                return (await _providers(api, admin_headers))["cheap"]["state"] == "closed"

            await workers.eventually(closed, timeout=30)
        after = await _providers(api, admin_headers)
        assert len(cheap.accepted) > 0
        assert 0 < after["cheap"]["sent_total"] <= len(cheap.accepted)
        assert after["backup"]["error_rate"] in (None, 0.0)
    cursor = await conn.execute(
        "SELECT provider, count(*) AS n FROM messages GROUP BY provider ORDER BY provider"
    )
    by_provider = {row["provider"]: row["n"] for row in await cursor.fetchall()}
    assert by_provider["backup"] >= 200
    assert sum(by_provider.values()) == 300
    balance = await support.balance(api, tenant)
    assert balance["captured"] == 300 * 7_900
