"""Provider cost price lists and the margin guard: a message stores what the route that
sent it cost, and a route that would send it at a loss is skipped unless allowed."""

from __future__ import annotations

from tests import support, workers
from tests.app.rate_cards import UK_LANDLINE, UK_MOBILE, import_card, world_tenant
from tests.support import assert_problem

CSV = {"Content-Type": "text/csv"}


async def _provider(api, admin_headers, name, *, costs=None, **route):
    put = await api.put(
        f"/v1/admin/providers/{name}", json={"kind": "simulator"}, headers=admin_headers
    )
    assert put.status_code == 200, put.text
    added = await api.post(
        "/v1/admin/routes", json={"provider": name, **route}, headers=admin_headers
    )
    assert added.status_code == 201, added.text
    if costs is not None:
        imported = await api.post(
            f"/v1/admin/providers/{name}/costs",
            content=costs.encode(),
            headers={**admin_headers, **CSV},
        )
        assert imported.status_code == 201, imported.text


async def _settled(conn, count):
    async def done():
        n = await support.count(
            conn, "SELECT count(*) AS n FROM messages WHERE status IN ('delivered', 'failed')"
        )
        return n == count

    await workers.eventually(done)


async def _sent(conn):
    cursor = await conn.execute(
        "SELECT to_number, status, provider, cost, error_code FROM messages ORDER BY created_at"
    )
    return [tuple(r.values()) for r in await cursor.fetchall()]


async def test_a_loss_making_route_is_skipped_for_one_that_keeps_a_margin(
    api, conn, settings, admin_headers, tenant
):
    await world_tenant(api, admin_headers, tenant)  # UK mobile 35,000, landline 30,000
    # The preferred route's own list: mobiles cost 50,000 (a loss), landlines 20,000.
    costs = "prefix,country,network,price\n447,GB,,50000\n44,GB,,20000\n"
    await _provider(api, admin_headers, "pricey", costs=costs, prefix="+44", priority=1)
    await _provider(api, admin_headers, "fair", prefix="+44", priority=2, cost_per_segment=9_000)
    for to in (UK_MOBILE, UK_LANDLINE):
        assert (await support.send(api, tenant, to=to)).status_code == 202
    async with workers.in_process(settings):
        await _settled(conn, 2)
    assert await _sent(conn) == [
        (UK_MOBILE, "delivered", "fair", 9_000, None),  # the guard skipped "pricey"
        (UK_LANDLINE, "delivered", "pricey", 20_000, None),  # its list, not a flat cost
    ]
    assert await support.violations(conn) == []


async def test_with_only_loss_making_routes_a_message_fails_until_a_loss_is_allowed(
    api, conn, settings, admin_headers, tenant
):
    await world_tenant(api, admin_headers, tenant)
    await _provider(api, admin_headers, "pricey", prefix="+44", cost_per_segment=50_000)
    assert (await support.send(api, tenant, to=UK_MOBILE)).status_code == 202
    async with workers.in_process(settings):
        await _settled(conn, 1)
    assert await _sent(conn) == [(UK_MOBILE, "failed", None, None, "no_route")]
    assert (await support.balance(api, tenant))["held"] == 0  # released, never captured

    allowed = await api.post(
        "/v1/admin/routes",
        json={
            "provider": "pricey",
            "prefix": "+44",
            "cost_per_segment": 50_000,
            "allow_loss": True,
        },
        headers=admin_headers,
    )
    assert allowed.status_code == 201
    assert allowed.json()["allow_loss"] is True
    assert (await support.send(api, tenant, to=UK_MOBILE)).status_code == 202
    async with workers.in_process(settings):
        await _settled(conn, 2)
    assert (await _sent(conn))[1] == (UK_MOBILE, "delivered", "pricey", 50_000, None)
    assert (await support.balance(api, tenant))["captured"] == 35_000
    assert await support.violations(conn) == []


async def test_a_providers_cost_list_takes_the_card_format_and_its_dry_run(api, admin_headers):
    await _provider(api, admin_headers, "agg", prefix="+44")
    url = "/v1/admin/providers/agg/costs"
    first = "prefix,country,network,price\n44,GB,,20000\n"
    assert (
        await api.post(url, content=first.encode(), headers={**admin_headers, **CSV})
    ).status_code == 201
    dry = await api.post(
        url,
        params={"dry_run": "true"},
        content=b"prefix,country,network,price\n44,GB,,25000\n",
        headers={**admin_headers, **CSV},
    )
    assert dry.status_code == 200
    assert dry.json()["price_up"] == [{"prefix": "44", "old_price": 20_000, "new_price": 25_000}]
    card = await api.get("/v1/admin/rate-cards/provider:agg", headers=admin_headers)
    assert card.json()["current_version"] == 1
    missing = await api.post(
        "/v1/admin/providers/nobody/costs", content=first.encode(), headers={**admin_headers, **CSV}
    )
    assert_problem(missing, 404, "not_found")
    # A provider's list is not a card a tenant can be put on, nor imported as one.
    assert_problem(
        await import_card(api, admin_headers, "provider:agg", first), 422, "invalid_request"
    )
