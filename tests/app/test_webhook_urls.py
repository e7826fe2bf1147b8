"""A webhook URL at a literal address of the operator's network is refused where a tenant
(or the operator for a tenant) gives it: 422 ``callback_url_not_allowed`` naming the
field, nothing stored. The suite allows 127.0.0.1/32 (tests/conftest.py); the rest of
loopback, and every other internal range, stays forbidden."""

from __future__ import annotations

import pytest

from tests import support
from tests.app.test_twilio_facade import assert_twilio_error, credentials
from tests.two_way import HANDSET, OUR_NUMBER

# Never connected to: every one is refused before anything is stored or sent.
FORBIDDEN = [
    "http://127.0.0.2:8080/hooks",
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.1/internal-admin",
    "https://192.168.1.10/x",
    "http://100.64.0.1/x",
    "http://[::1]:8080/x",
    "http://[::ffff:127.0.0.2]:8080/x",
    "http://[::ffff:169.254.169.254]/x",
    "http://[fd00::1]/x",
    "http://[fe80::1%25eth0]/x",
    "http://0.0.0.0:8080/x",
    "http://127.2:8080/x",  # the resolver's short form of 127.0.0.2
    "http://2852039166/latest/meta-data/",  # 169.254.169.254 as one number
]


@pytest.mark.parametrize("url", FORBIDDEN)
async def test_a_send_with_an_internal_callback_url_is_refused_and_nothing_stored(
    api, conn, tenant, url
):
    before = await support.balance(api, tenant)
    refused = await support.send(api, tenant, callback_url=url)
    body = support.assert_problem(refused, 422, "callback_url_not_allowed")
    assert [e["field"] for e in body["errors"]] == ["callback_url"]
    assert "network" in body["errors"][0]["detail"]
    assert await support.stored(conn) == support.NOTHING_STORED
    assert await support.balance(api, tenant) == before


async def test_the_refusal_says_which_range_the_address_is_in(api, tenant):
    refused = await support.send(api, tenant, callback_url="http://169.254.169.254/")
    detail = support.assert_problem(refused, 422, "callback_url_not_allowed")["errors"][0]
    assert "169.254.169.254 is link-local" in detail["detail"]
    mapped = await support.send(api, tenant, callback_url="http://[::ffff:127.0.0.2]:1/")
    detail = support.assert_problem(mapped, 422, "callback_url_not_allowed")["errors"][0]
    assert "127.0.0.2" in detail["detail"]
    assert "loopback" in detail["detail"]


async def test_an_allowed_network_and_a_host_name_are_accepted(api, tenant):
    # 127.0.0.1/32 is opened for the suite; a name is judged when a worker connects.
    for url in ("http://127.0.0.1:9/hooks", "https://hooks.example.com/sms"):
        accepted = await support.send(api, tenant, callback_url=url)
        assert accepted.status_code == 202, accepted.text
        assert accepted.json()["callback_url"] == url


async def test_with_an_idempotency_key_the_refusal_stores_no_key(api, conn, tenant):
    refused = await support.send(
        api, tenant, headers={"Idempotency-Key": "k-1"}, callback_url="http://10.1.2.3/"
    )
    support.assert_problem(refused, 422, "callback_url_not_allowed")
    assert await support.stored(conn) == support.NOTHING_STORED


async def test_a_batch_refuses_the_item_and_accepts_the_others(api, conn, tenant):
    response = await api.post(
        "/v1/messages/batch",
        json={
            "messages": [
                {"to": support.VALID_TO, "body": "one", "callback_url": "http://127.0.0.1:9/"},
                {"to": support.VALID_TO, "body": "two", "callback_url": "http://[::1]/"},
                {"to": support.VALID_TO, "body": "three"},
            ]
        },
        headers=tenant.headers,
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert [m["body"] for m in body["messages"]] == ["one", "three"]
    assert [(e["index"], e["code"]) for e in body["errors"]] == [(1, "callback_url_not_allowed")]
    assert "callback_url" in body["errors"][0]["detail"]
    assert await support.count(conn, "SELECT count(*) AS n FROM messages") == 2


async def test_a_quote_refuses_it_too(api, tenant):
    quoted = await api.post(
        "/v1/messages/quote",
        json={"to": support.VALID_TO, "body": "x", "callback_url": "http://10.0.0.1/"},
        headers=tenant.headers,
    )
    support.assert_problem(quoted, 422, "callback_url_not_allowed")


async def test_the_twilio_facade_refuses_an_internal_status_callback(
    api, conn, admin_headers, tenant
):
    sid, token = await credentials(api, admin_headers, tenant)
    refused = await api.post(
        f"/2010-04-01/Accounts/{sid}/Messages.json",
        data={
            "To": HANDSET,
            "From": OUR_NUMBER,
            "Body": "x",
            "StatusCallback": "http://169.254.169.254/latest/meta-data/",
        },
        auth=(sid, token),
    )
    # Twilio's shape and code for a bad StatusCallback, naming the parameter.
    error = assert_twilio_error(refused, 400, 21609)
    assert "StatusCallback" in error["message"]
    assert "link-local" in error["message"]
    assert await support.stored(conn) == support.NOTHING_STORED


async def test_an_internal_inbound_url_is_refused_and_the_old_one_kept(api, admin_headers, tenant):
    path = f"/v1/admin/tenants/{tenant.id}"
    kept = await api.patch(
        path, json={"inbound_url": "https://in.example.com/"}, headers=admin_headers
    )
    assert kept.status_code == 200, kept.text
    for url in ("http://127.0.0.2:8080/in", "http://[::ffff:10.0.0.1]/in"):
        refused = await api.patch(path, json={"inbound_url": url}, headers=admin_headers)
        body = support.assert_problem(refused, 422, "callback_url_not_allowed")
        assert [e["field"] for e in body["errors"]] == ["inbound_url"]
    shown = await api.get(path, headers=admin_headers)
    assert shown.json()["inbound_url"] == "https://in.example.com/"
