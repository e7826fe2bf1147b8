"""Tenants suspended by the operator: the flag and the messages it holds back."""

from __future__ import annotations

import uuid
from datetime import datetime

from db import Conn
from db.sql import Queries

_q = Queries("account_suspension")


async def lock_balance(conn: Conn, *, tenant_id: uuid.UUID) -> bool:
    return await _q.one(conn, "lock_balance", tenant_id=tenant_id) is not None


async def suspend(conn: Conn, *, tenant_id: uuid.UUID, reason: str) -> datetime | None:
    row = await _q.one(conn, "suspend", tenant_id=tenant_id, reason=reason)
    return None if row is None else row["suspended_at"]


async def resume(conn: Conn, *, tenant_id: uuid.UUID) -> bool:
    return await _q.one(conn, "resume", tenant_id=tenant_id) is not None


async def hold_back(conn: Conn, *, tenant_id: uuid.UUID) -> int:
    return len(await _q.all(conn, "hold_back", tenant_id=tenant_id))


async def release_held(conn: Conn, *, tenant_id: uuid.UUID) -> int:
    return len(await _q.all(conn, "release_held", tenant_id=tenant_id))


async def suspended_count(conn: Conn) -> int:
    row = await _q.one(conn, "suspended_count")
    return 0 if row is None else int(row["n"])
