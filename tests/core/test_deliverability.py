"""Deliverability: the alert fires on a synthetic drop of a (country, provider)'s last
hour against its 7 days, not on noise nor on too few messages; it is logged once, shows
in /metrics and resolves. The report gives rates and latency quantiles from rollups."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core import deliverability
from tests import support

# Latency buckets: all accept-to-sent in the 3rd (250-500 ms), sent-to-delivered spread.
SENT = [0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]
DELIVERED = [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]


async def _hour(conn, tenant_id, hour, country, provider, delivered, undelivered):
    for status, n in (("delivered", delivered), ("undelivered", undelivered)):
        if n:
            await conn.execute(
                "INSERT INTO message_rollups (hour, tenant_id, country, provider, status,"
                " messages, segments, price, cost, sent_latency, delivery_latency)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, 0, 0, %s, %s)"
                " ON CONFLICT (hour, tenant_id, country, provider, status)"
                " DO UPDATE SET messages = excluded.messages",
                (
                    hour,
                    tenant_id,
                    country,
                    provider,
                    status,
                    n,
                    n,
                    [x * n for x in SENT],
                    [x * n for x in DELIVERED] if status == "delivered" else [0] * 12,
                ),
            )


async def _week(conn, tenant_id, last_hour):
    """7 days of hourly rollups (95% delivered for every pair) before ``last_hour``, and
    ``last_hour`` itself per pair: a drop, noise, and a drop on too few messages."""
    for h in range(1, 7 * 24 + 1):
        hour = last_hour - timedelta(hours=h)
        for country, provider in (("GB", "drop"), ("US", "noisy"), ("FR", "tiny")):
            await _hour(conn, tenant_id, hour, country, provider, 95, 5)
    await _hour(conn, tenant_id, last_hour, "GB", "drop", 120, 80)  # 60%
    await _hour(conn, tenant_id, last_hour, "US", "noisy", 180, 20)  # 90%: noise
    await _hour(conn, tenant_id, last_hour, "FR", "tiny", 0, 3)  # 0% of 3
    await conn.execute(
        "INSERT INTO rollup_hours (hour, folded_at, final, messages)"
        " SELECT h, now(), true, 0 FROM generate_series(%s::timestamptz, %s, '1 hour') AS h"
        " ON CONFLICT DO NOTHING",
        (last_hour - timedelta(days=7), last_hour),
    )


async def _metric(api, name, labels):
    text = (await api.get("/metrics")).text
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


async def test_the_alert_fires_on_a_drop_not_on_noise_and_resolves(
    api, conn, pool, settings, admin_headers, tenant
):
    now = datetime.now(UTC)
    last_hour = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    await _week(conn, tenant.id, last_hour)

    firing = await deliverability.evaluate(pool, settings, at=now)
    assert [(a.country, a.provider) for a in firing] == [("GB", "drop")]
    (alert,) = firing
    assert alert.hour_rate == 0.6
    assert alert.week_rate == 0.95
    assert alert.hour_known == 200

    events = await api.get("/v1/admin/reports/events", headers=admin_headers)
    assert events.status_code == 200, events.text
    (event,) = events.json()["events"]
    assert event["kind"] == "delivery_rate.dropped"
    assert event["detail"]["country"] == "GB"
    assert event["detail"]["provider"] == "drop"

    await api.get("/metrics")  # the cached snapshot is at most a second old
    assert await _metric(api, "smsgw_delivery_alert", {"country": "GB"}) == 1.0
    assert await _metric(api, "smsgw_delivery_alert", {"country": "US"}) == 0.0
    assert await _metric(api, "smsgw_delivery_alert", {"country": "FR"}) == 0.0
    rate = await _metric(api, "smsgw_delivery_rate", {"country": "GB", "window": "1h"})
    assert rate == 0.6

    # Judged again with the same traffic: still firing, no second event.
    assert await deliverability.evaluate(pool, settings, at=now)
    events = await api.get("/v1/admin/reports/events", headers=admin_headers)
    assert len(events.json()["events"]) == 1

    # The hour recovers: the alert resolves, once.
    await _hour(conn, tenant.id, last_hour, "GB", "drop", 190, 10)
    assert await deliverability.evaluate(pool, settings, at=now) == []
    events = await api.get(
        "/v1/admin/reports/events",
        params={"kind": "delivery_rate.recovered"},
        headers=admin_headers,
    )
    assert [e["detail"]["country"] for e in events.json()["events"]] == ["GB"]
    states = await api.get("/v1/admin/reports/alerts", headers=admin_headers)
    assert not any(a["firing"] for a in states.json())


async def test_the_margin_and_the_volume_are_settings(api, conn, pool, settings, tenant):
    now = datetime.now(UTC)
    last_hour = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    await _week(conn, tenant.id, last_hour)
    strict = settings.__class__(
        **{
            **{f: getattr(settings, f) for f in settings.__struct_fields__},
            "delivery_alert_margin": 0.04,
            "delivery_alert_min_messages": 3,
        }
    )
    firing = await deliverability.evaluate(pool, strict, at=now)
    assert sorted(a.country for a in firing) == ["FR", "GB", "US"]


async def test_the_deliverability_report_gives_rates_and_latency_quantiles(
    api, conn, admin_headers, tenant
):
    now = datetime.now(UTC)
    last_hour = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    await _week(conn, tenant.id, last_hour)
    got = await api.get(
        "/v1/admin/reports/deliverability",
        params={
            "period": "window",
            "country": "GB",
            "from": (now - timedelta(days=30)).isoformat(),
        },
        headers=admin_headers,
    )
    assert got.status_code == 200, got.text
    (row,) = got.json()["rows"]
    assert row["provider"] == "drop"
    assert row["delivered"] == 95 * 7 * 24 + 120
    assert row["undelivered"] == 5 * 7 * 24 + 80
    assert row["sent_p50_ms"] == 500
    assert row["sent_p95_ms"] == 500
    assert row["delivered_p50_ms"] == 5000

    by_hour = await api.get(
        "/v1/admin/reports/deliverability",
        params={"period": "hour", "provider": "drop", "limit": 5},
        headers=admin_headers,
    )
    body = by_hour.json()
    assert len(body["rows"]) == 5
    assert body["next_cursor"]
    bad = await api.get(
        "/v1/admin/reports/deliverability", params={"period": "week"}, headers=admin_headers
    )
    support.assert_problem(bad, 422, "invalid_request")
