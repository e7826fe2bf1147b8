"""Claiming, settling and recovering messages for delivery."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from db import Conn, Row
from db.message_keys import targets
from db.sql import Queries, json_rows

_q = Queries("dispatch")


def _keys(keys: Sequence[tuple[datetime, uuid.UUID]]) -> str:
    return json_rows([{"created_at": created_at, "id": id_} for created_at, id_ in keys])


async def plan_key_batches(conn: Conn) -> None:
    """Until the transaction ends, joins of many keys to messages find them by primary
    key and hash (see db/queries/dispatch.sql, mark_sending); run before mark_sending
    and settle."""
    await _q.one(conn, "plan_key_batches")


async def turn_tenants(conn: Conn, *, tier: str, limit: int) -> list[Row]:
    """The tenants of a tier's turn: ``tenant_id``, ``oldest``, ``tier``,
    ``rate_limit_mps``."""
    return await _q.all(conn, "turn_tenants", tier=tier, tenants=limit)


async def claim_candidates(conn: Conn, *, tenants: Sequence[Row], per_tenant: int) -> list[Row]:
    return await _q.all(
        conn,
        "claim_candidates",
        tenant_ids=[t["tenant_id"] for t in tenants],
        oldest=[t["oldest"] for t in tenants],
        per_tenant=per_tenant,
    )


async def mark_sending(
    conn: Conn,
    *,
    keys: Sequence[tuple[datetime, uuid.UUID]],
    providers: Sequence[str],
    lease_seconds: float,
    costs: Sequence[int | None] | None = None,
) -> list[Row]:
    """``costs``: what each claim's route costs per segment (stored times the segments)."""
    claims = [
        {"created_at": key[0], "id": key[1], "provider": provider, "cost_per_segment": cost}
        for key, provider, cost in zip(
            keys, providers, costs if costs is not None else [None] * len(keys), strict=True
        )
    ]
    return await _q.all(
        conn,
        "mark_sending",
        **targets(keys),
        claims=json_rows(claims),
        prepare=False,
        lease_seconds=lease_seconds,
    )


async def postpone(
    conn: Conn, *, keys: Sequence[tuple[datetime, uuid.UUID]], until: datetime
) -> int:
    return await _q.run(
        conn,
        "postpone",
        keys=_keys(keys),
        until=until,
        **targets(keys),
        prepare=False,
    )


@dataclass(frozen=True, slots=True)
class Settled:
    """What a settle did: messages per status, and the oldest message of each tenant it
    made due again (a retry), for the recount."""

    statuses: dict[str, int]
    due_again: dict[uuid.UUID, datetime]


async def settle(conn: Conn, *, results: Sequence[Mapping[str, Any]]) -> Settled:
    """Apply results (one mapping per message), then the balances, tenant by tenant."""
    rows = await _q.all(
        conn,
        "settle",
        results=json_rows(results),
        **targets([(r["created_at"], r["id"]) for r in results]),
        prepare=False,
    )
    statuses: dict[str, int] = {}
    due_again: dict[uuid.UUID, datetime] = {}
    # captured, released, and of the released what was accepted this day and month
    money: dict[uuid.UUID, tuple[int, int, int, int]] = {}
    for row in rows:
        statuses[row["status"]] = statuses.get(row["status"], 0) + int(row["messages"])
        if row["due_again_oldest"] is not None:
            due_again[row["tenant_id"]] = row["due_again_oldest"]
        money[row["tenant_id"]] = (
            int(row["captured"]),
            int(row["released"]),
            int(row["released_day"]),
            int(row["released_month"]),
        )
    if money:
        tenants = sorted(money)
        await _q.one(
            conn,
            "apply_settlement",
            tenant_ids=tenants,
            captured=[money[t][0] for t in tenants],
            released=[money[t][1] for t in tenants],
            released_day=[money[t][2] for t in tenants],
            released_month=[money[t][3] for t in tenants],
        )
    return Settled(statuses=statuses, due_again=due_again)


async def recover_leases(conn: Conn, *, limit: int) -> dict[uuid.UUID, datetime]:
    """Requeue lapsed claims; returns each tenant concerned with the oldest message of
    its that is due again."""
    oldest: dict[uuid.UUID, datetime] = {}
    for row in await _q.all(conn, "recover_leases", limit=limit):
        tenant_id, created_at = row["tenant_id"], row["created_at"]
        oldest[tenant_id] = min(created_at, oldest.get(tenant_id, created_at))
    return oldest


async def tenants_without_dispatch(conn: Conn) -> list[uuid.UUID]:
    return [row["tenant_id"] for row in await _q.all(conn, "tenants_without_dispatch")]


async def tiers_without_turn(conn: Conn, *, alive_seconds: float) -> list[Row]:
    """Tiers with queued tenants and no turn waiting, or running in a worker whose last
    heartbeat is under ``alive_seconds`` old: ``tier``, ``due``."""
    return await _q.all(conn, "tiers_without_turn", alive_seconds=alive_seconds)


async def requeue_tenants(
    conn: Conn,
    *,
    due_again: Mapping[uuid.UUID, datetime | None],
    task: str,
    back_of_line: bool,
) -> int:
    """Recount the tenants' dispatch_queue rows and make sure their tiers have a turn
    coming (smsgw_requeue_tenants_v1). ``due_again``: per tenant, the oldest message the
    caller has just made due again, None if none. Returns how many stay queued."""
    tenants = sorted(due_again)
    row = await _q.one(
        conn,
        "requeue_tenants",
        tenant_ids=tenants,
        oldest=[due_again[t] for t in tenants],
        task=task,
        back_of_line=back_of_line,
    )
    assert row is not None
    return int(row["queued"])


async def ensure_tier_turn(conn: Conn, *, tier: str, task: str, due: datetime | None) -> str:
    row = await _q.one(conn, "ensure_tier_turn", tier=tier, task=task, due=due)
    assert row is not None
    return str(row["action"])


async def start_paced_turn(conn: Conn, *, tier: str, gap_seconds: float) -> None:
    """In autocommit: when the tier's last turn was small, pace its next from now."""
    await _q.run(conn, "start_paced_turn", tier=tier, gap_seconds=gap_seconds)


async def ensure_next_turn(conn: Conn, *, tier: str, task: str) -> None:
    """The tier's turn for its earliest due tenant, when it has any."""
    await _q.all(conn, "ensure_next_turn", tier=tier, task=task)


async def pace_tier(conn: Conn, *, tier: str, gap_seconds: float) -> None:
    """The tier's next turn starts no earlier than ``gap_seconds`` from now; 0: at once."""
    if gap_seconds > 0:
        await _q.run(conn, "pace_tier", tier=tier, gap_seconds=gap_seconds)
    else:
        await _q.run(conn, "unpace_tier", tier=tier)


async def take_tenant_segments(
    conn: Conn, *, tenant_id: uuid.UUID, wanted: int, rate: float
) -> int:
    row = await _q.one(conn, "take_tenant_segments", tenant_id=tenant_id, wanted=wanted, rate=rate)
    assert row is not None
    return int(row["granted"])


async def provider_costs(conn: Conn, *, numbers: Sequence[str]) -> dict[tuple[str, str], int]:
    """(number, provider) -> cost per segment, for the providers whose own price list
    covers the number (smsgw_provider_costs_v1: one set-based statement)."""
    rows = await _q.all(conn, "provider_costs", numbers=list(numbers), prepare=False)
    return {(r["to_number"], r["provider"]): r["cost_per_segment"] for r in rows}
