"""A tenant's bind slots: a bind takes one of its tenant's ``max_binds`` slots, a
session-level advisory lock held on this listener's own connection, so the limit holds
across listener processes and a crashed listener's slots free themselves with its
connection."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import psycopg
from psycopg.rows import dict_row

from db import Conn
from db import smpp as smpp_db


class BindSlots:
    """The tenants' bind slots, held as advisory locks on a connection of our own."""

    def __init__(self, database_url: str) -> None:
        self._url = database_url
        self._conn: Conn | None = None
        self._lock = asyncio.Lock()
        # The slots this connection holds, per tenant: advisory locks are re-entrant,
        # so these must be skipped rather than taken a second time.
        self._held: dict[uuid.UUID, set[int]] = {}
        self._lost = False

    async def _connection(self) -> Conn:
        if self._conn is None or self._conn.closed:
            if self._conn is not None:
                # A new session holds nothing: every slot went with the old one.
                self._held.clear()
                self._lost = True
            self._conn = await psycopg.AsyncConnection.connect(
                self._url,
                autocommit=True,
                row_factory=dict_row,
                application_name="smsgw-smpp-binds",
            )
        return self._conn

    async def take(self, tenant_id: uuid.UUID, max_binds: int) -> int | None:
        async with self._lock:
            conn = await self._connection()
            held = self._held.setdefault(tenant_id, set())
            slot = await smpp_db.take_slot(
                conn, tenant_id=tenant_id, max_binds=max_binds, held=sorted(held)
            )
            if slot is not None:
                held.add(slot)
            return slot

    async def release(self, tenant_id: uuid.UUID, slot: int) -> None:
        async with self._lock:
            held = self._held.get(tenant_id, set())
            if slot not in held:
                return  # lost with an earlier connection: another bind may hold it now
            held.discard(slot)
            if not held:
                self._held.pop(tenant_id, None)
            if self._conn is not None and not self._conn.closed:
                with contextlib.suppress(psycopg.Error):
                    await smpp_db.release_slot(self._conn, tenant_id=tenant_id, slot=slot)

    async def healthy(self) -> bool:
        """False when the connection (and so every slot) was lost: the caller re-takes."""
        async with self._lock:
            if self._lost:
                self._lost = False
                return False
            if self._conn is None:
                return True
            try:
                await self._conn.execute("SELECT 1")
                return True
            except psycopg.Error:
                with contextlib.suppress(psycopg.Error):
                    await self._conn.close()
                self._conn = None
                self._held.clear()  # gone with the connection
                return False

    async def close(self) -> None:
        async with self._lock:
            if self._conn is not None:
                await self._conn.close()
                self._conn = None
