"""Alerts to tenants: signed webhooks to the tenant's ``alerts_url`` through the
callbacks outbox (jobs/callbacks.py: the same X-Smsgw-Signature and retries as a status
callback), each told once per crossing.

- ``destination.suspended`` and ``destination.lifted`` are written by whoever suspends or
  lifts (core/pumping.py, core/exposure.py), in its transaction.
- ``account.suspended`` and ``account.resumed``: the operator suspended or resumed the
  tenant (core/account_suspension.py), in its transaction.
- ``balance.low`` (available credit under the tenant's threshold) and
  ``spend.threshold`` (a share of a daily or monthly cap reached) are found off the hot
  path by ``check_crossings``, a periodic job comparing each watched tenant's balance row
  with ``alert_state``, what it was last told: an accept pays nothing for them. A balance
  that climbs back over its threshold re-arms balance.low; a new day or month re-arms its
  cap's shares.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec
import structlog
from psycopg_pool import AsyncConnectionPool

from db import Conn, Row
from db import alerts as alerts_db
from db import exposure as exposure_db

log = structlog.get_logger("smsgw.alerts")

BALANCE_LOW = "balance.low"
SPEND_THRESHOLD = "spend.threshold"
DESTINATION_SUSPENDED = "destination.suspended"
DESTINATION_LIFTED = "destination.lifted"
ACCOUNT_SUSPENDED = "account.suspended"
ACCOUNT_RESUMED = "account.resumed"


async def tell(conn: Conn, *, tenant_id: uuid.UUID, event: str, data: dict[str, Any]) -> bool:
    """Queue the alert ``event`` for the tenant in the caller's transaction; False when
    the tenant has no alerts_url (nothing to send)."""
    payload = {
        "id": str(uuid.uuid4()),
        "event": event,
        "tenant_id": str(tenant_id),
        "created_at": datetime.now(UTC).isoformat(),
        "data": data,
    }
    row = await exposure_db.enqueue_alert(
        conn, tenant_id=tenant_id, payload=msgspec.json.encode(payload).decode()
    )
    return row is not None


def suspension_data(row: Row) -> dict[str, Any]:
    """A suspension as alerts and the API show it."""
    return {
        "suspension_id": str(row["id"]),
        "country": row["country"],
        "prefix": row["prefix"],
        "suspended_at": row["suspended_at"].isoformat(),
        "until": row["until"].isoformat(),
        "cause": row["cause"],
        "lifted_at": row["lifted_at"].isoformat() if row["lifted_at"] else None,
        "lifted_by": row["lifted_by"],
    }


def reached(spent: int, cap: int | None, percents: list[int]) -> int:
    """The highest of ``percents`` of ``cap`` that ``spent`` reached (0: none)."""
    if cap is None:
        return 0
    return max((p for p in percents if spent * 100 >= p * cap), default=0)


async def check_crossings(pool: AsyncConnectionPool[Any]) -> int:
    """One round of the alerts job, in one transaction: balance.low and spend.threshold
    for each crossing since the last round. Returns how many alerts were queued."""
    told = 0
    async with pool.connection() as conn, conn.transaction():
        for row in await alerts_db.alert_candidates(conn):
            told += await _judge(conn, row)
    if told:
        log.info("alerts.queued", alerts=told)
    return told


async def _judge(conn: Conn, row: Row) -> int:
    tenant_id = row["tenant_id"]
    threshold = row["low_balance_threshold"]
    low = threshold is not None and row["available"] < threshold
    percents = sorted(int(p) for p in row["spend_alert_percents"])
    day = reached(row["day_spent"], row["daily_spend_cap"], percents)
    month = reached(row["month_spent"], row["monthly_spend_cap"], percents)
    told = 0
    if low and not row["was_low"]:
        data = {"available": row["available"], "threshold": threshold}
        told += await tell(conn, tenant_id=tenant_id, event=BALANCE_LOW, data=data)
    for period, level, before, spent, cap in (
        ("day", day, row["told_day_percent"], row["day_spent"], row["daily_spend_cap"]),
        ("month", month, row["told_month_percent"], row["month_spent"], row["monthly_spend_cap"]),
    ):
        if level > before:
            data = {"period": period, "percent": level, "spent": spent, "cap": cap}
            told += await tell(conn, tenant_id=tenant_id, event=SPEND_THRESHOLD, data=data)
    # A share told stays told for its period, even if a raised cap lowers it since.
    day, month = max(day, row["told_day_percent"]), max(month, row["told_month_percent"])
    if (low, day, month) != (row["was_low"], row["told_day_percent"], row["told_month_percent"]):
        await alerts_db.save_state(
            conn,
            tenant_id=tenant_id,
            balance_low=low,
            spend_day=row["spend_day"],
            day_percent=day,
            spend_month=row["spend_month"],
            month_percent=month,
        )
    return told
