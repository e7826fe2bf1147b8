"""Opt-out: STOP puts the sender on the tenant's suppression list and a send to them is
refused inside the accept, with nothing held; START lifts it; HELP is answered."""

from __future__ import annotations

import pytest

from tests import support, two_way
from tests.two_way import HANDSET, OTHER_NUMBER, OUR_NUMBER


@pytest.fixture
async def two_way_tenant(api, admin_headers, tenant):
    await two_way.http_provider(api, admin_headers)
    await two_way.own(api, admin_headers, tenant, OUR_NUMBER)
    await two_way.own(api, admin_headers, tenant, OTHER_NUMBER)
    return tenant


async def _send(api, tenant, **fields):
    return await support.send(api, tenant, to=HANDSET, **fields)


async def test_stop_then_a_send_is_refused_with_no_hold_and_start_lifts_it(
    api, conn, two_way_tenant
):
    tenant = two_way_tenant
    await two_way.text_in(api, "  Stop ", id="MO-1")
    before = await support.balance(api, tenant)
    refused = await _send(api, tenant, **{"from": OUR_NUMBER})
    support.assert_problem(refused, 422, "recipient_opted_out")
    assert await support.balance(api, tenant) == before  # nothing held
    assert (await support.stored(conn))["messages"] == 0

    await two_way.text_in(api, "start", id="MO-2")
    accepted = await _send(api, tenant, **{"from": OUR_NUMBER})
    assert accepted.status_code == 202, accepted.text
    assert (await support.balance(api, tenant))["held"] == 7_900


async def test_stop_is_per_number_and_stopall_covers_every_number(api, two_way_tenant):
    tenant = two_way_tenant
    await two_way.text_in(api, "UNSUBSCRIBE", id="MO-1", to=OUR_NUMBER)
    other = await _send(api, tenant, **{"from": OTHER_NUMBER})
    assert other.status_code == 202
    # A send that names no sender could go out from the number they left: refused.
    support.assert_problem(await _send(api, tenant), 422, "recipient_opted_out")
    # "please stop" is a message, not a keyword.
    await two_way.text_in(api, "please stop", id="MO-2", to=OTHER_NUMBER)
    assert (await _send(api, tenant, **{"from": OTHER_NUMBER})).status_code == 202

    await two_way.text_in(api, "stopall", id="MO-3", to=OTHER_NUMBER)
    for sender in (OUR_NUMBER, OTHER_NUMBER):
        support.assert_problem(
            await _send(api, tenant, **{"from": sender}), 422, "recipient_opted_out"
        )
    support.assert_problem(await _send(api, tenant), 422, "recipient_opted_out")
    # START to one number lifts that number's entry and the all-numbers one.
    await two_way.text_in(api, "UNSTOP", id="MO-4", to=OTHER_NUMBER)
    assert (await _send(api, tenant, **{"from": OTHER_NUMBER})).status_code == 202
    support.assert_problem(
        await _send(api, tenant, **{"from": OUR_NUMBER}), 422, "recipient_opted_out"
    )


async def test_a_batch_refuses_only_the_opted_out_items(api, conn, two_way_tenant):
    tenant = two_way_tenant
    await two_way.text_in(api, "END", id="MO-1")
    items = [
        {"to": support.VALID_TO, "body": "a", "from": OUR_NUMBER},
        {"to": HANDSET, "body": "b", "from": OUR_NUMBER},
        {"to": support.VALID_TO, "body": "c", "from": OUR_NUMBER},
    ]
    headers = {**tenant.headers, "Idempotency-Key": "batch-1"}
    response = await api.post("/v1/messages/batch", json={"messages": items}, headers=headers)
    assert response.status_code == 202, response.text
    body = response.json()
    assert [m["body"] for m in body["messages"]] == ["a", "c"]
    assert [(e["index"], e["code"]) for e in body["errors"]] == [(1, "recipient_opted_out")]
    assert (await support.balance(api, tenant))["held"] == 2 * 7_900
    # The replay answers what the first request got.
    replay = await api.post("/v1/messages/batch", json={"messages": items}, headers=headers)
    assert replay.json() == body
    assert (await support.stored(conn))["messages"] == 2

    # Every item opted out: refused as a whole, nothing more held or stored.
    only_them = [item for item in items if item["to"] == HANDSET] * 2
    refused = await api.post(
        "/v1/messages/batch", json={"messages": only_them}, headers=tenant.headers
    )
    support.assert_problem(refused, 422, "recipient_opted_out")
    assert (await support.balance(api, tenant))["held"] == 2 * 7_900
    assert (await support.stored(conn))["messages"] == 2


async def test_help_is_answered_free_even_after_stop(api, conn, admin_headers, two_way_tenant):
    tenant = two_way_tenant
    await two_way.configure(
        api, admin_headers, tenant, help_reply="Acme: help at acme.example. Reply STOP to end."
    )
    await two_way.text_in(api, "quit", id="MO-1")
    await two_way.text_in(api, "help", id="MO-2")
    listed = (await api.get("/v1/messages", headers=tenant.headers)).json()["messages"]
    [reply] = listed
    assert (reply["to"], reply["from"]) == (HANDSET, OUR_NUMBER)
    assert reply["body"].startswith("Acme: help")
    assert reply["price"] == 0
    assert reply["status"] == "queued"
    assert (await support.balance(api, tenant))["held"] == 0
    inbound = (await api.get("/v1/messages?direction=inbound", headers=tenant.headers)).json()
    assert [m["keyword"] for m in inbound["messages"]] == ["help", "opt_out"]


async def test_the_suppression_list_is_managed_through_the_api(api, two_way_tenant):
    tenant = two_way_tenant
    added = await api.post("/v1/suppressions", json={"recipient": HANDSET}, headers=tenant.headers)
    assert added.status_code == 201, added.text
    assert added.json()["number"] is None
    assert added.json()["source"] == "api"
    again = await api.post("/v1/suppressions", json={"recipient": HANDSET}, headers=tenant.headers)
    assert again.status_code == 200
    support.assert_problem(
        await _send(api, tenant, **{"from": OUR_NUMBER}), 422, "recipient_opted_out"
    )
    await two_way.text_in(api, "CANCEL", id="MO-1", to=OTHER_NUMBER)
    listed = (await api.get("/v1/suppressions", headers=tenant.headers)).json()
    assert [(s["recipient"], s["number"], s["source"]) for s in listed["suppressions"]] == [
        (HANDSET, None, "api"),
        (HANDSET, OTHER_NUMBER, "keyword"),
    ]
    paged = (await api.get("/v1/suppressions?limit=1", headers=tenant.headers)).json()
    assert len(paged["suppressions"]) == 1
    assert paged["next_cursor"]
    rest = await api.get(
        f"/v1/suppressions?limit=1&cursor={paged['next_cursor']}", headers=tenant.headers
    )
    assert len(rest.json()["suppressions"]) == 1

    removed = await api.delete(f"/v1/suppressions/{HANDSET}?number=*", headers=tenant.headers)
    assert removed.status_code == 204
    assert (await _send(api, tenant, **{"from": OUR_NUMBER})).status_code == 202
    assert (
        await api.delete(f"/v1/suppressions/{HANDSET}", headers=tenant.headers)
    ).status_code == 204
    support.assert_problem(
        await api.delete(f"/v1/suppressions/{HANDSET}", headers=tenant.headers), 404, "not_found"
    )
    bad = await api.post("/v1/suppressions", json={"recipient": "12"}, headers=tenant.headers)
    support.assert_problem(bad, 422, "invalid_request")
