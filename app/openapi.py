"""The OpenAPI document tells the truth about refusals.

Litestar documents a success response per handler and, for handlers with parameters, a
400 in its own error shape. Ours answer problem+json (``app/errors.py``), or Twilio's
error body under the facade, with statuses that follow from how an endpoint is reached:
its guard (401, 403, 429 for failed-auth throttling, 503 when the database is away), its
body (400 malformed, 413 too large, 422 invalid), its path (404) and its query (400,
422). ``document_refusals`` adds those to every handler of an app, plus the security
scheme its guard enforces; a handler declares what only it can answer (a send's 402,
a cancel's 409) with ``responses=problems(...)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

import msgspec
from litestar import Litestar
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import (
    Components,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Schema,
    SecurityScheme,
)
from litestar.routes import HTTPRoute

from app.auth import admin_guard, tenant_guard, twilio_guard

PROBLEM_JSON = "application/problem+json"

ProblemCode = Literal[
    "invalid_request",
    "unauthorized",
    "forbidden",
    "not_found",
    "insufficient_credit",
    "rate_limited",
    "idempotency_mismatch",
    "conflict",
    "payload_too_large",
    "recipient_opted_out",
    "callback_url_not_allowed",
    "destination_not_priced",
    "sender_not_allowed",
    "sender_not_allowed_for_destination",
    "no_sender_for_destination",
    "destination_not_permitted",
    "destination_suspended",
    "tenant_suspended",
    "spend_limit_reached",
    "internal_error",
    "unavailable",
]


class FieldProblem(msgspec.Struct, kw_only=True):
    field: Annotated[str, msgspec.Meta(description="Path of the field: `messages[3].to`")]
    detail: str


class Problem(msgspec.Struct, kw_only=True):
    """RFC 9457 problem details with a stable machine-readable ``code``."""

    status: int
    title: str
    detail: str
    code: ProblemCode
    errors: list[FieldProblem] | msgspec.UnsetType = msgspec.UNSET


class TwilioError(msgspec.Struct, kw_only=True):
    """Twilio's error body: its numeric code where one fits, else the HTTP status."""

    code: int
    message: str
    more_info: str
    status: int


_MEANING = {
    400: "Malformed request: the body is not JSON, or a parameter has the wrong type",
    401: "Missing or invalid credentials",
    402: "Not enough available credit for the price of the message(s)",
    403: "These credentials may not use this endpoint",
    404: "No such resource for this caller",
    409: "The resource is not in a state that allows this",
    413: "The request body is over the size limit",
    422: "The request is well-formed but not valid (`errors` names the fields)",
    429: "Rate limited, or too many failed authentications; see `Retry-After`",
    503: "The database is unavailable; retry after `Retry-After` seconds",
}


def problems(*statuses: int) -> dict[int, ResponseSpec]:
    """problem+json responses for ``statuses``, for a handler's ``responses``."""
    return {
        status: ResponseSpec(
            data_container=Problem,
            media_type=PROBLEM_JSON,
            description=_MEANING.get(status, "Refused"),
            generate_examples=False,
        )
        for status in statuses
    }


def twilio_errors(*statuses: int) -> dict[int, ResponseSpec]:
    return {
        status: ResponseSpec(
            data_container=TwilioError,
            description=_MEANING.get(status, "Refused"),
            generate_examples=False,
        )
        for status in statuses
    }


SECURITY_SCHEMES = Components(
    security_schemes={
        "tenantKey": SecurityScheme(
            type="http",
            scheme="bearer",
            description="A tenant API key (`smsgw_...`), shown once when issued",
        ),
        "adminToken": SecurityScheme(
            type="http", scheme="bearer", description="The operator token, SMSGW_ADMIN_TOKEN"
        ),
        "twilioBasic": SecurityScheme(
            type="http",
            scheme="basic",
            description="The tenant's Twilio account SID and auth token",
        ),
    }
)

_Guard = Callable[..., Any]


def _guarded(guard: _Guard) -> tuple[str | None, tuple[int, ...]]:
    """The security scheme a guard enforces, and what it refuses with."""
    known: dict[_Guard, tuple[str, tuple[int, ...]]] = {
        tenant_guard: ("tenantKey", (401, 429, 503)),
        admin_guard: ("adminToken", (401, 403, 429, 503)),
        twilio_guard: ("twilioBasic", (401, 429, 503)),
    }
    return known.get(guard, (None, ()))


def _refusals(route: HTTPRoute, handler: HTTPRouteHandler) -> tuple[list[str], set[int]]:
    schemes: list[str] = []
    statuses: set[int] = set()
    for guard in handler.resolve_guards():
        scheme, refused = _guarded(guard)
        if scheme is not None:
            schemes.append(scheme)
            statuses.update(refused)
    parameters = handler.parsed_fn_signature.parameters
    if "data" in parameters:
        statuses.update((400, 413, 422))
    if route.path_parameters:
        statuses.update((400, 404))
    # Query and header parameters: a wrong type is a 400, a bad value a 422.
    declared = set(route.path_parameters) | {"data", "self"}
    if any(name not in declared and not _is_dependency(handler, name) for name in parameters):
        statuses.update((400, 422))
    return schemes, statuses


_INJECTED = {"request", "state", "headers", "cookies", "query", "scope", "socket", "body"}


def _is_dependency(handler: HTTPRouteHandler, name: str) -> bool:
    return name in _INJECTED or name in handler.resolve_dependencies()


def document_refusals(app: Litestar) -> None:
    """Give every handler of ``app`` its refusals and security requirement. Handlers are
    copied per app when registered, so this changes this app's document only."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            if not handler.resolve_include_in_schema() or "OPTIONS" in handler.http_methods:
                continue
            schemes, statuses = _refusals(route, handler)
            shape = twilio_errors if "twilioBasic" in schemes else problems
            declared = dict(handler.responses or {})
            handler.responses = {**shape(*sorted(statuses)), **declared}
            if schemes and not handler.security:
                handler.security = [{scheme: []} for scheme in schemes]


# A handler's ``opt`` key: the media types its 200 answer may have (an export in CSV or
# JSON lines), documented in place of Litestar's one.
MEDIA_TYPES = "media_types"


def document_media_types(app: Litestar) -> None:
    """Document the 200 answer of handlers that stream one of several media types."""
    schema = app.openapi_schema  # generated once and cached: edited in place
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            types = handler.opt.get(MEDIA_TYPES)
            if not types:
                continue
            item = (schema.paths or {}).get(route.path_format)
            for method in handler.http_methods:
                operation = getattr(item, method.lower(), None) if item else None
                if operation is None or not operation.responses:
                    continue
                answer = operation.responses.get("200")
                if isinstance(answer, OpenAPIResponse):
                    answer.content = {
                        media: OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING))
                        for media in types
                    }
