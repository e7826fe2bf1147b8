"""Liveness and readiness for load balancers and orchestrators."""

from __future__ import annotations

import asyncio

from litestar import get
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec
from litestar.response import Response

from app.deps import services
from app.schemas import Health
from db import migrate


@get("/health", tags=["operations"])
async def health() -> Health:
    """The process is up (no dependency is checked)."""
    return Health(status="ok")


@get(
    "/ready",
    tags=["operations"],
    responses={503: ResponseSpec(Health, description="Not ready: `detail` says why")},
)
async def ready(state: State) -> Response[Health]:
    """The database answers and its schema is the one this code expects."""
    try:
        async with asyncio.timeout(2):
            async with services(state).pool.connection() as conn:
                version = await migrate.current_version(conn)
    except migrate.PreReleaseDatabase as exc:
        return Response(Health(status="unavailable", detail=str(exc)), status_code=503)
    except Exception as exc:  # any failure to reach the database means "not ready"
        return Response(
            Health(status="unavailable", detail=f"database unreachable: {type(exc).__name__}"),
            status_code=503,
        )
    expected = migrate.latest_version()
    if version != expected:
        return Response(
            Health(status="unavailable", detail=f"schema at {version}, code expects {expected}"),
            status_code=503,
        )
    return Response(Health(status="ok"), status_code=200)
