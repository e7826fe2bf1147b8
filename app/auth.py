"""Guards: who is calling. They run before the body is read, so an unauthenticated
request is refused as such (401) whatever it carries. One exception: `POST /v1/messages`
may take the tenant of a key this process authenticated in the last minute from
core/key_cache.py, and its accept call re-checks the key; so for that minute a revoked
key's send with a malformed body gets the body's 400/422 (nothing is written) rather
than 401."""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import Any

import structlog
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers import HTTPRouteHandler
from litestar.handlers.base import BaseRouteHandler

from app.deps import services
from core import tenants, twilio
from core.audit import Actor
from core.errors import Forbidden, Unauthorized


def request_state(connection: ASGIConnection[Any, Any, Any, Any]) -> dict[str, Any]:
    """What the guards leave for the handler (the tenant, the key's id): the connection's
    state as the dict it is. `connection.state` wraps it in a new `State`, lock and all,
    on every access (~1 µs, five times a send)."""
    state = connection.scope.get("state")
    if state is None:
        state = connection.scope["state"] = {}
    return state


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


class throttled:
    """Refuse an address that failed too often; count this attempt if it fails. A class,
    not @asynccontextmanager: it runs on every authenticated request, and the generator
    version took 1.2 µs a use against 0.5 µs (timeit)."""

    __slots__ = ("_client", "_svc")

    def __init__(self, connection: ASGIConnection[Any, Any, Any, Any]) -> None:
        self._svc = services(connection.app.state)
        self._client = client_address(connection)

    async def __aenter__(self) -> None:
        self._svc.auth_throttle.check(self._client)

    async def __aexit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is not None and issubclass(kind, (Unauthorized, Forbidden)):
            await self._svc.auth_throttle.failed(self._svc.pool, self._client)


class UncopiedGuards(HTTPRouteHandler):
    """A route handler whose guards get the handler itself. Litestar hands each guard a copy of
    the handler, so that a guard cannot change it for later requests; copying its
    ~60 slots was ~5% of the API's CPU on `POST /v1/messages` (cProfile, in-process).
    The guards here only read the handler's `opt`."""

    async def authorize_connection(self, connection: ASGIConnection[Any, Any, Any, Any]) -> None:
        for guard in self.resolve_guards():
            await guard(connection, self)  # type: ignore[misc]


# A route handler with this in its `opt` may take the tenant from the cache of keys: its
# accept call re-checks the key (core/key_cache.py) and the handler retries on StaleKey.
KEY_CACHE = "key_cache"


async def tenant_guard(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    svc = services(connection.app.state)
    state = request_state(connection)
    state["key_id"] = None
    async with throttled(connection):
        token = bearer_token(connection)
        # An Idempotency-Key replay answers before any accept call, so it always looks up.
        known = (
            svc.key_cache.get(token)
            if handler.opt.get(KEY_CACHE) and "idempotency-key" not in connection.headers
            else None
        )
        if known is not None:
            tenant = known.tenant
            state["key_id"] = state["api_key_id"] = known.key_id
        else:
            tenant = await authenticate(connection, token)
    state["tenant"] = tenant
    structlog.contextvars.bind_contextvars(tenant_id=str(tenant.id))


async def authenticate(
    connection: ASGIConnection[Any, Any, Any, Any], token: str
) -> tenants.Tenant:
    """Look the key up (the caller counts a failure), and remember it for the cache."""
    svc = services(connection.app.state)
    async with svc.pool.connection() as conn:
        key_id, tenant = await tenants.authenticate_key(conn, api_key=token)
    svc.key_cache.put(token, key_id=key_id, tenant=tenant)
    # Who is calling, for the audit trail; not `key_id`, which asks the accept to
    # re-check a key taken from the cache.
    request_state(connection)["api_key_id"] = key_id
    return tenant


async def reauthenticate(request: Request[Any, Any, Any]) -> tenants.Tenant:
    """After StaleKey: forget the cached key and look it up again (401 if revoked)."""
    async with throttled(request):
        token = bearer_token(request)
        services(request.app.state).key_cache.forget(token)
        tenant = await authenticate(request, token)
    state = request_state(request)
    state["key_id"] = None
    state["tenant"] = tenant
    structlog.contextvars.bind_contextvars(tenant_id=str(tenant.id))
    return tenant


async def admin_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    async with throttled(connection):
        token = bearer_token(connection)
        expected = services(connection.app.state).settings.admin_token
        if expected and hmac.compare_digest(token.encode(), expected.encode()):
            request_state(connection)["admin"] = True
            return
        if token.startswith("smsgw_"):
            raise Forbidden("Tenant API keys cannot use the admin API.")
        raise Unauthorized("The admin token is not valid.")


def _basic(connection: ASGIConnection[Any, Any, Any, Any]) -> tuple[str, str]:
    scheme, _, encoded = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        raise Unauthorized("Send HTTP Basic auth with your account SID and auth token.")
    try:
        username, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise Unauthorized("The Authorization header is not valid Basic auth.") from None
    return username, password


async def twilio_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    # Failed attempts count towards the same per-address throttle as bearer keys.
    async with throttled(connection):
        username, password = _basic(connection)
        async with services(connection.app.state).pool.connection() as conn:
            account = await twilio.authenticate(conn, account_sid=username, auth_token=password)
        if connection.path_params.get("account_sid") != account.account_sid:
            raise Unauthorized("These credentials are not valid for this account.")
    request_state(connection)["twilio_account"] = account


def provide_tenant(request: Request[Any, Any, Any]) -> tenants.Tenant:
    """The tenant that ``tenant_guard`` authenticated."""
    tenant = request_state(request)["tenant"]
    assert isinstance(tenant, tenants.Tenant)
    return tenant


def provide_actor(request: Request[Any, Any, Any]) -> Actor:
    """Who makes a change, for the audit trail (core/audit.py): the admin token, or the
    tenant's API key by its id, as the route's guard found it; never the secret."""
    state = request_state(request)
    address = client_address(request)
    if state.get("admin"):
        return Actor(kind="admin", address=address)
    key_id = state.get("api_key_id")
    if "tenant" in state and key_id is not None:
        return Actor(kind="api_key", id=str(key_id), address=address)
    raise RuntimeError("provide_actor is for routes behind admin_guard or tenant_guard")
