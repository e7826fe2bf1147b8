"""The audit trail as operators and tenants read it (issue 25, item 5): what changed,
before and after, by whom; nothing for a change that failed; a tenant sees its own
events only; the table refuses to be changed; the lists page like every other list.
Every route's own row is checked in test_audit_routes.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from tests import support
from tests.support import TenantHandle, assert_problem

AUDIT = "/v1/admin/audit"


async def _events(api: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> list[dict]:
    """The admin's trail with the admin's headers, a tenant's own with its key."""
    path = "/v1/audit" if headers["Authorization"].startswith("Bearer smsgw_") else AUDIT
    listed = await api.get(path, params=params, headers=headers)
    assert listed.status_code == 200, listed.text
    events: list[dict] = listed.json()["events"]
    return events


async def _count(conn: Any) -> int:
    return await support.count(conn, "SELECT count(*) AS n FROM audit_events")


async def test_a_change_shows_the_fields_it_changed_before_and_after_and_who(
    api, admin_headers, tenant
):
    changed = await api.patch(
        f"/v1/admin/tenants/{tenant.id}",
        json={"rate_limit_mps": 7, "inbound_url": "https://hooks.example.com/in", "tier": "vip"},
        headers=admin_headers,
    )
    assert changed.status_code == 200, changed.text
    [event] = await _events(api, admin_headers, tenant_id=tenant.id, action="tenant.updated")
    assert event["actor"] == {"kind": "admin", "id": None, "address": "127.0.0.1"}
    assert event["target"] == f"tenant:{tenant.id}"
    # Only what changed (the vip tier also moved the tenant to the vip card).
    assert event["before"] == {
        "tier": "standard",
        "rate_limit_mps": None,
        "inbound_url": None,
        "rate_card": "standard",
    }
    assert event["after"] == {
        "tier": "vip",
        "rate_limit_mps": 7,
        "inbound_url": "https://hooks.example.com/in",
        "rate_card": "vip",
    }
    # The tenant reads the same event in its own trail.
    assert await _events(api, tenant.headers, action="tenant.updated") == [event]

    # A top-up shows the balance before and after; a repeated reference credits nothing
    # and writes nothing.
    body = {"amount": 2_500, "reference": "invoice-7"}
    url = f"/v1/admin/tenants/{tenant.id}/credits"
    assert (await api.post(url, json=body, headers=admin_headers)).status_code == 201
    assert (await api.post(url, json=body, headers=admin_headers)).status_code == 200
    credits = await _events(api, admin_headers, tenant_id=tenant.id, action="credit.topped_up")
    assert [c["after"]["reference"] for c in credits] == ["invoice-7", f"initial-{tenant.id}"]
    credit = credits[0]
    assert credit["before"]["available"] == 10_000_000
    assert credit["after"]["available"] == 10_002_500
    assert credit["after"]["reference"] == "invoice-7"


async def test_a_tenant_key_is_named_by_its_id_never_its_secret(api, conn, tenant):
    added = await api.post(
        "/v1/suppressions", json={"recipient": "+447911123456"}, headers=tenant.headers
    )
    assert added.status_code == 201, added.text
    [event] = await _events(api, tenant.headers, action="suppression.added")
    cursor = await conn.execute(
        "SELECT id::text AS id FROM api_keys WHERE prefix = %s", (tenant.api_key.split("_")[1],)
    )
    key_id = (await cursor.fetchone())["id"]
    assert event["actor"] == {"kind": "api_key", "id": key_id, "address": "127.0.0.1"}
    cursor = await conn.execute("SELECT a::text AS a FROM audit_events a")
    raw = " ".join(row["a"] for row in await cursor.fetchall())
    assert tenant.api_key not in raw
    assert tenant.webhook_secret not in raw


async def test_provider_credentials_are_masked_wherever_they_sit(api, conn, admin_headers):
    config = {"host": "127.0.0.1", "port": 2775, "system_id": "gw", "password": "pw-4242x"}
    put = await api.put(
        "/v1/admin/providers/smsc", json={"kind": "smpp", "config": config}, headers=admin_headers
    )
    assert put.status_code == 200, put.text
    [event] = await _events(api, admin_headers, action="provider.created")
    assert event["after"]["config"] == {**config, "password": "***"}
    cursor = await conn.execute("SELECT a::text AS a FROM audit_events a")
    assert all("pw-4242x" not in row["a"] for row in await cursor.fetchall())


async def test_a_change_that_fails_leaves_no_row(api, conn, admin_headers, tenant):
    other = await support.make_tenant(api, admin_headers, name="other")
    await support.own_number(api, admin_headers, other, "+14155550142")
    before = await _count(conn)
    t = f"/v1/admin/tenants/{tenant.id}"
    attempts = [
        ("PATCH", t, {"rate_limit_mps": 0}, 422),
        ("PATCH", t, {"help_reply": " "}, 422),
        # Written (the rate limit), then refused in the same transaction (no such card):
        # the change and its row go together.
        ("PATCH", t, {"rate_limit_mps": 5, "rate_card": "no-such-card"}, 422),
        ("POST", t + "/credits", {"amount": 0, "reference": "x"}, 422),
        ("POST", t + "/numbers", {"number": "+14155550142"}, 409),
        ("POST", t + "/sender-ids", {"sender_id": "!!"}, 422),
        ("PUT", "/v1/admin/providers/p1", {"kind": "http", "config": {"url": "nope"}}, 422),
        ("POST", "/v1/admin/routes", {"provider": "missing"}, 422),
        ("DELETE", "/v1/admin/routes/999", None, 404),
        ("PUT", "/v1/admin/sender-rules/XXX", {"alphanumeric": "allowed"}, 422),
        ("DELETE", "/v1/admin/tenants/" + other.id + "/smpp-credentials", None, 404),
    ]
    for method, url, body, status in attempts:
        response = await api.request(method, url, json=body, headers=admin_headers)
        assert response.status_code == status, f"{method} {url}: {response.text}"
    lifted = await api.delete(f"/v1/suppressions/{support.VALID_TO}", headers=tenant.headers)
    assert_problem(lifted, 404, "not_found")
    assert await _count(conn) == before
    assert (await api.get(t, headers=admin_headers)).json()["rate_limit_mps"] is None


