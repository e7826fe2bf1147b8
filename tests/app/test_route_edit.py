"""A route edited in place (issue 28: "edit a route"): `PATCH /v1/admin/routes/{id}` and
the operator console's route form and switch, which call the same core function. The
route keeps its id; the audit row names the fields that changed."""

from __future__ import annotations

import httpx

from tests.app.audited_routes import _last_id, _rows
from tests.app.test_consoles import operator_signed_in
from tests.support import assert_problem


async def _route(api: httpx.AsyncClient, admin: dict[str, str], **fields: object) -> dict:
    for name in ("spare", "backup"):
        put = await api.put(
            f"/v1/admin/providers/{name}", json={"kind": "simulator"}, headers=admin
        )
        assert put.status_code == 200, put.text
    body = {"prefix": "+44", "provider": "spare", "priority": 5, **fields}
    added = await api.post("/v1/admin/routes", json=body, headers=admin)
    assert added.status_code == 201, added.text
    route: dict = added.json()
    return route


async def _listed(api: httpx.AsyncClient, admin: dict[str, str]) -> list[dict]:
    routes: list[dict] = (await api.get("/v1/admin/routes", headers=admin)).json()
    return routes


async def test_a_patch_changes_the_fields_given_and_keeps_the_routes_id(api, conn, admin_headers):
    route = await _route(api, admin_headers, cost_per_segment=2100, tier="vip")
    last = await _last_id(conn)
    patched = await api.patch(
        f"/v1/admin/routes/{route['id']}",
        json={"provider": "backup", "priority": 1, "enabled": False},
        headers=admin_headers,
    )
    assert patched.status_code == 200, patched.text
    expected = {
        **route,
        "provider": "backup",
        "priority": 1,
        "enabled": False,
    }
    assert patched.json() == expected
    assert await _listed(api, admin_headers) == [expected]
    [row] = await _rows(conn, "SELECT * FROM audit_events WHERE id > %s", last)
    assert (row["action"], row["target"], row["actor_kind"]) == (
        "route.updated",
        f"route:{route['id']}",
        "admin",
    )
    assert row["before"] == {"provider": "spare", "priority": 5, "enabled": True}
    assert row["after"] == {"provider": "backup", "priority": 1, "enabled": False}
    # The tier back to every tier (null), the rest as it was.
    every = await api.patch(
        f"/v1/admin/routes/{route['id']}", json={"tier": None}, headers=admin_headers
    )
    assert every.json() == {**expected, "tier": None}
    # An empty edit changes nothing and records nothing.
    last = await _last_id(conn)
    same = await api.patch(f"/v1/admin/routes/{route['id']}", json={}, headers=admin_headers)
    assert same.status_code == 200
    assert same.json() == {**expected, "tier": None}
    assert await _rows(conn, "SELECT id FROM audit_events WHERE id > %s", last) == []


async def test_bad_edits_are_problems_and_leave_the_route_as_it_was(api, conn, admin_headers):
    route = await _route(api, admin_headers)
    url = f"/v1/admin/routes/{route['id']}"
    last = await _last_id(conn)
    bad = [
        ({"prefix": "44"}, "prefix"),
        ({"provider": "nowhere"}, "provider"),
        ({"priority": 2**31}, "priority"),
        ({"cost_per_segment": -1}, "cost_per_segment"),
        ({"tier": "gold"}, "tier"),
        ({"id": 7}, "id"),
        ({"colour": "red"}, "colour"),
    ]
    for body, field in bad:
        refused = await api.patch(url, json=body, headers=admin_headers)
        problem = assert_problem(refused, 422, "invalid_request")
        assert field in str(problem["errors"]), (body, problem)
    malformed = await api.patch(
        url, content=b'{"priority": ', headers={**admin_headers, "Content-Type": "application/json"}
    )
    assert_problem(malformed, 400, "invalid_request")
    for missing in (
        "/v1/admin/routes/999999",
        "/v1/admin/routes/x1",
        "/v1/admin/routes/" + "9" * 25,
        "/v1/admin/routes/%C2%B2",  # "²": a digit to str.isdigit, not to int()
    ):
        assert_problem(
            await api.patch(missing, json={"priority": 1}, headers=admin_headers), 404, "not_found"
        )
        assert_problem(await api.delete(missing, headers=admin_headers), 404, "not_found")
    assert await _listed(api, admin_headers) == [route]
    assert await _rows(conn, "SELECT id FROM audit_events WHERE id > %s", last) == []
    nobody = await api.patch(url, json={"priority": 1})
    assert nobody.status_code == 401


async def test_the_console_edits_and_switches_a_route_in_place(api, conn, admin_headers):
    route = await _route(api, admin_headers, cost_per_segment=2100)
    csrf = await operator_signed_in(api)
    listing = await api.get("/console/operator/providers")
    assert f'href="/console/operator/routes/{route["id"]}"' in listing.text
    form = await api.get(f"/console/operator/routes/{route['id']}")
    assert form.status_code == 200
    assert 'value="+44"' in form.text
    fields = {
        "prefix": "+447",
        "tier": "premium",
        "provider": "backup",
        "priority": "3",
        "cost_per_segment": "1900",
        "enabled": "true",
        "csrf_token": csrf,
    }
    saved = await api.post(
        f"/console/operator/routes/{route['id']}", data=fields, follow_redirects=True
    )
    assert saved.status_code == 200, saved.text
    assert "Route saved." in saved.text
    edited = {
        **route,
        "prefix": "+447",
        "tier": "premium",
        "provider": "backup",
        "priority": 3,
        "cost_per_segment": 1900,
    }
    assert await _listed(api, admin_headers) == [edited]
    # The switch: off and on again, the same route (same id) each time.
    for enabled in ("false", "true"):
        switched = await api.post(
            f"/console/operator/routes/{route['id']}/enabled",
            data={"enabled": enabled, "csrf_token": csrf},
            follow_redirects=True,
        )
        word = "Enable" if enabled == "false" else "Disable"
        assert f"{word} route +447 via backup" in switched.text
        assert await _listed(api, admin_headers) == [{**edited, "enabled": enabled == "true"}]
    rows = await _rows(
        conn, "SELECT action, target FROM audit_events WHERE action LIKE 'route.%%' ORDER BY id"
    )
    assert [r["action"] for r in rows] == ["route.created"] + ["route.updated"] * 3
    assert {r["target"] for r in rows} == {f"route:{route['id']}"}


async def test_a_bad_or_forged_console_edit_changes_nothing(api, admin_headers):
    route = await _route(api, admin_headers)
    csrf = await operator_signed_in(api)
    url = f"/console/operator/routes/{route['id']}"
    fields = {"prefix": "+1", "tier": "", "provider": "spare", "priority": "1"}
    forged = await api.post(url, data={**fields, "cost_per_segment": "0"})
    assert forged.status_code == 403
    bad = await api.post(url, data={**fields, "cost_per_segment": "lots", "csrf_token": csrf})
    assert bad.status_code == 422
    assert "cost_per_segment" in bad.text
    gone = await api.post(
        "/console/operator/routes/999999",
        data={**fields, "cost_per_segment": "0", "csrf_token": csrf},
    )
    assert gone.status_code == 404
    assert (await api.get("/console/operator/routes/999999")).status_code == 404
    assert await _listed(api, admin_headers) == [route]
