"""Exposure controls at the REST door (issue 25): geo permissions with the operator's
high-risk countries, spend caps exact under concurrency, and bad settings refused with
the field, nothing changed. Each refusal holds and writes nothing."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests import support, workers
from tests.support import VALID_TO, TenantHandle, assert_problem

PRICE = 7_900  # the standard tier's price per segment
GB_TO = "+447400123456"  # a UK mobile (libphonenumber: GB)


async def _geo(api, admin_headers, tenant, **body: Any) -> httpx.Response:
    return await api.put(
        f"/v1/admin/tenants/{tenant.id}/geo-permissions", json=body, headers=admin_headers
    )


async def _high_risk(api, admin_headers, countries: list[str]) -> None:
    response = await api.put(
        "/v1/admin/high-risk-countries", json={"countries": countries}, headers=admin_headers
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"countries": sorted(countries)}


async def _patch(api, admin_headers, tenant, **body: Any) -> httpx.Response:
    return await api.patch(f"/v1/admin/tenants/{tenant.id}", json=body, headers=admin_headers)


async def test_a_high_risk_country_is_refused_until_the_operator_enables_it(
    api, conn, admin_headers, tenant
):
    await _high_risk(api, admin_headers, ["GB"])
    before = await support.balance(api, tenant)
    body = assert_problem(
        await support.send(api, tenant, to=GB_TO), 422, "destination_not_permitted"
    )
    assert "GB" in body["detail"]
    # With an Idempotency-Key: refused too, and the key keeps no answer.
    keyed = await support.send(api, tenant, to=GB_TO, headers={"Idempotency-Key": "k-1"})
    assert_problem(keyed, 422, "destination_not_permitted")
    # The quote says so as well.
    quoted = await api.post(
        "/v1/messages/quote", json={"to": GB_TO, "body": "hi"}, headers=tenant.headers
    )
    assert_problem(quoted, 422, "destination_not_permitted")
    assert await support.balance(api, tenant) == before
    assert await support.stored(conn) == support.NOTHING_STORED

    # A batch: the GB item is refused on its own, the US one goes.
    batch = await api.post(
        "/v1/messages/batch",
        json={"messages": [{"to": GB_TO, "body": "a"}, {"to": VALID_TO, "body": "b"}]},
        headers=tenant.headers,
    )
    assert batch.status_code == 202, batch.text
    assert [e["code"] for e in batch.json()["errors"]] == ["destination_not_permitted"]
    assert batch.json()["errors"][0]["index"] == 0
    assert [m["to"] for m in batch.json()["messages"]] == [VALID_TO]

    # The tenant sees where it may send; enabled for it, GB goes.
    seen = (await api.get("/v1/geo-permissions", headers=tenant.headers)).json()
    assert seen["countries"] is None
    assert seen["high_risk"] == ["GB"]
    assert seen["high_risk_enabled"] == []
    enabled = await _geo(api, admin_headers, tenant, countries=None, high_risk_enabled=["GB"])
    assert enabled.status_code == 200, enabled.text
    assert (await support.send(api, tenant, to=GB_TO)).status_code == 202
    # Another tenant still may not.
    other = await support.make_tenant(api, admin_headers, credit=1_000_000, name="other")
    assert_problem(await support.send(api, other, to=GB_TO), 422, "destination_not_permitted")
    assert await support.violations(conn) == []


async def test_a_list_of_countries_permits_only_those(api, conn, admin_headers, tenant):
    listed = await _geo(api, admin_headers, tenant, countries=["GB"])
    assert listed.status_code == 200, listed.text
    assert listed.json()["countries"] == ["GB"]
    fetched = await api.get(f"/v1/admin/tenants/{tenant.id}/geo-permissions", headers=admin_headers)
    assert fetched.json()["countries"] == ["GB"]
    assert_problem(await support.send(api, tenant, to=VALID_TO), 422, "destination_not_permitted")
    assert (await support.send(api, tenant, to=GB_TO)).status_code == 202
    # Every message of a batch refused: the batch is a 422 of that code.
    batch = await api.post(
        "/v1/messages/batch",
        json={"messages": [{"to": VALID_TO, "body": "a"}, {"to": VALID_TO, "body": "b"}]},
        headers=tenant.headers,
    )
    assert_problem(batch, 422, "destination_not_permitted")
    assert await support.count(conn, "SELECT count(*) AS n FROM messages") == 1
    # null: every country again.
    assert (await _geo(api, admin_headers, tenant, countries=None)).status_code == 200
    assert (await support.send(api, tenant, to=VALID_TO)).status_code == 202


async def test_bad_settings_are_refused_with_the_field_and_nothing_changes(
    api, conn, admin_headers, tenant
):
    bad = await _geo(api, admin_headers, tenant, countries=["GB", "XX"])
    body = assert_problem(bad, 422, "invalid_request")
    assert [e["field"] for e in body["errors"]] == ["countries[1]"]
    bad = await api.put(
        "/v1/admin/high-risk-countries", json={"countries": ["gb"]}, headers=admin_headers
    )
    assert [e["field"] for e in assert_problem(bad, 422, "invalid_request")["errors"]] == [
        "countries[0]"
    ]
    seen = await api.get(f"/v1/admin/tenants/{tenant.id}/geo-permissions", headers=admin_headers)
    assert seen.json()["countries"] is None
    assert seen.json()["high_risk"] == []

    for fields, field in (
        ({"daily_spend_cap": -1}, "daily_spend_cap"),
        ({"monthly_spend_cap": -5, "tier": "vip"}, "monthly_spend_cap"),
        ({"low_balance_threshold": -1}, "low_balance_threshold"),
        ({"spend_alert_percents": [50, 120]}, "spend_alert_percents[1]"),
        ({"alerts_url": "ftp://example.com/x"}, "alerts_url"),
    ):
        refused = assert_problem(
            await _patch(api, admin_headers, tenant, **fields), 422, "invalid_request"
        )
        assert field in [e["field"] for e in refused["errors"]], refused
    now = (await api.get(f"/v1/admin/tenants/{tenant.id}", headers=admin_headers)).json()
    assert now["tier"] == "standard"
    assert now["daily_spend_cap"] is None
    assert now["monthly_spend_cap"] is None
    assert now["low_balance_threshold"] is None
    assert now["alerts_url"] is None
    assert now["spend_alert_percents"] == [50, 80, 100]


async def _cap_covering(api, admin_headers, tenant: TenantHandle, messages: int) -> None:
    set_cap = await _patch(api, admin_headers, tenant, daily_spend_cap=messages * PRICE)
    assert set_cap.status_code == 200, set_cap.text
    assert set_cap.json()["daily_spend_cap"] == messages * PRICE


async def _two_hundred_at_once(client: httpx.AsyncClient, tenant: TenantHandle) -> list[int]:
    sends = [support.send(client, tenant, body=f"m{i}") for i in range(200)]
    responses = await asyncio.gather(*sends)
    for r in responses:
        if r.status_code != 202:
            assert_problem(r, 402, "spend_limit_reached")
    return [r.status_code for r in responses]


async def test_200_concurrent_sends_against_a_cap_covering_50_accept_exactly_50(
    api, api_one_call_each, conn, admin_headers
):
    # Single sends coalesced into shared calls (smsgw_accept_sends_v4), and each in a
    # call of its own on its own connection (smsgw_accept_one_v4): the cap is a condition
    # of the hold under the balance row's lock, so it holds across backends.
    for client, name in ((api, "shared"), (api_one_call_each, "own")):
        tenant = await support.make_tenant(api, admin_headers, credit=100_000_000, name=name)
        await _cap_covering(api, admin_headers, tenant, 50)
        statuses = await _two_hundred_at_once(client, tenant)
        assert statuses.count(202) == 50, name
        balance = await support.balance(api, tenant)
        assert balance["held"] + balance["captured"] == 50 * PRICE
        shown = (await api.get(f"/v1/admin/tenants/{tenant.id}", headers=admin_headers)).json()
        assert shown["day_spent"] == 50 * PRICE
        # Credit was not what ran out.
        assert balance["available"] == 100_000_000 - 50 * PRICE
    assert await support.count(conn, "SELECT count(*) AS n FROM messages") == 100
    assert await support.violations(conn) == []


async def test_a_batch_past_the_cap_is_refused_whole_and_raising_the_cap_lets_it_through(
    api, conn, admin_headers, tenant
):
    await _cap_covering(api, admin_headers, tenant, 3)
    batch = {"messages": [{"to": VALID_TO, "body": f"m{i}"} for i in range(5)]}
    refused = await api.post("/v1/messages/batch", json=batch, headers=tenant.headers)
    body = assert_problem(refused, 402, "spend_limit_reached")
    assert "spend cap" in body["detail"]
    assert await support.stored(conn) == support.NOTHING_STORED
    # A monthly cap binds the same way; null removes a cap.
    assert (await _patch(api, admin_headers, tenant, daily_spend_cap=None)).status_code == 200
    monthly = await _patch(api, admin_headers, tenant, monthly_spend_cap=4 * PRICE)
    assert monthly.json()["monthly_spend_cap"] == 4 * PRICE
    assert_problem(
        await api.post("/v1/messages/batch", json=batch, headers=tenant.headers),
        402,
        "spend_limit_reached",
    )
    assert (await _patch(api, admin_headers, tenant, monthly_spend_cap=None)).status_code == 200
    accepted = await api.post("/v1/messages/batch", json=batch, headers=tenant.headers)
    assert accepted.status_code == 202, accepted.text
    # Insufficient credit stays its own refusal.
    poor = await support.make_tenant(api, admin_headers, credit=PRICE - 1, name="poor")
    await _cap_covering(api, admin_headers, poor, 10)
    assert_problem(await support.send(api, poor), 402, "insufficient_credit")
    assert await support.violations(conn) == []


async def test_a_canceled_message_gives_its_price_back_to_the_cap(api, conn, admin_headers, tenant):
    # Spend is captured plus held money: a release (here a cancel) frees its share.
    await _cap_covering(api, admin_headers, tenant, 2)
    first = await support.send(api, tenant, body="one")
    second = await support.send(api, tenant, body="two")
    assert (first.status_code, second.status_code) == (202, 202)
    assert_problem(await support.send(api, tenant, body="three"), 402, "spend_limit_reached")
    canceled = await api.post(f"/v1/messages/{first.json()['id']}/cancel", headers=tenant.headers)
    assert canceled.status_code == 200, canceled.text
    shown = (await api.get(f"/v1/admin/tenants/{tenant.id}", headers=admin_headers)).json()
    assert shown["day_spent"] == PRICE
    assert (await support.send(api, tenant, body="three")).status_code == 202
    assert await support.violations(conn) == []


async def test_a_failed_message_gives_its_price_back_to_the_cap(
    api, conn, settings, admin_headers, tenant
):
    await _cap_covering(api, admin_headers, tenant, 3)
    for i in range(3):
        assert (await support.send(api, tenant, body=f"m{i}")).status_code == 202
    async with workers.in_process(settings, simulator_permanent_rate=1.0):

        async def all_failed():
            return (
                await support.count(
                    conn, "SELECT count(*) AS n FROM messages WHERE status = 'failed'"
                )
                == 3
            )

        await workers.eventually(all_failed)
    shown = (await api.get(f"/v1/admin/tenants/{tenant.id}", headers=admin_headers)).json()
    assert shown["day_spent"] == 0
    assert shown["month_spent"] == 0
    assert (await support.send(api, tenant, body="again")).status_code == 202
    assert await support.violations(conn) == []
