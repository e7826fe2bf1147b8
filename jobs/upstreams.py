"""The worker's live set of provider adapters and the route table, from the database.

Providers and routes are rows (`providers`, `routes`), changed without a restart: each
dispatch turn calls ``refresh``, which rereads them at most every few seconds and
rebuilds only the adapters whose row changed. With no route rows at all, everything
goes to the default provider (``SMSGW_PROVIDER``, the simulator unless set), so a fresh
install works before anyone configures routing.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from psycopg_pool import AsyncConnectionPool

from core.routing import Route, RouteTable
from core.settings import Settings
from db import Conn
from db import providers as providers_db
from providers import kinds
from providers.base import Provider, ReceiptSink

log = structlog.get_logger("smsgw.upstreams")

REFRESH_SECONDS = 5.0


def _simulator_defaults(settings: Settings) -> dict[str, Any]:
    """The simulator's settings from SMSGW_SIMULATOR_*; a provider row's config
    overrides them."""
    return {
        "seed": settings.simulator_seed,
        "latency_ms": settings.simulator_latency_ms,
        "latency_jitter_ms": settings.simulator_latency_jitter_ms,
        "transient_rate": settings.simulator_transient_rate,
        "permanent_rate": settings.simulator_permanent_rate,
        "dlr_delay_seconds": settings.simulator_dlr_delay_seconds,
        "delivery_rate": settings.simulator_delivery_rate,
    }


def build_adapter(
    kind: kinds.Kind[Any],
    name: str,
    config: dict[str, Any],
    *,
    settings: Settings,
    sinks: kinds.Sinks,
) -> Provider:
    """ValueError or TypeError when the row's config is not one the kind can run with."""
    defaults = _simulator_defaults(settings) if kind is kinds.SIMULATOR else {}
    return kind.build(name, kind.config({**defaults, **config}), sinks)


@dataclass
class _Adapter:
    provider: Provider
    version: datetime | None
    mps: float | None


class DatabaseUpstreams:
    def __init__(
        self,
        settings: Settings,
        sink: ReceiptSink,
        *,
        inbound: kinds.InboundSink | None = None,
    ) -> None:
        self._settings = settings
        self._sinks = kinds.Sinks(sink, inbound)
        self._starting: set[asyncio.Task[None]] = set()
        self._adapters: dict[str, _Adapter] = {}
        self._table = RouteTable(routes=(), available=frozenset())
        self._loaded_at = float("-inf")
        self._lock = asyncio.Lock()

    async def refresh(self, conn: Conn, *, force: bool = False) -> None:
        if not force and time.monotonic() - self._loaded_at < REFRESH_SECONDS:
            return
        # Concurrent turns of this worker wait for one reload rather than use a table
        # that has never been loaded.
        async with self._lock:
            if not force and time.monotonic() - self._loaded_at < REFRESH_SECONDS:
                return
            await self._reload(conn)
            self._loaded_at = time.monotonic()

    async def _reload(self, conn: Conn) -> None:
        rows = {row["name"]: row for row in await providers_db.list_providers(conn)}
        default = self._settings.provider
        if "simulator" not in rows:
            # Always there, configured from SMSGW_SIMULATOR_*, unless a row says otherwise.
            rows["simulator"] = {
                "name": "simulator",
                "kind": "simulator",
                "config": {},
                "mps": None,
                "enabled": True,
                "updated_at": None,
            }
        for name in list(self._adapters):
            row = rows.get(name)
            if (
                row is None
                or not row["enabled"]
                or row["updated_at"] != self._adapters[name].version
            ):
                await self._adapters.pop(name).provider.close()
        for name, row in rows.items():
            if not row["enabled"] or name in self._adapters:
                continue
            try:
                kind = kinds.get(row["kind"])
                adapter = build_adapter(
                    kind, name, dict(row["config"]), settings=self._settings, sinks=self._sinks
                )
            except (TypeError, ValueError) as exc:
                log.error("provider.misconfigured", provider=name, error=str(exc))
                continue
            self._adapters[name] = _Adapter(adapter, row["updated_at"], row["mps"])
            if self._sinks.inbound is not None and kind.start is not None:
                # Started now, not at the first send: mobile-originated messages arrive
                # whether or not anything is being sent.
                task = asyncio.create_task(kind.start(adapter), name=f"start-{name}")
                self._starting.add(task)
                task.add_done_callback(self._starting.discard)
        routes = tuple(
            Route(
                prefix=r["prefix"],
                tier=r["tier"],
                provider=r["provider"],
                priority=r["priority"],
                cost_per_segment=r["cost_per_segment"],
                allow_loss=r["allow_loss"],
            )
            for r in await providers_db.list_routes(conn)
            if r["enabled"]
        )
        if not routes:
            routes = (Route("+", None, default, 100, 0),)
        self._table = RouteTable(
            routes=routes,
            available=frozenset(self._adapters),
            priced=frozenset(name for name, row in rows.items() if row.get("has_costs")),
        )

    async def keep_current(self, pool: AsyncConnectionPool[Conn]) -> None:
        """Reload providers every REFRESH_SECONDS even when nothing is being sent, so
        a worker holds its SMPP binds (and hears inbound messages) from the start."""
        while True:
            try:
                async with pool.connection() as conn:
                    await self.refresh(conn)
            except Exception as exc:  # the database is away: try again next round
                log.warning("upstreams.refresh_failed", error=repr(exc))
            await asyncio.sleep(REFRESH_SECONDS)

    def table(self) -> RouteTable:
        return self._table

    def get(self, name: str) -> Provider:
        return self._adapters[name].provider

    def mps(self, name: str) -> float | None:
        adapter = self._adapters.get(name)
        return None if adapter is None or adapter.mps is None else float(adapter.mps)

    async def close(self) -> None:
        for task in list(self._starting):
            task.cancel()
        for adapter in self._adapters.values():
            await adapter.provider.close()
        self._adapters.clear()
