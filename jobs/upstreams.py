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
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import structlog

from core.routing import Route, RouteTable
from core.settings import Settings
from db import Conn
from db import providers as providers_db
from providers.base import Provider, ReceiptSink
from providers.http import HttpConfig, HttpProvider
from providers.simulator import Simulator, SimulatorConfig

log = structlog.get_logger("smsgw.upstreams")

REFRESH_SECONDS = 5.0


def simulator_config(
    settings: Settings, overrides: dict[str, Any] | None = None
) -> SimulatorConfig:
    base: dict[str, Any] = {
        "seed": settings.simulator_seed,
        "latency_ms": settings.simulator_latency_ms,
        "latency_jitter_ms": settings.simulator_latency_jitter_ms,
        "transient_rate": settings.simulator_transient_rate,
        "permanent_rate": settings.simulator_permanent_rate,
        "dlr_delay_seconds": settings.simulator_dlr_delay_seconds,
        "delivery_rate": settings.simulator_delivery_rate,
    }
    return SimulatorConfig(**{**base, **(overrides or {})})


def _only_known(config_type: type, values: dict[str, Any]) -> dict[str, Any]:
    known = {f.name for f in fields(config_type)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown setting(s) {', '.join(unknown)}")
    return values


def build_adapter(
    kind: str, name: str, config: dict[str, Any], *, settings: Settings, sink: ReceiptSink
) -> Provider:
    if kind == "simulator":
        return Simulator(
            simulator_config(settings, _only_known(SimulatorConfig, config)), sink=sink, name=name
        )
    if kind == "http":
        return HttpProvider(HttpConfig(**_only_known(HttpConfig, config)), name=name)
    if kind == "smpp":
        from providers.smpp import SmppConfig, SmppProvider

        return SmppProvider(SmppConfig(**_only_known(SmppConfig, config)), name=name, sink=sink)
    raise ValueError(f"unknown provider kind {kind!r}")


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
        builder: Callable[..., Provider] = build_adapter,
    ) -> None:
        self._settings = settings
        self._sink = sink
        self._build = builder
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
                adapter = self._build(
                    row["kind"], name, dict(row["config"]), settings=self._settings, sink=self._sink
                )
            except (TypeError, ValueError) as exc:
                log.error("provider.misconfigured", provider=name, error=str(exc))
                continue
            self._adapters[name] = _Adapter(adapter, row["updated_at"], row["mps"])
        routes = tuple(
            Route(
                prefix=r["prefix"],
                tier=r["tier"],
                provider=r["provider"],
                priority=r["priority"],
                cost_per_segment=r["cost_per_segment"],
            )
            for r in await providers_db.list_routes(conn)
            if r["enabled"]
        )
        if not routes:
            routes = (Route("+", None, default, 100, 0),)
        self._table = RouteTable(routes=routes, available=frozenset(self._adapters))

    def table(self) -> RouteTable:
        return self._table

    def get(self, name: str) -> Provider:
        return self._adapters[name].provider

    def mps(self, name: str) -> float | None:
        adapter = self._adapters.get(name)
        return None if adapter is None or adapter.mps is None else float(adapter.mps)

    async def close(self) -> None:
        for adapter in self._adapters.values():
            await adapter.provider.close()
        self._adapters.clear()
