"""Hostile values where a well-formed request carries them: NUL bytes in every text field,
path and query parameter; SQL metacharacters, stored and shown back verbatim; amounts
and integers past what the columns hold; send times far in the future or past. Each is a
clear 4xx with a stable code (or, for a harmless value, an ordinary answer), never a 5xx,
and a refused request leaves nothing behind."""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import quote

from tests import support
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
from tests.isolation.routes import endpoints
from tests.support import VALID_TO, assert_problem

TWILIO_FORM = {"To": VALID_TO, "From": "+14155550100", "Body": "hi"}
TWILIO_FIELDS = (
    "StatusCallback",
    "ValidityPeriod",
    "SendAt",
    "ScheduleType",
    "MessagingServiceSid",
)


def _text_leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, str):
        return [path]
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else []
    )
    return [leaf for key, item in items for leaf in _text_leaves(item, (*path, key))]


def _with(value: Any, path: tuple[Any, ...], new: str) -> Any:
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = _with(value[path[0]], path[1:], new)
    return copy


async def test_a_nul_in_any_text_field_of_any_body_is_refused(api, world, conn):
    before = await snapshot(conn)
    for endpoint in json_endpoints():
        body = JSON_BODIES[endpoint.method, endpoint.path]
        for leaf in _text_leaves(body):
            spoiled = _with(body, leaf, "a\x00b")
            raw = json.dumps(spoiled).encode()
            response = await post_raw(api, world, endpoint, raw)
            assert_refused(response, endpoint, 422, "invalid_request")
    for endpoint in body_endpoints():
        if endpoint.door == "provider":
            body = PROVIDER_BODIES[endpoint.method, endpoint.path]
            for leaf in _text_leaves(body):
                raw = json.dumps(_with(body, leaf, "a\x00b")).encode()
                assert_refused(
                    await post_raw(api, world, endpoint, raw), endpoint, 422, "invalid_request"
                )
        if endpoint.door == "twilio" and endpoint.path.endswith("Messages.json"):
            for field in (*TWILIO_FORM, *TWILIO_FIELDS):
                form = "&".join(
                    f"{k}={quote(v)}" for k, v in {**TWILIO_FORM, field: "a\x00b"}.items()
                )
                assert_refused(
                    await post_raw(api, world, endpoint, form.encode()), endpoint, 400, ""
                )
    assert await snapshot(conn) == before


def _query_parameters(endpoint) -> list[str]:
    from tests.hostile.test_schemathesis import DOCUMENT

    operation = DOCUMENT["paths"].get(endpoint.path, {}).get(endpoint.method.lower(), {})
    names = [p["name"] for p in operation.get("parameters", []) if p["in"] == "query"]
    if endpoint.door == "twilio" and endpoint.method == "GET":
        names += [
            "To",
            "From",
            "DateSent",
            "DateSent<",
            "DateSent>",
            "PageSize",
            "Page",
            "PageToken",
        ]
    return names


HOSTILE_TEXT = ["\x00", "%ff", "' OR '1'='1", "'; DROP TABLE messages; --", "../../etc/passwd"]


async def test_hostile_text_in_every_path_and_query_parameter_is_never_a_server_error(
    api, world, conn
):
    before = await snapshot(conn)
    for endpoint in endpoints():
        if endpoint.method not in ("GET", "DELETE") and endpoint.reads_body:
            continue  # their bodies are above; their parameters are the same ids
        names = [n for n in endpoint.path.split("{")[1:]]
        path_params = [n.split("}")[0] for n in names]
        for text in HOSTILE_TEXT:
            raw = text if text == "%ff" else quote(text, safe="")
            for spoiled in path_params:
                ids = {**world.ids, spoiled: raw}
                url = endpoint.path.format(**ids)
                response = await api.request(
                    endpoint.method, url, headers=world.headers[endpoint.door]
                )
                _assert_answered(response, endpoint, url)
            for name in _query_parameters(endpoint):
                url = f"{world.url(endpoint.path)}?{quote(name, safe='')}={raw}"
                response = await api.request(
                    endpoint.method, url, headers=world.headers[endpoint.door]
                )
                _assert_answered(response, endpoint, url)
    assert await snapshot(conn) == before


