"""SMS pumping protection: the periodic round that suspends a tenant's destination when
its traffic there breaks the hourly limit, ends suspensions whose cool-off is over, and
holds back the queued messages of suspended destinations.

The accept only counts (one destination_tallies row per accept call, its counts per
(tenant, country, prefix) in arrays; a round first adds them into destination_counts)
and refuses sends to an actively suspended destination (429 destination_suspended). The
decision to suspend is taken here, every few seconds, not in the accept: the learned
limit needs the 7-day hourly median, which no accept should compute, and reading the
summed counters there would add reads to every call. A burst is therefore caught within
one round; what it got accepted before then is still queued, and is held back with the
rest (not sent, not billed) until the suspension is lifted or ends, or the messages
expire.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec
import structlog
from psycopg_pool import AsyncConnectionPool

from core import alerts
from core.settings import Settings
from db import Conn
from db import deliverability as deliverability_db
from db import dispatch as dispatch_db
from db import pumping as pumping_db

log = structlog.get_logger("smsgw.pumping")

# "Messages of any age were made due again": the recount reads all of the tenant's.
ANY_AGE = datetime.min.replace(tzinfo=UTC)


async def watch(pool: AsyncConnectionPool[Any], settings: Settings, *, task: str) -> int:
    """One round, in one transaction. Returns how many destinations it suspended."""
    async with pool.connection() as conn, conn.transaction():
        suspended = await judge(conn, settings, task=task)
    async with pool.connection() as conn:
        await pumping_db.fold_counts(conn)
    return suspended


async def judge(conn: Conn, settings: Settings, *, task: str) -> int:
    """The round's decisions in the caller's transaction: add up the accepts' tallies,
    end the suspensions whose cool-off is over (destination.lifted), suspend the
    destinations over their limit (destination.suspended, and an operator event), hold
    back the queued messages of every active suspension, and requeue the tenants whose
    messages moved."""
    await pumping_db.drain_tallies(conn)
    due_again: dict[uuid.UUID, datetime | None] = {}
    for row in await pumping_db.expire(conn):
        due_again[row["tenant_id"]] = ANY_AGE
        await alerts.tell(
            conn,
            tenant_id=row["tenant_id"],
            event=alerts.DESTINATION_LIFTED,
            data=alerts.suspension_data(row),
        )
        log.info("destination.lifted", tenant_id=str(row["tenant_id"]), by="expired")
    suspended = 0
    for breach in await pumping_db.breaches(
        conn, floor=settings.pumping_floor, multiple=settings.pumping_multiple
    ):
        cause = {
            "hour_count": breach["n"],
            "hourly_limit": breach["hourly_max"],
            "basis": breach["basis"],
            "median": breach["median"],
        }
        made = await pumping_db.suspend(
            conn,
            tenant_id=breach["tenant_id"],
            country=breach["country"],
            prefix=breach["prefix"],
            cool_off_seconds=settings.pumping_cool_off_seconds,
            cause=msgspec.json.encode(cause).decode(),
        )
        if made is None:
            continue
        row = made
        suspended += 1
        data = alerts.suspension_data(row)
        await alerts.tell(
            conn, tenant_id=row["tenant_id"], event=alerts.DESTINATION_SUSPENDED, data=data
        )
        await deliverability_db.add_event(
            conn,
            at=row["suspended_at"],
            kind=alerts.DESTINATION_SUSPENDED,
            detail=msgspec.json.encode({"tenant_id": str(row["tenant_id"]), **data}).decode(),
        )
        log.warning(
            "destination.suspended",
            tenant_id=str(row["tenant_id"]),
            country=row["country"],
            prefix=row["prefix"],
            **cause,
        )
    for tenant_id in await pumping_db.hold_back(conn):
        due_again.setdefault(tenant_id, None)
    if due_again:
        await dispatch_db.requeue_tenants(conn, due_again=due_again, task=task, back_of_line=False)
    return suspended
