"""Rollup helpers shared by the rollup tests: traffic that leaves messages in every end
state, and a recomputation of the rollups from raw messages in Python (the country from
smsgw_country_v1, not the fold's prefix joins)."""

from __future__ import annotations

import bisect
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from jobs.app import MAINTENANCE_QUEUE, QUEUES
from tests import support, workers

BOUNDS = [100, 250, 500, 1000, 2000, 5000, 10000, 30000, 60000, 300000, 1800000]
DESTINATIONS = ["+14155552671", "+14162345678", "+18762345678", "+447400123456"]
AT_REST = ("delivered", "undelivered", "failed", "expired", "canceled", "scheduled")


def _bucket(start: datetime | None, end: datetime | None) -> int | None:
    if start is None or end is None:
        return None
    return bisect.bisect_right(BOUNDS, (end - start).total_seconds() * 1000)


async def recomputed(conn: Any, *, before: datetime | None = None) -> dict[tuple, dict[str, Any]]:
    """The rollups of all raw messages (or of those created before ``before``)."""
    cursor = await conn.execute(
        "SELECT created_at, tenant_id, coalesce(smsgw_country_v1(to_number), 'ZZ') AS country,"
        " coalesce(provider, '') AS provider, status, segments, price, coalesce(cost, 0) AS cost,"
        " sent_at, delivered_at FROM messages WHERE %s::timestamptz IS NULL OR created_at < %s",
        (before, before),
    )
    rows: dict[tuple, dict[str, Any]] = defaultdict(
        lambda: {
            "messages": 0,
            "segments": 0,
            "price": 0,
            "cost": 0,
            "sent_latency": [0] * 12,
            "delivery_latency": [0] * 12,
        }
    )
    for m in await cursor.fetchall():
        hour = m["created_at"].astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        row = rows[(hour, m["tenant_id"], m["country"], m["provider"], m["status"])]
        row["messages"] += 1
        row["segments"] += m["segments"]
        row["price"] += m["price"]
        row["cost"] += m["cost"]
        sent = _bucket(m["created_at"], m["sent_at"])
        if sent is not None:
            row["sent_latency"][sent] += 1
        if m["sent_at"] is not None:
            delivered = _bucket(m["sent_at"], m["delivered_at"])
            if delivered is not None:
                row["delivery_latency"][delivered] += 1
    return dict(rows)


async def stored(conn: Any) -> dict[tuple, dict[str, Any]]:
    cursor = await conn.execute(
        "SELECT hour, tenant_id, country, provider, status, messages, segments, price, cost,"
        " sent_latency, delivery_latency FROM message_rollups"
    )
    return {
        (r["hour"].astimezone(UTC), r["tenant_id"], r["country"], r["provider"], r["status"]): {
            "messages": r["messages"],
            "segments": r["segments"],
            "price": r["price"],
            "cost": r["cost"],
            "sent_latency": r["sent_latency"],
            "delivery_latency": r["delivery_latency"],
        }
        for r in await cursor.fetchall()
    }


async def traffic(api, conn, settings, admin_headers, *, scheduled: bool = True):
    """Two tenants' sends to four countries; some undelivered, some failed, one
    canceled, and (unless told otherwise) one still scheduled for tomorrow."""
    first = await support.make_tenant(api, admin_headers, credit=50_000_000, name="a")
    second = await support.make_tenant(api, admin_headers, credit=50_000_000, name="b")
    for tenant, count in ((first, 24), (second, 9)):
        batch = [
            {"to": DESTINATIONS[i % 4], "body": "x" * (60 if i % 3 else 200)} for i in range(count)
        ]
        accepted = await api.post(
            "/v1/messages/batch", json={"messages": batch}, headers=tenant.headers
        )
        assert accepted.status_code == 202, accepted.text
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    canceled = await support.send(api, first, send_at=later)
    await api.post(f"/v1/messages/{canceled.json()['id']}/cancel", headers=first.headers)
    if scheduled:
        await support.send(api, second, send_at=later)

    async def at_rest():
        n = await support.count(
            conn, "SELECT count(*) AS n FROM messages WHERE status <> ALL(%s)", list(AT_REST)
        )
        return n == 0

    # Without the maintenance queue: its periodic fold would fold the hours on its own
    # clock; the tests fold when they mean to.
    async with workers.in_process(
        settings,
        queues=[q for q in QUEUES if q != MAINTENANCE_QUEUE],
        simulator_delivery_rate=0.7,
        simulator_permanent_rate=0.1,
        simulator_dlr_delay_seconds=0.05,
    ):
        await workers.eventually(at_rest)
    return first, second


