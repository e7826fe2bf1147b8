"""Smart encoding through the API: the tenant's setting and a message's field decide,
the message stores and is held for the text actually sent, the quote shows both."""

from __future__ import annotations

from tests import support
from tests.support import VALID_TO

PRICE = 7_900
PASTED = (
    "Hi Anna \u2014 your table for 4 is booked for Friday at 7:30\u202fpm. "
    "We\u2019ll text you if anything changes\u2026 \u201cSee you soon!\u201d"
)
SENT = (
    "Hi Anna - your table for 4 is booked for Friday at 7:30 pm. "
    'We\'ll text you if anything changes... "See you soon!"'
)


async def test_the_tenants_setting_keeps_a_pasted_paragraph_at_one_segment(
    api, conn, admin_headers, tenant
):
    # Off by default: the paragraph goes as written, UCS-2 in two segments.
    as_written = (await support.send(api, tenant, body=PASTED)).json()
    assert (as_written["encoding"], as_written["segments"], as_written["body"]) == (
        "UCS-2",
        2,
        PASTED,
    )
    patched = await api.patch(
        f"/v1/admin/tenants/{tenant.id}", json={"smart_encoding": True}, headers=admin_headers
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["smart_encoding"] is True
    before = (await support.balance(api, tenant))["held"]
    sent = await support.send(api, tenant, body=PASTED)
    assert sent.status_code == 202, sent.text
    message = sent.json()
    assert (message["encoding"], message["segments"], message["price"]) == ("GSM-7", 1, PRICE)
    assert (await support.message(api, tenant, message["id"]))["body"] == SENT
    assert (await support.balance(api, tenant))["held"] == before + PRICE
    # Off again: the very next send goes as written (the cached key is found stale).
    await api.patch(
        f"/v1/admin/tenants/{tenant.id}", json={"smart_encoding": False}, headers=admin_headers
    )
    assert (await support.send(api, tenant, body=PASTED)).json()["encoding"] == "UCS-2"
    await api.patch(
        f"/v1/admin/tenants/{tenant.id}", json={"smart_encoding": True}, headers=admin_headers
    )
    assert (await support.send(api, tenant, body=PASTED)).json()["encoding"] == "GSM-7"
    # A message may say otherwise (it must go out exactly as written).
    exact = (await support.send(api, tenant, body=PASTED, smart_encoding=False)).json()
    assert (exact["encoding"], exact["segments"], exact["body"]) == ("UCS-2", 2, PASTED)
    # A batch follows the setting too.
    batch = await api.post(
        "/v1/messages/batch",
        json={"messages": [{"to": VALID_TO, "body": PASTED}]},
        headers=tenant.headers,
    )
    assert batch.json()["messages"][0]["body"] == SENT
    assert await support.violations(conn) == []


async def test_a_message_asks_for_it_and_the_quote_shows_both(api, tenant):
    sent = (await support.send(api, tenant, body=PASTED, smart_encoding=True)).json()
    assert (sent["encoding"], sent["segments"], sent["body"]) == ("GSM-7", 1, SENT)
    quote = await api.post(
        "/v1/messages/quote", json={"to": VALID_TO, "body": PASTED}, headers=tenant.headers
    )
    assert quote.status_code == 200, quote.text
    body = quote.json()
    assert body["smart_encoding"] is False
    assert (body["encoding"], body["segments"], body["price"]) == ("UCS-2", 2, 2 * PRICE)
    assert body["as_written"] == {
        "body": PASTED,
        "encoding": "UCS-2",
        "segments": 2,
        "price": 2 * PRICE,
    }
    assert body["smart_encoded"] == {
        "body": SENT,
        "encoding": "GSM-7",
        "segments": 1,
        "price": PRICE,
    }
    smart = await api.post(
        "/v1/messages/quote",
        json={"to": VALID_TO, "body": PASTED, "smart_encoding": True},
        headers=tenant.headers,
    )
    assert (smart.json()["encoding"], smart.json()["price"]) == ("GSM-7", PRICE)
