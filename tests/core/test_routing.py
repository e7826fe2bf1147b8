"""Route choice: the cheapest usable route wins; unhealthy ones are skipped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.routing import Choice, Health, Route, RouteTable, choose

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def table(*routes: Route, available: set[str] | None = None) -> RouteTable:
    names = {r.provider for r in routes} if available is None else available
    return RouteTable(routes=routes, available=frozenset(names))


UK_CHEAP = Route("+44", None, "uk-cheap", 100, 300)
ANY_DEAR = Route("+", None, "global", 100, 900)
VIP_ONLY = Route("+", "vip", "premium-carrier", 10, 2000)


def test_the_cheapest_matching_route_wins():
    routes = table(ANY_DEAR, UK_CHEAP)
    assert choose(routes, to="+447911123456", tier="standard", health={}, now=NOW) == Choice(
        "uk-cheap", wait=False
    )
    assert choose(routes, to="+14155552671", tier="standard", health={}, now=NOW).provider == (
        "global"
    )


def test_priority_comes_before_cost_and_tier_restricts():
    routes = table(ANY_DEAR, UK_CHEAP, VIP_ONLY)
    assert choose(routes, to="+447911123456", tier="vip", health={}, now=NOW).provider == (
        "premium-carrier"
    )
    assert choose(routes, to="+447911123456", tier="premium", health={}, now=NOW).provider == (
        "uk-cheap"
    )


def test_an_open_breaker_or_throttling_moves_to_the_next_route():
    routes = table(ANY_DEAR, UK_CHEAP)
    uk = "+447911123456"
    opened = {"uk-cheap": Health("open", opened_at=NOW)}
    assert choose(routes, to=uk, tier="standard", health=opened, now=NOW).provider == "global"
    throttled = {"uk-cheap": Health("closed", throttled_until=NOW + timedelta(seconds=5))}
    assert choose(routes, to=uk, tier="standard", health=throttled, now=NOW).provider == "global"
    recovered = {"uk-cheap": Health("closed", throttled_until=NOW - timedelta(seconds=1))}
    assert choose(routes, to=uk, tier="standard", health=recovered, now=NOW).provider == (
        "uk-cheap"
    )
    half_open = {"uk-cheap": Health("half_open")}
    assert choose(routes, to=uk, tier="standard", health=half_open, now=NOW).provider == (
        "uk-cheap"
    )


def test_every_route_down_means_wait_and_no_route_means_fail():
    routes = table(UK_CHEAP)
    down = {"uk-cheap": Health("open", opened_at=NOW)}
    assert choose(routes, to="+447911123456", tier="standard", health=down, now=NOW) == Choice(
        None, wait=True
    )
    assert choose(routes, to="+14155552671", tier="standard", health={}, now=NOW) == Choice(
        None, wait=False
    )


def test_a_retry_avoids_the_provider_that_just_failed_when_it_can():
    routes = table(ANY_DEAR, UK_CHEAP)
    uk = "+447911123456"
    assert choose(
        routes, to=uk, tier="standard", health={}, now=NOW, avoid="uk-cheap"
    ).provider == ("global")
    only = table(UK_CHEAP)
    assert choose(only, to=uk, tier="standard", health={}, now=NOW, avoid="uk-cheap").provider == (
        "uk-cheap"
    )


def test_routes_to_providers_this_worker_cannot_run_are_ignored():
    routes = table(ANY_DEAR, UK_CHEAP, available={"global"})
    assert choose(routes, to="+447911123456", tier="standard", health={}, now=NOW).provider == (
        "global"
    )