def _assert_answered(response, endpoint, url: str) -> None:
    assert response.status_code < 500, (endpoint.method, url, response.text[:300])
    if response.status_code >= 400 and endpoint.door in ("tenant", "admin", "provider"):
        assert response.headers["content-type"].startswith("application/problem+json"), url
        assert response.json()["code"] in ("invalid_request", "not_found"), url


SQL_TEXT = [
    "' OR '1'='1",
    "'; DROP TABLE messages; --",
    '"); DELETE FROM balances; --',
    "%(tenant_id)s %s {0} $1 $$x$$ \\' \\\\",
    "_%' UNION SELECT secret_sha256 FROM api_keys --",
]


async def test_sql_metacharacters_are_stored_and_shown_verbatim(api, admin_headers, world, conn):
    tenant = world.tenant
    sent_ids = []
    for text in SQL_TEXT:
        created = await api.post("/v1/admin/tenants", json={"name": text}, headers=admin_headers)
        assert created.status_code == 201, created.text
        shown = await api.get(f"/v1/admin/tenants/{created.json()['id']}", headers=admin_headers)
        assert shown.json()["name"] == text

        callback = "https://example.com/cb?q=" + quote(text, safe="'();$%{}\\")
        sent = await support.send(
            api,
            tenant,
            body=text,
            client_reference=text,
            callback_url=callback,
            headers={"Idempotency-Key": text},
        )
        assert sent.status_code == 202, sent.text
        message = (
            await api.get(f"/v1/messages/{sent.json()['id']}", headers=tenant.headers)
        ).json()
        assert (message["body"], message["client_reference"], message["callback_url"]) == (
            text,
            text,
            callback,
        )
        replay = await support.send(
            api,
            tenant,
            body=text,
            client_reference=text,
            callback_url=callback,
            headers={"Idempotency-Key": text},
        )
        assert replay.json()["id"] == sent.json()["id"]  # the key was matched verbatim
        sent_ids.append(sent.json()["id"])

        changed = await api.patch(
            f"/v1/admin/tenants/{tenant.id}", json={"help_reply": text}, headers=admin_headers
        )
        assert changed.json()["help_reply"] == text
        url = f"/v1/admin/tenants/{tenant.id}/credits"
        for expected in (201, 200):  # the second is recognised as the same reference
            credit = await api.post(
                url, json={"amount": 1, "reference": text}, headers=admin_headers
            )
            assert credit.status_code == expected, credit.text

        # As filters they match nothing, rather than everything.
        for path, params in (
            ("/v1/messages", {"to": text}),
            ("/v1/suppressions", {"recipient": text}),
        ):
            listed = await api.get(path, params=params, headers=tenant.headers)
            assert listed.status_code in (200, 422), listed.text
            if listed.status_code == 200:
                assert next(iter(listed.json().values())) == [], (path, text)
        delivery = await api.get(
            "/v1/admin/reports/delivery", params={"provider": text}, headers=admin_headers
        )
        assert delivery.status_code == 200, delivery.text
        assert delivery.json()["rows"] == []

    # Every message is there once, and every table is still there.
    listed = await api.get("/v1/messages", params={"limit": 500}, headers=tenant.headers)
    ids = [m["id"] for m in listed.json()["messages"]]
    assert set(sent_ids) <= set(ids)
    assert len(ids) == len(sent_ids) + 1  # and the world's own message
    assert (await snapshot(conn))["messages"] == len(sent_ids) + 1


BAD_AMOUNTS: list[bytes] = [
    b"9223372036854775807",
    b"9223372036854775808",
    b"18446744073709551616",
    b"1" + b"0" * 400,
    b"-9223372036854775808",
    b"1000000000000001",  # one over the most one credit may add
    b"-0",
    b"1.0",
    b"1e3",
    b"1e308",
    b"true",
    b"null",
    b'"1e3"',
    b"[]",
    b"{}",
]


