"""Every error is application/problem+json with status, title, detail and a stable code."""

from __future__ import annotations

import uuid

from core import ids
from tests import support
from tests.support import assert_problem

BAD_CREDENTIALS = [
    {},
    {"Authorization": "Bearer"},
    {"Authorization": "Bearer "},
    {"Authorization": "Basic dXNlcjpwYXNz"},
    {"Authorization": "bearer not-a-key"},
    {"Authorization": "Bearer smsgw_0123456789ab_" + "A" * 43},
    {"Authorization": "Bearer test-admin-token"},
]


async def test_tenant_endpoints_refuse_a_missing_or_bad_key(api, tenant, conn):
    for headers in BAD_CREDENTIALS:
        for method, path in [
            ("GET", "/v1/balance"),
            ("GET", "/v1/messages"),
            ("GET", f"/v1/messages/{ids.uuid7()}"),
            ("POST", f"/v1/messages/{ids.uuid7()}/cancel"),
            ("POST", "/v1/messages"),
            ("POST", "/v1/messages/batch"),
            ("POST", "/v1/messages/quote"),
        ]:
            response = await api.request(
                method, path, headers=headers, json={"to": support.VALID_TO, "body": "hi"}
            )
            assert response.status_code == 401, (headers, path)
            assert_problem(response, 401, "unauthorized")
    assert await support.stored(conn) == support.NOTHING_STORED


async def test_a_key_with_a_known_prefix_and_a_wrong_secret_is_refused(api, tenant):
    prefix = tenant.api_key.split("_")[1]
    forged = f"smsgw_{prefix}_" + "B" * 43
    response = await api.get("/v1/balance", headers={"Authorization": f"Bearer {forged}"})
    assert_problem(response, 401, "unauthorized")


async def test_unauthenticated_send_is_refused_before_the_body_is_read(api, conn):
    response = await api.post("/v1/messages", content=b"{not json")
    assert_problem(response, 401, "unauthorized")
    assert await support.stored(conn) == support.NOTHING_STORED


ADMIN_ENDPOINTS = [
    ("POST", "/v1/admin/tenants"),
    ("GET", "/v1/admin/tenants/{tenant}"),
    ("POST", "/v1/admin/tenants/{tenant}/credits"),
    ("POST", "/v1/admin/tenants/{tenant}/api-keys"),
    ("DELETE", "/v1/admin/api-keys/{key}"),
]


async def test_admin_endpoints_refuse_tenant_keys_and_bad_tokens(api, tenant, conn):
    for method, path in ADMIN_ENDPOINTS:
        url = path.format(tenant=tenant.id, key=tenant.body["api_key_id"])
        payload = {"name": "x", "amount": 1, "reference": "r"} if method == "POST" else None
        kwargs = {"json": payload} if payload else {}
        as_tenant = await api.request(method, url, headers=tenant.headers, **kwargs)
        assert as_tenant.status_code == 403, url
        assert_problem(as_tenant, 403, "forbidden")
        for headers in ({}, {"Authorization": "Bearer wrong-token"}):
            refused = await api.request(method, url, headers=headers, **kwargs)
            assert refused.status_code == 401, (url, headers)
            assert_problem(refused, 401, "unauthorized")
    # Nothing happened: one tenant, its credit untouched, its key still live.
    cursor = await conn.execute("SELECT count(*) AS n FROM tenants")
    assert (await cursor.fetchone())["n"] == 1
    assert (await support.balance(api, tenant))["available"] == 10_000_000


async def test_another_tenants_message_is_not_found(api, admin_headers, tenant):
    sent = await support.send(api, tenant)
    assert sent.status_code == 202
    other = await support.make_tenant(api, admin_headers, credit=1_000_000, name="other")
    message_id = sent.json()["id"]
    assert_problem(
        await api.get(f"/v1/messages/{message_id}", headers=other.headers), 404, "not_found"
    )
    assert_problem(
        await api.post(f"/v1/messages/{message_id}/cancel", headers=other.headers),
        404,
        "not_found",
    )
    # Still queued and held for its owner: the other tenant's cancel did nothing.
    mine = await api.get(f"/v1/messages/{message_id}", headers=tenant.headers)
    assert mine.json()["status"] == "queued"
    assert (await support.balance(api, tenant))["held"] == 7_900
    listed = await api.get("/v1/messages", headers=other.headers)
    assert listed.json()["messages"] == []


UNKNOWN_IDS = [
    "nope",
    "12345",
    str(uuid.uuid4()),
    str(ids.uuid7()),
    str(ids.uuid7(now_ms=0)),
    "ffffffff-ffff-7fff-bfff-ffffffffffff",  # a UUIDv7 past the year 9999
    "00000000-0000-0000-0000-000000000000",
    "%00",
]


async def test_unknown_message_ids_are_not_found(api, tenant):
    for message_id in UNKNOWN_IDS:
        got = await api.get(f"/v1/messages/{message_id}", headers=tenant.headers)
        assert got.status_code == 404, (message_id, got.text)
        assert_problem(got, 404, "not_found")
        canceled = await api.post(f"/v1/messages/{message_id}/cancel", headers=tenant.headers)
        assert canceled.status_code == 404, (message_id, canceled.text)
        assert_problem(canceled, 404, "not_found")


async def test_cursors_that_were_never_given_out_are_refused(api, tenant):
    # Not base64, too short, a nil UUID, a UUIDv7 past the year 9999.
    for cursor in ("garbage", "_w", "AAAAAAAAAAAAAAAAAAAAAA", "________f_-__________w"):
        response = await api.get("/v1/messages", params={"cursor": cursor}, headers=tenant.headers)
        assert response.status_code == 422, (cursor, response.text)
        assert_problem(response, 422, "invalid_request")


async def test_a_cursor_of_one_list_is_refused_by_the_others(api, tenant):
    for recipient in (support.VALID_TO, support.OTHER_TO):
        added = await api.post(
            "/v1/suppressions", json={"recipient": recipient}, headers=tenant.headers
        )
        assert added.status_code == 201, added.text
    paged = await api.get("/v1/suppressions", params={"limit": 1}, headers=tenant.headers)
    cursor = paged.json()["next_cursor"]
    for path, params in (
        ("/v1/messages", {}),
        ("/v1/messages", {"direction": "inbound"}),
        ("/v1/suppressions", {"cursor": "garbage"}),
    ):
        response = await api.get(path, params={"cursor": cursor, **params}, headers=tenant.headers)
        assert_problem(response, 422, "invalid_request")


async def test_cancelling_a_canceled_message_is_a_conflict(api, tenant):
    sent = await support.send(api, tenant)
    message_id = sent.json()["id"]
    first = await api.post(f"/v1/messages/{message_id}/cancel", headers=tenant.headers)
    assert first.status_code == 200
    after_first = await support.balance(api, tenant)
    again = await api.post(f"/v1/messages/{message_id}/cancel", headers=tenant.headers)
    body = assert_problem(again, 409, "conflict")
    assert "canceled" in body["detail"]
    assert await support.balance(api, tenant) == after_first  # released once only


async def test_unknown_route_is_a_problem(api, tenant):
    assert_problem(await api.get("/v1/nothing-here", headers=tenant.headers), 404, "not_found")


async def test_wrong_method_is_a_problem(api, tenant):
    response = await api.delete("/v1/balance", headers=tenant.headers)
    assert_problem(response, 405, "invalid_request")


async def test_insufficient_credit_is_a_problem(api, admin_headers):
    broke = await support.make_tenant(api, admin_headers, credit=7_899)
    assert_problem(await support.send(api, broke), 402, "insufficient_credit")
