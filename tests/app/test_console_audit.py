"""Every console form that changes something writes the audit row its API twin writes
(issue 28: "audited the same way"), checked against the app's own route table: a POST
under /console that is neither in CHANGES nor in NOT_CHANGES fails the first test, so a
new form cannot forget its audit. Each change is made through the real app with a real
session cookie and CSRF token, and its rows read back from the table: the actions, the
console user as the actor, the address, before and after, and no secret anywhere."""

from __future__ import annotations

import re
from typing import Any

import httpx
from litestar.routes import HTTPRoute

from app.factory import create_app
from core.settings import Settings
from tests.app import console_cases
from tests.app.audited_routes import ADDRESS, _last_id, _rows
from tests.app.console_cases import SHOWN_ONCE, Change, World
from tests.app.console_cases import provider as _provider
from tests.app.console_cases import route as _route
from tests.app.console_cases import tenant_page as _t
from tests.app.test_consoles import operator_signed_in, tenant_user, token_of
from tests.conftest import ADMIN_TOKEN

OWNER = "owner@audited.example"
PASSWORD = "correct horse battery"  # tenant_user's
JOINER_PASSWORD = "a colleague's long passphrase"
CARD = "prefix,country,network,price\n44,GB,,5000\n1,US,,4000\n"


async def _key(w: World) -> str:
    body = (await w.api.post(f"/v1/admin/tenants/{w.tenant.id}/api-keys", headers=w.admin)).json()
    w.secrets.add(body["api_key"])
    return str(body["id"])


async def _suspended(w: World) -> str:
    put = await w.api.put(
        f"/v1/admin/tenants/{w.tenant.id}/suspension", json={"reason": "audit"}, headers=w.admin
    )
    assert put.status_code == 200, put.text
    return ""


async def _invitation(w: World) -> str:
    """An invitation for a colleague, made by the owner: its path."""
    invited = await w.post("owner", "/console/team", email="ann@audited.example")
    link = SHOWN_ONCE.search(invited.text)
    assert link
    return httpx.URL(link.group(1)).path


async def _join(w: World, path: str) -> httpx.Response:
    w.api.cookies = httpx.Cookies()
    form = await w.api.get(path)
    joined = await w.api.post(
        path, data={"password": JOINER_PASSWORD, "csrf_token": token_of(form)}
    )
    assert joined.status_code == 303, joined.text
    return joined


async def _preview(w: World) -> str:
    """The confirm form's fields, as the preview page carries them."""
    w.be("operator")
    preview = await w.api.post(
        "/console/operator/rate-cards/preview",
        data={"card": "audited", "csrf_token": w.sessions["operator"][1]},
        files={"file": ("audited.csv", CARD.encode(), "text/csv")},
    )
    assert preview.status_code == 200, preview.text
    carried = re.search(r'<textarea name="csv" hidden>(.*?)</textarea>', preview.text, re.DOTALL)
    assert carried
    return carried.group(1)


async def _suppressed(w: World) -> str:
    await w.post("owner", "/console/suppressions", recipient="+447911123488", number="")
    return "+447911123488"


