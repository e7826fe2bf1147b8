"""What a dispatch turn is configured with, and what it needs from the worker: shared by
the claim (core/claim.py) and the turn around it (core/delivery.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from core.retry import Backoff
from core.routing import RouteTable
from db import Conn
from providers.base import Provider


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    # Opens when, over the window, at least `min_requests` outcomes were seen and at
    # least `error_rate` of them were transient failures; half-opens after the
    # cool-down and lets `probes` messages through; closes on a probe's success.
    window_seconds: float = 30.0
    min_requests: int = 20
    error_rate: float = 0.5
    cooldown_seconds: float = 15.0
    probes: int = 5


@dataclass(frozen=True, slots=True)
class DispatchConfig:
    # A turn serves up to `tenants_per_turn` of a tier's waiting tenants, up to
    # `batch_size` messages each: a tenant with a huge backlog gets a batch per turn like
    # everyone else, and goes to the back of the line after it.
    batch_size: int = 200
    tenants_per_turn: int = 128
    lease_seconds: float = 60.0
    # While the tier's turns come back small (fewer tenants than a turn may serve, and
    # less than a batch), its next turn is queued to start this long after this one
    # claimed (db: tier_pace); after a full turn, at once.
    turn_gap_seconds: float = 0.0
    backoff: Backoff = field(default_factory=Backoff)
    breaker: BreakerConfig = field(default_factory=BreakerConfig)


class Upstreams(Protocol):
    """The providers a worker can use and the route table, kept current by ``jobs``."""

    async def refresh(self, conn: Conn) -> None: ...

    def table(self) -> RouteTable: ...

    def get(self, name: str) -> Provider: ...

    def mps(self, name: str) -> float | None: ...
