"""Who may send as whom (issue 24): a sender is a number the tenant owns or a sender ID
registered and approved for it, and keeps its destination country's rule; a message
without one gets the tenant's sender for the country. Each refusal is a 422 with its own
code that holds and writes nothing."""

from __future__ import annotations

from typing import Any

import httpx

from tests import support, two_way
from tests.support import VALID_TO, TenantHandle, assert_problem

US_NUMBER = "+14155550142"
GB_NUMBER = "+447400123400"
GB_TO = "+447400123456"  # a UK mobile (libphonenumber: GB)
DE_TO = "+4915123456789"
IN_TO = "+919876543210"
CA_TO = "+16135550123"
PRICE = 7_900


async def _send(api: httpx.AsyncClient, tenant: TenantHandle, to: str, sender: str | None):
    fields: dict[str, Any] = {"to": to}
    if sender is not None:
        fields["from"] = sender
    return await support.send(api, tenant, **fields)


async def _nothing_held(api, conn, tenant, before: dict[str, Any]) -> None:
    assert await support.balance(api, tenant) == before
    assert (await support.stored(conn))["messages"] == 0


async def test_only_the_tenants_own_numbers_and_approved_sender_ids_are_senders(
    api, conn, admin_headers, tenant
):
    other = await support.make_tenant(api, admin_headers, name="other")
    await support.own_number(api, admin_headers, other, US_NUMBER)
    await support.register_sender(api, admin_headers, other, "OTHERCO")
    await support.register_sender(api, admin_headers, tenant, "LATER", status="pending")
    before = await support.balance(api, tenant)
    for sender in (US_NUMBER, "OTHERCO", "LATER", "+14155550143", "12345"):
        body = assert_problem(await _send(api, tenant, GB_TO, sender), 422, "sender_not_allowed")
        assert sender in body["detail"]
    await _nothing_held(api, conn, tenant, before)

    # Approved now (the same POST changes a registration): it may send.
    changed = await api.post(
        f"/v1/admin/tenants/{tenant.id}/sender-ids",
        json={"sender_id": "LATER", "status": "approved"},
        headers=admin_headers,
    )
    assert changed.status_code == 200, changed.text
    sent = await _send(api, tenant, GB_TO, "LATER")
    assert sent.status_code == 202, sent.text
    assert sent.json()["from"] == "LATER"
    await support.own_number(api, admin_headers, tenant, "+14155550143")
    assert (await _send(api, tenant, VALID_TO, "+14155550143")).status_code == 202


async def test_a_sender_id_limited_to_countries_is_refused_elsewhere(
    api, conn, admin_headers, tenant
):
    await support.register_sender(api, admin_headers, tenant, "ACME", ["GB"])
    assert (await _send(api, tenant, GB_TO, "ACME")).status_code == 202
    assert_problem(await _send(api, tenant, DE_TO, "ACME"), 422, "sender_not_allowed")


async def test_country_rules_refuse_alphanumeric_senders_where_they_are_not_taken(
    api, conn, admin_headers, tenant
):
    await support.register_sender(api, admin_headers, tenant, "ACME")
    before = await support.balance(api, tenant)
    for to, country in ((VALID_TO, "US"), (CA_TO, "CA")):
        body = assert_problem(
            await _send(api, tenant, to, "ACME"), 422, "sender_not_allowed_for_destination"
        )
        assert body["detail"].startswith(f"{country} takes no alphanumeric senders")
    # India takes only sender IDs registered for it.
    body = assert_problem(
        await _send(api, tenant, IN_TO, "ACME"), 422, "sender_not_allowed_for_destination"
    )
    assert "registered for IN" in body["detail"]
    await _nothing_held(api, conn, tenant, before)
    assert (await _send(api, tenant, GB_TO, "ACME")).status_code == 202

    await support.register_sender(api, admin_headers, tenant, "ACME", ["IN", "GB"])
    assert (await _send(api, tenant, IN_TO, "ACME")).status_code == 202
    # Nor does India take a number, even the tenant's own.
    await support.own_number(api, admin_headers, tenant, US_NUMBER)
    body = assert_problem(
        await _send(api, tenant, IN_TO, US_NUMBER), 422, "sender_not_allowed_for_destination"
    )
    assert "no numeric senders" in body["detail"]


