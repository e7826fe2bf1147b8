"""Idempotency-Key: the first 202 is replayed for the same JSON value, per tenant."""

from __future__ import annotations

import asyncio

from tests import support
from tests.support import VALID_TO, assert_problem

PRICE = 7_900


def keyed(tenant: support.TenantHandle, key: str) -> dict[str, str]:
    return {**tenant.headers, "Idempotency-Key": key, "Content-Type": "application/json"}


async def test_same_key_and_same_json_value_replays_the_first_answer(api, tenant, conn):
    first = await api.post(
        "/v1/messages",
        content=b'{"to": "+14155552671", "body": "hello", "client_reference": "r1"}',
        headers=keyed(tenant, "order-1"),
    )
    assert first.status_code == 202, first.text
    # Other key order, other whitespace: the same JSON value.
    again = await api.post(
        "/v1/messages",
        content=b'{\n  "client_reference":"r1",\n  "body":"hello","to":"+14155552671"}',
        headers=keyed(tenant, "order-1"),
    )
    assert again.status_code == 202, again.text
    assert again.json() == first.json()
    assert again.json()["id"] == first.json()["id"]
    assert (await support.stored(conn))["messages"] == 1
    assert (await support.balance(api, tenant))["held"] == PRICE


async def test_replay_is_the_first_answer_even_after_the_message_changed(api, tenant):
    first = await support.send(api, tenant, headers={"Idempotency-Key": "k"})
    await api.post(f"/v1/messages/{first.json()['id']}/cancel", headers=tenant.headers)
    again = await support.send(api, tenant, headers={"Idempotency-Key": "k"})
    assert again.status_code == 202
    assert again.json() == first.json()
    assert again.json()["status"] == "queued"
    assert (await support.balance(api, tenant))["held"] == 0  # no new hold


async def test_same_key_with_another_body_is_a_mismatch(api, tenant, conn):
    first = await support.send(api, tenant, headers={"Idempotency-Key": "k"}, body="one")
    assert first.status_code == 202
    for other in (
        {"body": "two"},
        {"body": "one", "client_reference": "x"},
        {"to": "+447911123456", "body": "one"},
    ):
        response = await api.post(
            "/v1/messages",
            json={"to": VALID_TO, **other},
            headers={**tenant.headers, "Idempotency-Key": "k"},
        )
        assert_problem(response, 422, "idempotency_mismatch")
    # A JSON null is a value too: it differs from an absent field.
    with_null = await support.send(
        api, tenant, headers={"Idempotency-Key": "k"}, body="one", client_reference=None
    )
    assert_problem(with_null, 422, "idempotency_mismatch")
    # The same key on the batch endpoint is the same key, with another body.
    batch = await api.post(
        "/v1/messages/batch",
        json={"messages": [{"to": VALID_TO, "body": "one"}]},
        headers={**tenant.headers, "Idempotency-Key": "k"},
    )
    assert_problem(batch, 422, "idempotency_mismatch")
    assert (await support.stored(conn))["messages"] == 1
    assert (await support.balance(api, tenant))["held"] == PRICE


async def test_without_a_key_every_send_is_new(api, tenant, conn):
    first = await support.send(api, tenant)
    second = await support.send(api, tenant)
    assert first.json()["id"] != second.json()["id"]
    assert (await support.stored(conn))["messages"] == 2


async def test_different_keys_are_different_messages(api, tenant, conn):
    first = await support.send(api, tenant, headers={"Idempotency-Key": "a"})
    second = await support.send(api, tenant, headers={"Idempotency-Key": "b"})
    assert first.json()["id"] != second.json()["id"]
    assert (await support.stored(conn))["messages"] == 2


async def test_keys_are_scoped_per_tenant(api, admin_headers, tenant, conn):
    other = await support.make_tenant(api, admin_headers, credit=1_000_000, name="other")
    mine = await support.send(api, tenant, headers={"Idempotency-Key": "shared"})
    theirs = await support.send(api, other, headers={"Idempotency-Key": "shared"})
    assert mine.status_code == theirs.status_code == 202
    assert mine.json()["id"] != theirs.json()["id"]
    got = await api.get(f"/v1/messages/{theirs.json()['id']}", headers=other.headers)
    assert got.status_code == 200
    # Another body under the same key string is fine for the other tenant too.
    third = await support.send(
        api,
        support.TenantHandle(other.id, other.api_key, "", {}),
        body="different",
        headers={"Idempotency-Key": "shared-2"},
    )
    assert third.status_code == 202
    mine_again = await support.send(
        api, tenant, body="different", headers={"Idempotency-Key": "shared-2"}
    )
    assert mine_again.status_code == 202
    assert (await support.stored(conn))["messages"] == 4
    assert (await support.balance(api, tenant))["held"] == 2 * PRICE
    assert (await support.balance(api, other))["held"] == 2 * PRICE


