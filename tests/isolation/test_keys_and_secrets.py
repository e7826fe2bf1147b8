"""Who may call what, with which credentials, on every endpoint the route table lists:
a revoked key (or a replaced Twilio token) is refused at once by every API process;
admin endpoints refuse tenant keys, tenant endpoints the admin token, each door the
other doors' credentials; secrets shown once never show again, in answers or in logs;
failed Twilio logins count towards the same throttle as bearer keys; receipts and
inbound posts need the provider's signature over the very body posted.

Not repeated here: tests/app/test_errors.py (bad keys on the message endpoints, five admin
endpoints), test_admin_api.py (revocation within one process, GET tenant shows no
secret), test_auth_throttle.py (bearer failures across processes), test_dlr.py and
test_inbound.py (unsigned or wrongly keyed posts), tests/ops/test_logs.py (a workload's
logs through real processes)."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
from collections.abc import AsyncIterator

import httpx
import msgspec

from app.factory import create_app
from providers.http import SIGNATURE_HEADER, signature
from tests import support, two_way
from tests.conftest import ADMIN_TOKEN
from tests.hostile.bodies import JSON_BODIES, PROVIDER_BODIES, assert_refused
from tests.hostile.conftest import api_on_loopback, snapshot
from tests.isolation.routes import Endpoint, endpoints, of


@contextlib.asynccontextmanager
async def another_process(settings, **changes) -> AsyncIterator[httpx.AsyncClient]:
    """A second API process: its own app and connection pool on the same database."""
    app = create_app(msgspec.structs.replace(settings, **changes))
    async with app.lifespan():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw2") as client:
            yield client


async def _call(client, world, endpoint: Endpoint, headers: dict[str, str]) -> httpx.Response:
    body = JSON_BODIES.get((endpoint.method, endpoint.path))
    if endpoint.door == "twilio" and endpoint.method == "POST":
        return await client.request(
            endpoint.method, world.url(endpoint.path), data={"Body": "x"}, headers=headers
        )
    return await client.request(
        endpoint.method, world.url(endpoint.path), json=body, headers=headers
    )


async def test_a_revoked_key_is_refused_at_once_by_every_process_on_every_endpoint(
    api, admin_headers, world, settings, conn
):
    spare = {"Authorization": f"Bearer {world.secrets['spare api key']}"}
    async with another_process(settings) as other:
        assert (await other.get("/v1/balance", headers=spare)).status_code == 200
        revoked = await api.delete(world.url("/v1/admin/api-keys/{key_id}"), headers=admin_headers)
        assert revoked.status_code == 204
        before = await snapshot(conn)
        for endpoint in of("tenant"):
            for client in (other, api):
                response = await _call(client, world, endpoint, spare)
                assert_refused(response, endpoint, 401, "unauthorized")
        assert await snapshot(conn) == before
        # The tenant's other key is untouched, in both processes.
        for client in (other, api):
            assert (
                await client.get("/v1/balance", headers=world.headers["tenant"])
            ).status_code == 200


async def test_a_replaced_twilio_token_is_refused_at_once_by_every_process(
    api, admin_headers, world, settings, conn
):
    old = world.headers["twilio"]
    async with another_process(settings) as other:
        messages = world.url("/2010-04-01/Accounts/{account_sid}/Messages.json")
        assert (await other.get(messages, headers=old)).status_code == 200
        renewed = await api.post(
            world.url("/v1/admin/tenants/{tenant_id}/twilio-credentials"), headers=admin_headers
        )
        new_token = renewed.json()["auth_token"]
        before = await snapshot(conn)
        for endpoint in of("twilio"):
            response = await _call(other, world, endpoint, old)
            assert_refused(response, endpoint, 401, "unauthorized")
            assert response.json()["code"] == 20003
        assert await snapshot(conn) == before
        new = {"Authorization": "Basic " + _b64(f"{world.ids['account_sid']}:{new_token}")}
        assert (await other.get(messages, headers=new)).status_code == 200


def _b64(text: str) -> str:
    import base64

    return base64.b64encode(text.encode()).decode()


async def test_each_door_refuses_the_other_doors_credentials(api, world, conn):
    before = await snapshot(conn)
    tenant, admin, twilio = (world.headers[d] for d in ("tenant", "admin", "twilio"))
    bearer_twilio = {"Authorization": f"Bearer {world.secrets['twilio auth token']}"}
    for endpoint in of("admin"):
        assert_refused(await _call(api, world, endpoint, tenant), endpoint, 403, "forbidden")
        for headers in (twilio, bearer_twilio, {}):
            refused = await _call(api, world, endpoint, headers)
            assert_refused(refused, endpoint, 401, "unauthorized")
    for endpoint in of("tenant"):
        for headers in (admin, twilio, bearer_twilio):
            refused = await _call(api, world, endpoint, headers)
            assert_refused(refused, endpoint, 401, "unauthorized")
    for endpoint in of("twilio"):
        for headers in (tenant, admin, {}):
            refused = await _call(api, world, endpoint, headers)
            assert_refused(refused, endpoint, 401, "unauthorized")
    assert await snapshot(conn) == before
    # And the right credentials still open each door.
    assert (await api.get("/v1/admin/providers", headers=admin)).status_code == 200
    assert (await api.get("/v1/balance", headers=tenant)).status_code == 200


async def test_secrets_shown_once_never_show_again(api, world):
    """Every endpoint that reads (all doors, public pages included) and every change
    an operator or tenant makes afterwards answers without any secret in it."""
    answers: list[tuple[str, httpx.Response]] = []
    for endpoint in endpoints():
        if endpoint.method == "GET":
            response = await api.get(world.url(endpoint.path), headers=world.headers[endpoint.door])
            answers.append((f"GET {endpoint.path}", response))
    for endpoint in endpoints():
        body = JSON_BODIES.get((endpoint.method, endpoint.path))
        if endpoint.method in ("PATCH", "PUT") and body is not None:
            response = await api.request(
                endpoint.method,
                world.url(endpoint.path),
                json=body,
                headers=world.headers[endpoint.door],
            )
            answers.append((f"{endpoint.method} {endpoint.path}", response))
    sent = await support.send(api, world.tenant, callback_url="https://example.com/hook")
    answers.append(("send", sent))
    wrong = world.secrets["api key"][:-4] + "AAAA"
    refused = await api.get("/v1/balance", headers={"Authorization": f"Bearer {wrong}"})
    answers.append(("a wrong key", refused))
    assert all(r.status_code < 500 for _, r in answers)
    assert sum(r.status_code == 200 for _, r in answers) >= 25
    for where, response in answers:
        for what, secret in {**world.secrets, "a wrong key": wrong}.items():
            assert secret not in response.text, f"{what} in the answer to {where}"


async def test_receipts_and_inbound_need_this_providers_signature_over_this_body(
    api, world, admin_headers, conn
):
    for name, provider in (
        ("quiet", {"kind": "http", "config": {"url": "http://127.0.0.1:9/"}}),
        ("sim", {"kind": "simulator"}),
    ):
        response = await api.put(
            f"/v1/admin/providers/{name}", json=provider, headers=admin_headers
        )
        assert response.status_code == 200, response.text
    before = await snapshot(conn)
    secret = two_way.SECRET
    for endpoint in of("provider"):
        raw = json.dumps(PROVIDER_BODIES[endpoint.method, endpoint.path]).encode()
        other = raw.replace(b"hi", b"yo").replace(b"delivered", b"undelivered")
        digest = hmac.new(secret.encode(), raw, hashlib.sha256)
        forged = [
            ("agg", signature(secret, other)),  # a real signature, of another body
            ("agg", digest.hexdigest()),  # without its scheme
            ("agg", "sha256=" + digest.hexdigest()[:32]),  # truncated
            ("agg", "sha256="),
            ("agg", "sha1=" + hmac.new(secret.encode(), raw, hashlib.sha1).hexdigest()),
            ("quiet", signature("", raw)),  # no secret configured: nothing verifies
            ("quiet", signature(secret, raw)),  # another provider's secret
            ("sim", signature(secret, raw)),
            ("sim", signature("", raw)),
        ]
        for provider, header in forged:
            url = endpoint.path.format(provider=provider)
            response = await api.post(
                url,
                content=raw,
                headers={"Content-Type": "application/json", SIGNATURE_HEADER: header},
            )
            assert_refused(response, endpoint, 401, "unauthorized")
    assert await snapshot(conn) == before
    # The right signature over the same body is accepted.
    [dlr] = [e for e in of("provider") if e.path.endswith("/dlr")]
    raw = json.dumps(PROVIDER_BODIES[dlr.method, dlr.path]).encode()
    accepted = await api.post(
        "/v1/providers/agg/dlr",
        content=raw,
        headers={"Content-Type": "application/json", SIGNATURE_HEADER: signature(secret, raw)},
    )
    assert accepted.status_code == 202, accepted.text


async def test_failed_twilio_logins_count_towards_the_same_throttle(settings, world):
    wrong = {"Authorization": "Basic " + _b64(f"{world.ids['account_sid']}:{'0' * 32}")}
    messages = world.url("/2010-04-01/Accounts/{account_sid}/Messages.json")
    async with another_process(settings, auth_failures_limit=3) as gateway:
        for _ in range(3):
            refused = await gateway.get(messages, headers=wrong)
            assert refused.status_code == 401
            assert refused.json()["code"] == 20003
        blocked = await gateway.get(messages, headers=world.headers["twilio"])
        assert blocked.status_code == 429, blocked.text
        assert blocked.json()["code"] == 20429
        assert 1 <= int(blocked.headers["Retry-After"]) <= 60
        # The address is blocked at every door, the REST API's included.
        rest = await gateway.get("/v1/balance", headers=world.headers["tenant"])
        support.assert_problem(rest, 429, "rate_limited")


def test_no_secret_reaches_the_logs_of_a_real_api_process(pg_server, template_db, tmp_path):
    """At DEBUG, through every kind of credential and secret the API handles: issued,
    used, refused, revoked, signed with."""
    log = tmp_path / "api.log"
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    secrets: dict[str, str] = {"admin token": ADMIN_TOKEN}
    with (
        api_on_loopback(pg_server, template_db, log, log_level="DEBUG") as (base, _),
        httpx.Client(base_url=base, timeout=10) as http,
    ):
        tenant = http.post("/v1/admin/tenants", json={"name": "acme"}, headers=admin).json()
        tid = tenant["id"]
        http.post(
            f"/v1/admin/tenants/{tid}/credits",
            json={"amount": 10**6, "reference": "r"},
            headers=admin,
        )
        spare = http.post(f"/v1/admin/tenants/{tid}/api-keys", headers=admin).json()
        twilio = http.post(f"/v1/admin/tenants/{tid}/twilio-credentials", headers=admin).json()
        smpp = http.post(f"/v1/admin/tenants/{tid}/smpp-credentials", json={}, headers=admin).json()
        provider = {
            "kind": "http",
            "config": {"url": "http://127.0.0.1:9/", "dlr_secret": "dlr-s3cret"},
        }
        http.put("/v1/admin/providers/agg", json=provider, headers=admin)
        key = tenant["api_key"]
        wrong_key = key[:-4] + "AAAA"
        basic = _b64(f"{twilio['account_sid']}:{twilio['auth_token']}")
        wrong_basic = _b64(f"{twilio['account_sid']}:{'f' * 32}")
        receipt = json.dumps({"id": "X-1", "status": "delivered"}).encode()
        signed = signature("dlr-s3cret", receipt)
        secrets |= {
            "api key": key,
            "secret half of the api key": key.split("_", 2)[2],
            "spare api key": spare["api_key"],
            "wrong key": wrong_key,
            "webhook secret": tenant["webhook_secret"],
            "twilio token": twilio["auth_token"],
            "basic credentials": basic,
            "wrong basic credentials": wrong_basic,
            "smpp password": smpp["password"],
            "dlr secret": "dlr-s3cret",
            "receipt signature": signed,
        }
        bearer = {"Authorization": f"Bearer {key}"}
        assert (
            http.post(
                "/v1/messages", json={"to": support.VALID_TO, "body": "hi"}, headers=bearer
            ).status_code
            == 202
        )
        assert (
            http.get("/v1/balance", headers={"Authorization": f"Bearer {wrong_key}"}).status_code
            == 401
        )
        assert (
            http.get("/v1/admin/providers", headers={"Authorization": "Bearer nope"}).status_code
            == 401
        )
        assert http.get("/v1/admin/providers", headers=bearer).status_code == 403
        messages = f"/2010-04-01/Accounts/{twilio['account_sid']}/Messages.json"
        assert http.get(messages, headers={"Authorization": f"Basic {basic}"}).status_code == 200
        assert (
            http.get(messages, headers={"Authorization": f"Basic {wrong_basic}"}).status_code == 401
        )
        dlr = {"Content-Type": "application/json", SIGNATURE_HEADER: signed}
        assert http.post("/v1/providers/agg/dlr", content=receipt, headers=dlr).status_code == 202
        assert http.delete(f"/v1/admin/api-keys/{spare['id']}", headers=admin).status_code == 204
        gone = {"Authorization": f"Bearer {spare['api_key']}"}
        assert http.get("/v1/balance", headers=gone).status_code == 401
    text = log.read_text()
    assert "http.request" in text  # the process did log, at DEBUG
    assert len(text.splitlines()) >= 15
    for what, secret in secrets.items():
        assert secret not in text, f"the {what} is in the API's log"
