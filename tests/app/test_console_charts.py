"""The tenant console's charts (spend and volume by day) and their table (by country)
come from one statement; they agree with the API's usage reports by day and by country,
from raw messages and once their hours are folded into rollups."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from core import reports, rollups, tenants
from tests.app.test_consoles import tenant_user
from tests.rollups import traffic


async def _api_usage(api, tenant, group_by: str) -> list[dict]:
    answer = await api.get(
        "/v1/reports/usage", params={"group_by": group_by}, headers=tenant.headers
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["rows"]


async def _charts_agree(api, conn, tenant) -> None:
    found, _ = await tenants.get_tenant(conn, tenant_id=tenant.id)
    by_day, by_country = await reports.tenant_usage_by_day_and_country(
        conn, tenant_id=found.id, currency=found.currency, from_=None, to=None
    )
    assert [_shown(r) for r in by_day.rows] == await _api_usage(api, tenant, "day")
    assert [_shown(r) for r in by_country.rows] == await _api_usage(api, tenant, "country")


def _shown(row: reports.UsageRow) -> dict:
    return {"key": row.key, "messages": row.messages, "segments": row.segments, "spent": row.spent}


async def test_the_charts_agree_with_the_usage_reports_before_and_after_the_fold(
    api, conn, pool, settings, admin_headers
):
    first, _ = await traffic(api, conn, settings, admin_headers, scheduled=False)
    countries = await _api_usage(api, first, "country")
    # Four countries, money spent on the messages providers took.
    assert len(countries) == 4
    assert sum(r["spent"] for r in countries) > 0
    await _charts_agree(api, conn, first)

    # The hour folded into rollups (as if it had closed): the same figures from them.
    assert await rollups.fold_due(pool, settings, at=datetime.now(UTC) + timedelta(hours=2))
    await _charts_agree(api, conn, first)

    # And the page shows them: today's messages in the table by country.
    await tenant_user(api, first.id, "owner@charts.example")
    page = await api.get("/console/usage")
    assert page.status_code == 200
    for row in countries:
        assert re.search(rf">{row['key']}<", page.text), row["key"]
