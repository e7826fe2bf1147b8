"""Which provider carries a message: the route table filtered by health.

Pure functions over a snapshot (routes and provider health read once per dispatch
turn), so the rules are easy to test and every worker applies the same ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Route:
    prefix: str
    tier: str | None
    provider: str
    priority: int
    cost_per_segment: int


@dataclass(frozen=True, slots=True)
class Health:
    state: str  # closed | open | half_open
    throttled_until: datetime | None = None
    opened_at: datetime | None = None

    def usable(self, now: datetime) -> bool:
        if self.state == "open":
            return False
        return self.throttled_until is None or self.throttled_until <= now


HEALTHY = Health("closed")


@dataclass(frozen=True, slots=True)
class RouteTable:
    routes: tuple[Route, ...]
    # Providers whose adapter this worker can run (configured, enabled).
    available: frozenset[str]

    def candidates(self, to: str, tier: str) -> list[Route]:
        """Routes for a number and tier, best first: priority, then cost, then the
        most specific prefix."""
        found = [
            r
            for r in self.routes
            if to.startswith(r.prefix)
            and (r.tier is None or r.tier == tier)
            and r.provider in self.available
        ]
        found.sort(key=lambda r: (r.priority, r.cost_per_segment, -len(r.prefix)))
        return found


@dataclass(frozen=True, slots=True)
class Choice:
    provider: str | None
    # True when some route exists but none is usable now: the message should wait.
    wait: bool


def choose(
    table: RouteTable,
    *,
    to: str,
    tier: str,
    health: Mapping[str, Health],
    now: datetime,
    avoid: str | None = None,
) -> Choice:
    """The provider for one message. ``avoid`` (the provider of a failed previous
    attempt) is used only if no other route is usable, so a retry tries elsewhere."""
    candidates = table.candidates(to, tier)
    if not candidates:
        return Choice(None, wait=False)
    usable = [r for r in candidates if health.get(r.provider, HEALTHY).usable(now)]
    if not usable:
        return Choice(None, wait=True)
    preferred = [r for r in usable if r.provider != avoid] or usable
    return Choice(preferred[0].provider, wait=False)
