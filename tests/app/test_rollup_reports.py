"""Reports read the daily cubes for a window's whole days, the hourly rollups at its
edges and raw messages after the last folded hour: the same answers from raw messages,
from all three, and from rollups alone once retention dropped the raw messages; windows
of 13 months, of whole days, with a partial first day, and inside one day."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import msgspec

from core import rollups
from db import rollups as rollups_db
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
    ("/v1/admin/reports/margin", {"group_by": "day"}),
    ("/v1/admin/reports/deliverability", {}),
    ("/v1/admin/reports/deliverability", {"period": "window"}),
]
# Latency quantiles come from folded hours only (raw rows carry no buckets), so they are
# left out of the comparison with raw answers; checked on their own after the fold.
LATENCIES = ("sent_p50_ms", "sent_p95_ms", "delivered_p50_ms", "delivered_p95_ms")


async def _earlier(conn, tenant_id, at):
    """20 delivered messages of an earlier hour, written directly (free: held and
    captured at 0, so the ledger stays whole)."""
    await conn.execute(
        """
        WITH made AS (
            INSERT INTO messages (id, created_at, tenant_id, status, to_number, body,
                                  encoding, segments, price, expires_at, updated_at,
                                  provider, sent_at, delivered_at)
            SELECT (lpad(to_hex((extract(epoch FROM t) * 1000)::bigint), 12, '0') || '7'
                    || substr(md5(i::text), 1, 3) || '8' || substr(md5(i::text), 4, 15))::uuid,
                   t, %(tenant)s, 'delivered', '+447400123456', 'earlier', 'GSM-7', 1, 0,
                   t + interval '1 day', t, 'simulator', t, t + interval '2 s'
              FROM generate_series(1, 20) AS i,
                   LATERAL (SELECT %(at)s::timestamptz + i * interval '1 ms' AS t) AS made_at
            RETURNING id, created_at, tenant_id
        )
        INSERT INTO ledger_message_entries (message_created_at, message_id, tenant_id, kind,
                                            amount)
        SELECT created_at, id, tenant_id, kind, 0
          FROM made, (VALUES ('hold'), ('capture')) AS k (kind)
        """,
        {"tenant": tenant_id, "at": at},
    )


def _windows():
    today = datetime.now(UTC).date()
    monday = today - timedelta(days=today.weekday())
    first_of_last_month = (today.replace(day=1) - timedelta(days=1)).replace(day=1)
    end_of_month = (today.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
    return [
        {"from": (today - timedelta(days=396)).isoformat()},
        {"from": f"{today - timedelta(days=3)}T08:00:00Z"},
        {"from": (today - timedelta(days=3)).isoformat(), "to": str(today - timedelta(days=2))},
        {"from": f"{today - timedelta(days=2)}T03:00:00Z", "to": f"{today - timedelta(2)}T09:00Z"},
        # Whole ISO weeks (the traffic's days in them, whatever today is), and whole
        # months: reports over the window read the weekly and monthly cubes.
        {"from": str(monday - timedelta(days=7)), "to": str(monday + timedelta(days=6))},
        {"from": str(first_of_last_month), "to": str(end_of_month)},
    ]


async def _answers(api, admin_headers, tenants):
    return [await _answers_in(api, admin_headers, tenants, window) for window in _windows()]


async def _answers_in(api, admin_headers, tenants, window):
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
        body = got.json()
        for row in body["rows"]:
            for name in LATENCIES:
                row.pop(name, None)
        answers.append(body)
    billing = await api.get("/v1/admin/reports/billing", params=window, headers=admin_headers)
    assert billing.status_code == 200, billing.text
    assert billing.headers["content-type"].startswith("text/csv")
    answers.append(list(csv.DictReader(io.StringIO(billing.text))))
    return answers


async def test_reports_answer_the_same_from_raw_messages_rollups_and_rollups_alone(
    api, conn, pool, settings, admin_headers
):
    tenants = await traffic(api, conn, settings, admin_headers, scheduled=False)
    today = datetime.now(UTC).date()
    await conn.execute("SELECT smsgw_ensure_partitions_v2(%s, 4)", (today - timedelta(4),))
    midnight = datetime.combine(today, datetime.min.time(), tzinfo=UTC)
    await _earlier(conn, tenants[0].id, datetime.now(UTC) - timedelta(hours=3))
    # Earlier days: the first partial day of a window starting at 08:00 holds one batch
    # and not the other.
    await _earlier(conn, tenants[0].id, midnight - timedelta(days=3) + timedelta(hours=7.5))
    await _earlier(conn, tenants[1].id, midnight - timedelta(days=3) + timedelta(hours=10))
    await _earlier(conn, tenants[0].id, midnight - timedelta(days=2) + timedelta(hours=5))
    # And in the first hour of a day: a window's first whole day begins with it.
    await _earlier(conn, tenants[1].id, midnight - timedelta(days=2))
    raw = await _answers(api, admin_headers, tenants)
    usage = raw[0][0]["rows"]
    # Batch, canceled, earlier today, earlier days.
    assert sum(r["messages"] for r in usage) == 24 + 1 + 20 + 40
    billing = raw[0][-1]
    assert {r["tenant_id"] for r in billing} == {str(t.id) for t in tenants}
    assert sum(int(r["messages"]) for r in billing) == 24 + 1 + 9 + 20 + 80
    assert sum(int(r["messages"]) for r in raw[1][-1]) == 24 + 1 + 9 + 20 + 60
    assert sum(int(r["messages"]) for r in raw[2][-1]) == 80
    assert sum(int(r["messages"]) for r in raw[3][-1]) == 20

    # Folded up to the last closed hour: whole earlier days from the daily cubes, today's
    # folded hours and a partial first day from hourly rollups, the rest raw.
    assert await rollups.fold_due(pool, settings)
    assert await support.count(conn, "SELECT count(*) AS n FROM message_rollups") > 0
    assert (
        await support.count(
            conn,
            "SELECT count(*) AS n FROM daily_tenant_rollups WHERE day = %s",
            today - timedelta(3),
        )
        == 2
    )
    assert await _answers(api, admin_headers, tenants) == raw
    # The whole earlier days' latencies come from the routes' cube: sent at once (under
    # 100 ms), delivered 2 s after (under 5 s).
    day = str(today - timedelta(days=3))
    got = await api.get(
        "/v1/admin/reports/deliverability",
        params={"from": day, "to": day, "country": "GB"},
        headers=admin_headers,
    )
    assert got.status_code == 200, got.text
    (row,) = got.json()["rows"]
    assert (row["messages"], row["sent_p50_ms"], row["delivered_p95_ms"]) == (40, 100, 5000)

    # The hour in progress folded up to now (a mark at any millisecond): every report
    # reads its rollups and no raw message, and answers the same, though the cubes hold
    # nothing of it (its rows enter them when it closes).
    now = datetime.now(UTC)
    await rollups.fold_open(
        pool,
        msgspec.structs.replace(settings, rollup_open_step_seconds=0),
        at=now + timedelta(seconds=settings.rollup_open_lag_seconds),
    )
    if now.minute or now.second:  # not on the hour: the mark is inside it
        assert await rollups_db.frontier(conn) == now.replace(
            microsecond=now.microsecond // 1000 * 1000
        )
        open_hour = now.replace(minute=0, second=0, microsecond=0)
        assert await support.count(
            conn, "SELECT count(*) AS n FROM message_rollups WHERE hour = %s", open_hour
        )
        for cube in ("hourly_tenant_rollups", "hourly_route_rollups"):
            assert not await support.count(
                conn, f"SELECT count(*) AS n FROM {cube} WHERE hour = %s", open_hour
            )
    assert await _answers(api, admin_headers, tenants) == raw

    assert await rollups.fold_due(pool, settings, at=datetime.now(UTC) + timedelta(hours=2))
    assert await _answers(api, admin_headers, tenants) == raw

    today = datetime.now(UTC).date()
    await conn.execute("SELECT smsgw_drop_partitions_v2(%s)", (today + timedelta(1),))
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
