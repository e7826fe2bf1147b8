"""Single sends authenticate from a per-process cache of keys (core/key_cache.py), and the
accept call re-checks the key: what an operator changes applies to the very next send."""

from __future__ import annotations

from tests import support
from tests.support import assert_problem


async def _patch(api, admin_headers, tenant, **fields):
    response = await api.patch(f"/v1/admin/tenants/{tenant.id}", json=fields, headers=admin_headers)
    assert response.status_code == 200, response.text


async def test_a_price_change_applies_to_the_next_send_of_a_known_key(
    api, conn, admin_headers, tenant
):
    first = await support.send(api, tenant)
    assert first.status_code == 202
    await _patch(api, admin_headers, tenant, price_per_segment=1_000)

    second = await support.send(api, tenant)
    assert second.status_code == 202, second.text
    assert second.json()["price"] == 1_000
    balance = await support.balance(api, tenant)
    assert balance["held"] == first.json()["price"] + 1_000
    assert await support.violations(conn) == []


async def test_a_tier_change_applies_to_the_next_send_of_a_known_key(
    api, conn, admin_headers, tenant
):
    assert (await support.send(api, tenant)).status_code == 202
    await _patch(api, admin_headers, tenant, tier="vip")
    assert (await support.send(api, tenant)).status_code == 202

    cursor = await conn.execute(
        "SELECT tier FROM dispatch_queue WHERE tenant_id = %s", (tenant.id,)
    )
    assert (await cursor.fetchone())["tier"] == "vip"
    cursor = await conn.execute(
        "SELECT tier, sum(n) AS n FROM message_counters WHERE kind = 'accepted'"
        " GROUP BY tier ORDER BY tier"
    )
    assert {row["tier"]: row["n"] for row in await cursor.fetchall()} == {
        "standard": 1,
        "vip": 1,
    }


async def test_a_rate_limit_set_after_a_send_holds_the_next_ones(api, conn, admin_headers, tenant):
    assert (await support.send(api, tenant)).status_code == 202
    await _patch(api, admin_headers, tenant, rate_limit_mps=1)

    answers = [await support.send(api, tenant) for _ in range(3)]
    assert answers[0].status_code == 202
    assert_problem(answers[-1], 429, "rate_limited")
    assert int(answers[-1].headers["Retry-After"]) >= 1


async def test_a_revoked_key_sends_nothing_even_right_after_a_send(
    api, conn, admin_headers, tenant
):
    assert (await support.send(api, tenant)).status_code == 202
    revoked = await api.delete(
        f"/v1/admin/api-keys/{tenant.body['api_key_id']}", headers=admin_headers
    )
    assert revoked.status_code == 204
    before = await support.stored(conn)

    assert_problem(await support.send(api, tenant), 401, "unauthorized")
    assert await support.stored(conn) == before
    assert await support.violations(conn) == []