async def test_an_operator_changes_a_countrys_rule(api, admin_headers, tenant):
    await support.register_sender(api, admin_headers, tenant, "ACME")
    rule = await api.get("/v1/admin/sender-rules/US", headers=admin_headers)
    assert rule.status_code == 200
    assert (rule.json()["alphanumeric"], rule.json()["numeric_allowed"]) == (
        "not_supported",
        True,
    )
    assert rule.json()["source"].startswith("https://")
    listed = await api.get("/v1/admin/sender-rules", headers=admin_headers)
    countries = {r["country"] for r in listed.json()["rules"]}
    assert {"US", "CA", "GB", "DE", "FR", "IN", "BR", "NG", "ZA", "AU"} <= countries

    assert (await _send(api, tenant, DE_TO, "ACME")).status_code == 202
    put = await api.put(
        "/v1/admin/sender-rules/DE",
        json={"alphanumeric": "not_supported", "source": "carrier notice 2026-12"},
        headers=admin_headers,
    )
    assert put.status_code == 200, put.text
    assert put.json()["source"] == "carrier notice 2026-12"
    assert_problem(
        await _send(api, tenant, DE_TO, "ACME"), 422, "sender_not_allowed_for_destination"
    )
    assert (await api.delete("/v1/admin/sender-rules/DE", headers=admin_headers)).status_code == 204
    assert (await _send(api, tenant, DE_TO, "ACME")).status_code == 202
    assert_problem(
        await api.get("/v1/admin/sender-rules/DE", headers=admin_headers), 404, "not_found"
    )
    for bad in ({"alphanumeric": "sometimes"}, {"alphanumeric": "allowed", "default_sender": "!"}):
        assert_problem(
            await api.put("/v1/admin/sender-rules/DE", json=bad, headers=admin_headers),
            422,
            "invalid_request",
        )
    germany = await api.put(
        "/v1/admin/sender-rules/Germany", json={"alphanumeric": "allowed"}, headers=admin_headers
    )
    assert_problem(germany, 422, "invalid_request")


async def test_a_message_without_a_sender_gets_the_tenants_sender_for_its_country(
    api, admin_headers, tenant
):
    # No sender of its own anywhere: as before, none (the upstream's default).
    assert (await _send(api, tenant, VALID_TO, None)).json()["from"] is None
    await support.own_number(api, admin_headers, tenant, US_NUMBER)
    await support.own_number(api, admin_headers, tenant, GB_NUMBER)
    await support.register_sender(api, admin_headers, tenant, "ACME")
    us = (await _send(api, tenant, VALID_TO, None)).json()
    assert us["from"] == US_NUMBER
    assert (await support.message(api, tenant, us["id"]))["from"] == US_NUMBER
    assert (await _send(api, tenant, GB_TO, None)).json()["from"] == GB_NUMBER
    # No number in Germany: its sender ID.
    assert (await _send(api, tenant, DE_TO, None)).json()["from"] == "ACME"
    # Canada takes no alphanumeric sender and the tenant has no number there: none.
    assert (await _send(api, tenant, CA_TO, None)).json()["from"] is None
    # The operator's default for Canada, when the tenant has none.
    put = await api.put(
        "/v1/admin/sender-rules/CA",
        json={"alphanumeric": "not_supported", "default_sender": "+16135550100"},
        headers=admin_headers,
    )
    assert put.status_code == 200, put.text
    assert (await _send(api, tenant, CA_TO, None)).json()["from"] == "+16135550100"