async def test_concurrent_requests_with_one_key_create_one_message(api, tenant, conn):
    responses = await asyncio.gather(
        *(support.send(api, tenant, headers={"Idempotency-Key": "race"}) for _ in range(10))
    )
    assert [r.status_code for r in responses] == [202] * 10, [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    assert all(r.json() == responses[0].json() for r in responses)
    assert (await support.stored(conn))["messages"] == 1
    assert (await support.balance(api, tenant))["held"] == PRICE


async def test_concurrent_batches_with_one_key_accept_once(api, tenant, conn):
    payload = {"messages": [{"to": VALID_TO, "body": str(i)} for i in range(5)]}
    responses = await asyncio.gather(
        *(
            api.post(
                "/v1/messages/batch",
                json=payload,
                headers={**tenant.headers, "Idempotency-Key": "batch-race"},
            )
            for _ in range(6)
        )
    )
    assert [r.status_code for r in responses] == [202] * 6
    assert all(r.json() == responses[0].json() for r in responses)
    assert (await support.stored(conn))["messages"] == 5
    assert (await support.balance(api, tenant))["held"] == 5 * PRICE


async def test_a_refused_send_is_not_stored_under_its_key(api, admin_headers, conn):
    poor = await support.make_tenant(api, admin_headers)
    refused = await support.send(api, poor, headers={"Idempotency-Key": "topup"})
    assert_problem(refused, 402, "insufficient_credit")
    credited = await api.post(
        f"/v1/admin/tenants/{poor.id}/credits",
        json={"amount": PRICE, "reference": "topup"},
        headers=admin_headers,
    )
    assert credited.status_code == 201
    accepted = await support.send(api, poor, headers={"Idempotency-Key": "topup"})
    assert accepted.status_code == 202, accepted.text
    replayed = await support.send(api, poor, headers={"Idempotency-Key": "topup"})
    assert replayed.json() == accepted.json()
    assert (await support.stored(conn))["messages"] == 1


async def test_an_invalid_send_is_not_stored_under_its_key(api, tenant, conn):
    refused = await support.send(api, tenant, to="+1", headers={"Idempotency-Key": "fix-me"})
    assert_problem(refused, 422, "invalid_request")
    # The key is free: a corrected body under it is accepted (not a mismatch).
    accepted = await support.send(api, tenant, headers={"Idempotency-Key": "fix-me"})
    assert accepted.status_code == 202, accepted.text
    assert (await support.stored(conn))["messages"] == 1


async def test_bad_keys_are_refused(api, tenant, conn):
    for key in ("", "x" * 256, "tab\there"):
        response = await support.send(api, tenant, headers={"Idempotency-Key": key})
        body = assert_problem(response, 422, "invalid_request")
        assert [e["field"] for e in body["errors"]] == ["Idempotency-Key"], key
    assert await support.stored(conn) == support.NOTHING_STORED
    longest = await support.send(api, tenant, headers={"Idempotency-Key": "x" * 255})
    assert longest.status_code == 202


async def test_batch_replay_ignores_key_order_inside_items(api, tenant, conn):
    first = await api.post(
        "/v1/messages/batch",
        content=b'{"messages": [{"to": "+14155552671", "body": "caf\xc3\xa9"}, '
        b'{"body": "two", "to": "+447911123456"}]}',
        headers=keyed(tenant, "nested"),
    )
    assert first.status_code == 202, first.text
    # Items' keys reordered, and "é" written as a JSON escape: the same JSON value.
    again = await api.post(
        "/v1/messages/batch",
        content=b'{"messages":[{"body":"caf\\u00e9","to":"+14155552671"},'
        b'{"to":"+447911123456","body":"two"}]}',
        headers=keyed(tenant, "nested"),
    )
    assert again.status_code == 202, again.text
    assert again.json() == first.json()
    # Items in another order are another request.
    swapped = await api.post(
        "/v1/messages/batch",
        content=b'{"messages":[{"to":"+447911123456","body":"two"},'
        b'{"body":"caf\\u00e9","to":"+14155552671"}]}',
        headers=keyed(tenant, "nested"),
    )
    assert_problem(swapped, 422, "idempotency_mismatch")
    assert (await support.stored(conn))["messages"] == 2


async def test_a_key_older_than_the_replay_window_is_free_again(api, tenant, conn):
    first = await support.send(api, tenant, headers={"Idempotency-Key": "old"}, body="one")
    assert first.status_code == 202
    await conn.execute(
        "UPDATE idempotency_keys SET created_at = now() - interval '24 hours 1 minute'"
    )
    # Past 24 h the key no longer replays: another body is a new message, not a mismatch.
    later = await support.send(api, tenant, headers={"Idempotency-Key": "old"}, body="two")
    assert later.status_code == 202, later.text
    assert later.json()["id"] != first.json()["id"]
    # ... and it replays the new answer from now on.
    again = await support.send(api, tenant, headers={"Idempotency-Key": "old"}, body="two")
    assert again.json() == later.json()
    assert (await support.stored(conn))["messages"] == 2


async def test_a_key_inside_the_replay_window_still_replays(api, tenant, conn):
    first = await support.send(api, tenant, headers={"Idempotency-Key": "recent"})
    await conn.execute(
        "UPDATE idempotency_keys SET created_at = now() - interval '23 hours 59 minutes'"
    )
    again = await support.send(api, tenant, headers={"Idempotency-Key": "recent"})
    assert again.json() == first.json()
    mismatch = await support.send(api, tenant, headers={"Idempotency-Key": "recent"}, body="other")
    assert_problem(mismatch, 422, "idempotency_mismatch")
    assert (await support.stored(conn))["messages"] == 1
