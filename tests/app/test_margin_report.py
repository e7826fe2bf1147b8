"""The margin report and a tenant's spend by country: revenue is what was captured,
cost what the routes that sent it cost, and the sums equal the ledger's captures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core import rollups, todays_margin
from tests import support, workers
from tests.app.rate_cards import UK_LANDLINE, UK_MOBILE, US, world_tenant
from tests.jobs.test_margin import _provider, _settled
from tests.support import assert_problem


async def _captured(conn) -> int:
    return await support.count(
        conn,
        "SELECT coalesce(sum(amount), 0) AS n FROM ledger_message_entries WHERE kind = 'capture'",
    )


async def test_margin_by_every_grouping_sums_to_the_ledgers_captures(
    api, conn, settings, admin_headers, tenant
):
    await world_tenant(api, admin_headers, tenant)  # US 1,000, UK 30,000, UK mobile 35,000
    other = await support.make_tenant(api, admin_headers, name="other", credit=1_000_000)
    uk = "prefix,country,network,price\n44,GB,,20000\n"
    await _provider(api, admin_headers, "ukagg", costs=uk, prefix="+44", cost_per_segment=1)
    await _provider(api, admin_headers, "usagg", prefix="+1", cost_per_segment=400)
    for to in (UK_MOBILE, UK_LANDLINE, US, US):
        assert (await support.send(api, tenant, to=to)).status_code == 202
    assert (await support.send(api, other, to=US)).status_code == 202  # the tier's 7,900
    async with workers.in_process(settings):
        await _settled(conn, 5)
    captured = await _captured(conn)
    assert captured == 35_000 + 30_000 + 2 * 1_000 + 7_900

    async def margin(group_by):
        response = await api.get(
            "/v1/admin/reports/margin", params={"group_by": group_by}, headers=admin_headers
        )
        assert response.status_code == 200, response.text
        return {r["key"]: (r["revenue"], r["cost"], r["margin"]) for r in response.json()["rows"]}

    by_country = await margin("country")
    assert by_country == {
        "GB": (65_000, 40_000, 25_000),
        "US": (9_900, 1_200, 8_700),
    }
    assert await margin("provider") == {
        "ukagg": (65_000, 40_000, 25_000),
        "usagg": (9_900, 1_200, 8_700),
    }
    assert await margin("tenant") == {
        tenant.id: (67_000, 40_800, 26_200),
        other.id: (7_900, 400, 7_500),
    }
    (today,) = (await margin("day")).values()
    assert today == (74_900, 41_200, 33_700)
    for grouping in (by_country, await margin("tenant"), await margin("provider")):
        assert sum(revenue for revenue, _, _ in grouping.values()) == captured
    refused = await api.get(
        "/v1/admin/reports/margin", params={"group_by": "tier"}, headers=admin_headers
    )
    assert_problem(refused, 422, "invalid_request")

    usage = await api.get(
        "/v1/reports/usage", params={"group_by": "country"}, headers=tenant.headers
    )
    assert usage.status_code == 200, usage.text
    assert {r["key"]: (r["messages"], r["spent"]) for r in usage.json()["rows"]} == {
        "GB": (2, 65_000),
        "US": (2, 2_000),
    }
    assert await support.violations(conn) == []


async def test_the_dashboard_shows_todays_margin_and_the_destinations_sold_at_a_loss(
    api, conn, pool, settings, admin_headers, tenant
):
    await world_tenant(api, admin_headers, tenant)  # US 1,000, UK 30,000, UK mobile 35,000
    # The UK route costs more than the UK is sold for, and the operator allowed it.
    await _provider(
        api, admin_headers, "ukagg", prefix="+44", cost_per_segment=40_000, allow_loss=True
    )
    await _provider(api, admin_headers, "usagg", prefix="+1", cost_per_segment=400)
    for to in (UK_MOBILE, UK_LANDLINE, US, US):
        assert (await support.send(api, tenant, to=to)).status_code == 202
    async with workers.in_process(settings):
        await _settled(conn, 4)
    # The hour in progress is not folded yet: no figures for it, and the dashboard says
    # until when its figures run.
    now = datetime.now(UTC)
    before = await todays_margin.todays_margin(conn, now=now)
    assert (before.totals, before.losses) == ([], [])
    assert before.until is None or before.until <= now

    await rollups.fold_due(pool, settings, at=now + timedelta(hours=2))
    response = await api.get("/v1/admin/dashboard", headers=admin_headers)
    assert response.status_code == 200, response.text
    margin = response.json()["margin"]
    assert margin["since"].startswith(now.strftime("%Y-%m-%d"))
    assert margin["totals"] == [
        {
            "currency": "USD",
            "messages": 4,
            "revenue": 35_000 + 30_000 + 2_000,
            "cost": 2 * 40_000 + 2 * 400,
            "margin": 67_000 - 80_800,
        }
    ]
    assert margin["totals"][0]["revenue"] == await _captured(conn)
    assert margin["losses"] == [
        {
            "country": "GB",
            "currency": "USD",
            "messages": 2,
            "revenue": 65_000,
            "cost": 80_000,
            "margin": -15_000,
        }
    ]