async def test_no_sender_for_a_country_that_requires_a_registered_one(
    api, conn, admin_headers, tenant
):
    await support.own_number(api, admin_headers, tenant, US_NUMBER)
    before = await support.balance(api, tenant)
    body = assert_problem(await _send(api, tenant, IN_TO, None), 422, "no_sender_for_destination")
    assert "IN" in body["detail"]
    await _nothing_held(api, conn, tenant, before)
    await support.register_sender(api, admin_headers, tenant, "ACMEIN", ["IN"])
    sent = await _send(api, tenant, IN_TO, None)
    assert sent.status_code == 202, sent.text
    assert sent.json()["from"] == "ACMEIN"


async def test_a_batch_refuses_each_item_for_its_own_sender(api, conn, admin_headers, tenant):
    await support.own_number(api, admin_headers, tenant, US_NUMBER)
    await support.register_sender(api, admin_headers, tenant, "ACME")
    items = [
        {"to": VALID_TO, "body": "mine", "from": US_NUMBER},
        {"to": VALID_TO, "body": "not mine", "from": "+14155550999"},
        {"to": VALID_TO, "body": "alpha to the US", "from": "ACME"},
        {"to": GB_TO, "body": "alpha to GB", "from": "ACME"},
        {"to": IN_TO, "body": "nothing for India"},
        {"to": VALID_TO, "body": "picked"},
    ]
    batch = await api.post("/v1/messages/batch", json={"messages": items}, headers=tenant.headers)
    assert batch.status_code == 202, batch.text
    accepted = batch.json()["messages"]
    assert [(m["body"], m["from"]) for m in accepted] == [
        ("mine", US_NUMBER),
        ("alpha to GB", "ACME"),
        ("picked", US_NUMBER),
    ]
    assert [(e["index"], e["code"]) for e in batch.json()["errors"]] == [
        (1, "sender_not_allowed"),
        (2, "sender_not_allowed_for_destination"),
        (4, "no_sender_for_destination"),
    ]
    assert (await support.balance(api, tenant))["held"] == 3 * PRICE
    assert (await support.stored(conn))["messages"] == 3
    assert await support.violations(conn) == []
    # Every item refused: the batch's answer is the first one's refusal.
    only_bad = [items[1], items[2]]
    assert_problem(
        await api.post("/v1/messages/batch", json={"messages": only_bad}, headers=tenant.headers),
        422,
        "sender_not_allowed",
    )


