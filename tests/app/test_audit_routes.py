"""Every route that changes settings writes its audit row (issue 25, item 5), checked
against the app's own route table: a route that changes something and is neither in
CHANGES nor in NOT_SETTINGS fails the first test, so a new route cannot forget its
audit. Each change is made through the real HTTP app, and its row read back through
GET /v1/admin/audit and from the table itself: the action, the actor, the address,
before and after, and no secret anywhere."""

from __future__ import annotations

from tests.app.audited_routes import (
    ADDRESS,
    CHANGES,
    NOT_SETTINGS,
    World,
    _json,
    _last_id,
    _rows,
    _tenant_key_id,
)
from tests.isolation.routes import endpoints


def test_every_route_that_changes_something_is_audited_or_excused():
    changing = {(e.method, e.path) for e in endpoints() if e.method not in ("GET", "HEAD")}
    assert not set(CHANGES) & set(NOT_SETTINGS)
    assert changing - set(CHANGES) - set(NOT_SETTINGS) == set(), "routes without an audit"
    assert set(CHANGES) | set(NOT_SETTINGS) <= changing, "cases of routes that are gone"


async def test_every_change_appears_with_its_actor_before_and_after(
    api, conn, admin_headers, tenant
):
    w = World(api, admin_headers, tenant, {tenant.api_key, tenant.webhook_secret}, conn=conn)
    key_id = await _tenant_key_id(conn, tenant)
    for (method, path), change in CHANGES.items():
        where = f"{method} {path}"
        prepared = await change.prepare(w)
        last = await _last_id(conn)
        response = await change.call(w, prepared)
        for name in ("api_key", "webhook_secret", "password", "auth_token"):
            if isinstance(body := _json(response), dict) and isinstance(body.get(name), str):
                w.secrets.add(body[name])
        rows = await _rows(conn, "SELECT * FROM audit_events WHERE id > %s ORDER BY id", last)
        assert [r["action"] for r in rows] == [change.action], where
        [row] = rows
        tenant_side = path.startswith(
            ("/v1/suppressions", "/v1/webhooks", "/v1/suspensions", "/v1/alerts")
        )
        assert row["actor_kind"] == ("api_key" if tenant_side else "admin"), where
        assert row["actor_id"] == (key_id if tenant_side else None), where
        assert row["address"] == ADDRESS, where
        if change.tenant_scoped:
            assert str(row["tenant_id"]) == tenant.id, where
        elif change.action == "tenant.created":
            assert str(row["tenant_id"]) == response.json()["id"], where
        else:
            assert row["tenant_id"] is None, where
        for side in ("before", "after"):
            wanted = getattr(change, side)
            if wanted is None:
                assert row[side] is None, f"{where}: {side}"
            else:
                assert set(wanted) <= set(row[side]), f"{where}: {side} {row[side]}"
        # The same row through the API, newest first.
        listed = await api.get(
            "/v1/admin/audit", params={"action": change.action, "limit": 1}, headers=admin_headers
        )
        assert listed.json()["events"][0]["id"] == row["id"], where
    # No secret shown to any caller is in the table, nor in what the API answers of it.
    raw = "\n".join(
        str(r["t"]) for r in await _rows(conn, "SELECT a::text AS t FROM audit_events a")
    )
    listed = (await api.get("/v1/admin/audit", params={"limit": 500}, headers=admin_headers)).text
    assert len(w.secrets) >= 8
    for secret in w.secrets:
        assert secret not in raw
        assert secret not in listed
    assert '"***"' in raw