async def test_amounts_that_are_not_a_credit_are_refused(api, admin_headers, world, conn):
    url = f"/v1/admin/tenants/{world.tenant.id}/credits"
    before = await snapshot(conn)
    for raw in BAD_AMOUNTS:
        response = await api.post(
            url,
            content=b'{"amount": ' + raw + b', "reference": "r"}',
            headers={**admin_headers, "Content-Type": "application/json"},
        )
        body = assert_problem(response, 422, "invalid_request")
        assert [e["field"] for e in body["errors"]] == ["amount"], raw
    assert await snapshot(conn) == before
    largest = await api.post(
        url, json={"amount": 10**15, "reference": "largest"}, headers=admin_headers
    )
    assert largest.status_code == 201, largest.text


async def test_a_credit_past_the_largest_balance_is_refused_and_changes_nothing(
    api, admin_headers, world, conn
):
    # 9,223 top-ups of the largest credit, as if made over years: one more would take
    # the balance past what a 64-bit integer holds.
    await conn.execute(
        "INSERT INTO ledger_credits (tenant_id, amount, reference)"
        " SELECT %(t)s, 1000000000000000, 'year-' || n FROM generate_series(1, 9223) n",
        {"t": world.tenant.id},
    )
    await conn.execute(
        "UPDATE balances SET credits = credits + 9223000000000000000,"
        " available = available + 9223000000000000000 WHERE tenant_id = %(t)s",
        {"t": world.tenant.id},
    )
    before = await snapshot(conn)
    response = await api.post(
        f"/v1/admin/tenants/{world.tenant.id}/credits",
        json={"amount": 10**15, "reference": "one-too-many"},
        headers=admin_headers,
    )
    body = assert_problem(response, 422, "invalid_request")
    assert [e["field"] for e in body["errors"]] == ["amount"]
    assert await snapshot(conn) == before
    # The tenant can still spend it.
    assert (await support.send(api, world.tenant)).status_code == 202


# (endpoint, field, values): integers the columns behind them cannot hold, or that make
# no sense, on the other endpoints that take numbers.
BAD_NUMBERS: list[tuple[str, str, str, list[Any]]] = [
    ("PATCH", "/v1/admin/tenants/{tenant_id}", "price_per_segment", [-1, 10**12 + 1, 2**63, 1.5]),
    ("PATCH", "/v1/admin/tenants/{tenant_id}", "rate_limit_mps", [0, -1, 10**6 + 1, 2**31, 2**64]),
    ("POST", "/v1/admin/tenants", "rate_limit_mps", [0, 2**31, 2**63, 1e3]),
    ("POST", "/v1/admin/routes", "priority", [2**31, -(2**31) - 1, 2**63, 0.5]),
    ("POST", "/v1/admin/routes", "cost_per_segment", [-1, 10**12 + 1, 2**63, 2**64]),
    ("PATCH", "/v1/admin/routes/{route_id}", "priority", [2**31, -(2**31) - 1, 2**63, 0.5]),
    ("PATCH", "/v1/admin/routes/{route_id}", "cost_per_segment", [-1, 10**12 + 1, 2**64]),
    ("PUT", "/v1/admin/providers/{name}", "mps", [0, 10**6 + 1, 2**31, 2**63]),
    ("POST", "/v1/admin/tenants/{tenant_id}/smpp-credentials", "max_binds", [0, 65, 2**31, 2**63]),
    ("PATCH", "/v1/admin/tenants/{tenant_id}/smpp-credentials", "max_binds", [0, 65, 2**63]),
    ("POST", "/v1/messages", "validity_seconds", [0, -1, 2**31, 2**63, 2**64]),
    ("POST", "/v1/messages/quote", "validity_seconds", [2**63]),
]


async def test_integers_out_of_range_are_422_naming_the_field(api, world, conn):
    before = await snapshot(conn)
    by_key = {(e.method, e.path): e for e in json_endpoints()}
    for method, path, field, values in BAD_NUMBERS:
        endpoint = by_key[method, path]
        for value in values:
            body = {**JSON_BODIES[method, path], field: value}
            response = await post_raw(api, world, endpoint, json.dumps(body).encode())
            problem = assert_problem(response, 422, "invalid_request")
            assert field in [e["field"] for e in problem["errors"]], (path, field, value)
    assert await snapshot(conn) == before


