"""Tenant suspension at the REST door (issue 28): the operator suspends a tenant, every
way it sends is refused with nothing held, its queued messages wait, and resuming lets
them and new sends go. The SMPP and Twilio doors: tests/smpp_server/test_exposure.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests import support
from tests.core.test_pumping import _alerts, _claimable
from tests.support import VALID_TO, assert_problem


async def _suspend(api, admin_headers, tenant_id: str, reason: str = "chargeback fraud"):
    return await api.put(
        f"/v1/admin/tenants/{tenant_id}/suspension", json={"reason": reason}, headers=admin_headers
    )


async def test_a_suspended_tenant_sends_nothing_until_resumed(api, conn, admin_headers, tenant):
    url = await api.patch(
        "/v1/alerts", json={"alerts_url": "http://127.0.0.1:9/alerts"}, headers=tenant.headers
    )
    assert url.status_code == 200, url.text
    # Sent before: one due now, one scheduled in an hour; the key is now in the cache.
    assert (await support.send(api, tenant, body="before")).status_code == 202
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    scheduled = await support.send(api, tenant, body="later", send_at=later)
    assert scheduled.status_code == 202, scheduled.text
    assert await _claimable(conn, tenant.id) == [VALID_TO]

    suspended = await _suspend(api, admin_headers, tenant.id)
    assert suspended.status_code == 200, suspended.text
    since = suspended.json()["suspended_at"]
    assert since is not None
    assert suspended.json()["suspension_reason"] == "chargeback fraud"
    before = await support.balance(api, tenant)
    stored = await support.stored(conn)

    # Every way in is refused: the cached key, a keyed request, a batch.
    body = assert_problem(await support.send(api, tenant), 403, "tenant_suspended")
    assert "suspended" in body["detail"]
    keyed = await support.send(api, tenant, headers={"Idempotency-Key": "s-1"})
    assert_problem(keyed, 403, "tenant_suspended")
    batch = await api.post(
        "/v1/messages/batch",
        json={"messages": [{"to": VALID_TO, "body": "a"}, {"to": "+447400123456", "body": "b"}]},
        headers=tenant.headers,
    )
    assert_problem(batch, 403, "tenant_suspended")
    assert await support.balance(api, tenant) == before
    assert await support.stored(conn) == stored
    # Its queued messages wait: a dispatch turn claims none of them.
    assert await _claimable(conn, tenant.id) == []
    # It still reads: its messages, its balance.
    listed = await api.get("/v1/messages", headers=tenant.headers)
    assert listed.status_code == 200
    assert len(listed.json()["messages"]) == 2
    metrics = (await api.get("/metrics", headers=admin_headers)).text
    assert "smsgw_tenants_suspended 1.0" in metrics
    (told,) = await _alerts(conn, "account.suspended")
    assert told["data"]["reason"] == "chargeback fraud"

    # Suspending again changes the reason, not the time.
    again = await _suspend(api, admin_headers, tenant.id, reason="under review")
    assert again.json()["suspended_at"] == since
    assert again.json()["suspension_reason"] == "under review"
    assert len(await _alerts(conn, "account.suspended")) == 1

    resumed = await api.delete(f"/v1/admin/tenants/{tenant.id}/suspension", headers=admin_headers)
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["suspended_at"] is None
    assert resumed.json()["suspension_reason"] is None
    # The held message is due again; the scheduled one still waits for its time.
    assert await _claimable(conn, tenant.id) == [VALID_TO]
    due = await support.count(
        conn,
        "SELECT count(*) AS n FROM messages WHERE body = 'later' AND next_attempt_at = send_at",
    )
    assert due == 1
    assert (await support.send(api, tenant, body="after")).status_code == 202
    assert len(await _alerts(conn, "account.resumed")) == 1
    not_suspended = await api.delete(
        f"/v1/admin/tenants/{tenant.id}/suspension", headers=admin_headers
    )
    assert_problem(not_suspended, 404, "not_found")

    actions = await conn.execute(
        "SELECT action, before, after FROM audit_events WHERE action LIKE 'tenant.%%' ORDER BY id"
    )
    rows = [r for r in await actions.fetchall() if r["action"] != "tenant.created"]
    assert [r["action"] for r in rows] == ["tenant.suspended", "tenant.suspended", "tenant.resumed"]
    assert rows[0]["after"]["suspension_reason"] == "chargeback fraud"
    assert rows[0]["after"]["messages_held"] == 2
    assert rows[1]["before"]["suspension_reason"] == "chargeback fraud"
    assert rows[1]["after"]["suspension_reason"] == "under review"
    assert "suspended_at" not in rows[1]["after"]  # unchanged
    assert rows[2]["after"]["messages_released"] == 2
    assert await support.violations(conn) == []


async def test_a_suspension_outlived_by_its_messages_expires_them_and_releases_their_hold(
    api, conn, admin_headers, tenant
):
    sent = await support.send(api, tenant, body="short-lived", validity_seconds=60)
    assert sent.status_code == 202, sent.text
    assert (await _suspend(api, admin_headers, tenant.id)).status_code == 200
    row = await (await conn.execute("SELECT next_attempt_at, expires_at FROM messages")).fetchone()
    # Waiting for its expiry: the claim that finds it then expires it (its hold released).
    assert row["next_attempt_at"] == row["expires_at"]
    assert (await support.balance(api, tenant))["held"] == 7_900


async def test_suspension_requests_are_checked(api, conn, admin_headers, tenant):
    blank = await _suspend(api, admin_headers, tenant.id, reason="   ")
    assert [e["field"] for e in assert_problem(blank, 422, "invalid_request")["errors"]] == [
        "reason"
    ]
    missing = await api.put(
        f"/v1/admin/tenants/{tenant.id}/suspension", json={}, headers=admin_headers
    )
    assert_problem(missing, 422, "invalid_request")
    unknown = await _suspend(api, admin_headers, "00000000-0000-0000-0000-000000000000")
    assert_problem(unknown, 404, "not_found")
    # A tenant cannot lift its own suspension, nor suspend itself.
    own = await api.delete(f"/v1/admin/tenants/{tenant.id}/suspension", headers=tenant.headers)
    assert own.status_code == 403
    shown = (await api.get(f"/v1/admin/tenants/{tenant.id}", headers=admin_headers)).json()
    assert shown["suspended_at"] is None
    assert (await support.send(api, tenant)).status_code == 202


async def test_lifting_a_destination_does_not_release_a_suspended_tenants_messages(
    api, conn, admin_headers, tenant
):
    # A pumping suspension of the tenant's US range, then the operator suspends the tenant.
    assert (await support.send(api, tenant, body="held twice")).status_code == 202
    await conn.execute(
        "INSERT INTO destination_suspensions (tenant_id, country, prefix, until, cause)"
        " VALUES (%s, 'US', '1', now() + interval '1 hour', '{}')",
        (tenant.id,),
    )
    assert (await _suspend(api, admin_headers, tenant.id)).status_code == 200
    (suspension,) = (await api.get("/v1/admin/suspensions", headers=admin_headers)).json()[
        "suspensions"
    ]
    lifted = await api.delete(f"/v1/admin/suspensions/{suspension['id']}", headers=admin_headers)
    assert lifted.status_code == 200, lifted.text
    # The destination is free again, the tenant is not: its message still waits.
    assert await _claimable(conn, tenant.id) == []
    resumed = await api.delete(f"/v1/admin/tenants/{tenant.id}/suspension", headers=admin_headers)
    assert resumed.status_code == 200
    assert await _claimable(conn, tenant.id) == [VALID_TO]
