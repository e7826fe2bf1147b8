"""Price by destination on every way in: each message is priced inside its accept by
the longest prefix of the tenant's card (its own rates first), stores what it was priced
at, and a destination no rate covers is refused with nothing held."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from tests import support, workers
from tests.app.rate_cards import (
    FRANCE,
    UK_LANDLINE,
    UK_MOBILE,
    US,
    import_card,
    put_on_card,
    world_tenant,
)
from tests.support import assert_problem

CREDIT = 10_000_000


async def test_the_longest_prefix_prices_a_send_and_the_message_keeps_it(
    api, conn, admin_headers, tenant
):
    await world_tenant(api, admin_headers, tenant)
    expected = {
        UK_MOBILE: (35_000, "447"),  # the network range beats the country
        UK_LANDLINE: (30_000, "44"),
        US: (1_000, "1"),
    }
    ids = {}
    for to, (price, prefix) in expected.items():
        response = await support.send(api, tenant, to=to, body="a" * 161)  # 2 segments
        assert response.status_code == 202, response.text
        body = response.json()
        assert (body["price"], body["price_per_segment"], body["rate_prefix"]) == (
            2 * price,
            price,
            prefix,
        )
        assert (body["rate_card"], body["rate_card_version"]) == ("world", 1)
        ids[to] = body["id"]
    # A new version later changes nothing already accepted.
    cheaper = "prefix,country,network,price\n,,,1\n"
    assert (await import_card(api, admin_headers, "world", cheaper)).status_code == 201
    for to, (price, prefix) in expected.items():
        stored = await support.message(api, tenant, ids[to])
        assert (stored["price"], stored["rate_prefix"], stored["rate_card_version"]) == (
            2 * price,
            prefix,
            1,
        )
    balance = await support.balance(api, tenant)
    assert balance["held"] == 2 * (35_000 + 30_000 + 1_000)
    assert await support.violations(conn) == []


async def test_an_uncovered_destination_is_refused_at_every_door_with_nothing_held(
    api, api_one_call_each, conn, admin_headers, tenant
):
    await world_tenant(api, admin_headers, tenant)
    before = await support.stored(conn)
    for client in (api, api_one_call_each):  # the shared accept call and one of its own
        refused = await support.send(client, tenant, to=FRANCE)
        body = assert_problem(refused, 422, "destination_not_priced")
        assert FRANCE in body["detail"]
    keyed = await support.send(api, tenant, to=FRANCE, headers={"Idempotency-Key": "k1"})
    assert_problem(keyed, 422, "destination_not_priced")
    batch = await api.post(
        "/v1/messages/batch",
        json={"messages": [{"to": FRANCE, "body": "a"}, {"to": FRANCE, "body": "b"}]},
        headers=tenant.headers,
    )
    assert_problem(batch, 422, "destination_not_priced")
    quote = await api.post(
        "/v1/messages/quote", json={"to": FRANCE, "body": "hi"}, headers=tenant.headers
    )
    assert_problem(quote, 422, "destination_not_priced")
    assert await support.stored(conn) == before
    assert (await support.balance(api, tenant))["available"] == CREDIT
    assert await support.violations(conn) == []


async def test_batch_items_are_priced_each_at_its_destination(api, conn, admin_headers, tenant):
    await world_tenant(api, admin_headers, tenant)
    items = [
        {"to": US, "body": "one"},
        {"to": UK_MOBILE, "body": "two"},
        {"to": FRANCE, "body": "not priced"},
        {"to": UK_LANDLINE, "body": "a" * 161},
    ]
    response = await api.post(
        "/v1/messages/batch",
        json={"messages": items},
        headers={**tenant.headers, "Idempotency-Key": "batch-1"},
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert [(m["to"], m["price"], m["rate_prefix"]) for m in body["messages"]] == [
        (US, 1_000, "1"),
        (UK_MOBILE, 35_000, "447"),
        (UK_LANDLINE, 60_000, "44"),
    ]
    assert [(e["index"], e["code"]) for e in body["errors"]] == [(2, "destination_not_priced")]
    # The replay answers the same prices.
    again = await api.post(
        "/v1/messages/batch",
        json={"messages": items},
        headers={**tenant.headers, "Idempotency-Key": "batch-1"},
    )
    assert again.json() == body
    cursor = await conn.execute(
        "SELECT m.price, e.amount FROM messages m JOIN ledger_message_entries e"
        " ON e.message_id = m.id AND e.kind = 'hold' ORDER BY m.price"
    )
    assert [(r["price"], r["amount"]) for r in await cursor.fetchall()] == [
        (1_000, 1_000),
        (35_000, 35_000),
        (60_000, 60_000),
    ]
    assert (await support.balance(api, tenant))["held"] == 96_000
    assert await support.violations(conn) == []


async def test_a_batch_short_of_credit_for_its_priced_total_is_402_whole(api, conn, admin_headers):
    # 36,000 covers the mobile (35,000) or the US (1,000) twice over, not all three.
    poor = await support.make_tenant(api, admin_headers, credit=36_000)
    await world_tenant(api, admin_headers, poor)
    items = [{"to": US, "body": "a"}, {"to": UK_MOBILE, "body": "b"}, {"to": US, "body": "c"}]
    response = await api.post("/v1/messages/batch", json={"messages": items}, headers=poor.headers)
    problem = assert_problem(response, 402, "insufficient_credit")
    assert "37000" in problem["detail"]
    assert (await support.stored(conn))["messages"] == 0
    assert (await support.balance(api, poor))["available"] == 36_000
    assert await support.violations(conn) == []


async def test_the_quote_equals_the_hold_that_follows(api, conn, admin_headers, tenant):
    await world_tenant(api, admin_headers, tenant)
    for to in (US, UK_MOBILE, UK_LANDLINE):
        request = {"to": to, "body": "😀" * 36}  # 2 UCS-2 segments
        quote = await api.post("/v1/messages/quote", json=request, headers=tenant.headers)
        assert quote.status_code == 200, quote.text
        sent = await api.post("/v1/messages", json=request, headers=tenant.headers)
        assert sent.status_code == 202, sent.text
        q, m = quote.json(), sent.json()
        for field in (
            "price",
            "price_per_segment",
            "rate_card",
            "rate_card_version",
            "rate_prefix",
        ):
            assert q[field] == m[field], field
        held = await support.count(
            conn,
            "SELECT amount AS n FROM ledger_message_entries"
            " WHERE message_id = %s AND kind = 'hold'",
            m["id"],
        )
        assert held == q["price"] == 2 * q["price_per_segment"]
    assert await support.violations(conn) == []


async def test_a_tenants_own_rates_win_over_its_card(api, conn, admin_headers, tenant):
    await world_tenant(api, admin_headers, tenant)
    own = "prefix,country,network,price\n44,GB,deal,20000\n"
    response = await api.put(
        f"/v1/admin/tenants/{tenant.id}/rates",
        content=own.encode(),
        headers={**admin_headers, "Content-Type": "text/csv"},
    )
    assert response.status_code == 200, response.text
    mobile = (await support.send(api, tenant, to=UK_MOBILE)).json()
    # The deal covers all of +44, the card's longer 447 included.
    assert (mobile["price"], mobile["rate_card"], mobile["rate_prefix"]) == (
        20_000,
        f"tenant:{tenant.id}",
        "44",
    )
    us = (await support.send(api, tenant, to=US)).json()
    assert (us["price"], us["rate_card"]) == (1_000, "world")
    # Cleared: the card prices the UK again.
    cleared = await api.put(
        f"/v1/admin/tenants/{tenant.id}/rates",
        content=b"prefix,country,network,price\n",
        headers={**admin_headers, "Content-Type": "text/csv"},
    )
    assert cleared.status_code == 200, cleared.text
    again = (await support.send(api, tenant, to=UK_MOBILE)).json()
    assert (again["price"], again["rate_card"]) == (35_000, "world")
    assert await support.violations(conn) == []


async def test_back_on_the_tier_card_when_the_card_is_set_to_null(api, admin_headers, tenant):
    await world_tenant(api, admin_headers, tenant)
    assert (await support.send(api, tenant, to=US)).json()["price"] == 1_000
    response = await api.patch(
        f"/v1/admin/tenants/{tenant.id}", json={"rate_card": None}, headers=admin_headers
    )
    assert response.json()["rate_card"] == "standard"
    assert (await support.send(api, tenant, to=US)).json()["price"] == 7_900
    unknown = await api.patch(
        f"/v1/admin/tenants/{tenant.id}", json={"rate_card": "nope"}, headers=admin_headers
    )
    assert_problem(unknown, 422, "invalid_request")


async def test_an_effective_at_switch_while_sends_run_prices_each_accept_by_one_version(
    api, conn, admin_headers
):
    tenant = await support.make_tenant(api, admin_headers, credit=10**12)  # never short
    first = "prefix,country,network,price\n1,US,,1000\n44,GB,,3000\n"
    assert (await import_card(api, admin_headers, "switch", first)).status_code == 201
    await put_on_card(api, admin_headers, tenant, "switch")
    switch_at = datetime.now(UTC) + timedelta(seconds=1)
    second = "prefix,country,network,price\n1,US,,2000\n44,GB,,6000\n"
    scheduled = await import_card(
        api, admin_headers, "switch", second, effective_at=switch_at.isoformat()
    )
    assert scheduled.status_code == 201, scheduled.text
    assert scheduled.json()["version"] == 2
    # Sends go on from before the switch until a second after it (on the clock of the
    # database, which decides), and once more on each side to be sure of both.
    before = (await support.send(api, tenant, to=US)).json()
    assert (before["rate_card_version"], before["price"]) == (1, 1_000)
    stop = asyncio.get_running_loop().time() + (switch_at - datetime.now(UTC)).total_seconds() + 1.0

    async def singles() -> None:
        while asyncio.get_running_loop().time() < stop:
            for to in (US, UK_MOBILE):
                assert (await support.send(api, tenant, to=to)).status_code == 202

    async def batches() -> None:
        while asyncio.get_running_loop().time() < stop:
            items = [{"to": to, "body": "b"} for to in (US, UK_MOBILE) * 50]
            response = await api.post(
                "/v1/messages/batch", json={"messages": items}, headers=tenant.headers
            )
            assert response.status_code == 202, response.text
            versions = {m["rate_card_version"] for m in response.json()["messages"]}
            assert len(versions) == 1  # one version for the whole accept

    await asyncio.gather(singles(), singles(), batches())
    await asyncio.sleep(max(0.0, (switch_at - datetime.now(UTC)).total_seconds() + 0.1))
    after = (await support.send(api, tenant, to=US)).json()
    assert (after["rate_card_version"], after["price"]) == (2, 2_000)
    cursor = await conn.execute(
        "SELECT rate_card_version AS v, to_number, price, count(*) AS n FROM messages"
        " GROUP BY 1, 2, 3 ORDER BY 1, 2"
    )
    rows = [(r["v"], r["to_number"], r["price"]) for r in await cursor.fetchall()]
    # Each message at its version's price, never a mix: both versions took sends.
    assert rows == [
        (1, US, 1_000),
        (1, UK_MOBILE, 3_000),
        (2, US, 2_000),
        (2, UK_MOBILE, 6_000),
    ]
    card = (await api.get("/v1/admin/rate-cards/switch", headers=admin_headers)).json()
    assert card["current_version"] == 2
    assert await support.violations(conn) == []


async def test_the_twilio_facade_prices_by_destination_and_shows_it_once_sent(
    api, conn, admin_headers, tenant, settings
):
    await world_tenant(api, admin_headers, tenant)
    issued = await api.post(
        f"/v1/admin/tenants/{tenant.id}/twilio-credentials", headers=admin_headers
    )
    sid, token = issued.json()["account_sid"], issued.json()["auth_token"]
    url = f"/2010-04-01/Accounts/{sid}/Messages.json"
    service = "MG" + "a" * 32
    refused = await api.post(
        url, data={"To": FRANCE, "MessagingServiceSid": service, "Body": "x"}, auth=(sid, token)
    )
    assert refused.status_code == 400, refused.text
    assert refused.json()["code"] == 21408  # not enabled for the region of the To number
    assert (await support.balance(api, tenant))["held"] == 0
    created = await api.post(
        url, data={"To": UK_MOBILE, "MessagingServiceSid": service, "Body": "x"}, auth=(sid, token)
    )
    assert created.status_code == 201, created.text
    message_sid = created.json()["sid"]
    assert (await support.balance(api, tenant))["held"] == 35_000
    one = f"/2010-04-01/Accounts/{sid}/Messages/{message_sid}.json"
    async with workers.in_process(settings):

        async def captured():
            body = (await api.get(one, auth=(sid, token))).json()
            return body if body["price"] is not None else None

        shown = await workers.eventually(captured)
    assert (shown["price"], shown["price_unit"]) == ("-0.035000", "USD")
    assert await support.violations(conn) == []