CHANGES: dict[str, Change] = {
    "/console/operator/tenants": Change(
        ("tenant.created",),
        "operator",
        lambda w, _: w.post("operator", "/console/operator/tenants", name="audited", tier="vip"),
        tenant_scoped=False,
        before=None,
        after=("name", "tier", "webhook_secret", "api_key_id"),
    ),
    "/console/operator/tenants/{tenant_id}/settings": Change(
        ("tenant.updated",),
        "operator",
        lambda w, _: w.post("operator", _t(w) + "/settings", tier="vip", rate_limit_mps="7"),
        before=("tier", "rate_limit_mps"),
        after=("tier", "rate_limit_mps"),
    ),
    "/console/operator/tenants/{tenant_id}/credits": Change(
        ("credit.topped_up",),
        "operator",
        lambda w, _: w.post("operator", _t(w) + "/credits", amount="2.5", reference="c-1"),
        before=("available",),
        after=("available", "amount", "reference"),
    ),
    "/console/operator/tenants/{tenant_id}/invitations": Change(
        ("console_user.invited",),
        "operator",
        lambda w, _: w.post("operator", _t(w) + "/invitations", email="Bob@Audited.example"),
        before=None,
        after=("email",),
    ),
    "/console/operator/tenants/{tenant_id}/api-keys/{key_id}/revoke": Change(
        ("api_key.revoked",),
        "operator",
        lambda w, key: w.post("operator", _t(w) + f"/api-keys/{key}/revoke"),
        prepare=_key,
        before=("revoked_at",),
        after=("revoked_at",),
    ),
    "/console/operator/tenants/{tenant_id}/suspension": Change(
        ("tenant.suspended",),
        "operator",
        lambda w, _: w.post("operator", _t(w) + "/suspension", reason="chargebacks"),
        before=("suspended_at", "suspension_reason"),
        after=("suspended_at", "suspension_reason", "messages_held"),
    ),
    "/console/operator/tenants/{tenant_id}/resume": Change(
        ("tenant.resumed",),
        "operator",
        lambda w, _: w.post("operator", _t(w) + "/resume"),
        prepare=_suspended,
        before=("suspended_at", "suspension_reason"),
        after=("suspended_at", "suspension_reason", "messages_released"),
    ),
    "/console/operator/providers/{name}/enabled": Change(
        ("provider.updated",),
        "operator",
        lambda w, name: w.post("operator", f"/console/operator/providers/{name}/enabled"),
        prepare=_provider,
        tenant_scoped=False,
        before=("enabled",),
        after=("enabled",),
    ),
    "/console/operator/routes": Change(
        ("route.created",),
        "operator",
        lambda w, name: w.post(
            "operator",
            "/console/operator/routes",
            prefix="+44",
            provider=name,
            tier="",
            priority="5",
            cost_per_segment="0",
        ),
        prepare=_provider,
        tenant_scoped=False,
        before=None,
        after=("prefix", "provider", "enabled"),
    ),
    # The switch is an edit in place, as PATCH /v1/admin/routes/{id} with `enabled`.
    "/console/operator/routes/{route_id}/enabled": Change(
        ("route.updated",),
        "operator",
        lambda w, route: w.post("operator", f"/console/operator/routes/{route}/enabled"),
        prepare=_route,
        tenant_scoped=False,
        before=("enabled",),
        after=("enabled",),
    ),
    "/console/operator/routes/{route_id}/remove": Change(
        ("route.deleted",),
        "operator",
        lambda w, route: w.post("operator", f"/console/operator/routes/{route}/remove"),
        prepare=_route,
        tenant_scoped=False,
        before=("id", "provider"),
        after=None,
    ),
    "/console/operator/rate-cards/confirm": Change(
        ("rate_card.version_imported",),
        "operator",
        lambda w, csv: w.post(
            "operator",
            "/console/operator/rate-cards/confirm",
            card="audited",
            csv=csv,
            against="",
            effective_at="",
        ),
        prepare=_preview,
        tenant_scoped=False,
        before=("version",),
        after=("card", "version", "rates"),
    ),
    "/console/keys": Change(
        ("api_key.created",),
        "owner",
        lambda w, _: w.post("owner", "/console/keys"),
        before=None,
        after=("id", "api_key", "created_at"),
    ),
    "/console/keys/{key_id}/revoke": Change(
        ("api_key.revoked",),
        "owner",
        lambda w, key: w.post("owner", f"/console/keys/{key}/revoke"),
        prepare=_key,
        before=("revoked_at",),
        after=("revoked_at",),
    ),
    "/console/webhooks/secret": Change(
        ("webhook_secret.rotated",),
        "owner",
        lambda w, _: w.post("owner", "/console/webhooks/secret"),
        before=None,
        after=("webhook_secret",),
    ),
    "/console/team": Change(
        ("console_user.invited",),
        "owner",
        lambda w, _: w.post("owner", "/console/team", email="carol@audited.example"),
        before=None,
        after=("email",),
    ),
    "/console/suppressions": Change(
        ("suppression.added",),
        "owner",
        lambda w, _: w.post("owner", "/console/suppressions", recipient="+447911123477"),
        before=None,
        after=("recipient", "number", "source"),
    ),
    "/console/suppressions/remove": Change(
        ("suppression.removed",),
        "owner",
        lambda w, recipient: w.post("owner", "/console/suppressions/remove", recipient=recipient),
        prepare=_suppressed,
        before=("recipient", "numbers"),
        after=None,
    ),
    "/console/invitations/{token}": Change(
        ("console_user.joined",),
        "joiner",
        _join,
        prepare=_invitation,
        before=None,
        after=("id", "email", "role"),
    ),
}

# The operator's pages for caps, geo permissions, suspensions, cost lists and route edits.
CHANGES |= console_cases.OPERATOR_CHANGES

# Forms that change no setting, each with the reason it has no audit row.
NOT_CHANGES: dict[str, str] = {
    "/console/operator/sign-in": "a session, not a setting; failures count in the throttle",
    "/console/sign-in": "a session, not a setting; failures count in the throttle",
    "/console/sign-out": "ends a session, not a setting",
    "/console/operator/rate-cards/preview": "a dry run: writes nothing",
    "/console/operator/cost-lists/preview": "a dry run: writes nothing",
    "/console/send": "traffic: a test send is a message, as POST /v1/messages (not audited)",
    "/console/webhooks/test": "traffic: a test delivery, listed in the webhook deliveries",
}


def console_posts() -> set[str]:
    settings = Settings.from_env({"DATABASE_URL": "postgresql://unused/", "SMSGW_ADMIN_TOKEN": "x"})
    return {
        route.path_format
        for route in create_app(settings).routes
        if isinstance(route, HTTPRoute)
        and route.path.startswith("/console")
        and any("POST" in h.http_methods for h in route.route_handlers)
    }


