"""What a dispatch turn is configured with, and what it needs from the worker: shared by
the claim (core/claim.py) and the turn around it (core/delivery.py)."""

from __future__ import annotations

import asyncio
import math
import time
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
    backoff: Backoff = field(default_factory=Backoff)
    breaker: BreakerConfig = field(default_factory=BreakerConfig)


class TurnPacer:
    """Starts this process's claims of a tier at least ``gap_seconds`` apart while its
    turns come back small.

    Under a stream of single sends, a tier's turns would otherwise run back to back with
    a handful of messages each, and a turn's fixed cost (its job, claim, recount and
    settle) is paid by those few. Spaced, each turn claims what arrived meanwhile. No
    wait after a full turn (one that served as many tenants as a turn may, or claimed a
    whole batch: a backlog drains at full speed), nor for a tier whose last claim here
    is older than the gap (a lone message is not delayed). At most one turn of a tier
    waits per process: another that comes meanwhile is skipped (``wait_turn`` answers
    False), since the waiting one claims whatever it would have, and its recount queues
    the tier's next turn if tenants are left. So waiting turns never fill the worker's
    slots.
    """

    def __init__(self, gap_seconds: float) -> None:
        self.gap_seconds = gap_seconds
        self._waiting: set[str] = set()
        self._last: dict[str, float] = {}
        self._full: dict[str, bool] = {}

    async def wait_turn(self, tier: str) -> bool:
        """Wait for this tier's next claim; False: another turn is waiting for it."""
        if self.gap_seconds <= 0:
            return True
        if tier in self._waiting:
            return False
        delay = 0.0
        if not self._full.get(tier, False):
            delay = self._last.get(tier, -math.inf) + self.gap_seconds - time.monotonic()
        if delay > 0:
            self._waiting.add(tier)
            try:
                await asyncio.sleep(delay)
            finally:
                self._waiting.discard(tier)
        self._last[tier] = time.monotonic()
        return True

    def claimed(self, tier: str, *, full: bool) -> None:
        """Whether the turn that last claimed was full."""
        self._full[tier] = full


class Upstreams(Protocol):
    """The providers a worker can use and the route table, kept current by ``jobs``."""

    async def refresh(self, conn: Conn) -> None: ...

    def table(self) -> RouteTable: ...

    def get(self, name: str) -> Provider: ...

    def mps(self, name: str) -> float | None: ...
