"""Reports: what they say equals what the messages API shows, message by message."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import phonenumbers

from tests import support, workers

CAPTURED = {"sent", "delivered", "undelivered"}
PENDING = {"queued", "sending", "sent"}
# Destinations in four countries, two of which share the +1 calling code.
DESTINATIONS = {
    "+14155552671": "US",
    "+14162345678": "CA",
    "+18762345678": "JM",
    "+447400123456": "GB",
}


async def all_messages(api: httpx.AsyncClient, tenant: support.TenantHandle) -> list[dict]:
    found: list[dict] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 500}
        if cursor:
            params["cursor"] = cursor
        page = await api.get("/v1/messages", params=params, headers=tenant.headers)
        assert page.status_code == 200, page.text
        body = page.json()
        found += body["messages"]
        cursor = body["next_cursor"]
        if not cursor:
            return found


async def settled(api: httpx.AsyncClient, tenant: support.TenantHandle) -> list[dict] | None:
    """Every message at rest (nothing queued, sending or awaiting its receipt)."""
    found = await all_messages(api, tenant)
    return found if not any(m["status"] in PENDING for m in found) else None


def expected_usage(messages: list[dict], key: str) -> dict[Any, dict[str, int]]:
    rows: dict[Any, dict[str, int]] = defaultdict(lambda: Counter())  # type: ignore[arg-type]
    for m in messages:
        k = m["created_at"][:10] if key == "day" else m[key]
        rows[k]["messages"] += 1
        rows[k]["segments"] += m["segments"]
        rows[k]["spent"] += m["price"] if m["status"] in CAPTURED else 0
    return {k: dict(v) for k, v in rows.items()}


def as_table(rows: list[dict]) -> dict[Any, dict[str, int]]:
    return {
        r["key"]: {"messages": r["messages"], "segments": r["segments"], "spent": r["spent"]}
        for r in rows
    }


async def test_usage_by_day_status_and_provider_equals_the_tenants_messages(
    api, settings, admin_headers
):
    tenant = await support.make_tenant(api, admin_headers, credit=50_000_000, name="reported")
    other = await support.make_tenant(api, admin_headers, credit=5_000_000, name="other")
    batch = [
        {"to": to, "body": "x" * (60 if i % 3 else 200)}  # one or two segments
        for i, to in enumerate(list(DESTINATIONS) * 15)
    ]
    accepted = await api.post(
        "/v1/messages/batch", json={"messages": batch}, headers=tenant.headers
    )
    assert accepted.status_code == 202, accepted.text
    later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    scheduled = await support.send(api, tenant, send_at=later)
    canceled = await support.send(api, tenant, send_at=later)
    await api.post(f"/v1/messages/{canceled.json()['id']}/cancel", headers=tenant.headers)
    await support.send(api, other)

    async with workers.in_process(
        settings, simulator_permanent_rate=0.2, simulator_delivery_rate=0.7
    ):
        messages = await workers.eventually(lambda: settled(api, tenant), timeout=60)
    assert len(messages) == 62
    assert {m["status"] for m in messages} >= {"delivered", "undelivered", "failed", "scheduled"}
    assert scheduled.status_code == 202

    for group_by, key in (("day", "day"), ("status", "status"), ("provider", "provider")):
        report = await api.get(
            "/v1/reports/usage", params={"group_by": group_by}, headers=tenant.headers
        )
        assert report.status_code == 200, report.text
        body = report.json()
        assert body["group_by"] == group_by
        assert body["currency"] == "USD"
        assert as_table(body["rows"]) == expected_usage(messages, key), group_by

    # What the report calls spent is what the ledger captured.
    by_status = (await api.get("/v1/reports/usage?group_by=status", headers=tenant.headers)).json()
    balance = await support.balance(api, tenant)
    assert sum(r["spent"] for r in by_status["rows"]) == balance["captured"] > 0
    # By provider: messages never handed to one (scheduled, canceled) have none.
    by_provider = await api.get("/v1/reports/usage?group_by=provider", headers=tenant.headers)
    keys = {r["key"] for r in by_provider.json()["rows"]}
    assert keys == {"simulator", None}


async def test_the_window_bounds_what_a_report_counts(api, tenant):
    await support.send(api, tenant)
    today = datetime.now(UTC).date()
    yesterday = (today - timedelta(days=1)).isoformat()
    # A date is a whole UTC day: `to=today` includes today's messages.
    inside = await api.get(
        "/v1/reports/usage",
        params={"from": yesterday, "to": today.isoformat()},
        headers=tenant.headers,
    )
    assert [r["messages"] for r in inside.json()["rows"]] == [1]
    assert inside.json()["from"].startswith(yesterday)
    before = await api.get(
        "/v1/reports/usage", params={"from": yesterday, "to": yesterday}, headers=tenant.headers
    )
    assert before.status_code == 200
    assert before.json()["rows"] == []
    # Timestamps work too, with an offset.
    since = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    recent = await api.get("/v1/reports/usage", params={"from": since}, headers=tenant.headers)
    assert [r["messages"] for r in recent.json()["rows"]] == [1]


async def test_report_parameters_are_validated(api, tenant, admin_headers):
    cases = [
        ({"from": "2024-01-01", "to": "2025-06-30"}, "from"),  # more than 397 days
        ({"from": "2025-02-01", "to": "2025-01-01"}, "to"),
        ({"from": "last tuesday"}, "from"),
        ({"from": "2025-01-01T00:00:00"}, "from"),  # no UTC offset
        ({"group_by": "tier"}, "group_by"),  # country became one (issue 23)
    ]
    for params, field in cases:
        response = await api.get("/v1/reports/usage", params=params, headers=tenant.headers)
        body = support.assert_problem(response, 422, "invalid_request")
        assert [e["field"] for e in body["errors"]] == [field], params
    top = await api.get(
        "/v1/admin/reports/top-tenants", params={"limit": 1000}, headers=admin_headers
    )
    assert [e["field"] for e in support.assert_problem(top, 422, "invalid_request")["errors"]] == [
        "limit"
    ]
    bad_cursor = await api.get(
        "/v1/admin/reports/top-tenants", params={"cursor": "garbage"}, headers=admin_headers
    )
    support.assert_problem(bad_cursor, 422, "invalid_request")
    # Reports are the tenant's own; the admin ones want the admin token.
    support.assert_problem(await api.get("/v1/reports/usage"), 401, "unauthorized")
    support.assert_problem(
        await api.get("/v1/admin/reports/spend", headers=tenant.headers), 403, "forbidden"
    )


async def test_admin_reports_across_tenants(api, settings, admin_headers):
    # Two upstreams: the UK goes to one that rejects a share, the rest to a lossy one.
    for name, config in (
        ("uk-sim", {"permanent_rate": 0.3, "dlr_delay_seconds": 0.05}),
        ("world-sim", {"delivery_rate": 0.6, "dlr_delay_seconds": 0.05}),
    ):
        put = await api.put(
            f"/v1/admin/providers/{name}",
            json={"kind": "simulator", "config": {"seed": 3, **config}},
            headers=admin_headers,
        )
        assert put.status_code == 200, put.text
    for prefix, provider in (("+44", "uk-sim"), ("+", "world-sim")):
        route = await api.post(
            "/v1/admin/routes",
            json={"prefix": prefix, "provider": provider, "priority": 10 if prefix != "+" else 20},
            headers=admin_headers,
        )
        assert route.status_code == 201, route.text

    tenants = {}
    for name, tier, count in (
        ("big", "vip", 40),
        ("mid", "standard", 24),
        ("small", "standard", 8),
    ):
        handle = await support.make_tenant(
            api, admin_headers, credit=20_000_000, name=name, tier=tier
        )
        batch = [{"to": to, "body": "hi"} for to in list(DESTINATIONS) * (count // 4)]
        response = await api.post(
            "/v1/messages/batch", json={"messages": batch}, headers=handle.headers
        )
        assert response.status_code == 202, response.text
        tenants[name] = handle
    async with workers.in_process(settings):
        everything = {
            name: await workers.eventually(lambda h=handle: settled(api, h), timeout=60)
            for name, handle in tenants.items()
        }

    # Top tenants, a page of two then the rest.
    first = await api.get(
        "/v1/admin/reports/top-tenants", params={"limit": 2}, headers=admin_headers
    )
    assert first.status_code == 200, first.text
    page = first.json()
    assert [(r["name"], r["messages"]) for r in page["rows"]] == [("big", 40), ("mid", 24)]
    assert page["next_cursor"]
    rest = await api.get(
        "/v1/admin/reports/top-tenants",
        params={"limit": 2, "cursor": page["next_cursor"]},
        headers=admin_headers,
    )
    assert [(r["name"], r["messages"]) for r in rest.json()["rows"]] == [("small", 8)]
    assert rest.json()["next_cursor"] is None
    for row in page["rows"] + rest.json()["rows"]:
        balance = await support.balance(api, tenants[row["name"]])
        assert row["spent"] == balance["captured"]

    # Spend by tier equals the tenants' captured money, tier by tier.
    spend = (await api.get("/v1/admin/reports/spend", headers=admin_headers)).json()["rows"]
    captured = Counter()
    for handle in tenants.values():
        captured[handle.body["tier"]] += (await support.balance(api, handle))["captured"]
    assert {r["tier"]: r["spent"] for r in spend} == dict(captured)
    assert {r["tier"]: r["tenants"] for r in spend} == {"vip": 1, "standard": 2}
    assert {r["tier"]: r["messages"] for r in spend} == {"vip": 40, "standard": 32}

    # Delivery per provider and country: countries as phonenumbers sees the numbers.
    expected: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for messages in everything.values():
        for m in messages:
            region = phonenumbers.region_code_for_number(phonenumbers.parse(m["to"]))
            key = (m["provider"], region)
            expected[key]["messages"] += 1
            expected[key][m["status"]] += 1
    report = await api.get("/v1/admin/reports/delivery", headers=admin_headers)
    assert report.status_code == 200, report.text
    rows = report.json()["rows"]
    got = {(r["provider"], r["country"]): r for r in rows}
    assert (
        set(got)
        == set(expected)
        == {
            ("uk-sim", "GB"),
            ("world-sim", "US"),
            ("world-sim", "CA"),
            ("world-sim", "JM"),
        }
    )
    for key, counts in expected.items():
        row = got[key]
        assert row["messages"] == counts["messages"], key
        for status in ("delivered", "undelivered", "failed", "expired"):
            assert row[status] == counts[status], (key, status)
        known = sum(counts[s] for s in ("delivered", "undelivered", "failed", "expired"))
        assert row["delivery_rate"] == round(counts["delivered"] / known, 6)
    assert got[("uk-sim", "GB")]["failed"] > 0
    assert got[("world-sim", "US")]["undelivered"] > 0
    # Largest first, and paginated.
    assert [r["messages"] for r in rows] == sorted((r["messages"] for r in rows), reverse=True)
    one = (await api.get("/v1/admin/reports/delivery?limit=1", headers=admin_headers)).json()
    two = await api.get(
        "/v1/admin/reports/delivery",
        params={"limit": 3, "cursor": one["next_cursor"]},
        headers=admin_headers,
    )
    assert one["rows"] + two.json()["rows"] == rows
