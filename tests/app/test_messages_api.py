"""Tenant API: send, read, balance, quote, cancel and list (batches: test_batch_api.py)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests import support
from tests.support import (
    MESSAGE_FIELDS,
    OTHER_TO,
    VALID_TO,
    assert_problem,
    instant,
    same_message,
)

PRICE = 7_900  # standard tier, per segment
CREDIT = 10_000_000  # the `tenant` fixture's credit


async def test_send_answers_202_with_the_message(api, admin_headers, tenant):
    # An alphanumeric sender registered for the tenant, to a country that takes one.
    await support.register_sender(api, admin_headers, tenant, "ACME")
    response = await support.send(
        api,
        tenant,
        to=OTHER_TO,
        body="Your code is 1234 €",
        **{"from": "ACME"},
        callback_url="https://example.com/cb",
        client_reference="order-17",
        validity_seconds=600,
    )
    assert response.status_code == 202, response.text
    message = response.json()
    assert set(message) == MESSAGE_FIELDS
    assert uuid.UUID(message["id"]).version == 7
    assert message["status"] == "queued"
    assert message["to"] == OTHER_TO
    assert message["from"] == "ACME"
    assert message["body"] == "Your code is 1234 €"
    assert (message["encoding"], message["segments"], message["price"]) == ("GSM-7", 1, PRICE)
    assert message["client_reference"] == "order-17"
    assert message["callback_url"] == "https://example.com/cb"
    assert message["attempts"] == 0
    for empty in (
        "provider",
        "provider_message_id",
        "error_code",
        "error_message",
        "send_at",
        "sent_at",
        "delivered_at",
    ):
        assert message[empty] is None, empty
    assert abs(instant(message["created_at"]) - datetime.now(UTC)) < timedelta(minutes=5)

    got = await api.get(f"/v1/messages/{message['id']}", headers=tenant.headers)
    assert got.status_code == 200
    same_message(got.json(), message)
    assert await support.balance(api, tenant) == {
        "available": CREDIT - PRICE,
        "held": PRICE,
        "captured": 0,
        "currency": "USD",
    }


async def test_send_without_optional_fields(api, tenant):
    message = (await support.send(api, tenant)).json()
    assert message["from"] is None
    assert message["client_reference"] is None
    assert message["callback_url"] is None


async def test_multipart_unicode_message_holds_its_full_price(api, tenant):
    response = await support.send(api, tenant, body="Привет! " * 20)  # 160 UCS-2 units
    assert response.status_code == 202
    assert (response.json()["encoding"], response.json()["segments"]) == ("UCS-2", 3)
    assert response.json()["price"] == 3 * PRICE
    assert (await support.balance(api, tenant))["held"] == 3 * PRICE


async def test_scheduled_send(api, tenant):
    send_at = datetime.now(UTC) + timedelta(days=2)
    response = await support.send(api, tenant, send_at=send_at.isoformat())
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "scheduled"
    assert instant(response.json()["send_at"]) == send_at.replace(microsecond=send_at.microsecond)
    got = await api.get(f"/v1/messages/{response.json()['id']}", headers=tenant.headers)
    assert got.json()["status"] == "scheduled"
    assert (await support.balance(api, tenant))["held"] == PRICE


async def test_send_with_too_little_credit(api, admin_headers, conn):
    poor = await support.make_tenant(api, admin_headers, credit=PRICE + PRICE - 1)
    assert (await support.send(api, poor)).status_code == 202
    refused = await support.send(api, poor)
    assert_problem(refused, 402, "insufficient_credit")
    assert await support.balance(api, poor) == {
        "available": PRICE - 1,
        "held": PRICE,
        "captured": 0,
        "currency": "USD",
    }
    cursor = await conn.execute("SELECT count(*) AS n FROM messages")
    assert (await cursor.fetchone())["n"] == 1


async def test_quote_prices_without_storing(api, tenant, conn):
    cases = [
        ("hello", {"encoding": "GSM-7", "segments": 1, "price": PRICE}),
        ("{" * 81, {"encoding": "GSM-7", "segments": 2, "price": 2 * PRICE}),
        ("😀" * 36, {"encoding": "UCS-2", "segments": 2, "price": 2 * PRICE}),
    ]
    for body, expected in cases:
        response = await api.post(
            "/v1/messages/quote", json={"to": VALID_TO, "body": body}, headers=tenant.headers
        )
        assert response.status_code == 200, response.text
        # The tier's card, one rate for every destination (the price of 1.0.0).
        rate = {"price_per_segment": PRICE, "rate_card": "standard", "rate_card_version": 1}
        # Nothing to smart-encode here: both ways are the same.
        both = {"smart_encoding": False, "as_written": {"body": body, **expected}}
        both["smart_encoded"] = both["as_written"]
        assert response.json() == {**expected, **rate, "rate_prefix": "", **both}
    assert await support.stored(conn) == support.NOTHING_STORED
    assert (await support.balance(api, tenant))["available"] == CREDIT


async def test_quote_needs_no_credit_but_a_valid_message(api, admin_headers):
    broke = await support.make_tenant(api, admin_headers)
    ok = await api.post(
        "/v1/messages/quote", json={"to": VALID_TO, "body": "hi"}, headers=broke.headers
    )
    assert ok.status_code == 200
    bad = await api.post(
        "/v1/messages/quote", json={"to": "+1", "body": "hi"}, headers=broke.headers
    )
    body = assert_problem(bad, 422, "invalid_request")
    assert [e["field"] for e in body["errors"]] == ["to"]


@pytest.mark.parametrize("scheduled", [False, True], ids=["queued", "scheduled"])
async def test_cancel_releases_the_hold(api, tenant, scheduled):
    fields = {"send_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat()} if scheduled else {}
    message = (await support.send(api, tenant, body="a" * 200, **fields)).json()
    assert (await support.balance(api, tenant))["held"] == 2 * PRICE
    canceled = await api.post(f"/v1/messages/{message['id']}/cancel", headers=tenant.headers)
    assert canceled.status_code == 200, canceled.text
    assert canceled.json()["id"] == message["id"]
    assert canceled.json()["status"] == "canceled"
    assert await support.balance(api, tenant) == {
        "available": CREDIT,
        "held": 0,
        "captured": 0,
        "currency": "USD",
    }
    got = await api.get(f"/v1/messages/{message['id']}", headers=tenant.headers)
    assert got.json()["status"] == "canceled"


async def test_cancel_releases_only_that_message(api, tenant):
    keep = (await support.send(api, tenant)).json()
    drop = (await support.send(api, tenant)).json()
    await api.post(f"/v1/messages/{drop['id']}/cancel", headers=tenant.headers)
    assert (await support.balance(api, tenant))["held"] == PRICE
    got = await api.get(f"/v1/messages/{keep['id']}", headers=tenant.headers)
    assert got.json()["status"] == "queued"


async def test_list_filters(api, tenant):
    first = (await support.send(api, tenant, to=VALID_TO)).json()
    second = (await support.send(api, tenant, to=OTHER_TO)).json()
    third = (await support.send(api, tenant, to=VALID_TO)).json()
    await api.post(f"/v1/messages/{second['id']}/cancel", headers=tenant.headers)

    async def listed(**params):
        response = await api.get("/v1/messages", params=params, headers=tenant.headers)
        assert response.status_code == 200, response.text
        return [m["id"] for m in response.json()["messages"]]

    assert await listed() == [third["id"], second["id"], first["id"]]  # newest first
    assert await listed(status="queued") == [third["id"], first["id"]]
    assert await listed(status="canceled") == [second["id"]]
    assert await listed(status="delivered") == []
    assert await listed(to=OTHER_TO) == [second["id"]]
    assert await listed(to=VALID_TO, status="queued") == [third["id"], first["id"]]
    # created_after / created_before are exclusive bounds on creation time.
    assert await listed(created_after=first["created_at"]) == [third["id"], second["id"]]
    assert await listed(created_before=third["created_at"]) == [second["id"], first["id"]]
    assert await listed(created_after=first["created_at"], created_before=third["created_at"]) == [
        second["id"]
    ]
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert await listed(created_after=future) == []


async def test_list_refuses_bad_filters(api, tenant):
    for params in ({"status": "lost"}, {"limit": 0}, {"limit": 501}, {"cursor": "garbage"}):
        response = await api.get("/v1/messages", params=params, headers=tenant.headers)
        assert response.status_code in (400, 422), params
        body = assert_problem(response, response.status_code, "invalid_request")
        assert [e["field"] for e in body["errors"]] == [next(iter(params))], body


async def test_list_accepts_the_largest_page(api, tenant):
    response = await api.get("/v1/messages", params={"limit": 500}, headers=tenant.headers)
    assert response.status_code == 200
    assert response.json() == {"messages": [], "next_cursor": None}


async def test_pagination_walks_every_message_once(api, tenant):
    sent: list[str] = []
    for start in range(0, 23, 8):  # batches share a millisecond, singles do not
        batch = await api.post(
            "/v1/messages/batch",
            json={"messages": [{"to": VALID_TO, "body": f"m{i}"} for i in range(start, start + 8)]},
            headers=tenant.headers,
        )
        assert batch.status_code == 202, batch.text
        sent += [m["id"] for m in batch.json()["messages"]]
        sent.append((await support.send(api, tenant)).json()["id"])

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 5, **({"cursor": cursor} if cursor else {})}
        response = await api.get("/v1/messages", params=params, headers=tenant.headers)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["messages"]) <= 5
        seen += [m["id"] for m in page["messages"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert pages < 20, "pagination does not end"
    assert len(seen) == len(set(seen)) == len(sent) == 27
    assert set(seen) == set(sent)
    assert pages == 6
    # Newest first, and within a batch (one millisecond) in reverse submission order.
    assert seen[:9] == list(reversed(sent[-9:]))


async def test_pagination_with_a_filter(api, tenant):
    for i in range(7):
        await support.send(api, tenant, to=OTHER_TO if i % 2 else VALID_TO)
    seen, cursor = [], None
    while True:
        params = {"limit": 2, "to": OTHER_TO, **({"cursor": cursor} if cursor else {})}
        page = (await api.get("/v1/messages", params=params, headers=tenant.headers)).json()
        seen += page["messages"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 3
    assert {m["to"] for m in seen} == {OTHER_TO}


async def test_exactly_full_last_page_has_no_cursor(api, tenant):
    for _ in range(4):
        await support.send(api, tenant)
    first = (await api.get("/v1/messages?limit=2", headers=tenant.headers)).json()
    assert first["next_cursor"]
    second = (
        await api.get(
            "/v1/messages",
            params={"limit": 2, "cursor": first["next_cursor"]},
            headers=tenant.headers,
        )
    ).json()
    assert len(second["messages"]) == 2
    assert second["next_cursor"] is None


async def test_balance(api, tenant):
    assert await support.balance(api, tenant) == {
        "available": CREDIT,
        "held": 0,
        "captured": 0,
        "currency": "USD",
    }


async def test_concurrent_cancels_release_once(api, tenant):
    message = (await support.send(api, tenant)).json()
    responses = await asyncio.gather(
        *(
            api.post(f"/v1/messages/{message['id']}/cancel", headers=tenant.headers)
            for _ in range(8)
        )
    )
    assert sorted(r.status_code for r in responses) == [200] + [409] * 7
    assert await support.balance(api, tenant) == {
        "available": CREDIT,
        "held": 0,
        "captured": 0,
        "currency": "USD",
    }
