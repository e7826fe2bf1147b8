"""The kinds of upstream an operator can configure (`PUT /v1/admin/providers/{name}`),
one entry each: its settings (a frozen dataclass whose fields are the keys of a
provider's `config`), which of them are secrets (accepted, never shown back), and how
an adapter is built from them. The admin API checks a `config` here, the worker builds
its adapters here, the OpenAPI document describes the kinds from here: a new kind is a
new entry in ``KINDS``."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import structlog

from providers.base import InboundPart, Provider, ReceiptSink
from providers.http import HttpConfig, HttpProvider
from providers.simulator import Simulator, SimulatorConfig
from providers.smpp_config import SmppConfig

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    from providers.smpp_inbound import InboundHandler, InboundMessage

log = structlog.get_logger("smsgw.upstreams")

C = TypeVar("C", bound="DataclassInstance")
InboundSink = Callable[[InboundPart], Awaitable[None]]


class UnknownSettings(ValueError):
    def __init__(self, names: list[str]) -> None:
        super().__init__(f"unknown setting(s) {', '.join(names)}")
        self.names = names


@dataclass(frozen=True, slots=True)
class Sinks:
    """Where an adapter hands on what arrives outside a send: delivery receipts, and
    mobile-originated messages (None in a process that does not take them)."""

    receipts: ReceiptSink
    inbound: InboundSink | None = None


@dataclass(frozen=True, slots=True)
class Kind(Generic[C]):
    name: str
    config_type: type[C]
    secrets: frozenset[str]
    build: Callable[[str, C, Sinks], Provider]
    # For adapters that hear mobile-originated messages on a connection of their own:
    # started as soon as a worker that takes inbound messages loads them, not at their
    # first send. It never raises; a failure is logged and retried by the adapter.
    start: Callable[[Provider], Coroutine[Any, Any, None]] | None = None

    @property
    def settings(self) -> tuple[str, ...]:
        return tuple(field.name for field in dataclasses.fields(self.config_type))

    def unknown(self, values: Mapping[str, Any]) -> list[str]:
        return sorted(set(values) - set(self.settings))

    def config(self, values: Mapping[str, Any]) -> C:
        """The adapter's settings from a provider's `config`: UnknownSettings for a key
        that is none, TypeError or ValueError for values it could not run with."""
        unknown = self.unknown(values)
        if unknown:
            raise UnknownSettings(unknown)
        return self.config_type(**values)


def _simulator(name: str, config: SimulatorConfig, sinks: Sinks) -> Provider:
    return Simulator(config, sink=sinks.receipts, name=name)


def _http(name: str, config: HttpConfig, sinks: Sinks) -> Provider:
    return HttpProvider(config, name=name)


def _smpp(name: str, config: SmppConfig, sinks: Sinks) -> Provider:
    # Imported by the first SMPP adapter: the codec (aiosmpplib) costs a process ~70 ms
    # at start, and API processes never build one.
    from providers.smpp import SmppProvider

    inbound = None if sinks.inbound is None else _as_parts(sinks.inbound)
    return SmppProvider(config, name=name, sink=sinks.receipts, inbound=inbound)


def _as_parts(sink: InboundSink) -> InboundHandler:
    async def handler(message: InboundMessage) -> None:
        await sink(message.as_part())

    return handler


async def _bind(adapter: Provider) -> None:
    from providers.smpp import SmppBindError, SmppProvider

    assert isinstance(adapter, SmppProvider)
    try:
        await adapter.start()
    except SmppBindError as exc:
        # It keeps trying in the background.
        log.warning("provider.bind_failed", provider=adapter.name, error=str(exc))
    except RuntimeError:
        pass  # closed by a reload before it bound


SIMULATOR = Kind("simulator", SimulatorConfig, frozenset(), _simulator)
HTTP = Kind("http", HttpConfig, frozenset({"api_key", "dlr_secret"}), _http)
SMPP = Kind("smpp", SmppConfig, frozenset({"password"}), _smpp, start=_bind)

KINDS: dict[str, Kind[Any]] = {kind.name: kind for kind in (SIMULATOR, HTTP, SMPP)}


def get(name: str) -> Kind[Any]:
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"unknown provider kind {name!r}") from None
