"""Which provider carries a message: the route table filtered by health.

Pure functions over a snapshot (routes and provider health read once per dispatch
turn), so the rules are easy to test and every worker applies the same ones.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Route:
    prefix: str
    tier: str | None
    provider: str
    priority: int
    # The flat cost, used where the provider has no price list of its own covering a
    # destination.
    cost_per_segment: int
    # The operator allows it to send at a loss (the margin guard lets it through).
    allow_loss: bool = False


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
    # Providers with a cost price list of their own: only then does a claim read costs.
    priced: frozenset[str] = frozenset()

    def candidates(
        self,
        to: str,
        tier: str,
        *,
        cost: Callable[[Route], int] | None = None,
        ceiling: int | None = None,
    ) -> list[Route]:
        """Routes for a number and tier, best first: priority, then cost, then the
        most specific prefix. ``cost``: a route's cost per segment for this number (its
        provider's price list), in place of its flat one. ``ceiling`` (the message's
        price per segment): the margin guard, routes that cost more are left out unless
        they allow a loss."""
        found = [
            r
            for r in self.routes
            if to.startswith(r.prefix)
            and (r.tier is None or r.tier == tier)
            and r.provider in self.available
        ]
        if cost is not None:
            # A copy only where the price list changes the cost: a claim routes every
            # message, and dataclasses.replace costs microseconds.
            found = [
                r if (c := cost(r)) == r.cost_per_segment else replace(r, cost_per_segment=c)
                for r in found
            ]
        if ceiling is not None:
            found = [r for r in found if r.allow_loss or r.cost_per_segment <= ceiling]
        found.sort(key=lambda r: (r.priority, r.cost_per_segment, -len(r.prefix)))
        return found


@dataclass(frozen=True, slots=True)
class Choice:
    provider: str | None
    # True when some route exists but none is usable now: the message should wait.
    wait: bool
    # What the chosen route costs per segment for this message (not part of the choice
    # itself: two choices of the same provider are the same choice).
    cost_per_segment: int | None = field(default=None, compare=False)
    # The routes that were candidates (after the margin guard), best first.
    candidates: tuple[Route, ...] = field(default=(), compare=False)


def choose(
    table: RouteTable,
    *,
    to: str,
    tier: str,
    health: Mapping[str, Health],
    now: datetime,
    avoid: str | None = None,
    cost: Callable[[Route], int] | None = None,
    ceiling: int | None = None,
) -> Choice:
    """The provider for one message. ``avoid`` (the provider of a failed previous
    attempt) is used only if no other route is usable, so a retry tries elsewhere.
    ``cost`` and ``ceiling``: see ``RouteTable.candidates``; a message whose every route
    would lose money has no route, as if none existed."""
    candidates = table.candidates(to, tier, cost=cost, ceiling=ceiling)
    if not candidates:
        return Choice(None, wait=False)
    usable = [r for r in candidates if health.get(r.provider, HEALTHY).usable(now)]
    if not usable:
        return Choice(None, wait=True, candidates=tuple(candidates))
    preferred = [r for r in usable if r.provider != avoid] or usable
    best = preferred[0]
    return Choice(
        best.provider,
        wait=False,
        cost_per_segment=best.cost_per_segment,
        candidates=tuple(candidates),
    )
