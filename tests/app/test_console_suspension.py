"""Suspending a tenant from the operator console (issue 28): the operator sees the
suspension on the tenant's page and in the list, the tenant sees it on its overview and
its console's test send is refused like its API sends; resuming lifts all of it. The
same journey in a browser: tests/app/test_consoles_browser.py."""

from __future__ import annotations

from tests import support
from tests.app.test_consoles import operator_signed_in, tenant_user


async def test_the_operator_suspends_and_resumes_a_tenant_from_the_console(
    api, conn, admin_headers, tenant
):
    csrf = await operator_signed_in(api)
    page = f"/console/operator/tenants/{tenant.id}"
    blank = await api.post(f"{page}/suspension", data={"reason": " ", "csrf_token": csrf})
    assert blank.status_code == 422
    assert "reason" in blank.text
    shown = await api.get(f"/v1/admin/tenants/{tenant.id}", headers=admin_headers)
    assert shown.json()["suspended_at"] is None

    suspended = await api.post(
        f"{page}/suspension",
        data={"reason": "chargebacks from the card issuer", "csrf_token": csrf},
    )
    assert suspended.status_code == 303, suspended.text
    shown = await api.get(suspended.headers["location"])
    assert 'id="suspended"' in shown.text
    assert "chargebacks from the card issuer" in shown.text
    assert f'action="{page}/resume"' in shown.text
    listed = await api.get("/console/operator/tenants", params={"q": tenant.id})
    assert "badge-suspended" in listed.text
    # Its API sends are refused at once.
    support.assert_problem(await support.send(api, tenant), 403, "tenant_suspended")

    # The tenant's own console says so, and its test send is refused, nothing held.
    user_csrf = await tenant_user(api, tenant.id, "owner@suspended.example")
    overview = await api.get("/console/")
    assert "This account is suspended" in overview.text
    assert "chargebacks from the card issuer" in overview.text
    refused = await api.post(
        "/console/send", data={"to": support.VALID_TO, "body": "hi", "csrf_token": user_csrf}
    )
    assert refused.status_code == 403
    assert "suspended" in refused.text
    assert await support.stored(conn) == support.NOTHING_STORED

    csrf = await operator_signed_in(api)
    resumed = await api.post(f"{page}/resume", data={"csrf_token": csrf})
    assert resumed.status_code == 303, resumed.text
    back = await api.get(resumed.headers["location"])
    assert 'id="suspended"' not in back.text
    assert "Tenant resumed" in back.text
    assert (await support.send(api, tenant)).status_code == 202
    assert await support.violations(conn) == []


async def test_a_forged_suspension_without_the_csrf_token_changes_nothing(api, tenant):
    await operator_signed_in(api)
    forged = await api.post(
        f"/console/operator/tenants/{tenant.id}/suspension", data={"reason": "forged"}
    )
    assert forged.status_code == 403
    assert (await support.send(api, tenant)).status_code == 202
