"""The SMPP server's tables: accounts, bind slots, parts of long messages, receipt
requests and the outbox of deliver_sm."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import TypedDict

from db import Conn, Row
from db.sql import Queries

_q = Queries("smpp")


class PartGroup(TypedDict):
    """The parts of one long message: the ESME's addresses, reference and part count."""

    tenant_id: uuid.UUID
    source: str
    destination: str
    reference: int
    total: int


async def save_account(
    conn: Conn,
    *,
    tenant_id: uuid.UUID,
    system_id: str,
    new_system_id: str | None,
    password_hash: str,
    max_binds: int | None,
    set_networks: bool,
    allowed_networks: list[str] | None,
) -> Row:
    row = await _q.one(
        conn,
        "save_account",
        tenant_id=tenant_id,
        system_id=system_id,
        new_system_id=new_system_id,
        password_hash=password_hash,
        max_binds=max_binds,
        set_networks=set_networks,
        allowed_networks=allowed_networks,
    )
    assert row is not None
    return row


async def update_account(
    conn: Conn,
    *,
    tenant_id: uuid.UUID,
    max_binds: int | None,
    set_networks: bool,
    allowed_networks: list[str] | None,
) -> Row | None:
    return await _q.one(
        conn,
        "update_account",
        tenant_id=tenant_id,
        max_binds=max_binds,
        set_networks=set_networks,
        allowed_networks=allowed_networks,
    )


async def get_account(conn: Conn, *, tenant_id: uuid.UUID) -> Row | None:
    return await _q.one(conn, "get_account", tenant_id=tenant_id)


async def delete_account(conn: Conn, *, tenant_id: uuid.UUID) -> bool:
    return await _q.one(conn, "delete_account", tenant_id=tenant_id) is not None


async def find_account(conn: Conn, *, system_id: str) -> Row | None:
    return await _q.one(conn, "find_account", system_id=system_id)


async def bound_tenants(conn: Conn, *, tenant_ids: Sequence[uuid.UUID]) -> list[Row]:
    return await _q.all(conn, "bound_tenants", tenant_ids=list(tenant_ids))


async def take_slot(
    conn: Conn, *, tenant_id: uuid.UUID, max_binds: int, held: Sequence[int]
) -> int | None:
    """A free bind slot of the tenant, now held by ``conn``'s session (which holds
    ``held`` already); None when all are taken."""
    row = await _q.one(conn, "take_slot", tenant_id=tenant_id, max_binds=max_binds, held=list(held))
    return None if row is None else row["slot"]


async def release_slot(conn: Conn, *, tenant_id: uuid.UUID, slot: int) -> bool:
    row = await _q.one(conn, "release_slot", tenant_id=tenant_id, slot=slot)
    return bool(row and row["released"])


async def lock_part_group(
    conn: Conn, *, tenant_id: uuid.UUID, source: str, destination: str, reference: int, total: int
) -> None:
    await _q.run(
        conn,
        "lock_part_group",
        tenant_id=tenant_id,
        source=source,
        destination=destination,
        reference=reference,
        total=total,
    )


async def save_part(
    conn: Conn,
    *,
    tenant_id: uuid.UUID,
    source: str,
    destination: str,
    reference: int,
    total: int,
    number: int,
    message_id: uuid.UUID,
    data_coding: int,
    payload: bytes,
    registered_delivery: int,
) -> uuid.UUID:
    """Store a part; returns the message id of its group (``message_id`` if first)."""
    row = await _q.one(
        conn,
        "save_part",
        tenant_id=tenant_id,
        source=source,
        destination=destination,
        reference=reference,
        total=total,
        number=number,
        message_id=message_id,
        data_coding=data_coding,
        payload=payload,
        registered_delivery=registered_delivery,
    )
    assert row is not None
    return uuid.UUID(str(row["message_id"]))


async def count_parts(
    conn: Conn, *, tenant_id: uuid.UUID, source: str, destination: str, reference: int, total: int
) -> int:
    row = await _q.one(
        conn,
        "count_parts",
        tenant_id=tenant_id,
        source=source,
        destination=destination,
        reference=reference,
        total=total,
    )
    assert row is not None
    return int(row["parts"])


async def take_parts(
    conn: Conn, *, tenant_id: uuid.UUID, source: str, destination: str, reference: int, total: int
) -> list[Row]:
    rows = await _q.all(
        conn,
        "take_parts",
        tenant_id=tenant_id,
        source=source,
        destination=destination,
        reference=reference,
        total=total,
    )
    return sorted(rows, key=lambda row: int(row["number"]))


async def expire_parts(conn: Conn, *, seconds: float) -> int:
    """Drop parts older than ``seconds``; returns how many messages they belonged to."""
    row = await _q.one(conn, "expire_parts", seconds=seconds)
    return 0 if row is None else int(row["messages"])


async def request_receipt(
    conn: Conn,
    *,
    message_id: uuid.UUID,
    message_created_at: datetime,
    tenant_id: uuid.UUID,
    mode: int,
) -> None:
    await _q.run(
        conn,
        "request_receipt",
        message_id=message_id,
        message_created_at=message_created_at,
        tenant_id=tenant_id,
        mode=mode,
    )


async def forget_receipt(conn: Conn, *, message_id: uuid.UUID) -> None:
    await _q.run(conn, "forget_receipt", message_id=message_id)


async def purge_receipt_requests(conn: Conn, *, seconds: float) -> int:
    return await _q.run(conn, "purge_receipt_requests", seconds=seconds)


async def claim_outbox(
    conn: Conn, *, tenant_ids: Sequence[uuid.UUID], per_tenant: int, lease_seconds: float
) -> list[Row]:
    return await _q.all(
        conn,
        "claim_outbox",
        tenant_ids=list(tenant_ids),
        per_tenant=per_tenant,
        lease_seconds=lease_seconds,
    )


async def delete_outbox(conn: Conn, *, ids: Sequence[int]) -> int:
    return await _q.run(conn, "delete_outbox", ids=list(ids))


async def retry_outbox(conn: Conn, *, ids: Sequence[int], delays: Sequence[float]) -> int:
    return await _q.run(conn, "retry_outbox", ids=list(ids), delays=list(delays))


async def purge_outbox(conn: Conn, *, seconds: float) -> int:
    return await _q.run(conn, "purge_outbox", seconds=seconds)
