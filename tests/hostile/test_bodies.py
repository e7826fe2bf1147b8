"""Hostile bodies on every endpoint that reads one (the list comes from the app's route
table): too big, nested too deep, not UTF-8, with fields nobody asked for. Each is a clear
4xx with a stable code, in the door's own error shape, and leaves nothing behind.

tests/app/test_send_validation.py covers the message endpoints' own rules (the 4 MB
boundary, malformed JSON, NUL bytes, unknown fields of a send); this walks every door."""

from __future__ import annotations

import json
from typing import Any

from tests.hostile.bodies import (
    CSV_BODIES,
    JSON_BODIES,
    PROVIDER_BODIES,
    assert_refused,
    body_endpoints,
    json_endpoints,
    post_raw,
)
from tests.hostile.conftest import snapshot

TEN_MB = 10 * 1024 * 1024
DEPTH = 100_000  # far past any parser's recursion limit


def test_every_endpoint_that_reads_a_body_has_one_here():
    known = set(JSON_BODIES) | set(PROVIDER_BODIES) | set(CSV_BODIES)
    twilio = {(e.method, e.path) for e in body_endpoints() if e.door == "twilio"}
    assert {(e.method, e.path) for e in body_endpoints()} == known | twilio


async def test_ten_megabytes_are_413_on_every_endpoint_that_reads_a_body(api, world, conn):
    before = await snapshot(conn)
    huge = b'{"x": "' + b"a" * TEN_MB + b'"}'
    for endpoint in body_endpoints():
        for chunked in (False, True):
            response = await post_raw(api, world, endpoint, huge, chunked=chunked)
            assert_refused(response, endpoint, 413, "payload_too_large")
    assert await snapshot(conn) == before


async def test_deeply_nested_json_is_a_clear_4xx(api, world, conn):
    before = await snapshot(conn)
    deep = b"[" * DEPTH + b"]" * DEPTH
    for endpoint in json_endpoints():
        first_field = next(iter(JSON_BODIES[endpoint.method, endpoint.path]))
        # Past the parser's depth: a 400 (not JSON it will read), or a 422 when the
        # first bracket already breaks the schema (an array where an object belongs).
        inside = b'{"' + first_field.encode() + b'": ' + deep + b"}"
        for raw in (deep, inside):
            response = await post_raw(api, world, endpoint, raw)
            assert response.status_code in (400, 422), (endpoint, response.text[:300])
            assert_refused(response, endpoint, response.status_code, "invalid_request")
    # A provider's receipts and inbound messages: signed, so read and refused as not JSON.
    for endpoint in body_endpoints():
        if endpoint.door == "provider":
            response = await post_raw(api, world, endpoint, deep)
            assert_refused(response, endpoint, 400, "invalid_request")
    assert await snapshot(conn) == before


async def test_a_batch_item_nested_near_the_limit_is_refused_cleanly(api, world, conn):
    before = await snapshot(conn)
    [batch] = [e for e in json_endpoints() if e.path == "/v1/messages/batch"]
    for depth in (500, 990, 1_000, 1_100, 5_000):
        raw = b'{"messages": [{"to": ' + b"[" * depth + b"]" * depth + b', "body": "x"}]}'
        response = await post_raw(api, world, batch, raw)
        assert response.status_code in (400, 422), (depth, response.text[:300])
        assert_refused(response, batch, response.status_code, "invalid_request")
    assert await snapshot(conn) == before


async def test_invalid_utf8_inside_a_string_is_400(api, world, conn):
    before = await snapshot(conn)
    for endpoint in json_endpoints():
        marked = json.dumps(_mark_first_text(JSON_BODIES[endpoint.method, endpoint.path]))
        for bad in (b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80", b"ok\x80"):
            raw = marked.encode().replace(b"@@", bad)
            response = await post_raw(api, world, endpoint, raw)
            assert_refused(response, endpoint, 400, "invalid_request")
            assert "JSON" in response.json()["detail"]
    for endpoint in body_endpoints():
        if endpoint.door == "provider":
            body = PROVIDER_BODIES[endpoint.method, endpoint.path]
            raw = json.dumps({**body, "id": "@@"}).encode().replace(b"@@", b"\xff")
            assert_refused(
                await post_raw(api, world, endpoint, raw), endpoint, 400, "invalid_request"
            )
        if endpoint.door == "twilio":
            raw = b"To=%2B14155552671&From=%2B14155550100&Body=\xff\xfe"
            assert_refused(
                await post_raw(api, world, endpoint, raw), endpoint, 400, "invalid_request"
            )
    assert await snapshot(conn) == before


def _mark_first_text(body: Any) -> Any:
    """``body`` with its first text value (in a list too) replaced by the marker @@."""
    if isinstance(body, dict):
        for key, value in body.items():
            if isinstance(value, str | list):
                return {**body, key: _mark_first_text(value)}
    if isinstance(body, list):
        return [_mark_first_text(body[0]), *body[1:]]
    return "@@"


async def test_unknown_fields_are_422_naming_them_on_every_json_endpoint(api, world, conn):
    """Provider posts are left out on purpose: a provider's receipt carries fields of its
    own, which are ignored."""
    before = await snapshot(conn)
    for endpoint in json_endpoints():
        body = JSON_BODIES[endpoint.method, endpoint.path]
        for extra in ({"surprise": 1}, {"Body": "x"}, {"__proto__": {}}, {"to ": None}):
            raw = json.dumps({**body, **extra}).encode()
            response = await post_raw(api, world, endpoint, raw)
            assert_refused(response, endpoint, 422, "invalid_request")
            named = [e["field"] for e in response.json()["errors"]]
            assert named == [next(iter(extra))], (endpoint, extra, named)
    assert await snapshot(conn) == before


async def test_the_valid_bodies_are_accepted(api, world, conn):
    """The bodies the other tests spoil are good ones: each alone is accepted."""
    for endpoint in json_endpoints():
        body = JSON_BODIES[endpoint.method, endpoint.path]
        response = await post_raw(api, world, endpoint, json.dumps(body).encode())
        assert response.status_code < 300, (endpoint, response.text[:300])
