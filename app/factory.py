"""Builds the Litestar app from settings. Nothing is read from the environment here."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from psycopg_pool import AsyncConnectionPool

from app.controllers.account import AccountController
from app.controllers.admin import AdminController
from app.controllers.health import health, ready
from app.controllers.messages import MessagesController
from app.controllers.upstreams import ReceiptsController, UpstreamsAdminController
from app.deps import Services, provide_conn
from app.errors import EXCEPTION_HANDLERS
from app.observability import request_logging
from core.settings import Settings
from db import Conn
from db.pool import open_pool
from jobs.app import create_app as create_jobs_app
from jobs.scheduler import ProcrastinateScheduler


def create_app(settings: Settings, *, pool: AsyncConnectionPool[Conn] | None = None) -> Litestar:
    """The API. ``pool`` lets a test share one pool; otherwise the lifespan opens one."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncGenerator[None, None]:
        own_pool = pool is None
        active = pool or await open_pool(
            settings.database_url, min_size=settings.db_pool_min, max_size=settings.db_pool_max
        )
        jobs_app = create_jobs_app()
        await jobs_app.open_async(active)
        app.state.services = Services(
            settings=settings, pool=active, scheduler=ProcrastinateScheduler(jobs_app)
        )
        try:
            yield
        finally:
            await jobs_app.close_async()
            if own_pool:
                await active.close()

    return Litestar(
        route_handlers=[
            AdminController,
            MessagesController,
            AccountController,
            UpstreamsAdminController,
            ReceiptsController,
            health,
            ready,
        ],
        dependencies={"conn": Provide(provide_conn)},
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=[lifespan],
        middleware=[request_logging],
        request_max_body_size=settings.max_request_bytes,
        openapi_config=OpenAPIConfig(
            title="smsgw",
            version="1",
            description="SMS gateway REST API. Money is in integer micro-units.",
        ),
        logging_config=None,
    )
