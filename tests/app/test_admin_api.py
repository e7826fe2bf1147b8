"""Admin API: tenants, credits and API keys."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests import support
from tests.support import assert_problem

CREATED_FIELDS = {"id", "name", "tier", "rate_limit_mps", "api_key", "webhook_secret", "created_at"}


@pytest.mark.parametrize(
    ("tier", "price"), [("standard", 7_900), ("premium", 6_500), ("vip", 5_000)]
)
async def test_create_tenant(api, admin_headers, tier, price):
    response = await api.post(
        "/v1/admin/tenants",
        json={"name": "Acme Ltd", "tier": tier, "rate_limit_mps": 25},
        headers=admin_headers,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) >= CREATED_FIELDS
    assert uuid.UUID(body["id"])
    assert (body["name"], body["tier"], body["rate_limit_mps"]) == ("Acme Ltd", tier, 25)
    assert body["api_key"]
    assert body["webhook_secret"]
    created = datetime.fromisoformat(body["created_at"])
    assert abs(created - datetime.now(UTC)) < timedelta(minutes=5)
    # The key works at once, and the tier's default price applies to what it sends.
    handle = support.TenantHandle(body["id"], body["api_key"], body["webhook_secret"], body)
    quote = await api.post(
        "/v1/messages/quote",
        json={"to": support.VALID_TO, "body": "a" * 161},
        headers=handle.headers,
    )
    as_written = {"body": "a" * 161, "encoding": "GSM-7", "segments": 2, "price": 2 * price}
    assert quote.json() == {
        "encoding": "GSM-7",
        "segments": 2,
        "price": 2 * price,
        "price_per_segment": price,
        "rate_card": tier,  # the tier's card, one rate for every destination
        "rate_card_version": 1,
        "rate_prefix": "",
        "smart_encoding": False,
        "as_written": as_written,
        "smart_encoded": as_written,
    }
    assert await support.balance(api, handle) == {
        "available": 0,
        "held": 0,
        "captured": 0,
        "currency": "USD",
    }


async def test_tenant_defaults(api, admin_headers):
    response = await api.post("/v1/admin/tenants", json={"name": "Plain"}, headers=admin_headers)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["tier"] == "standard"
    assert body["rate_limit_mps"] is None


async def test_each_tenant_gets_its_own_key_and_secret(api, admin_headers):
    one = await support.make_tenant(api, admin_headers, name="one")
    two = await support.make_tenant(api, admin_headers, name="two")
    assert one.id != two.id
    assert one.api_key != two.api_key
    assert one.webhook_secret != two.webhook_secret


BAD_TENANTS = [
    {},
    {"name": ""},
    {"name": "   "},
    {"name": "x" * 201},
    {"name": "a\x00b"},
    {"name": 7},
    {"name": "x", "tier": "gold"},
    {"name": "x", "rate_limit_mps": 0},
    {"name": "x", "rate_limit_mps": "5"},
    {"name": "x", "currency": "EUR"},
    [],
]


async def test_create_tenant_refuses_bad_input(api, admin_headers, conn):
    for payload in BAD_TENANTS:
        response = await api.post("/v1/admin/tenants", json=payload, headers=admin_headers)
        assert response.status_code == 422, (payload, response.text)
        body = assert_problem(response, 422, "invalid_request")
        assert body["errors"], payload
        assert all(set(e) == {"field", "detail"} for e in body["errors"])
    cursor = await conn.execute("SELECT count(*) AS n FROM tenants")
    assert (await cursor.fetchone())["n"] == 0
    malformed = await api.post(
        "/v1/admin/tenants",
        content=b'{"name": "x",',
        headers={**admin_headers, "Content-Type": "application/json"},
    )
    assert_problem(malformed, 400, "invalid_request")


async def test_get_tenant_shows_balances_but_no_secrets(api, admin_headers, tenant):
    assert (await support.send(api, tenant)).status_code == 202
    response = await api.get(f"/v1/admin/tenants/{tenant.id}", headers=admin_headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == tenant.id
    assert body["name"] == "acme"
    assert body["tier"] == "standard"
    assert (body["available"], body["held"], body["captured"]) == (10_000_000 - 7_900, 7_900, 0)
    assert "webhook_secret" not in body
    assert "api_key" not in body
    assert tenant.webhook_secret not in response.text
    assert tenant.api_key not in response.text


async def test_get_unknown_tenant_is_not_found(api, admin_headers):
    for tenant_id in (str(uuid.uuid4()), "not-a-uuid"):
        response = await api.get(f"/v1/admin/tenants/{tenant_id}", headers=admin_headers)
        assert_problem(response, 404, "not_found")


async def test_credit_is_idempotent_by_reference(api, admin_headers):
    handle = await support.make_tenant(api, admin_headers)
    url = f"/v1/admin/tenants/{handle.id}/credits"
    first = await api.post(
        url, json={"amount": 5_000_000, "reference": "inv-1"}, headers=admin_headers
    )
    assert first.status_code == 201, first.text
    assert first.json() == {"available": 5_000_000, "held": 0, "captured": 0}
    repeat = await api.post(
        url, json={"amount": 5_000_000, "reference": "inv-1"}, headers=admin_headers
    )
    assert repeat.status_code == 200, repeat.text
    assert repeat.json() == {"available": 5_000_000, "held": 0, "captured": 0}
    # Even with another amount, a used reference credits nothing.
    other_amount = await api.post(
        url, json={"amount": 1, "reference": "inv-1"}, headers=admin_headers
    )
    assert other_amount.status_code == 200
    assert (await support.balance(api, handle))["available"] == 5_000_000
    second = await api.post(
        url, json={"amount": 2_000_000, "reference": "inv-2"}, headers=admin_headers
    )
    assert second.status_code == 201
    assert second.json()["available"] == 7_000_000


async def test_repeat_credit_answers_current_balances(api, admin_headers, tenant):
    url = f"/v1/admin/tenants/{tenant.id}/credits"
    assert (await support.send(api, tenant)).status_code == 202
    repeat = await api.post(
        url, json={"amount": 10_000_000, "reference": f"initial-{tenant.id}"}, headers=admin_headers
    )
    assert repeat.status_code == 200
    assert repeat.json() == {"available": 10_000_000 - 7_900, "held": 7_900, "captured": 0}


async def test_credit_references_are_per_tenant(api, admin_headers):
    one = await support.make_tenant(api, admin_headers, name="one")
    two = await support.make_tenant(api, admin_headers, name="two")
    for handle in (one, two):
        response = await api.post(
            f"/v1/admin/tenants/{handle.id}/credits",
            json={"amount": 100, "reference": "shared-ref"},
            headers=admin_headers,
        )
        assert response.status_code == 201
        assert (await support.balance(api, handle))["available"] == 100


async def test_concurrent_credits_with_one_reference_credit_once(api, admin_headers):
    handle = await support.make_tenant(api, admin_headers)
    url = f"/v1/admin/tenants/{handle.id}/credits"
    responses = await asyncio.gather(
        *(
            api.post(url, json={"amount": 1_000, "reference": "race"}, headers=admin_headers)
            for _ in range(10)
        )
    )
    assert sorted(r.status_code for r in responses) == [200] * 9 + [201]
    assert (await support.balance(api, handle))["available"] == 1_000


BAD_CREDITS = [
    {"amount": 0, "reference": "r"},
    {"amount": -5, "reference": "r"},
    {"amount": 1.5, "reference": "r"},
    {"amount": "100", "reference": "r"},
    {"amount": 10**16, "reference": "r"},
    {"amount": 100},
    {"reference": "r"},
    {"amount": 100, "reference": ""},
    {"amount": 100, "reference": "r" * 201},
    {"amount": 100, "reference": "a\x00"},
    {"amount": 100, "reference": "r", "note": "x"},
]


async def test_credit_refuses_bad_input(api, admin_headers, conn):
    handle = await support.make_tenant(api, admin_headers)
    for payload in BAD_CREDITS:
        response = await api.post(
            f"/v1/admin/tenants/{handle.id}/credits", json=payload, headers=admin_headers
        )
        assert response.status_code == 422, (payload, response.text)
        body = assert_problem(response, 422, "invalid_request")
        assert body["errors"], payload
    assert (await support.balance(api, handle))["available"] == 0
    cursor = await conn.execute("SELECT count(*) AS n FROM ledger_credits")
    assert (await cursor.fetchone())["n"] == 0


async def test_credit_to_unknown_tenant_is_not_found(api, admin_headers):
    response = await api.post(
        f"/v1/admin/tenants/{uuid.uuid4()}/credits",
        json={"amount": 100, "reference": "r"},
        headers=admin_headers,
    )
    assert_problem(response, 404, "not_found")


async def test_issue_and_revoke_api_keys(api, admin_headers, tenant):
    issued = await api.post(f"/v1/admin/tenants/{tenant.id}/api-keys", headers=admin_headers)
    assert issued.status_code == 201, issued.text
    key = issued.json()
    assert key["tenant_id"] == tenant.id
    assert key["api_key"] != tenant.api_key
    new_headers = {"Authorization": f"Bearer {key['api_key']}"}
    # Both keys act as the same tenant.
    sent = await api.post(
        "/v1/messages", json={"to": support.VALID_TO, "body": "hi"}, headers=new_headers
    )
    assert sent.status_code == 202
    got = await api.get(f"/v1/messages/{sent.json()['id']}", headers=tenant.headers)
    assert got.status_code == 200

    revoked = await api.delete(f"/v1/admin/api-keys/{key['id']}", headers=admin_headers)
    assert revoked.status_code == 204
    assert revoked.content == b""
    assert_problem(await api.get("/v1/balance", headers=new_headers), 401, "unauthorized")
    assert_problem(
        await api.post(
            "/v1/messages", json={"to": support.VALID_TO, "body": "hi"}, headers=new_headers
        ),
        401,
        "unauthorized",
    )
    # The tenant's other key is untouched.
    assert (await api.get("/v1/balance", headers=tenant.headers)).status_code == 200
    # Revoking again changes nothing and is not an error.
    again = await api.delete(f"/v1/admin/api-keys/{key['id']}", headers=admin_headers)
    assert again.status_code == 204


async def test_revoking_the_first_key_locks_it_out(api, admin_headers, tenant):
    revoked = await api.delete(
        f"/v1/admin/api-keys/{tenant.body['api_key_id']}", headers=admin_headers
    )
    assert revoked.status_code == 204
    assert_problem(await api.get("/v1/balance", headers=tenant.headers), 401, "unauthorized")


async def test_revoking_an_unknown_key_is_not_found(api, admin_headers, tenant):
    for key_id in (str(uuid.uuid4()), "not-a-uuid", tenant.id):
        response = await api.delete(f"/v1/admin/api-keys/{key_id}", headers=admin_headers)
        assert_problem(response, 404, "not_found")
    assert (await api.get("/v1/balance", headers=tenant.headers)).status_code == 200


async def test_issuing_a_key_for_an_unknown_tenant_is_not_found(api, admin_headers, conn):
    response = await api.post(f"/v1/admin/tenants/{uuid.uuid4()}/api-keys", headers=admin_headers)
    assert_problem(response, 404, "not_found")
    cursor = await conn.execute("SELECT count(*) AS n FROM api_keys")
    assert (await cursor.fetchone())["n"] == 0


@pytest.mark.parametrize(
    "url",
    [
        "http://",  # no host
        "https://:443/submit",
        "ftp://sms.example.com/",
        "sms.example.com/submit",  # not absolute
        "https://sms.example.com:99999/",
        "https://sms.example.com:0/",
        "https://sms.example.com:x/",
        "https://sms.example.com/sub mit",
        "https://sms.example.com/\tsubmit",
    ],
)
async def test_an_http_provider_without_a_usable_url_is_refused_when_configured(
    api, admin_headers, url
):
    # Taken, such a URL would only fail at the provider's first send, in a worker.
    response = await api.put(
        "/v1/admin/providers/agg",
        json={"kind": "http", "config": {"url": url}},
        headers=admin_headers,
    )
    problem = assert_problem(response, 422, "invalid_request")
    assert [e["field"] for e in problem["errors"]] == ["config"]
    assert "url" in problem["errors"][0]["detail"]
    listed = await api.get("/v1/admin/providers", headers=admin_headers)
    assert "agg" not in [p["name"] for p in listed.json()]


async def test_an_http_provider_with_a_host_and_port_is_configured(api, admin_headers):
    response = await api.put(
        "/v1/admin/providers/agg",
        json={"kind": "http", "config": {"url": "https://sms.example.com:8443/v1/submit"}},
        headers=admin_headers,
    )
    assert response.status_code == 200, response.text
