"""Bad sends are refused with the right status and field, and leave nothing behind: no
message row, no hold, no dispatch job, no idempotency key, the balance untouched.

Cases run in loops inside a few tests rather than one test each: every test pays for a
fresh database, and the failure message names the case."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from tests import support
from tests.support import VALID_TO, assert_problem

CREDIT = 10_000_000
JSON = {"Content-Type": "application/json"}


class later:
    """A send_at relative to when the request is made (not when the module loaded: the
    suite runs for minutes, and "in a minute" must still be in the future)."""

    def __init__(self, **delta: float) -> None:
        self.delta = timedelta(**delta)

    def __str__(self) -> str:
        return (datetime.now(UTC) + self.delta).isoformat()


def resolved(fields: dict) -> dict:
    return {k: str(v) if isinstance(v, later) else v for k, v in fields.items()}


# (case, fields merged into a valid send, the field the error must name)
INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("to-without-plus", {"to": "14155552671"}, "to"),
    ("to-with-spaces", {"to": "+1 415 555 2671"}, "to"),
    ("to-invalid-number", {"to": "+10005552671"}, "to"),
    ("to-unassigned-country", {"to": "+99912345678"}, "to"),
    # Valid once its trunk 0 is dropped: taken as written it would dodge an opt-out.
    ("to-with-trunk-prefix", {"to": "+4407400123456"}, "to"),
    ("to-as-number", {"to": 14155552671}, "to"),
    ("to-null", {"to": None}, "to"),
    ("to-nul", {"to": "+1415555\u00002671"}, "to"),
    ("body-empty", {"body": ""}, "body"),
    ("body-11-gsm-segments", {"body": "a" * 1531}, "body"),
    ("body-11-segments-of-escapes", {"body": "€" * 761}, "body"),
    ("body-11-ucs2-segments", {"body": "ж" * 671}, "body"),
    ("body-11-segments-of-emoji", {"body": "😀" * 336}, "body"),
    ("body-huge", {"body": "a" * 100_000}, "body"),
    ("body-nul", {"body": "hi\u0000there"}, "body"),
    ("body-as-list", {"body": ["hi"]}, "body"),
    ("from-two-digits", {"from": "12"}, "from"),
    ("from-nine-digits", {"from": "123456789"}, "from"),
    ("from-12-chars", {"from": "ACMESTORE123"}, "from"),
    ("from-punctuation", {"from": "AC!ME"}, "from"),
    ("from-bad-e164", {"from": "+0123"}, "from"),
    ("from-nul", {"from": "ACME\u0000"}, "from"),
    ("send-at-past", {"send_at": later(minutes=-1)}, "send_at"),
    ("send-at-36-days", {"send_at": later(days=35, minutes=5)}, "send_at"),
    (
        "send-at-without-zone",
        {"send_at": (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")},
        "send_at",
    ),
    ("send-at-not-a-time", {"send_at": "tomorrow"}, "send_at"),
    ("validity-59", {"validity_seconds": 59}, "validity_seconds"),
    ("validity-259201", {"validity_seconds": 259_201}, "validity_seconds"),
    ("validity-as-string", {"validity_seconds": "600"}, "validity_seconds"),
    ("validity-fraction", {"validity_seconds": 600.5}, "validity_seconds"),
    ("callback-ftp", {"callback_url": "ftp://example.com/x"}, "callback_url"),
    ("callback-relative", {"callback_url": "example.com/x"}, "callback_url"),
    ("callback-nul", {"callback_url": "https://exa\u0000mple.com"}, "callback_url"),
    ("reference-nul", {"client_reference": "r\u0000"}, "client_reference"),
    ("reference-too-long", {"client_reference": "r" * 257}, "client_reference"),
    ("unknown-field", {"priority": "high"}, "priority"),
    ("python-name-of-from", {"sender": "ACME"}, "sender"),
    ("nul-in-a-key", {"x\u0000": 1}, "x\u0000"),
]


async def test_invalid_sends_are_422_naming_the_field_and_store_nothing(api, tenant, conn):
    for case, fields, field in INVALID:
        payload = {"to": VALID_TO, "body": "hello", **resolved(fields)}
        for path in ("/v1/messages", "/v1/messages/quote"):
            response = await api.post(
                path, json=payload, headers={**tenant.headers, "Idempotency-Key": case}
            )
            body = assert_problem(response, 422, "invalid_request")
            assert body["errors"], case
            for error in body["errors"]:
                assert set(error) == {"field", "detail"}, case
                assert isinstance(error["detail"], str), case
                assert error["detail"], case
            assert field in [e["field"] for e in body["errors"]], (case, body["errors"])
        assert await support.stored(conn) == support.NOTHING_STORED, case
    assert (await support.balance(api, tenant))["available"] == CREDIT


async def test_missing_required_fields_are_named(api, tenant):
    for payload, field in (({"to": VALID_TO}, "body"), ({"body": "x"}, "to")):
        response = await api.post("/v1/messages", json=payload, headers=tenant.headers)
        body = assert_problem(response, 422, "invalid_request")
        assert [e["field"] for e in body["errors"]] == [field]
        assert "missing" in body["errors"][0]["detail"]


async def test_invalid_batch_items_are_reported_with_their_index(api, tenant, conn):
    items = [{"to": VALID_TO, "body": "ok"}] + [
        {"to": VALID_TO, "body": "hello", **resolved(fields)} for _, fields, _ in INVALID
    ]
    response = await api.post(
        "/v1/messages/batch", json={"messages": items}, headers=tenant.headers
    )
    assert response.status_code == 202, response.text
    result = response.json()
    assert [m["body"] for m in result["messages"]] == ["ok"]
    errors = result["errors"]
    assert [e["index"] for e in errors] == list(range(1, len(INVALID) + 1))
    for error, (case, _, field) in zip(errors, INVALID, strict=True):
        assert error["code"] == "invalid_request", case
        assert field in error["detail"], (case, error)
    assert (await support.stored(conn))["messages"] == 1
    assert (await support.balance(api, tenant))["held"] == 7_900


ACCEPTED: list[tuple[str, dict[str, Any]]] = [
    ("uk-mobile", {"to": "+447911123456"}),
    ("from-e164", {"from": "+14155552671"}),
    ("from-3-digit-code", {"from": "123"}),
    ("from-8-digit-code", {"from": "12345678"}),
    ("from-1-letter", {"from": "A"}),
    ("from-11-chars", {"from": "ACME Store1"}),
    ("body-10-segments", {"body": "a" * 1530}),
    ("body-10-segments-of-escapes", {"body": "^" * 760}),
    ("body-10-ucs2-segments", {"body": "ж" * 670}),
    ("send-at-34-days", {"send_at": later(days=34)}),
    ("send-at-in-a-minute", {"send_at": later(minutes=1)}),
    ("validity-60", {"validity_seconds": 60}),
    ("validity-259200", {"validity_seconds": 259_200}),
    ("callback-http", {"callback_url": "http://example.com/cb"}),
    ("callback-https", {"callback_url": "https://example.com/cb?x=1"}),
    ("reference-256", {"client_reference": "r" * 256}),
    ("explicit-nulls", {"from": None, "send_at": None, "validity_seconds": None}),
]


async def test_boundary_values_are_accepted(api, admin_headers, tenant):
    # Every well-formed sender passes validation; whose it is is another rule
    # (test_sender_rules.py), so this tenant may send from any, to a country that takes
    # alphanumeric and numeric senders alike.
    patched = await api.patch(
        f"/v1/admin/tenants/{tenant.id}", json={"sender_policy": "any"}, headers=admin_headers
    )
    assert patched.status_code == 200, patched.text
    for case, fields in ACCEPTED:
        response = await support.send(api, tenant, **{"to": support.OTHER_TO, **resolved(fields)})
        assert response.status_code == 202, (case, response.text)


async def test_send_at_with_an_offset_is_the_same_instant(api, tenant):
    at = (datetime.now(UTC) + timedelta(hours=3)).replace(microsecond=0)
    for offset in (timedelta(0), timedelta(hours=-5), timedelta(hours=5, minutes=30)):
        value = at.astimezone(timezone(offset)).isoformat()
        response = await support.send(api, tenant, send_at=value)
        assert response.status_code == 202, response.text
        sent = response.json()["send_at"].replace("Z", "+00:00")
        assert datetime.fromisoformat(sent) == at


MALFORMED = [
    b"{",
    b'{"to": "+14155552671", "body": "x",}',
    b'{"colour": "red",}',
    b'{"messages": [{"to": "+14155552671", "body": "x"},]}',
    b"{'to': '+14155552671'}",
    b"\xff\xfe{}",
    b"",
    b"to=+14155552671&body=x",
]


async def test_malformed_json_is_400(api, tenant, conn):
    for raw in MALFORMED:
        for path in ("/v1/messages", "/v1/messages/batch", "/v1/messages/quote"):
            response = await api.post(path, content=raw, headers={**tenant.headers, **JSON})
            assert response.status_code == 400, (path, raw, response.text)
            assert_problem(response, 400, "invalid_request")
    assert await support.stored(conn) == support.NOTHING_STORED


async def test_well_formed_json_of_the_wrong_shape_is_422(api, tenant, conn):
    for raw in (b"null", b"[]", b'"hello"', b"42", b'{"messages": "x"}'):
        for path in ("/v1/messages", "/v1/messages/batch", "/v1/messages/quote"):
            response = await api.post(path, content=raw, headers={**tenant.headers, **JSON})
            assert response.status_code == 422, (path, raw, response.text)
            body = assert_problem(response, 422, "invalid_request")
            assert body["errors"]
    assert await support.stored(conn) == support.NOTHING_STORED


async def test_lone_surrogate_is_refused_not_a_server_error(api, tenant, conn):
    raw = b'{"to": "+14155552671", "body": "\\ud83d"}'
    response = await api.post("/v1/messages", content=raw, headers={**tenant.headers, **JSON})
    assert response.status_code in (400, 422), response.text
    assert_problem(response, response.status_code, "invalid_request")
    assert await support.stored(conn) == support.NOTHING_STORED


async def test_nul_in_a_list_filter_is_422(api, tenant):
    response = await api.get("/v1/messages", params={"to": "+1\x00"}, headers=tenant.headers)
    assert_problem(response, 422, "invalid_request")


async def test_body_over_the_size_limit_is_413(api, tenant, conn):
    limit = 4 * 1024 * 1024  # SMSGW_MAX_REQUEST_BYTES' default
    prefix, suffix = b'{"to": "+14155552671", "body": "', b'"}'
    over = prefix + b"a" * (limit + 1 - len(prefix) - len(suffix)) + suffix
    assert len(over) == limit + 1
    for path in ("/v1/messages", "/v1/messages/batch", "/v1/messages/quote"):
        response = await api.post(path, content=over, headers={**tenant.headers, **JSON})
        assert_problem(response, 413, "payload_too_large")
    # One byte less and the body is read and judged on its content instead.
    at_limit = prefix + b"a" * (limit - len(prefix) - len(suffix)) + suffix
    assert len(at_limit) == limit
    response = await api.post("/v1/messages", content=at_limit, headers={**tenant.headers, **JSON})
    assert_problem(response, 422, "invalid_request")
    assert await support.stored(conn) == support.NOTHING_STORED
    assert (await support.balance(api, tenant))["available"] == CREDIT


async def test_a_large_batch_under_the_limit_is_not_refused_for_size(api, admin_headers):
    rich = await support.make_tenant(api, admin_headers, credit=1000 * 10 * 7_900)
    messages = [{"to": VALID_TO, "body": "a" * 1530} for _ in range(1000)]
    raw = json.dumps({"messages": messages}).encode()
    assert 1_500_000 < len(raw) < 4 * 1024 * 1024
    response = await api.post("/v1/messages/batch", content=raw, headers={**rich.headers, **JSON})
    assert response.status_code == 202, response.text[:300]
    assert len(response.json()["messages"]) == 1000
    assert await support.balance(api, rich) == {
        "available": 0,
        "held": 1000 * 10 * 7_900,
        "captured": 0,
        "currency": "USD",
    }
