"""Guards: who is calling. They run before the body is read, so an unauthenticated
request is refused as such (401) whatever it carries."""

from __future__ import annotations

import contextlib
import hmac
from collections.abc import AsyncIterator
from typing import Any

import structlog
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from app.deps import services
from core import tenants
from core.errors import Forbidden, Unauthorized


def bearer_token(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    header = connection.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Send `Authorization: Bearer <key>`.")
    return token.strip()


def client_address(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    # The peer address. Behind a load balancer this is the balancer's, which throttles
    # every client behind it together; see README, "Security".
    return connection.client.host if connection.client else "unknown"


@contextlib.asynccontextmanager
async def throttled(connection: ASGIConnection[Any, Any, Any, Any]) -> AsyncIterator[None]:
    """Refuse an address that failed too often; count this attempt if it fails."""
    svc = services(connection.app.state)
    client = client_address(connection)
    svc.auth_throttle.check(client)
    try:
        yield
    except (Unauthorized, Forbidden):
        await svc.auth_throttle.failed(svc.pool, client)
        raise


async def tenant_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    async with throttled(connection):
        token = bearer_token(connection)
        async with services(connection.app.state).pool.connection() as conn:
            tenant = await tenants.authenticate(conn, api_key=token)
    connection.state.tenant = tenant
    structlog.contextvars.bind_contextvars(tenant_id=str(tenant.id))


async def admin_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    async with throttled(connection):
        token = bearer_token(connection)
        expected = services(connection.app.state).settings.admin_token
        if expected and hmac.compare_digest(token.encode(), expected.encode()):
            return
        if token.startswith("smsgw_"):
            raise Forbidden("Tenant API keys cannot use the admin API.")
        raise Unauthorized("The admin token is not valid.")


def provide_tenant(request: Request[Any, Any, Any]) -> tenants.Tenant:
    """The tenant that ``tenant_guard`` authenticated."""
    tenant = request.state.tenant
    assert isinstance(tenant, tenants.Tenant)
    return tenant