def test_every_console_form_that_changes_something_is_audited_or_excused():
    posts = console_posts()
    assert not set(CHANGES) & set(NOT_CHANGES)
    assert posts - set(CHANGES) - set(NOT_CHANGES) == set(), "console forms without an audit"
    assert set(CHANGES) | set(NOT_CHANGES) <= posts, "cases of forms that are gone"


async def test_every_console_change_is_recorded_as_its_api_twin_by_its_user(
    api, conn, admin_headers, tenant
):
    w = World(api, admin_headers, tenant, secrets={tenant.api_key, tenant.webhook_secret})
    w.conn = conn
    w.secrets |= {ADMIN_TOKEN, PASSWORD, JOINER_PASSWORD}
    owner_csrf = await tenant_user(api, tenant.id, OWNER)
    w.sessions["owner"] = (httpx.Cookies(api.cookies), owner_csrf)
    api.cookies = httpx.Cookies()
    operator_csrf = await operator_signed_in(api)
    w.sessions["operator"] = (httpx.Cookies(api.cookies), operator_csrf)
    operator_session = await _operator_actor_id(conn)
    owner_id = await _user_id(conn, OWNER)
    for path, change in CHANGES.items():
        prepared = await change.prepare(w) if change.prepare else ""
        if path == "/console/invitations/{token}":
            w.secrets.add(prepared.rsplit("/", 1)[1])
        last = await _last_id(conn)
        await change.call(w, prepared)
        rows = await _rows(conn, "SELECT * FROM audit_events WHERE id > %s ORDER BY id", last)
        assert tuple(r["action"] for r in rows) == change.actions, path
        for row in rows:
            assert row["actor_kind"] == "console_user", path
            expected = {"operator": operator_session, "owner": owner_id}.get(change.who)
            if change.who == "joiner":
                expected = await _user_id(conn, "ann@audited.example")
            assert row["actor_id"] == expected, path
            assert row["address"] == ADDRESS, path
            if change.tenant_scoped:
                assert str(row["tenant_id"]) == tenant.id, path
            elif row["action"] == "tenant.created":
                assert row["tenant_id"] is not None, path
            else:
                assert row["tenant_id"] is None, path
        first, last_row = rows[0], rows[-1]
        if change.before is None:
            assert first["before"] is None, path
        else:
            assert set(change.before) <= set(first["before"]), f"{path}: {first['before']}"
        if change.after is None:
            assert last_row["after"] is None, path
        else:
            assert set(change.after) <= set(last_row["after"]), f"{path}: {last_row['after']}"
    # The operator's switch: the provider's enabled went from true to false.
    [switched] = await _rows(
        conn,
        "SELECT before, after FROM audit_events"
        " WHERE action = 'provider.updated' AND actor_kind = 'console_user'",
    )
    assert (switched["before"]["enabled"], switched["after"]["enabled"]) == (True, False)
    # No secret shown by a page (API keys, webhook secrets, invitation links), nor a
    # password or the admin token, is in the table; the masked fields say "***".
    raw = "\n".join(
        str(r["t"]) for r in await _rows(conn, "SELECT a::text AS t FROM audit_events a")
    )
    invitation_tokens = {s.rsplit("/", 1)[1] for s in w.secrets if "/invitations/" in s}
    assert len(invitation_tokens) >= 3
    assert len(w.secrets) >= 12
    for secret in w.secrets | invitation_tokens:
        assert secret not in raw
    assert '"***"' in raw


async def test_a_console_change_that_fails_leaves_no_audit_row(api, conn, tenant):
    csrf = await operator_signed_in(api)
    last = await _last_id(conn)
    bad = await api.post(
        f"/console/operator/tenants/{tenant.id}/credits",
        data={"amount": "lots", "reference": "x", "csrf_token": csrf},
    )
    assert bad.status_code == 422
    missing = await api.post("/console/operator/routes/999999/remove", data={"csrf_token": csrf})
    assert missing.status_code == 404
    assert await _rows(conn, "SELECT id FROM audit_events WHERE id > %s", last) == []
    balance = await api.get("/v1/balance", headers=tenant.headers)
    assert balance.json()["available"] == 10_000_000


async def _operator_actor_id(conn: Any) -> str:
    """The operator's session, as the audit trail names it: by its ref, never its token."""
    [row] = await _rows(
        conn,
        "SELECT encode(id_sha256, 'hex') AS h FROM console_sessions"
        " WHERE audience = 'operator' AND revoked_at IS NULL ORDER BY created_at DESC LIMIT 1",
    )
    return f"operator-session:{row['h'][:16]}"


async def _user_id(conn: Any, email: str) -> str:
    [row] = await _rows(conn, "SELECT id::text AS id FROM console_users WHERE email = %s", email)
    return str(row["id"])
