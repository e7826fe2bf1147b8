"""The consoles over HTTP in this process: sign-in, the security headers and cookie
flags, CSRF refusals, and one tenant's pages closed to another. The journeys in a real
browser are tests/app/test_consoles_browser.py."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime

import httpx

from app.console import charts
from core import callbacks
from tests import httpd, support
from tests.app.rate_cards import import_card
from tests.conftest import ADMIN_TOKEN
from tests.jobs.test_webhook_destinations import _deliver_once, resolving_to

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def token_of(page: httpx.Response) -> str:
    found = CSRF.search(page.text)
    assert found, page.text[:500]
    return found.group(1)


async def operator_signed_in(api: httpx.AsyncClient) -> str:
    """Signs the client in as the operator; the CSRF token of its session."""
    form = await api.get("/console/operator/sign-in")
    signed = await api.post(
        "/console/operator/sign-in",
        data={"token": ADMIN_TOKEN, "csrf_token": token_of(form)},
    )
    assert signed.status_code == 303, signed.text
    tenants = await api.get("/console/operator/tenants")
    assert tenants.status_code == 200
    return token_of(tenants)


async def tenant_user(api: httpx.AsyncClient, tenant_id: str, email: str) -> str:
    """Invites ``email`` to the tenant as the operator, accepts as them; their CSRF token.
    The client ends up signed in as the tenant user."""
    csrf = await operator_signed_in(api)
    invited = await api.post(
        f"/console/operator/tenants/{tenant_id}/invitations",
        data={"email": email, "csrf_token": csrf},
    )
    assert invited.status_code == 200, invited.text
    link = re.search(r'id="invitation-link">([^<]+)<', invited.text)
    assert link
    path = httpx.URL(link.group(1)).path
    form = await api.get(path)
    assert email.lower() in form.text
    accepted = await api.post(
        path, data={"password": "correct horse battery", "csrf_token": token_of(form)}
    )
    assert accepted.status_code == 303, accepted.text
    overview = await api.get("/console/")
    assert overview.status_code == 200
    return token_of(overview)


async def test_pages_carry_the_security_headers_and_a_strict_session_cookie(api):
    form = await api.get("/console/operator/sign-in")
    assert form.status_code == 200
    policy = form.headers["content-security-policy"]
    assert "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy
    assert form.headers["x-frame-options"] == "DENY"
    signed = await api.post(
        "/console/operator/sign-in", data={"token": ADMIN_TOKEN, "csrf_token": token_of(form)}
    )
    cookie = signed.headers["set-cookie"].lower()
    for flag in ("httponly", "samesite=lax", "path=/console"):
        assert flag in cookie
    # The admin token is never in what the browser keeps.
    assert ADMIN_TOKEN not in signed.headers["set-cookie"]
    page = await api.get("/console/operator/tenants")
    assert ADMIN_TOKEN not in page.text
    # Behind a proxy that ends TLS the cookie is Secure.
    proxied = await api.get("/console/operator/sign-in", headers={"X-Forwarded-Proto": "https"})
    assert "secure" in proxied.headers["set-cookie"].lower()
    assert "secure" not in form.headers["set-cookie"].lower()


async def test_a_wrong_admin_token_is_refused_on_a_readable_page(api):
    form = await api.get("/console/operator/sign-in")
    refused = await api.post(
        "/console/operator/sign-in", data={"token": "guess", "csrf_token": token_of(form)}
    )
    assert refused.status_code == 401
    assert "The admin token is not valid." in refused.text
    assert refused.headers["content-type"].startswith("text/html")
    assert (await api.get("/console/operator/tenants")).status_code == 303


async def test_a_form_post_without_its_csrf_token_is_refused_and_changes_nothing(api, tenant):
    await operator_signed_in(api)
    forged = await api.post(
        f"/console/operator/tenants/{tenant.id}/credits",
        data={"amount": "1000", "reference": "forged"},
    )
    assert forged.status_code == 403
    assert "security token" in forged.text
    wrong = await api.post(
        f"/console/operator/tenants/{tenant.id}/credits",
        data={"amount": "1000", "reference": "forged", "csrf_token": "not-it"},
    )
    assert wrong.status_code == 403
    balance = await api.get("/v1/balance", headers=tenant.headers)
    assert balance.json()["available"] == 10_000_000


async def test_the_operator_tops_up_and_a_repeated_reference_credits_nothing(api, tenant):
    csrf = await operator_signed_in(api)
    for expected in ("Credit added.", "nothing credited"):
        done = await api.post(
            f"/console/operator/tenants/{tenant.id}/credits",
            data={"amount": "2.5", "reference": "invoice-7", "csrf_token": csrf},
            follow_redirects=True,
        )
        assert expected in done.text
    balance = await api.get("/v1/balance", headers=tenant.headers)
    assert balance.json()["available"] == 12_500_000
    traffic = await api.get(f"/console/operator/tenants/{tenant.id}/traffic")
    assert "No messages today." in traffic.text


async def test_bad_form_input_is_the_apis_problem_shown_as_a_page(api, tenant):
    csrf = await operator_signed_in(api)
    bad = await api.post(
        f"/console/operator/tenants/{tenant.id}/credits",
        data={"amount": "lots", "reference": "x", "csrf_token": csrf},
    )
    assert bad.status_code == 422
    assert "amount" in bad.text
    assert "invalid_request" in bad.text


async def test_a_tenant_cannot_open_another_tenants_message(api, admin_headers):
    mine = await support.make_tenant(api, admin_headers, credit=10_000_000, name="mine")
    theirs = await support.make_tenant(api, admin_headers, credit=10_000_000, name="theirs")
    sent = await api.post(
        "/v1/messages", json={"to": support.VALID_TO, "body": "secret"}, headers=theirs.headers
    )
    assert sent.status_code == 202
    await tenant_user(api, mine.id, "owner@mine.example")
    peek = await api.get(f"/console/messages/{sent.json()['id']}")
    assert peek.status_code == 404
    assert "secret" not in peek.text
    assert "No message has this id." in peek.text


async def test_sign_in_with_a_password_and_sign_out_ends_the_session(api, tenant):
    await tenant_user(api, tenant.id, "Owner@Acme.example")
    csrf = token_of(await api.get("/console/"))
    cookie = api.cookies.get("smsgw_console")
    out = await api.post("/console/sign-out", data={"csrf_token": csrf})
    assert out.status_code == 303
    # The old cookie is dead in the database, not only forgotten by this browser.
    api.cookies.set("smsgw_console", cookie, path="/console")
    assert (await api.get("/console/")).status_code == 303
    api.cookies.clear()
    form = await api.get("/console/sign-in")
    wrong = await api.post(
        "/console/sign-in",
        data={
            "email": "owner@acme.example",
            "password": "wrong wrong wrong",
            "csrf_token": token_of(form),
        },
    )
    assert wrong.status_code == 401
    right = await api.post(
        "/console/sign-in",
        data={
            "email": "owner@acme.example",
            "password": "correct horse battery",
            "csrf_token": token_of(form),
        },
    )
    assert right.status_code == 303
    assert (await api.get("/console/")).status_code == 200


async def test_the_owner_invites_a_colleague_who_joins_as_a_member(api, tenant):
    csrf = await tenant_user(api, tenant.id, "owner@acme.example")
    invited = await api.post(
        "/console/team", data={"email": "ann@acme.example", "csrf_token": csrf}
    )
    link = re.search(r'id="invitation-link">([^<]+)<', invited.text)
    assert link
    api.cookies.clear()
    path = httpx.URL(link.group(1)).path
    form = await api.get(path)
    joined = await api.post(
        path, data={"password": "another long passphrase", "csrf_token": token_of(form)}
    )
    assert joined.status_code == 303
    team = await api.get("/console/team")
    rows = re.findall(r"<tr><td>([^<]+)</td><td>([^<]+)</td><td>([^<]+)</td></tr>", team.text)
    assert rows == [
        ("ann@acme.example", "member", "active"),
        ("owner@acme.example", "owner", "active"),
    ]
    # An invitation is used once.
    assert (await api.get(path)).status_code == 404


async def test_rotating_the_webhook_secret_through_the_api_shows_it_once(api, tenant):
    rotated = await api.post("/v1/webhooks/secret", headers=tenant.headers)
    assert rotated.status_code == 201
    secret = rotated.json()["webhook_secret"]
    assert secret.startswith("whsec_")
    assert secret != tenant.webhook_secret
    await tenant_user(api, tenant.id, "owner@acme.example")
    page = await api.get("/console/webhooks")
    assert f"whsec_…{secret[-4:]}" in page.text
    assert secret not in page.text


def test_a_chart_has_a_bar_for_every_day_of_its_window():
    days = charts.every_day(
        datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 4, tzinfo=UTC), {"2026-03-02": 7}
    )
    assert days == [("03-01", 0), ("03-02", 7), ("03-03", 0)]
    drawn = charts.bars(days)
    assert [b.height > 0 for b in drawn.bars] == [False, True, False]


async def test_a_rate_card_upload_shows_its_diff_then_writes_on_confirm(api, admin_headers):
    csrf = await operator_signed_in(api)
    old = "prefix,country,network,price\n1,US,,1000\n44,GB,,30000\n"
    new = "prefix,country,network,price\n1,US,,1200\n447,GB,UK mobile,35000\n"
    first = await import_card(api, admin_headers, "spring", old)
    assert first.status_code == 201
    preview = await api.post(
        "/console/operator/rate-cards/preview",
        data={"card": "spring", "csrf_token": csrf},
        files={"file": ("spring.csv", new.encode(), "text/csv")},
    )
    assert preview.status_code == 200, preview.text
    summary = re.search(r'id="diff-summary">(.*?)</p>', preview.text, re.DOTALL)
    assert summary
    assert " ".join(summary.group(1).split()) == (
        "Against version 1: 1 added, 1 removed, 1 up, 0 down, 0 unchanged."
    )
    # Nothing written by the preview.
    card = await api.get("/v1/admin/rate-cards/spring", headers=admin_headers)
    assert len(card.json()["versions"]) == 1
    carried = re.search(r'<textarea name="csv" hidden>(.*?)</textarea>', preview.text, re.DOTALL)
    assert carried
    confirm = {"card": "spring", "csrf_token": csrf, "against": "1", "effective_at": ""}
    done = await api.post(
        "/console/operator/rate-cards/confirm", data={**confirm, "csv": carried.group(1)}
    )
    assert done.status_code == 200, done.text
    assert "2 rates" in done.text
    exported = await api.get(
        "/v1/admin/rate-cards/spring/versions/current.csv", headers=admin_headers
    )
    assert exported.text.splitlines()[1:] == ["1,US,,1200", "447,GB,UK mobile,35000"]
    # Confirming the same preview again: the diff it showed is stale now.
    stale = await api.post(
        "/console/operator/rate-cards/confirm", data={**confirm, "csv": carried.group(1)}
    )
    assert stale.status_code == 409
    assert "upload the file again" in stale.text


async def test_the_operator_disables_a_provider_and_enables_it_again(api, admin_headers):
    put = await api.put(
        "/v1/admin/providers/spare", json={"kind": "simulator", "mps": 50}, headers=admin_headers
    )
    assert put.status_code == 200, put.text
    csrf = await operator_signed_in(api)
    for enabled in ("false", "true"):
        done = await api.post(
            "/console/operator/providers/spare/enabled",
            data={"enabled": enabled, "csrf_token": csrf},
            follow_redirects=True,
        )
        assert done.status_code == 200
        listed = (await api.get("/v1/admin/providers", headers=admin_headers)).json()
        spare = next(p for p in listed if p["name"] == "spare")
        assert spare["enabled"] is (enabled == "true")
        assert spare["mps"] == 50
        word = "Disable" if enabled == "true" else "Enable"
        assert f"{word} spare" in done.text


async def test_a_test_event_reaches_the_endpoint_signed_and_shows_its_answer(
    api, tenant, settings, pool
):
    csrf = await tenant_user(api, tenant.id, "owner@acme.example")
    refused = await api.post(
        "/console/webhooks/test", data={"url": "http://10.0.0.8/hook", "csrf_token": csrf}
    )
    assert refused.status_code == 422
    assert "callback_url_not_allowed" in refused.text
    with httpd.serve(lambda n: (204, 0.0)) as hook:
        sent = await api.post("/console/webhooks/test", data={"url": hook.url, "csrf_token": csrf})
        assert sent.status_code == 303
        assert await _deliver_once(settings, pool, resolving_to("127.0.0.1")) == 1
    [received] = hook.received
    assert json.loads(received.body)["status"] == "test"
    assert callbacks.verify(
        tenant.webhook_secret,
        received.body,
        received.headers[callbacks.SIGNATURE_HEADER.lower()],
        now=int(time.time()),
    )
    page = await api.get("/console/webhooks")
    row = re.search(r"<td>message\.test</td><td[^>]*>([^<]+)</td><td>(\w+)</td>", page.text)
    assert row
    assert row.groups() == (hook.url, "delivered")
    assert '<td class="num">204</td>' in page.text


async def test_a_console_send_is_judged_by_the_same_accept_as_the_api(api, tenant):
    csrf = await tenant_user(api, tenant.id, "owner@acme.example")
    refused = await api.post(
        "/console/send",
        data={"to": support.VALID_TO, "from": "ACME", "body": "hi", "csrf_token": csrf},
    )
    assert refused.status_code == 422
    assert "sender_not_allowed" in refused.text
    balance = (await api.get("/v1/balance", headers=tenant.headers)).json()
    assert (balance["available"], balance["held"]) == (10_000_000, 0)
    sent = await api.post(
        "/console/send", data={"to": support.VALID_TO, "body": "hi", "csrf_token": csrf}
    )
    assert sent.status_code == 303
    message_id = sent.headers["location"].rsplit("/", 1)[1]
    through_api = await api.get(f"/v1/messages/{message_id}", headers=tenant.headers)
    assert through_api.json()["status"] == "queued"
    assert through_api.json()["price"] == 7_900


async def test_an_unknown_console_address_is_a_page_with_the_security_headers(api):
    missing = await api.get("/console/no/such/page")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("text/html")
    assert "There is no page at this address." in missing.text
    assert missing.headers["x-frame-options"] == "DENY"
    sheet = await api.get("/console/static/console.css")
    assert sheet.status_code == 200
    assert "text/css" in sheet.headers["content-type"]
    assert (await api.get("/console/static/htmx.min.js")).status_code == 200


async def test_the_owner_adds_and_lifts_an_opt_out_and_sends_follow_it(api, tenant):
    csrf = await tenant_user(api, tenant.id, "owner@acme.example")
    added = await api.post(
        "/console/suppressions",
        data={"recipient": support.VALID_TO, "number": "", "csrf_token": csrf},
        follow_redirects=True,
    )
    assert "Added: no message goes to this recipient." in added.text
    assert f"Lift {support.VALID_TO}" in added.text
    refused = await api.post(
        "/v1/messages", json={"to": support.VALID_TO, "body": "hi"}, headers=tenant.headers
    )
    support.assert_problem(refused, 422, "recipient_opted_out")
    lifted = await api.post(
        "/console/suppressions/remove",
        data={"recipient": support.VALID_TO, "number": "*", "csrf_token": csrf},
        follow_redirects=True,
    )
    assert "No recipient has opted out." in lifted.text
    sent = await api.post(
        "/v1/messages", json={"to": support.VALID_TO, "body": "hi"}, headers=tenant.headers
    )
    assert sent.status_code == 202


async def test_the_operator_adds_disables_and_removes_a_route(api, admin_headers):
    await api.put("/v1/admin/providers/spare", json={"kind": "simulator"}, headers=admin_headers)
    csrf = await operator_signed_in(api)
    form = {"prefix": "+44", "tier": "vip", "provider": "spare", "priority": "5"}
    added = await api.post(
        "/console/operator/routes",
        data={**form, "cost_per_segment": "2100", "csrf_token": csrf},
        follow_redirects=True,
    )
    assert "Disable route +44 via spare" in added.text

    async def ours() -> list[dict]:
        routes = (await api.get("/v1/admin/routes", headers=admin_headers)).json()
        return [r for r in routes if r["provider"] == "spare"]

    [route] = await ours()
    assert (route["prefix"], route["tier"], route["priority"], route["enabled"]) == (
        "+44",
        "vip",
        5,
        True,
    )
    off = await api.post(
        f"/console/operator/routes/{route['id']}/enabled",
        data={"enabled": "false", "csrf_token": csrf},
        follow_redirects=True,
    )
    assert "Enable route +44 via spare" in off.text
    [disabled] = await ours()
    assert disabled["enabled"] is False
    assert disabled["cost_per_segment"] == 2100
    await api.post(f"/console/operator/routes/{disabled['id']}/remove", data={"csrf_token": csrf})
    assert await ours() == []
