"""A provider's cost list uploaded in the operator console (issue 28): the rate card
flow's steps (upload, the dry run's diff, confirm), through the core function of
`POST /v1/admin/providers/{name}/costs`, audited as it is."""

from __future__ import annotations

import re

import httpx

from tests.app.audited_routes import _last_id, _rows
from tests.app.test_consoles import operator_signed_in

OLD = "prefix,country,network,price\n44,GB,,2500\n1,US,,900\n"
NEW = "prefix,country,network,price\n44,GB,,2700\n33,FR,,3100\n"
CARRIED = re.compile(r'<textarea name="csv" hidden>(.*?)</textarea>', re.DOTALL)


async def _preview(api: httpx.AsyncClient, csrf: str, provider: str, text: str) -> httpx.Response:
    return await api.post(
        "/console/operator/cost-lists/preview",
        data={"provider": provider, "csrf_token": csrf},
        files={"file": ("costs.csv", text.encode(), "text/csv")},
    )


def _summary(page: httpx.Response) -> str:
    found = re.search(r'id="diff-summary">(.*?)</p>', page.text, re.DOTALL)
    assert found, page.text[:800]
    return " ".join(found.group(1).split())


async def _exported(api: httpx.AsyncClient, admin: dict[str, str]) -> list[str]:
    got = await api.get("/v1/admin/rate-cards/provider:spare/versions/current.csv", headers=admin)
    assert got.status_code == 200, got.text
    return got.text.splitlines()[1:]


async def test_a_cost_list_upload_shows_its_diff_then_writes_on_confirm(api, conn, admin_headers):
    await api.put("/v1/admin/providers/spare", json={"kind": "simulator"}, headers=admin_headers)
    csrf = await operator_signed_in(api)
    providers = await api.get("/console/operator/providers")
    assert 'href="/console/operator/cost-lists?provider=spare"' in providers.text
    form = await api.get("/console/operator/cost-lists", params={"provider": "spare"})
    assert "<option selected>spare</option>" in form.text
    # The first list: everything is added, nothing written until confirmed.
    first = await _preview(api, csrf, "spare", OLD)
    assert first.status_code == 200, first.text
    assert _summary(first) == (
        "Against no version (a new cost list): 2 added, 0 removed, 0 up, 0 down, 0 unchanged."
    )
    missing = await api.get("/v1/admin/rate-cards/provider:spare", headers=admin_headers)
    assert missing.status_code == 404
    carried = CARRIED.search(first.text)
    assert carried
    last = await _last_id(conn)
    confirm = {"provider": "spare", "csrf_token": csrf, "effective_at": ""}
    done = await api.post(
        "/console/operator/cost-lists/confirm",
        data={**confirm, "against": "", "csv": carried.group(1)},
    )
    assert done.status_code == 200, done.text
    assert "provider:spare: version 1" in done.text
    assert "2 rates" in done.text
    assert await _exported(api, admin_headers) == ["1,US,,900", "44,GB,,2500"]
    [row] = await _rows(conn, "SELECT * FROM audit_events WHERE id > %s", last)
    assert (row["action"], row["target"], row["actor_kind"]) == (
        "provider_costs.imported",
        "provider:spare",
        "console_user",
    )
    # The next list's diff is against version 1; a confirm of a stale preview is refused.
    second = await _preview(api, csrf, "spare", NEW)
    assert _summary(second) == ("Against version 1: 1 added, 1 removed, 1 up, 0 down, 0 unchanged.")
    carried = CARRIED.search(second.text)
    assert carried
    stale = await api.post(
        "/console/operator/cost-lists/confirm",
        data={**confirm, "against": "", "csv": carried.group(1)},
    )
    assert stale.status_code == 409
    assert "upload the file again" in stale.text
    done = await api.post(
        "/console/operator/cost-lists/confirm",
        data={**confirm, "against": "1", "csv": carried.group(1)},
    )
    assert done.status_code == 200, done.text
    assert await _exported(api, admin_headers) == ["33,FR,,3100", "44,GB,,2700"]


async def test_a_bad_cost_list_or_provider_writes_nothing(api, conn, admin_headers):
    await api.put("/v1/admin/providers/spare", json={"kind": "simulator"}, headers=admin_headers)
    csrf = await operator_signed_in(api)
    last = await _last_id(conn)
    bad = await _preview(api, csrf, "spare", "prefix,country,network,price\n44,GB,,cheap\n")
    assert bad.status_code == 422
    assert "line 2" in bad.text
    unknown = await _preview(api, csrf, "nobody", OLD)
    assert unknown.status_code == 404
    assert "No provider has this name." in unknown.text
    forged = await api.post(
        "/console/operator/cost-lists/confirm",
        data={"provider": "spare", "csv": OLD, "against": "", "effective_at": ""},
    )
    assert forged.status_code == 403
    gone = await api.get("/v1/admin/rate-cards/provider:spare", headers=admin_headers)
    assert gone.status_code == 404
    assert await _rows(conn, "SELECT id FROM audit_events WHERE id > %s", last) == []