CAPTURED = ("sent", "delivered", "undelivered")


async def days_of(conn: Any, hourly: dict[tuple, dict[str, Any]]) -> dict[str, dict]:
    """The cubes (three daily, two hourly) as sums of hourly rows, keyed as `stored_days`
    keys them: from `recomputed` they are the cubes of the raw messages, from `stored`
    the cubes of the hourly rollups."""
    cursor = await conn.execute("SELECT id, currency FROM tenants")
    currency = {r["id"]: r["currency"] for r in await cursor.fetchall()}
    detail: dict[tuple, list[int]] = defaultdict(lambda: [0] * 4)
    tenant: dict[tuple, list[int]] = defaultdict(lambda: [0] * 6)
    route: dict[tuple, list[Any]] = defaultdict(lambda: [0] * 4 + [[0] * 12, [0] * 12])
    hourly_tenant: dict[tuple, list[int]] = defaultdict(lambda: [0] * 6)
    hourly_route: dict[tuple, list[Any]] = defaultdict(lambda: [0] * 4 + [[0] * 12, [0] * 12])
    for (hour, tenant_id, country, provider, status), row in hourly.items():
        day = hour.date()
        sums = [row["messages"], row["segments"], row["price"], row["cost"]]
        d = detail[(day, tenant_id, country, provider, status)]
        for i, value in enumerate(sums):
            d[i] += value
        for t in (tenant[(day, tenant_id)], hourly_tenant[(hour, tenant_id)]):
            t[0] += row["messages"]
            t[1] += row["segments"]
            if status in CAPTURED:
                t[2] += row["messages"]
                t[3] += row["segments"]
                t[4] += row["price"]
                t[5] += row["cost"]
        for period, routes in ((day, route), (hour, hourly_route)):
            r = routes[(period, country, provider, status, currency[tenant_id])]
            for i, value in enumerate(sums):
                r[i] += value
            for i in range(12):
                r[4][i] += row["sent_latency"][i]
                r[5][i] += row["delivery_latency"][i]
    return {
        "detail": dict(detail),
        "tenant": dict(tenant),
        "route": dict(route),
        "hourly_tenant": dict(hourly_tenant),
        "hourly_route": dict(hourly_route),
    }