async def test_sender_policy_any_lets_a_legacy_tenant_send_from_any_sender(
    api, admin_headers, tenant
):
    got = await api.get(f"/v1/admin/tenants/{tenant.id}", headers=admin_headers)
    assert got.json()["sender_policy"] == "own"
    assert_problem(await _send(api, tenant, VALID_TO, "+14155550177"), 422, "sender_not_allowed")
    patched = await api.patch(
        f"/v1/admin/tenants/{tenant.id}", json={"sender_policy": "any"}, headers=admin_headers
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["sender_policy"] == "any"
    assert (await _send(api, tenant, VALID_TO, "+14155550177")).status_code == 202
    assert (await _send(api, tenant, GB_TO, "WHATEVER")).status_code == 202
    # The destination's rule still holds.
    assert_problem(
        await _send(api, tenant, VALID_TO, "WHATEVER"), 422, "sender_not_allowed_for_destination"
    )
    assert_problem(
        await api.patch(
            f"/v1/admin/tenants/{tenant.id}", json={"sender_policy": "all"}, headers=admin_headers
        ),
        422,
        "invalid_request",
    )


async def test_sender_ids_admin_api(api, admin_headers, tenant):
    url = f"/v1/admin/tenants/{tenant.id}/sender-ids"
    created = await api.post(
        url, json={"sender_id": "ACME", "countries": ["GB", "DE"]}, headers=admin_headers
    )
    assert created.status_code == 201, created.text
    assert (created.json()["countries"], created.json()["status"]) == (["DE", "GB"], "approved")
    listed = await api.get(url, headers=admin_headers)
    assert [s["sender_id"] for s in listed.json()["sender_ids"]] == ["ACME"]
    for bad in (
        {"sender_id": "+14155550100"},
        {"sender_id": "TWELVECHARSX"},
        {"sender_id": "ACME", "countries": ["gb"]},
        {"sender_id": "ACME", "countries": []},
        {"sender_id": "ACME", "status": "maybe"},
    ):
        assert_problem(await api.post(url, json=bad, headers=admin_headers), 422, "invalid_request")
    assert (await api.delete(f"{url}/ACME", headers=admin_headers)).status_code == 204
    assert_problem(await api.delete(f"{url}/ACME", headers=admin_headers), 404, "not_found")
    assert (await api.get(url, headers=admin_headers)).json()["sender_ids"] == []
    assert_problem(
        await api.get(
            "/v1/admin/tenants/00000000-0000-0000-0000-000000000000/sender-ids",
            headers=admin_headers,
        ),
        404,
        "not_found",
    )
    # Tenants may not register their own.
    assert (await api.get(url, headers=tenant.headers)).status_code in (401, 403)


async def test_a_stop_reaches_the_tenant_whose_number_the_handset_saw(api, admin_headers, tenant):
    await two_way.http_provider(api, admin_headers)
    await two_way.own(api, admin_headers, tenant, two_way.OUR_NUMBER)
    other = await support.make_tenant(api, admin_headers, name="other", credit=10_000_000)
    # The other tenant cannot put this tenant's number on its messages...
    sent = await _send(api, other, two_way.HANDSET, two_way.OUR_NUMBER)
    assert_problem(sent, 422, "sender_not_allowed")
    # ...so a handset's STOP to it is about this tenant's messages, and lands on its list.
    await two_way.text_in(api, "STOP", id="MO-1")
    mine = await api.get("/v1/suppressions", headers=tenant.headers)
    assert [(s["recipient"], s["number"]) for s in mine.json()["suppressions"]] == [
        (two_way.HANDSET, two_way.OUR_NUMBER)
    ]
    theirs = await api.get("/v1/suppressions", headers=other.headers)
    assert theirs.json()["suppressions"] == []
    assert_problem(
        await _send(api, tenant, two_way.HANDSET, two_way.OUR_NUMBER), 422, "recipient_opted_out"
    )


async def test_the_twilio_facade_takes_smart_encoded(api, admin_headers, tenant):
    await two_way.own(api, admin_headers, tenant, two_way.OUR_NUMBER)
    issued = await api.post(
        f"/v1/admin/tenants/{tenant.id}/twilio-credentials", headers=admin_headers
    )
    sid, token = issued.json()["account_sid"], issued.json()["auth_token"]
    created = await api.post(
        f"/2010-04-01/Accounts/{sid}/Messages.json",
        data={
            "To": VALID_TO,
            "From": two_way.OUR_NUMBER,
            "Body": "We\u2019ll be there \u2014 5 min",
            "SmartEncoded": "true",
        },
        auth=(sid, token),
    )
    assert created.status_code == 201, created.text
    assert (created.json()["body"], created.json()["num_segments"]) == (
        "We'll be there - 5 min",
        "1",
    )


async def test_help_from_a_country_that_takes_no_answer_from_the_number_still_counts(
    api, conn, admin_headers, tenant
):
    await two_way.http_provider(api, admin_headers)
    await two_way.own(api, admin_headers, tenant, two_way.OUR_NUMBER)
    await two_way.configure(api, admin_headers, tenant, help_reply="Acme: help at acme.example")
    # India takes no numeric sender: the HELP answer from a US number is not sent, and
    # the inbound message is stored all the same.
    answer = await two_way.text_in(api, "HELP", id="MO-IN", frm=IN_TO)
    assert answer["accepted"] == 1
    assert (await support.stored(conn))["messages"] == 0
    inbound = await api.get("/v1/messages?direction=inbound", headers=tenant.headers)
    assert [m["keyword"] for m in inbound.json()["messages"]] == ["help"]
    # From a US handset it is answered, from the number it wrote to.
    await two_way.text_in(api, "HELP", id="MO-US", frm=VALID_TO)
    cursor = await conn.execute("SELECT to_number, sender FROM messages")
    assert [(r["to_number"], r["sender"]) for r in await cursor.fetchall()] == [
        (VALID_TO, two_way.OUR_NUMBER)
    ]
