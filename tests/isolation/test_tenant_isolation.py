"""One tenant can never read, list, cancel or be billed for another's messages, through
any endpoint a tenant can call (the REST API and the Twilio facade, listed from the app's
route table: an endpoint added without a check here fails the first test). Alice has
messages of every kind; Bob, with keys of his own, tries each endpoint on them."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from core import pumping, webhook_policy
from core.dispatch import DispatchConfig
from jobs.callbacks import deliver_batch
from jobs.context import WorkerDeps
from jobs.scheduler import DISPATCH_TASK, ProcrastinateScheduler
from jobs.upstreams import DatabaseUpstreams
from jobs.webhook_transport import webhook_client
from tests import httpd, support, two_way
from tests.isolation.routes import endpoints
from tests.support import VALID_TO, TenantHandle, assert_problem

ALICE_TO = "+447911123456"  # only Alice sends here
ALICE_NUMBER, BOB_NUMBER = two_way.OUR_NUMBER, two_way.OTHER_NUMBER


@dataclass
class Party:
    tenant: TenantHandle
    twilio: dict[str, str]
    messages: dict[str, str]  # kind -> id: queued, scheduled, inbound
    # Alice's destination suspended by pumping protection (issue 25).
    suspension: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        return self.tenant.headers

    @property
    def basic(self) -> dict[str, str]:
        raw = f"{self.twilio['account_sid']}:{self.twilio['auth_token']}".encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode()}

    def twilio_url(self, tail: str) -> str:
        return f"/2010-04-01/Accounts/{self.twilio['account_sid']}{tail}"


async def _party(api, admin_headers, name: str, number: str, to: str, price: int) -> Party:
    tenant = await support.make_tenant(api, admin_headers, credit=10_000_000, name=name)
    # An inbound webhook, so the inbound message below leaves a webhook delivery.
    await two_way.configure(
        api,
        admin_headers,
        tenant,
        price_per_segment=price,
        inbound_url=f"https://hooks.example.com/{name}",
    )
    await two_way.own(api, admin_headers, tenant, number)
    twilio = (
        await api.post(f"/v1/admin/tenants/{tenant.id}/twilio-credentials", headers=admin_headers)
    ).json()
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    queued = await support.send(api, tenant, to=to, client_reference=f"{name}-q")
    scheduled = await support.send(api, tenant, to=to, send_at=later, client_reference=name)
    await two_way.text_in(api, f"hello {name}", id=f"mo-{name}", to=number)
    listed = await api.get("/v1/messages", params={"direction": "inbound"}, headers=tenant.headers)
    [inbound] = listed.json()["messages"]
    suppressed = await api.post("/v1/suppressions", json={"recipient": to}, headers=tenant.headers)
    assert suppressed.status_code == 201, suppressed.text
    return Party(
        tenant,
        twilio,
        {
            "queued": queued.json()["id"],
            "scheduled": scheduled.json()["id"],
            "inbound": inbound["id"],
        },
    )


async def _exposed(api, admin_headers, conn, settings, alice: Party) -> None:
    """Alice has geo permissions, alert settings and a suspended destination of her own
    (her traffic to ALICE_TO's country over an operator limit of 1 an hour)."""
    country = "GG"  # ALICE_TO's, per libphonenumber
    geo = await api.put(
        f"/v1/admin/tenants/{alice.tenant.id}/geo-permissions",
        json={"countries": [country]},
        headers=admin_headers,
    )
    assert geo.status_code == 200, geo.text
    alerts = await api.patch(
        "/v1/alerts",
        json={"alerts_url": "https://hooks.example.com/alice-alerts"},
        headers=alice.headers,
    )
    assert alerts.status_code == 200, alerts.text
    limit = f"/v1/admin/pumping-limits/{country}"
    assert (
        await api.put(limit, json={"hourly_limit": 1}, headers=admin_headers)
    ).status_code == 200
    async with conn.transaction():
        assert await pumping.judge(conn, settings, task=DISPATCH_TASK) == 1
    assert (await api.delete(limit, headers=admin_headers)).status_code == 204
    [suspension] = (await api.get("/v1/suspensions", headers=alice.headers)).json()["suspensions"]
    alice.suspension = suspension["id"]


@pytest.fixture
async def alice_and_bob(api, admin_headers, conn, settings) -> tuple[Party, Party]:
    await two_way.http_provider(api, admin_headers)
    alice = await _party(api, admin_headers, "alice", ALICE_NUMBER, ALICE_TO, price=6_000)
    await _exposed(api, admin_headers, conn, settings, alice)
    # Bob sends to VALID_TO and lifts his own suppression of it, so he can send again.
    bob = await _party(api, admin_headers, "bob", BOB_NUMBER, VALID_TO, price=9_000)
    lifted = await api.delete(f"/v1/suppressions/{VALID_TO}", headers=bob.headers)
    assert lifted.status_code == 204, lifted.text
    return alice, bob


async def _alice_untouched(api: httpx.AsyncClient, alice: Party) -> None:
    """Alice's books and messages are as she left them: two holds of 6,000, nothing else."""
    assert await support.balance(api, alice.tenant) == {
        "available": 10_000_000 - 12_000,
        "held": 12_000,
        "captured": 0,
        "currency": "USD",
    }
    listed = await api.get("/v1/messages", headers=alice.headers)
    assert {m["id"]: m["status"] for m in listed.json()["messages"]} == {
        alice.messages["queued"]: "queued",
        alice.messages["scheduled"]: "scheduled",
    }


def _ids(response: httpx.Response) -> set[str]:
    assert response.status_code == 200, response.text
    return {m["id"] for m in response.json()["messages"]}


Check = Callable[[httpx.AsyncClient, Party, Party], Awaitable[None]]
CHECKS: dict[tuple[str, str], Check] = {}


def check(method: str, path: str) -> Callable[[Check], Check]:
    def register(fn: Check) -> Check:
        CHECKS[method, path] = fn
        return fn

    return register


@check("GET", "/v1/messages/{message_id}")
async def _read(api, alice, bob):
    for message_id in alice.messages.values():
        refused = await api.get(f"/v1/messages/{message_id}", headers=bob.headers)
        body = assert_problem(refused, 404, "not_found")
        assert message_id not in refused.text
        assert "alice" not in str(body)


@check("GET", "/v1/messages")
async def _list(api, alice, bob):
    mine = _ids(await api.get("/v1/messages", params={"limit": 500}, headers=bob.headers))
    assert {bob.messages["queued"], bob.messages["scheduled"]} <= mine
    assert not mine & set(alice.messages.values())
    for params in (
        {"to": ALICE_TO},
        {"status": "scheduled"},
        {"created_after": "2000-01-01T00:00:00Z", "to": ALICE_TO},
    ):
        assert _ids(await api.get("/v1/messages", params=params, headers=bob.headers)) <= mine
    inbound = await api.get("/v1/messages", params={"direction": "inbound"}, headers=bob.headers)
    assert _ids(inbound) == {bob.messages["inbound"]}
    # Alice's cursor names a place in her list; in Bob's hands it walks Bob's list only.
    page = await api.get("/v1/messages", params={"limit": 1}, headers=alice.headers)
    cursor = page.json()["next_cursor"]
    assert cursor
    walked = await api.get("/v1/messages", params={"cursor": cursor}, headers=bob.headers)
    assert walked.status_code in (200, 422), walked.text
    if walked.status_code == 200:
        assert _ids(walked) <= mine


@check("POST", "/v1/messages/{message_id}/cancel")
async def _cancel(api, alice, bob):
    for message_id in alice.messages.values():
        refused = await api.post(f"/v1/messages/{message_id}/cancel", headers=bob.headers)
        assert_problem(refused, 404, "not_found")


@check("POST", "/v1/messages")
async def _send(api, alice, bob):
    sent = await support.send(api, bob.tenant)
    assert sent.status_code == 202, sent.text
    assert sent.json()["price"] == 9_000  # Bob's price, on Bob's books
    assert_problem(
        await api.get(f"/v1/messages/{sent.json()['id']}", headers=alice.headers), 404, "not_found"
    )
    # Bob's message to the number Alice suppressed is not refused: her list is hers.
    assert (await support.send(api, bob.tenant, to=ALICE_TO)).status_code == 202
    # From Alice's number, Bob may not send: the number is hers. Nothing held.
    before = await support.balance(api, bob.tenant)
    refused = await support.send(api, bob.tenant, **{"from": ALICE_NUMBER})
    assert_problem(refused, 422, "sender_not_allowed")
    assert await support.balance(api, bob.tenant) == before


@check("POST", "/v1/messages/batch")
async def _batch(api, alice, bob):
    items = [{"to": VALID_TO, "body": "x"}, {"to": ALICE_TO, "body": "y"}]
    batch = await api.post("/v1/messages/batch", json={"messages": items}, headers=bob.headers)
    assert batch.status_code == 202, batch.text
    assert [m["price"] for m in batch.json()["messages"]] == [9_000, 9_000]
    # An item from Alice's number is refused on its own; the others are accepted.
    items = [{"to": VALID_TO, "body": "x"}, {"to": VALID_TO, "body": "y", "from": ALICE_NUMBER}]
    batch = await api.post("/v1/messages/batch", json={"messages": items}, headers=bob.headers)
    assert batch.status_code == 202, batch.text
    assert [m["body"] for m in batch.json()["messages"]] == ["x"]
    assert [(e["index"], e["code"]) for e in batch.json()["errors"]] == [(1, "sender_not_allowed")]


@check("POST", "/v1/messages/quote")
async def _quote(api, alice, bob):
    quote = await api.post(
        "/v1/messages/quote", json={"to": ALICE_TO, "body": "x"}, headers=bob.headers
    )
    assert quote.json()["price"] == 9_000


@check("GET", "/v1/balance")
async def _balance(api, alice, bob):
    balance = await support.balance(api, bob.tenant)
    spent = 10_000_000 - balance["available"]
    assert spent == balance["held"]
    assert spent % 9_000 == 0


@check("GET", "/v1/reports/usage")
async def _usage(api, alice, bob):
    report = await api.get("/v1/reports/usage", params={"group_by": "status"}, headers=bob.headers)
    assert report.status_code == 200, report.text
    listed = await api.get("/v1/messages", params={"limit": 500}, headers=bob.headers)
    assert sum(r["messages"] for r in report.json()["rows"]) == len(listed.json()["messages"])


@check("GET", "/v1/messages/export")
async def _export(api, alice, bob):
    for fmt in ("csv", "jsonl"):
        exported = await api.get("/v1/messages/export", params={"format": fmt}, headers=bob.headers)
        assert exported.status_code == 200, exported.text
        assert exported.text.strip()  # bob's own messages are there
        for message_id in alice.messages.values():
            assert message_id not in exported.text


@check("GET", "/v1/suppressions")
async def _suppressions(api, alice, bob):
    listed = await api.get("/v1/suppressions", headers=bob.headers)
    assert ALICE_TO not in listed.text
    filtered = await api.get(
        "/v1/suppressions", params={"recipient": ALICE_TO}, headers=bob.headers
    )
    assert filtered.json()["suppressions"] == []


@check("POST", "/v1/suppressions")
async def _suppress(api, alice, bob):
    # Bob suppressing a recipient changes nothing for Alice: she can still send to it.
    other = "+447911123499"
    added = await api.post("/v1/suppressions", json={"recipient": other}, headers=bob.headers)
    assert added.status_code == 201, added.text
    mine = await api.get("/v1/suppressions", params={"recipient": other}, headers=alice.headers)
    assert mine.json()["suppressions"] == []
    quote = await api.post(
        "/v1/messages/quote", json={"to": other, "body": "x"}, headers=alice.headers
    )
    assert quote.status_code == 200


@check("DELETE", "/v1/suppressions/{recipient}")
async def _unsuppress(api, alice, bob):
    refused = await api.delete(f"/v1/suppressions/{ALICE_TO}", headers=bob.headers)
    assert_problem(refused, 404, "not_found")
    still = await api.get("/v1/suppressions", params={"recipient": ALICE_TO}, headers=alice.headers)
    assert len(still.json()["suppressions"]) == 1


@check("GET", "/v1/audit")
async def _audit(api, alice, bob):
    listed = await api.get("/v1/audit", params={"limit": 500}, headers=bob.headers)
    assert listed.status_code == 200, listed.text
    events = listed.json()["events"]
    assert {e["tenant_id"] for e in events} == {bob.tenant.id}
    assert {"tenant.created", "number.added", "suppression.added"} <= {e["action"] for e in events}
    for text in (alice.tenant.id, ALICE_NUMBER, ALICE_TO, "hooks.example.com/alice"):
        assert text not in listed.text
    # Not even by asking for her id: a tenant's trail has no tenant filter.
    asked = await api.get("/v1/audit", params={"tenant_id": alice.tenant.id}, headers=bob.headers)
    assert alice.tenant.id not in asked.text


@check("GET", "/v1/webhooks/deliveries")
async def _webhook_deliveries(api, alice, bob):
    listed = await api.get("/v1/webhooks/deliveries", params={"limit": 500}, headers=bob.headers)
    assert listed.status_code == 200, listed.text
    deliveries = listed.json()["deliveries"]
    assert [d["url"] for d in deliveries] == ["https://hooks.example.com/bob"]
    assert "alice" not in listed.text
    assert alice.tenant.webhook_secret not in listed.text
    assert bob.tenant.webhook_secret not in listed.text


@check("POST", "/v1/webhooks/secret")
async def _webhook_secret(api, alice, bob):
    # The key's tenant's secret only: nothing names a tenant, so none other can be meant.
    rotated = await api.post("/v1/webhooks/secret", headers=bob.headers)
    assert rotated.status_code == 201, rotated.text
    assert rotated.json()["webhook_secret"] not in (
        alice.tenant.webhook_secret,
        bob.tenant.webhook_secret,
    )
    assert alice.tenant.webhook_secret not in rotated.text


def _sid(kind: str, message_id: str) -> str:
    return ("MM" if kind == "inbound" else "SM") + uuid.UUID(message_id).hex


@check("GET", "/2010-04-01/Accounts/{account_sid}/Messages.json")
async def _twilio_list(api, alice, bob):
    alices = {_sid(k, v) for k, v in alice.messages.items()}
    for params in ({}, {"To": ALICE_TO}, {"From": ALICE_NUMBER}, {"To": ALICE_NUMBER}):
        listed = await api.get(bob.twilio_url("/Messages.json"), params=params, headers=bob.basic)
        assert listed.status_code == 200, listed.text
        messages = listed.json()["messages"]
        assert {m["account_sid"] for m in messages} <= {bob.twilio["account_sid"]}, params
        assert not {m["sid"] for m in messages} & alices, params
    # Bob's credentials on Alice's account path are refused outright.
    other = await api.get(alice.twilio_url("/Messages.json"), headers=bob.basic)
    assert other.status_code == 401


@check("GET", "/2010-04-01/Accounts/{account_sid}/Messages/{resource}")
async def _twilio_fetch(api, alice, bob):
    for kind, message_id in alice.messages.items():
        url = bob.twilio_url(f"/Messages/{_sid(kind, message_id)}.json")
        refused = await api.get(url, headers=bob.basic)
        assert refused.status_code == 404, refused.text
        assert refused.json()["code"] == 20404


@check("POST", "/2010-04-01/Accounts/{account_sid}/Messages/{resource}")
async def _twilio_cancel(api, alice, bob):
    for kind in ("queued", "scheduled"):
        url = bob.twilio_url(f"/Messages/{_sid(kind, alice.messages[kind])}.json")
        refused = await api.post(url, data={"Status": "canceled"}, headers=bob.basic)
        assert refused.status_code == 404, refused.text


@check("POST", "/2010-04-01/Accounts/{account_sid}/Messages.json")
async def _twilio_send(api, alice, bob):
    form = {"To": ALICE_TO, "From": BOB_NUMBER, "Body": "hi"}
    sent = await api.post(bob.twilio_url("/Messages.json"), data=form, headers=bob.basic)
    assert sent.status_code == 201, sent.text
    message_id = str(uuid.UUID(sent.json()["sid"][2:]))
    mine = await api.get(f"/v1/messages/{message_id}", headers=bob.headers)
    assert mine.json()["price"] == 9_000  # Bob's price, on Bob's books
    assert_problem(
        await api.get(f"/v1/messages/{message_id}", headers=alice.headers), 404, "not_found"
    )
    # From Alice's number, Bob may not send: the number is hers (Twilio's 21606), and
    # nothing is held.
    before = await support.balance(api, bob.tenant)
    as_alice = await api.post(
        bob.twilio_url("/Messages.json"), data={**form, "From": ALICE_NUMBER}, headers=bob.basic
    )
    assert as_alice.status_code == 400, as_alice.text
    assert as_alice.json()["code"] == 21606
    assert await support.balance(api, bob.tenant) == before


@check("GET", "/v1/geo-permissions")
async def _geo_permissions(api, alice, bob):
    mine = await api.get("/v1/geo-permissions", headers=bob.headers)
    assert mine.status_code == 200, mine.text
    assert mine.json()["countries"] is None  # Alice's list is hers


@check("GET", "/v1/suspensions")
async def _suspensions(api, alice, bob):
    for params in ({}, {"include_ended": "true"}):
        mine = await api.get("/v1/suspensions", params=params, headers=bob.headers)
        assert mine.status_code == 200, mine.text
        assert mine.json() == {"suspensions": []}


@check("DELETE", "/v1/suspensions/{suspension_id}")
async def _lift(api, alice, bob):
    refused = await api.delete(f"/v1/suspensions/{alice.suspension}", headers=bob.headers)
    assert_problem(refused, 404, "not_found")
    still = (await api.get("/v1/suspensions", headers=alice.headers)).json()["suspensions"]
    assert [s["id"] for s in still] == [alice.suspension]


@check("GET", "/v1/alerts")
async def _alert_settings(api, alice, bob):
    mine = await api.get("/v1/alerts", headers=bob.headers)
    assert mine.status_code == 200, mine.text
    assert mine.json()["alerts_url"] is None


@check("PATCH", "/v1/alerts")
async def _set_alert_settings(api, alice, bob):
    changed = await api.patch("/v1/alerts", json={"low_balance_threshold": 5}, headers=bob.headers)
    assert changed.status_code == 200, changed.text
    hers = (await api.get("/v1/alerts", headers=alice.headers)).json()
    assert hers["low_balance_threshold"] is None
    assert hers["alerts_url"] == "https://hooks.example.com/alice-alerts"


def test_every_endpoint_a_tenant_can_call_has_an_isolation_check():
    tenant_endpoints = {(e.method, e.path) for e in endpoints() if e.door in ("tenant", "twilio")}
    assert set(CHECKS) == tenant_endpoints


async def test_a_tenant_reaches_none_of_another_tenants_messages(api, alice_and_bob):
    alice, bob = alice_and_bob
    for (method, path), run in CHECKS.items():
        try:
            await run(api, alice, bob)
        except AssertionError as exc:
            raise AssertionError(f"{method} {path}: {exc}") from exc
        await _alice_untouched(api, alice)


async def test_one_tenants_unusable_callback_url_does_not_hold_back_anothers(
    api, admin_headers, settings, pool, conn
):
    """A callback URL that passes the intake check but that the HTTP client refuses (an
    IDNA host like xn--) fails its own callback, not the batch that carries Bob's."""
    alice = await support.make_tenant(api, admin_headers, credit=1_000_000, name="alice")
    bob = await support.make_tenant(api, admin_headers, credit=1_000_000, name="bob")
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    with httpd.serve() as hook:
        sent = {}
        for who, url in ((alice, "http://xn--/hook"), (bob, hook.url)):
            response = await support.send(api, who, callback_url=url, send_at=later)
            assert response.status_code == 202, response.text
            sent[who.id] = response.json()["id"]
            canceled = await api.post(f"/v1/messages/{sent[who.id]}/cancel", headers=who.headers)
            assert canceled.status_code == 200, canceled.text
        # Both "canceled" callbacks are due now: one worker claims them in one batch.
        policy = webhook_policy.policy(settings.webhook_allowed_networks)
        async with webhook_client(policy) as http:
            deps = WorkerDeps(
                settings=settings,
                pool=pool,
                upstreams=DatabaseUpstreams(settings, sink=_no_receipts),
                scheduler=ProcrastinateScheduler(),
                dispatch=DispatchConfig(),
                http=http,
            )
            assert await deliver_batch(deps) == 2
        assert [json.loads(r.body)["status"] for r in hook.received] == ["canceled"]
    cursor = await conn.execute(
        "SELECT message_id, delivered_at, last_error FROM callbacks ORDER BY message_id"
    )
    rows = {str(r["message_id"]): r for r in await cursor.fetchall()}
    assert rows[sent[bob.id]]["delivered_at"] is not None
    alices = rows[sent[alice.id]]
    assert alices["delivered_at"] is None
    assert alices["last_error"]


async def _no_receipts(*_: object) -> None:
    return None
