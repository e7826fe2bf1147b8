"""A provider's sends-per-second limit holds across all workers together."""

from __future__ import annotations

from tests import aggregator, support, workers

MPS = 40


async def test_mps_is_respected_by_two_workers_together(api, conn, settings, admin_headers):
    with aggregator.running() as peer:
        put = await api.put(
            "/v1/admin/providers/paced",
            json={"kind": "http", "mps": MPS, "config": {"url": peer.url, "api_key": peer.api_key}},
            headers=admin_headers,
        )
        assert put.status_code == 200, put.text
        route = await api.post(
            "/v1/admin/routes", json={"provider": "paced"}, headers=admin_headers
        )
        assert route.status_code == 201
        tenants = [
            await support.make_tenant(api, admin_headers, credit=10_000_000, name=f"t{i}")
            for i in range(2)
        ]
        for tenant in tenants:
            batch = [{"to": support.VALID_TO, "body": "paced"} for _ in range(80)]
            response = await api.post(
                "/v1/messages/batch", json={"messages": batch}, headers=tenant.headers
            )
            assert response.status_code == 202
        async with workers.in_process(settings), workers.in_process(settings):

            async def all_sent():
                cursor = await conn.execute(
                    "SELECT count(*) AS n FROM messages WHERE sent_at IS NOT NULL"
                )
                return (await cursor.fetchone())["n"] == 160

            await workers.eventually(all_sent, timeout=60)
        times = sorted(peer.arrivals)
    assert len(times) == 160
    # The bucket holds one second of sends: a burst of MPS, then MPS a second. (Submits
    # granted in one turn reach the aggregator a little apart: allow one more burst.)
    support.assert_token_bucket(times, rate=MPS, burst=2 * MPS)
    assert times[-1] - times[0] >= (160 - MPS) / MPS * 0.9
    # Nobody failed for want of budget: they waited.
    cursor = await conn.execute("SELECT count(*) AS n FROM messages WHERE status = 'failed'")
    assert (await cursor.fetchone())["n"] == 0
