"""The audit log pages of the consoles: the operator's (every tenant's changes, filtered
by tenant and action, a keyset page at a time) and a tenant's own (its changes only).
What writes the rows is tested in tests/app/test_console_audit.py."""

from __future__ import annotations

import html
import re

from app.console import audit_log
from tests import support
from tests.app.test_console_audit import OWNER, SHOWN_ONCE
from tests.app.test_consoles import operator_signed_in, tenant_user


async def test_the_operator_reads_the_audit_log_filtered_and_page_by_page(
    api, admin_headers, tenant
):
    other = await support.make_tenant(api, admin_headers, credit=1_000_000, name="other")
    csrf = await operator_signed_in(api)
    for n in range(audit_log.PAGE + 2):
        done = await api.post(
            f"/console/operator/tenants/{tenant.id}/credits",
            data={"amount": "1", "reference": f"page-{n}", "csrf_token": csrf},
        )
        assert done.status_code == 303
    first = await api.get(
        "/console/operator/audit", params={"tenant": tenant.id, "action": "credit.topped_up"}
    )
    assert first.status_code == 200
    assert "Audit log" in first.text
    shown = re.findall(r"credit:page-(\d+)", first.text)
    assert len(shown) == audit_log.PAGE
    assert shown[0] == str(audit_log.PAGE + 1)  # newest first
    assert "console_user operator-session:" in first.text
    older = re.search(r'id="older" href="([^"]+)"', first.text)
    assert older
    second = await api.get("/console/operator/audit" + html.unescape(older.group(1)))
    rest = re.findall(r"credit:page-(\d+)", second.text)
    assert sorted(map(int, shown + rest)) == list(range(audit_log.PAGE + 2))
    assert 'id="older"' not in second.text
    # Another tenant's events are filtered out; without the tenant filter they are there.
    assert other.id not in first.text
    created = await api.get("/console/operator/audit", params={"action": "tenant.created"})
    assert other.id in created.text
    assert tenant.id in created.text
    bad = await api.get("/console/operator/audit", params={"tenant": "not-an-id"})
    assert bad.status_code == 422
    assert "tenant_id" in bad.text


async def test_a_tenant_reads_its_own_audit_log_only(api, admin_headers, tenant):
    other = await support.make_tenant(api, admin_headers, credit=1_000_000, name="other")
    rotated = await api.post("/v1/webhooks/secret", headers=other.headers)
    assert rotated.status_code == 201
    csrf = await tenant_user(api, tenant.id, OWNER)
    keyed = await api.post("/console/keys", data={"csrf_token": csrf})
    key = SHOWN_ONCE.search(keyed.text)
    assert key
    log = await api.get("/console/audit")
    assert log.status_code == 200
    assert "api_key.created" in log.text
    assert "console_user.joined" in log.text
    assert "credit.topped_up" in log.text  # the operator's top-up of the tenant fixture
    assert "webhook_secret.rotated" not in log.text  # the other tenant's
    assert key.group(1) not in log.text
    assert '"***"' in html.unescape(log.text)
    only = await api.get("/console/audit", params={"action": "api_key.created"})
    assert "console_user.joined" not in only.text
    assert "api_key.created" in only.text
    # The operator's page is not a tenant user's.
    assert (await api.get("/console/operator/audit")).status_code == 303