async def test_a_request_that_changes_nothing_writes_nothing(api, conn, admin_headers, tenant):
    t = f"/v1/admin/tenants/{tenant.id}"
    repeats = [
        ("POST", t + "/sender-ids", {"sender_id": "ACME", "countries": ["GB"]}),
        ("PUT", "/v1/admin/sender-rules/FR", {"alphanumeric": "registered"}),
        ("POST", t + "/numbers", {"number": "+14155550142"}),
        ("PATCH", t, {"rate_limit_mps": 5}),
    ]
    for method, url, body in repeats:
        assert (await api.request(method, url, json=body, headers=admin_headers)).status_code < 300
    before = await _count(conn)
    for method, url, body in repeats:
        again = await api.request(method, url, json=body, headers=admin_headers)
        assert again.status_code == 200, f"{method} {url}: {again.text}"
    assert await _count(conn) == before


async def test_a_tenant_reads_its_own_events_only(api, admin_headers, tenant):
    other = await support.make_tenant(api, admin_headers, name="other")
    for handle, rate in ((tenant, 3), (other, 4)):
        url = f"/v1/admin/tenants/{handle.id}"
        await api.patch(url, json={"rate_limit_mps": rate}, headers=admin_headers)
    await api.post("/v1/admin/routes", json={"provider": "nowhere"}, headers=admin_headers)
    await support.register_sender(api, admin_headers, other, "OTHERCO")
    mine = await _events(api, tenant.headers, limit=500)
    theirs = await _events(api, other.headers, limit=500)
    assert mine
    assert theirs
    assert {e["tenant_id"] for e in mine} == {tenant.id}
    assert {e["tenant_id"] for e in theirs} == {other.id}
    assert "OTHERCO" not in str(mine)
    # A tenant cannot widen its view: there is no tenant_id filter for it to use.
    widened = await _events(api, tenant.headers, tenant_id=other.id, limit=500)
    assert widened == mine
    # The admin's filter shows one tenant's; without it, every tenant's.
    assert await _events(api, admin_headers, tenant_id=other.id, limit=500) == theirs
    everything = await _events(api, admin_headers, limit=500)
    assert {tenant.id, other.id} <= {e["tenant_id"] for e in everything}


async def test_the_table_refuses_update_delete_and_truncate(api, pool, admin_headers, tenant):
    await api.patch(
        f"/v1/admin/tenants/{tenant.id}", json={"rate_limit_mps": 9}, headers=admin_headers
    )
    before = await _events(api, admin_headers, limit=500)
    for statement in (
        "UPDATE audit_events SET actor_kind = 'system'",
        "UPDATE audit_events SET after = NULL WHERE action = 'tenant.updated'",
        "DELETE FROM audit_events",
        "TRUNCATE audit_events",
    ):
        async with pool.connection() as conn:
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
                await conn.execute(statement)
    assert await _events(api, admin_headers, limit=500) == before


async def test_pages_walk_every_event_newest_first_with_filters(api, admin_headers, tenant):
    for rate in range(1, 8):
        url = f"/v1/admin/tenants/{tenant.id}"
        changed = await api.patch(url, json={"rate_limit_mps": rate}, headers=admin_headers)
        assert changed.status_code == 200
    seen: list[dict] = []
    cursor = None
    for _ in range(10):
        params: dict[str, Any] = {"limit": 3, "action": "tenant.updated"}
        if cursor:
            params["cursor"] = cursor
        page = (await api.get("/v1/audit", params=params, headers=tenant.headers)).json()
        seen += page["events"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [e["after"]["rate_limit_mps"] for e in seen] == [7, 6, 5, 4, 3, 2, 1]
    assert len({e["id"] for e in seen}) == 7
    # A window: everything is inside today, nothing inside yesterday.
    now = datetime.now(UTC)
    today = {
        "from": (now - timedelta(minutes=5)).isoformat(),
        "to": (now + timedelta(minutes=5)).isoformat(),
    }
    assert len(await _events(api, tenant.headers, action="tenant.updated", **today)) == 7
    yesterday = (now - timedelta(days=1)).date().isoformat()
    assert await _events(api, admin_headers, to=yesterday, tenant_id=tenant.id) == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "yesterday"}, "from"),
        ({"to": "2026-13-01"}, "to"),
        ({"from": "2026-01-02T00:00:00"}, "from"),  # no offset
        ({"from": "2026-01-02", "to": "2026-01-01"}, "to"),
        ({"action": "Tenant Updated"}, "action"),
        ({"tenant_id": "acme"}, "tenant_id"),
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"cursor": "not-ours"}, "cursor"),
    ],
)
async def test_bad_filters_are_422_naming_the_field(api, admin_headers, tenant, params, field):
    for path, headers in ((AUDIT, admin_headers), ("/v1/audit", tenant.headers)):
        if path == "/v1/audit" and field == "tenant_id":
            continue
        body = assert_problem(
            await api.get(path, params=params, headers=headers), 422, "invalid_request"
        )
        assert [e["field"] for e in body["errors"]] == [field], body


async def test_only_the_admin_reads_the_whole_trail(api, tenant: TenantHandle):
    assert_problem(await api.get(AUDIT, headers=tenant.headers), 403, "forbidden")
    assert_problem(await api.get("/v1/audit"), 401, "unauthorized")
