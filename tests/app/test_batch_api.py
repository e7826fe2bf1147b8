"""Tenant API: batches of up to 1,000 sends, each item validated on its own, one hold for
the valid ones or none."""

from __future__ import annotations

from tests import support
from tests.support import MESSAGE_FIELDS, OTHER_TO, VALID_TO, assert_problem, same_message

PRICE = 7_900  # standard tier, per segment
CREDIT = 10_000_000  # the `tenant` fixture's credit


async def test_batch_accepts_valid_items_and_reports_the_rest(api, tenant, conn):
    response = await api.post(
        "/v1/messages/batch",
        json={
            "messages": [
                {"to": VALID_TO, "body": "one"},
                {"to": "+1", "body": "bad recipient"},
                {"to": OTHER_TO, "body": "a" * 200, "client_reference": "two"},
                {"to": VALID_TO, "body": "x", "colour": "red"},
                {"to": VALID_TO, "body": "x", "validity_seconds": "60"},
            ]
        },
        headers=tenant.headers,
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert [m["body"] for m in body["messages"]] == ["one", "a" * 200]
    assert all(set(m) == MESSAGE_FIELDS for m in body["messages"])
    assert [e["index"] for e in body["errors"]] == [1, 3, 4]
    assert all(e["code"] == "invalid_request" and e["detail"] for e in body["errors"])
    assert "to" in body["errors"][0]["detail"]
    assert "colour" in body["errors"][1]["detail"]
    assert "validity_seconds" in body["errors"][2]["detail"]
    assert (await support.balance(api, tenant))["held"] == 3 * PRICE
    for message in body["messages"]:
        got = await api.get(f"/v1/messages/{message['id']}", headers=tenant.headers)
        assert got.status_code == 200
        same_message(got.json(), message)
    counts = await support.stored(conn)
    assert counts["messages"] == 2
    assert counts["procrastinate_jobs"] == 1


async def test_batch_with_no_valid_item_is_refused(api, tenant, conn):
    response = await api.post(
        "/v1/messages/batch",
        json={"messages": [{"to": "+1", "body": "x"}, {"to": VALID_TO, "body": ""}]},
        headers=tenant.headers,
    )
    body = assert_problem(response, 422, "invalid_request")
    assert {e["field"] for e in body["errors"]} == {"messages[0]", "messages[1]"}
    assert await support.stored(conn) == support.NOTHING_STORED
    assert (await support.balance(api, tenant))["available"] == CREDIT


async def test_batch_short_of_credit_accepts_nothing(api, admin_headers, conn):
    poor = await support.make_tenant(api, admin_headers, credit=3 * PRICE - 1)
    response = await api.post(
        "/v1/messages/batch",
        json={
            "messages": [
                {"to": VALID_TO, "body": "one"},
                {"to": "+1", "body": "invalid, costs nothing"},
                {"to": VALID_TO, "body": "two"},
                {"to": VALID_TO, "body": "three"},
            ]
        },
        headers=poor.headers,
    )
    assert_problem(response, 402, "insufficient_credit")
    assert await support.stored(conn) == support.NOTHING_STORED
    assert (await support.balance(api, poor))["available"] == 3 * PRICE - 1
    # Two of them fit.
    response = await api.post(
        "/v1/messages/batch",
        json={"messages": [{"to": VALID_TO, "body": "one"}, {"to": VALID_TO, "body": "two"}]},
        headers=poor.headers,
    )
    assert response.status_code == 202
    assert len(response.json()["messages"]) == 2


BAD_ENVELOPES = [
    {"messages": []},
    {"messages": [{"to": VALID_TO, "body": "x"}] * 1001},
    {},
    {"messages": {"to": VALID_TO}},
    {"messages": [{"to": VALID_TO, "body": "x"}], "extra": 1},
]


async def test_batch_refuses_bad_envelopes(api, tenant, conn):
    for payload in BAD_ENVELOPES:
        response = await api.post("/v1/messages/batch", json=payload, headers=tenant.headers)
        assert response.status_code == 422, (str(payload)[:80], response.text)
        body = assert_problem(response, 422, "invalid_request")
        assert body["errors"]
        assert body["errors"][0]["field"].startswith(("messages", "extra"))
    assert await support.stored(conn) == support.NOTHING_STORED


async def test_batch_of_1000_is_accepted(api, tenant):
    response = await api.post(
        "/v1/messages/batch",
        json={"messages": [{"to": VALID_TO, "body": "x"}] * 1000},
        headers=tenant.headers,
    )
    assert response.status_code == 202, response.text
    assert len({m["id"] for m in response.json()["messages"]}) == 1000
    assert (await support.balance(api, tenant))["held"] == 1000 * PRICE
