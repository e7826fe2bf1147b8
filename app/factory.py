"""Builds the Litestar app from settings. Nothing is read from the environment here."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from psycopg_pool import AsyncConnectionPool

from app.auth import provide_actor
from app.console import console_router, template_config
from app.controllers.account import AccountController
from app.controllers.admin import AdminController
from app.controllers.audit import AdminAuditController, AuditController
from app.controllers.exports import ExportsController
from app.controllers.exposure import ExposureAdminController, ExposureController
from app.controllers.health import health, ready
from app.controllers.messages import MessagesController
from app.controllers.operations import (
    OperationsController,
    dashboard_page,
    dashboard_static,
    metrics,
)
from app.controllers.rates import RateCardsController
from app.controllers.reports import AdminReportsController, ReportsController
from app.controllers.senders import SenderIdsController, SenderRulesController
from app.controllers.suspension import TenantSuspensionController
from app.controllers.twilio import TwilioController
from app.controllers.two_way import SuppressionsController, TwoWayAdminController
from app.controllers.upstreams import ReceiptsController, UpstreamsAdminController
from app.controllers.webhooks import WebhooksController
from app.deps import Services, provide_conn
from app.errors import EXCEPTION_HANDLERS
from app.observability import HttpMetrics, request_observer
from app.openapi import SECURITY_SCHEMES, document_media_types, document_refusals
from core import coalesce
from core.auth_throttle import FailedAuthThrottle
from core.key_cache import KeyCache
from core.observability import Observer
from core.settings import Settings
from db import Conn
from db.pool import open_pool, open_reporting_pool
from jobs.scheduler import ProcrastinateScheduler


def create_app(
    settings: Settings,
    *,
    pool: AsyncConnectionPool[Conn] | None = None,
    reporting_pool: AsyncConnectionPool[Conn] | None = None,
) -> Litestar:
    """The API. ``pool`` (and ``reporting_pool``) let a test share pools; otherwise the
    lifespan opens them: the primary's, and the reporting one (the replica named by
    ``reporting_database_url``, else a small read-only pool on the primary)."""
    http_metrics = HttpMetrics()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncGenerator[None, None]:
        own_pool = pool is None
        own_reporting = reporting_pool is None
        active = pool or await open_pool(
            settings.database_url,
            min_size=settings.db_pool_min,
            max_size=settings.db_pool_max,
            prepared_statements=settings.db_prepared_statements,
        )
        reporting = reporting_pool or await open_reporting_pool(
            settings.reporting_database_url or settings.direct_url,
            max_size=settings.reporting_pool_max,
            statement_timeout_ms=settings.report_statement_timeout_ms,
        )
        scheduler = ProcrastinateScheduler()
        app.state.services = Services(
            settings=settings,
            pool=active,
            scheduler=scheduler,
            reporting=reporting,
            observer=Observer(
                active,
                reporting,
                reporting_is_primary=not settings.reporting_database_url,
                ttl=settings.metrics_cache_seconds,
            ),
            http_metrics=http_metrics,
            key_cache=KeyCache(),
            auth_throttle=FailedAuthThrottle(
                limit=settings.auth_failures_limit,
                window_seconds=settings.auth_failures_window_seconds,
            ),
            sends=coalesce.for_settings(active, settings, task=scheduler.task),
        )
        try:
            yield
        finally:
            if own_reporting:
                await reporting.close()
            if own_pool:
                await active.close()

    app = Litestar(
        route_handlers=[
            AdminController,
            AdminAuditController,
            AuditController,
            ExportsController,
            MessagesController,
            AccountController,
            ExposureAdminController,
            TenantSuspensionController,
            ExposureController,
            UpstreamsAdminController,
            RateCardsController,
            ReceiptsController,
            ReportsController,
            AdminReportsController,
            OperationsController,
            TwoWayAdminController,
            SenderIdsController,
            SenderRulesController,
            SuppressionsController,
            TwilioController,
            WebhooksController,
            health,
            ready,
            metrics,
            dashboard_page,
            dashboard_static,
            console_router(),
        ],
        template_config=template_config(),
        dependencies={
            "conn": Provide(provide_conn),
            "actor": Provide(provide_actor, sync_to_thread=False),
        },
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=[lifespan],
        middleware=[request_observer(http_metrics)],
        request_max_body_size=settings.max_request_bytes,
        openapi_config=OpenAPIConfig(
            title="smsgw",
            version="1",
            description="SMS gateway REST API. Money is in integer micro-units.",
            components=SECURITY_SCHEMES,
        ),
        logging_config=None,
    )
    document_refusals(app)
    document_media_types(app)
    return app
