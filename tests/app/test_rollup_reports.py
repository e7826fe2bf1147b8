"""Reports read the hourly rollups: the same answers from raw messages, from rollups,
and from rollups alone once retention dropped the raw messages; windows of 13 months."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

from core import rollups
from tests import support
from tests.rollups import traffic

TENANT_REPORTS = [
    {"group_by": "day"},
    {"group_by": "hour"},
    {"group_by": "status"},
    {"group_by": "provider"},
    {"group_by": "country"},
]
ADMIN_REPORTS = [
    ("/v1/admin/reports/usage", {"group_by": "tenant"}),
    ("/v1/admin/reports/usage", {"group_by": "country", "period": "hour"}),
    ("/v1/admin/reports/usage", {"group_by": "provider", "period": "window"}),
    ("/v1/admin/reports/usage", {"group_by": "status"}),
    ("/v1/admin/reports/top-tenants", {}),
    ("/v1/admin/reports/delivery", {}),
    ("/v1/admin/reports/spend", {}),
    ("/v1/admin/reports/margin", {"group_by": "country"}),
    ("/v1/admin/reports/margin", {"group_by": "tenant"}),
]


async def _answers(api, admin_headers, tenants):
    window = {"from": (datetime.now(UTC) - timedelta(days=396)).date().isoformat()}
    answers = []
    for tenant in tenants:
        for params in TENANT_REPORTS:
            got = await api.get(
                "/v1/reports/usage", params={**window, **params}, headers=tenant.headers
            )
            assert got.status_code == 200, got.text
            answers.append(got.json())
    for path, params in ADMIN_REPORTS:
        got = await api.get(path, params={**window, **params}, headers=admin_headers)
        assert got.status_code == 200, got.text
        answers.append(got.json())
    billing = await api.get("/v1/admin/reports/billing", params=window, headers=admin_headers)
    assert billing.status_code == 200, billing.text
    assert billing.headers["content-type"].startswith("text/csv")
    answers.append(list(csv.DictReader(io.StringIO(billing.text))))
    return answers


async def test_reports_answer_the_same_from_raw_messages_rollups_and_rollups_alone(
    api, conn, pool, settings, admin_headers
):
    tenants = await traffic(api, conn, settings, admin_headers, scheduled=False)
    raw = await _answers(api, admin_headers, tenants)
    usage = raw[0]["rows"]
    assert sum(r["messages"] for r in usage) == 24 + 1  # the batch and the canceled one
    billing = raw[-1]
    assert {r["tenant_id"] for r in billing} == {str(t.id) for t in tenants}
    assert sum(int(r["messages"]) for r in billing) == 24 + 1 + 9

    assert await rollups.fold_due(pool, settings, at=datetime.now(UTC) + timedelta(hours=2))
    assert await _answers(api, admin_headers, tenants) == raw

    today = datetime.now(UTC).date()
    await conn.execute("SELECT smsgw_drop_partitions_v1(%s)", (today + timedelta(1),))
    assert await support.count(conn, "SELECT count(*) AS n FROM messages") == 0
    assert await _answers(api, admin_headers, tenants) == raw


async def test_admin_usage_parameters_are_validated(api, admin_headers):
    for params, field in [
        ({"period": "week"}, "period"),
        ({"group_by": "tier"}, "group_by"),
        ({"cursor": "nope"}, "cursor"),
        ({"from": "2024-01-01", "to": "2025-06-30"}, "from"),
    ]:
        got = await api.get("/v1/admin/reports/usage", params=params, headers=admin_headers)
        body = support.assert_problem(got, 422, "invalid_request")
        assert body["errors"][0]["field"] == field, body
    got = await api.get("/v1/admin/reports/billing", params={"from": "x"}, headers=admin_headers)
    support.assert_problem(got, 422, "invalid_request")
