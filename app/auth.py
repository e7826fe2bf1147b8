"""Guards: who is calling. They run before the body is read, so an unauthenticated
request is refused as such (401) whatever it carries."""

from __future__ import annotations

import hmac
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


async def tenant_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    token = bearer_token(connection)
    async with services(connection.app.state).pool.connection() as conn:
        tenant = await tenants.authenticate(conn, api_key=token)
    connection.state.tenant = tenant
    structlog.contextvars.bind_contextvars(tenant_id=str(tenant.id))


async def admin_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
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
