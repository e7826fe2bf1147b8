"""``GET /v1/webhooks/deliveries``: what the gateway tried to POST to a tenant and how it
went, newest first, one tenant's only, without the signing secret."""

from __future__ import annotations

from collections import Counter

from tests import httpd, support
from tests.jobs.test_webhook_destinations import (
    TENANT_HOST,
    _canceled_with_callback,
    _deliver_once,
    resolving_to,
)


async def _deliveries(api, tenant, **params) -> dict:
    response = await api.get("/v1/webhooks/deliveries", params=params, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def test_each_delivery_shows_its_last_attempt_and_next_retry(
    api, admin_headers, pool, settings, tenant
):
    # The endpoint fails its first request; the other two are answered 200.
    with httpd.serve(lambda n: (500, 0.0) if n == 0 else (200, 0.0)) as hook:
        port = hook.url.split(":")[2].split("/")[0]
        for _ in range(3):
            await _canceled_with_callback(api, tenant, hook.url)
        refused = await _canceled_with_callback(
            api, tenant, f"http://{TENANT_HOST}:{port}/internal"
        )
        assert await _deliver_once(settings, pool, resolving_to("127.0.0.2")) == 4
    page = await _deliveries(api, tenant)
    assert page["next_cursor"] is None
    deliveries = page["deliveries"]
    assert Counter(d["state"] for d in deliveries) == {"delivered": 2, "retrying": 1, "failed": 1}
    for d in deliveries:
        assert d["event"] == "message.canceled"
        assert d["format"] == "json"
        assert d["attempts"] == 1
        assert d["last_attempt_at"] is not None
    [retrying] = [d for d in deliveries if d["state"] == "retrying"]
    assert (retrying["status_code"], retrying["error"]) == (500, "HTTP 500")
    assert retrying["url"] == hook.url
    assert retrying["next_attempt_at"] is not None
    assert retrying["latency_ms"] >= 0
    for d in (d for d in deliveries if d["state"] == "delivered"):
        assert (d["status_code"], d["error"], d["next_attempt_at"]) == (200, None, None)
        assert d["latency_ms"] >= 0
    [failed] = [d for d in deliveries if d["state"] == "failed"]
    assert failed["message_id"] == refused
    assert failed["url"] == f"http://{TENANT_HOST}:{port}/internal"
    assert failed["error"].startswith("destination not allowed: 127.0.0.2 is loopback")
    assert failed["status_code"] is None
    assert failed["next_attempt_at"] is None
    assert failed["failed_at"] is not None
    # The secret that signs them is nowhere in the answer.
    listed = await api.get("/v1/webhooks/deliveries", headers=tenant.headers)
    assert tenant.webhook_secret not in listed.text


async def test_pages_go_newest_first_and_stay_with_their_tenant(api, admin_headers, tenant):
    other = await support.make_tenant(api, admin_headers, credit=1_000_000, name="other")
    made = [
        await _canceled_with_callback(api, tenant, "https://hooks.example.com/a") for _ in range(5)
    ]
    await _canceled_with_callback(api, other, "https://hooks.example.com/b")
    seen: list[dict] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = await _deliveries(api, tenant, **params)
        assert len(page["deliveries"]) <= 2
        seen += page["deliveries"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [d["message_id"] for d in seen] == list(reversed(made))
    assert {d["state"] for d in seen} == {"pending"}
    assert all(d["next_attempt_at"] is not None for d in seen)
    assert [d["created_at"] for d in seen] == sorted((d["created_at"] for d in seen), reverse=True)
    others = await _deliveries(api, other)
    assert [d["url"] for d in others["deliveries"]] == ["https://hooks.example.com/b"]
    # A cursor of this tenant's list reads nothing of it for another tenant.
    first = await _deliveries(api, tenant, limit=1)
    beyond = await _deliveries(api, other, cursor=first["next_cursor"])
    assert {d["url"] for d in beyond["deliveries"]} <= {"https://hooks.example.com/b"}


async def test_a_cursor_we_did_not_give_out_and_a_bad_limit_are_refused(api, tenant):
    bad = await api.get(
        "/v1/webhooks/deliveries", params={"cursor": "nope"}, headers=tenant.headers
    )
    body = support.assert_problem(bad, 422, "invalid_request")
    assert body["errors"][0]["field"] == "cursor"
    too_many = await api.get(
        "/v1/webhooks/deliveries", params={"limit": 501}, headers=tenant.headers
    )
    assert too_many.status_code in (400, 422)
    unauthenticated = await api.get("/v1/webhooks/deliveries")
    support.assert_problem(unauthenticated, 401, "unauthorized")