async def stored_days(conn: Any) -> dict[str, dict]:
    detail = await conn.execute(
        "SELECT day, tenant_id, country, provider, status, messages, segments, price, cost"
        " FROM daily_rollups"
    )
    tenant = await conn.execute(
        "SELECT day, tenant_id, messages, segments, captured, captured_segments, revenue,"
        " cost FROM daily_tenant_rollups"
    )
    route = await conn.execute(
        "SELECT day, country, provider, status, currency, messages, segments, price, cost,"
        " sent_latency, delivery_latency FROM daily_route_rollups"
    )
    hourly_tenant = await conn.execute(
        "SELECT hour, tenant_id, messages, segments, captured, captured_segments, revenue,"
        " cost FROM hourly_tenant_rollups"
    )
    hourly_route = await conn.execute(
        "SELECT hour, country, provider, status, currency, messages, segments, price, cost,"
        " sent_latency, delivery_latency FROM hourly_route_rollups"
    )
    return {
        "detail": {
            (r["day"], r["tenant_id"], r["country"], r["provider"], r["status"]): [
                r["messages"],
                r["segments"],
                r["price"],
                r["cost"],
            ]
            for r in await detail.fetchall()
        },
        "tenant": {
            (r["day"], r["tenant_id"]): [
                r["messages"],
                r["segments"],
                r["captured"],
                r["captured_segments"],
                r["revenue"],
                r["cost"],
            ]
            for r in await tenant.fetchall()
        },
        "route": {
            (r["day"], r["country"], r["provider"], r["status"], r["currency"]): [
                r["messages"],
                r["segments"],
                r["price"],
                r["cost"],
                r["sent_latency"],
                r["delivery_latency"],
            ]
            for r in await route.fetchall()
        },
        "hourly_tenant": {
            (r["hour"].astimezone(UTC), r["tenant_id"]): [
                r["messages"],
                r["segments"],
                r["captured"],
                r["captured_segments"],
                r["revenue"],
                r["cost"],
            ]
            for r in await hourly_tenant.fetchall()
        },
        "hourly_route": {
            (r["hour"].astimezone(UTC), r["country"], r["provider"], r["status"], r["currency"]): [
                r["messages"],
                r["segments"],
                r["price"],
                r["cost"],
                r["sent_latency"],
                r["delivery_latency"],
            ]
            for r in await hourly_route.fetchall()
        },
    }


def _period_sums(daily: dict, start: Any) -> dict:
    """Daily cube rows (key starting with the day) summed per week or month (``start``
    of a day), element by element (latency buckets too)."""
    sums: dict = {}
    for (day, *rest), values in daily.items():
        key = (start(day), *rest)
        if key not in sums:
            sums[key] = values
            continue
        sums[key] = [
            [x + y for x, y in zip(a, b, strict=True)] if isinstance(a, list) else a + b
            for a, b in zip(sums[key], values, strict=True)
        ]
    return sums


async def stored_periods(conn: Any) -> dict[str, dict]:
    """The weekly and monthly cubes, keyed as the daily ones (by the period's start)."""
    found: dict[str, dict] = {}
    for unit in ("week", "month"):
        tenant = await conn.execute(
            f"SELECT {unit}, tenant_id, messages, segments, captured, captured_segments,"
            f" revenue, cost FROM {unit}ly_tenant_rollups"
        )
        found[f"{unit}_tenant"] = {
            (r[unit], r["tenant_id"]): [
                r["messages"],
                r["segments"],
                r["captured"],
                r["captured_segments"],
                r["revenue"],
                r["cost"],
            ]
            for r in await tenant.fetchall()
        }
        route = await conn.execute(
            f"SELECT {unit}, country, provider, status, currency, messages, segments, price,"
            f" cost, sent_latency, delivery_latency FROM {unit}ly_route_rollups"
        )
        found[f"{unit}_route"] = {
            (r[unit], r["country"], r["provider"], r["status"], r["currency"]): [
                r["messages"],
                r["segments"],
                r["price"],
                r["cost"],
                r["sent_latency"],
                r["delivery_latency"],
            ]
            for r in await route.fetchall()
        }
    return found


def periods_of(days: dict[str, dict]) -> dict[str, dict]:
    """What the weekly and monthly cubes must hold: the sums of the daily cubes' days."""
    week = lambda day: day - timedelta(days=day.weekday())  # noqa: E731
    month = lambda day: day.replace(day=1)  # noqa: E731
    return {
        "week_tenant": _period_sums(days["tenant"], week),
        "month_tenant": _period_sums(days["tenant"], month),
        "week_route": _period_sums(days["route"], week),
        "month_route": _period_sums(days["route"], month),
    }


async def assert_days_match(conn: Any, *, raw: bool = True) -> None:
    """The daily cubes equal the sums of the hourly rollups and (unless retention dropped
    them) of the raw messages; the weekly and monthly cubes the sums of the daily ones."""
    days = await stored_days(conn)
    assert days["detail"], "no daily rollups"
    assert days == await days_of(conn, await stored(conn))
    assert await stored_periods(conn) == periods_of(days)
    if raw:
        assert days == await days_of(conn, await recomputed(conn))
