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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import structlog
from psycopg_pool import AsyncConnectionPool

from core.routing import Route, RouteTable
from core.settings import Settings
from db import Conn
from db import providers as providers_db
from providers.base import InboundPart, Provider, ReceiptSink
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


InboundSink = Callable[[InboundPart], Awaitable[None]]


def _smpp_inbound(sink: InboundSink) -> Callable[[Any], Awaitable[None]]:
    """SmppProvider's ``inbound`` callback: a deliver_sm that is not a receipt, as the
    octets and UDH concatenation it came with (core/inbound.py reassembles)."""

    async def handler(message: Any) -> None:
        parts = message.concatenation
        await sink(
            InboundPart(
                provider=message.provider,
                source=message.source,
                destination=message.destination,
                text=message.text,
                received_at=message.received_at,
                data_coding=message.data_coding,
                payload=message.payload,
                reference=None if parts is None else parts.reference,
                total=None if parts is None else parts.total,
                number=None if parts is None else parts.number,
            )
        )

    return handler


def build_adapter(
    kind: str,
    name: str,
    config: dict[str, Any],
    *,
    settings: Settings,
    sink: ReceiptSink,
    inbound: InboundSink | None = None,
) -> Provider:
    if kind == "simulator":
        return Simulator(
            simulator_config(settings, _only_known(SimulatorConfig, config)), sink=sink, name=name
        )
    if kind == "http":
        return HttpProvider(HttpConfig(**_only_known(HttpConfig, config)), name=name)
    if kind == "smpp":
        from providers.smpp import SmppConfig, SmppProvider

        return SmppProvider(
            SmppConfig(**_only_known(SmppConfig, config)),
            name=name,
            sink=sink,
            inbound=None if inbound is None else _smpp_inbound(inbound),
        )
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
        inbound: InboundSink | None = None,
        builder: Callable[..., Provider] = build_adapter,
    ) -> None:
        self._settings = settings
        self._sink = sink
        self._inbound = inbound
        self._build = builder
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
                adapter = self._build(
                    row["kind"],
                    name,
                    dict(row["config"]),
                    settings=self._settings,
                    sink=self._sink,
                    **({"inbound": self._inbound} if self._inbound is not None else {}),
                )
            except (TypeError, ValueError) as exc:
                log.error("provider.misconfigured", provider=name, error=str(exc))
                continue
            self._adapters[name] = _Adapter(adapter, row["updated_at"], row["mps"])
            if self._inbound is not None and row["kind"] == "smpp":
                # Bound now, not at the first send: mobile-originated messages arrive
                # whether or not anything is being sent.
                task = asyncio.create_task(self._bind(adapter), name=f"bind-{name}")
                self._starting.add(task)
                task.add_done_callback(self._starting.discard)
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

    @staticmethod
    async def _bind(adapter: Provider) -> None:
        from providers.smpp import SmppBindError, SmppProvider

        if isinstance(adapter, SmppProvider):
            try:
                await adapter.start()
            except SmppBindError as exc:
                # It keeps trying in the background.
                log.warning("provider.bind_failed", provider=adapter.name, error=str(exc))
            except RuntimeError:
                pass  # closed by a reload before it bound

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
