"""What operators look at: Prometheus metrics, replication, and the live dashboard."""

from __future__ import annotations

import hmac
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import msgspec
import structlog
from litestar import Controller, Request, Response, get
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.handlers.base import BaseRouteHandler
from litestar.static_files import create_static_files_router
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from app.auth import admin_guard, bearer_token
from app.deps import services
from app.openapi import problems
from core import metric_families, observability, reports, todays_margin
from core.errors import NotFound, Unauthorized
from core.upstreams import ProviderStatus

log = structlog.get_logger("smsgw.api")
STATIC = Path(str(resources.files("app").joinpath("static")))


class _Families(Collector):
    def __init__(self, families: list[Any]) -> None:
        self._families = families

    def collect(self) -> Any:
        return iter(self._families)


@get(
    "/metrics",
    tags=["operations"],
    include_in_schema=True,
    media_type=CONTENT_TYPE_LATEST,
    responses=problems(401),
)
async def metrics(request: Request[Any, Any, Any], state: State) -> Response[bytes]:
    """Prometheus metrics: this process's HTTP requests, and the gateway's state read
    from the database (messages, queues, providers, ledger, replication)."""
    found = services(state)
    token = found.settings.metrics_token
    if token and not hmac.compare_digest(bearer_token(request).encode(), token.encode()):
        raise Unauthorized("The metrics token is not valid.")
    snapshot: observability.Snapshot | None = None
    replication: observability.Replication | None = None
    try:
        snapshot = await found.observer.snapshot()
        replication = await found.observer.replication()
    except Exception as exc:  # a scrape still answers, with smsgw_database_up 0
        log.warning("metrics.database_unreadable", error=type(exc).__name__)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(list(metric_families.families(snapshot, replication))))
    body = generate_latest(found.http_metrics.registry) + generate_latest(registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


class QueueView(msgspec.Struct, frozen=True, kw_only=True):
    tier: str
    depth: int
    oldest_age_seconds: float


class DashboardView(msgspec.Struct, frozen=True, kw_only=True):
    at: datetime
    # Totals since counting began: the page turns them into rates between two polls.
    messages: dict[str, int]
    queue: list[QueueView]
    in_flight: int
    providers: list[ProviderStatus]
    top_tenants: list[reports.LiveTenant]
    replication: observability.Replication | None
    # Today's revenue, cost and margin, and the destinations sold at a loss (rollups).
    margin: todays_margin.TodaysMargin | None = None


class OperationsController(Controller):
    path = "/v1/admin"
    tags = ["admin", "operations"]
    guards = [admin_guard]

    @get("/replication")
    async def replication(self, state: State) -> observability.Replication:
        """Where reports are read and how far that database is behind the primary."""
        return await services(state).observer.replication()

    @get("/dashboard")
    async def dashboard(self, state: State) -> DashboardView:
        """Everything the dashboard page draws, in one poll."""
        observer = services(state).observer
        snapshot = await observer.snapshot()
        try:
            replication: observability.Replication | None = await observer.replication()
            top = await observer.live_top_tenants()
            margin: todays_margin.TodaysMargin | None = await observer.todays_margin()
        except Exception as exc:  # the replica may be down; the live view goes on
            log.warning("dashboard.reporting_unreadable", error=type(exc).__name__)
            replication, top, margin = None, [], None
        return DashboardView(
            at=snapshot.at,
            messages=observability.message_totals(snapshot),
            queue=[
                QueueView(tier=q.tier, depth=q.depth, oldest_age_seconds=q.oldest_age_seconds)
                for q in snapshot.queue
            ],
            in_flight=snapshot.in_flight,
            providers=snapshot.providers,
            top_tenants=top,
            replication=replication,
            margin=margin,
        )


@get("/dashboard", tags=["operations"], include_in_schema=False, media_type="text/html")
async def dashboard_page() -> Response[bytes]:
    """The operator dashboard. The page itself is public; it asks for the admin token
    and fetches every number from the admin API with it."""
    return Response(
        (STATIC / "dashboard.html").read_bytes(),
        media_type="text/html; charset=utf-8",
        headers={"Cache-Control": "no-store"},
    )


def _no_nul_in_path(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    # The file system refuses a NUL in a path with ValueError, which would be a 500.
    if "\x00" in connection.scope["path"]:
        raise NotFound("No such file.")


dashboard_static = create_static_files_router(
    path="/dashboard/static",
    directories=[STATIC],
    include_in_schema=False,
    guards=[_no_nul_in_path],
)