SEND_AT = [
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59-23:59",
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+23:59",
    "1970-01-01T00:00:00Z",
    "2000-02-30T00:00:00Z",
    "2030-06-30T23:59:60Z",
    "+275760-09-13T00:00:00Z",
    "10000-01-01T00:00:00Z",
]


async def test_send_times_far_away_are_refused_on_every_way_to_send(api, world, conn):
    before = await snapshot(conn)
    tenant = world.tenant
    for send_at in [*SEND_AT, 0, 4102444800, -1]:
        for path in ("/v1/messages", "/v1/messages/quote"):
            response = await api.post(
                path, json={"to": VALID_TO, "body": "x", "send_at": send_at}, headers=tenant.headers
            )
            problem = assert_problem(response, 422, "invalid_request")
            assert [e["field"] for e in problem["errors"]] == ["send_at"], (send_at, problem)
        batch = await api.post(
            "/v1/messages/batch",
            json={"messages": [{"to": VALID_TO, "body": "x", "send_at": send_at}]},
            headers=tenant.headers,
        )
        problem = assert_problem(batch, 422, "invalid_request")
        assert "send_at" in json.dumps(problem["errors"]), (send_at, problem)
    for send_at in SEND_AT:
        form = {**TWILIO_FORM, "SendAt": send_at, "ScheduleType": "fixed"}
        response = await api.post(
            world.url("/2010-04-01/Accounts/{account_sid}/Messages.json"),
            data=form,
            headers=world.headers["twilio"],
        )
        assert response.status_code == 400, (send_at, response.text)
        assert response.json()["code"] in (35111, 35114), (send_at, response.text)
    assert await snapshot(conn) == before


async def test_unknown_ids_of_every_kind_are_not_found(api, world):
    """Well-formed ids that name nothing: 404, never a guess at another resource."""
    nobody = str(uuid.uuid4())
    for endpoint in endpoints():
        if endpoint.door not in ("tenant", "admin") or "{" not in endpoint.path:
            continue
        ids = {
            **world.ids,
            "tenant_id": nobody,
            "message_id": nobody,
            "key_id": nobody,
            "route_id": "987654321",
            "name": "nobody",
            "number": "+14155550142",
            "recipient": "+14155550142",
            "card": "nobody",
            "sender_id": "NOBODY",
            "country": "ZZ",  # no rule
        }
        body = JSON_BODIES.get((endpoint.method, endpoint.path))
        csv = CSV_BODIES.get((endpoint.method, endpoint.path))
        if csv is None:
            response = await api.request(
                endpoint.method,
                endpoint.path.format(**ids),
                json=body,
                headers=world.headers[endpoint.door],
            )
        else:  # a price list, as CSV
            response = await api.request(
                endpoint.method,
                endpoint.path.format(**ids),
                content=csv.encode(),
                headers={**world.headers[endpoint.door], "Content-Type": "text/csv"},
            )
        if endpoint.path == "/v1/admin/rate-cards/{card}/versions":  # makes the card it names
            assert response.status_code == 201, response.text
            continue
        if endpoint.path == "/v1/admin/providers/{name}":  # PUT creates the provider it names
            assert response.status_code == 200, response.text
            continue
        if (endpoint.method, endpoint.path) == ("PUT", "/v1/admin/sender-rules/{country}"):
            assert response.status_code == 200, response.text  # sets the country's rule
            continue
        if (endpoint.method, endpoint.path) == ("PUT", "/v1/admin/pumping-limits/{country}"):
            # A limit names a country a number can be in: ZZ is no country (issue 25).
            body = assert_problem(response, 422, "invalid_request")
            assert [e["field"] for e in body["errors"]] == ["country"]
            continue
        assert_refused(response, endpoint, 404, "not_found")
