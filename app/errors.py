"""The one place where errors become HTTP answers: RFC 9457 problem+json with a stable
``code``. Domain errors carry no status; the table below gives it."""

from __future__ import annotations

from typing import Any

import psycopg
import psycopg_pool
import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.types import ExceptionHandlersMap

from core import errors

log = structlog.get_logger("smsgw.api")

PROBLEM_JSON = "application/problem+json"

STATUS: dict[type[errors.DomainError], int] = {
    errors.MalformedRequest: 400,
    errors.InvalidRequest: 422,
    errors.Unauthorized: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.InsufficientCredit: 402,
    errors.Conflict: 409,
    errors.IdempotencyMismatch: 422,
    errors.RecipientOptedOut: 422,
    errors.DestinationNotPriced: 422,
    errors.SenderNotAllowed: 422,
    errors.SenderNotAllowedForDestination: 422,
    errors.NoSenderForDestination: 422,
    errors.DestinationNotPermitted: 422,
    errors.DestinationSuspended: 429,
    errors.TenantSuspended: 403,
    errors.SpendLimitReached: 402,
    errors.RateLimited: 429,
    errors.PayloadTooLarge: 413,
    errors.Unavailable: 503,
}

# Litestar's own refusals (no route, wrong method, body too big...) in our vocabulary.
_HTTP_CODES: dict[int, tuple[str, str]] = {
    400: ("invalid_request", "Invalid request"),
    401: ("unauthorized", "Unauthorized"),
    403: ("forbidden", "Forbidden"),
    404: ("not_found", "Not found"),
    405: ("invalid_request", "Method not allowed"),
    413: ("payload_too_large", "Payload too large"),
    415: ("invalid_request", "Unsupported media type"),
    429: ("rate_limited", "Rate limited"),
    503: ("unavailable", "Service unavailable"),
}


def problem(
    status: int,
    code: str,
    title: str,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response[dict[str, Any]]:
    body = {"status": status, "title": title, "detail": detail, "code": code, **extra}
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def domain_error(request: Request[Any, Any, Any], exc: errors.DomainError) -> Response[Any]:
    status = next(
        (s for cls, s in STATUS.items() if type(exc) is cls),
        next((s for cls, s in STATUS.items() if isinstance(exc, cls)), 500),
    )
    headers = None
    extra: dict[str, Any] = {}
    if isinstance(exc, errors.RateLimited | errors.Unavailable | errors.DestinationSuspended):
        headers = {"Retry-After": str(exc.retry_after)}
    if isinstance(exc, errors.InvalidRequest):
        extra["errors"] = [{"field": e.field, "detail": e.detail} for e in exc.errors]
    return problem(status, exc.code, exc.title, exc.detail, headers=headers, **extra)


def http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    if status >= 500:
        return internal_error(request, exc)
    code, title = _HTTP_CODES.get(status, ("invalid_request", "Invalid request"))
    extra: dict[str, Any] = {}
    detail = exc.detail or title
    if isinstance(exc, ValidationException):
        extra["errors"] = [
            {"field": str(item.get("key", "")), "detail": str(item.get("message", ""))}
            for item in (exc.extra if isinstance(exc.extra, list) else [])
            if isinstance(item, dict)
        ]
        detail = "The request parameters are not valid."
    headers = {k: v for k, v in (exc.headers or {}).items() if k.lower() == "allow"}
    return problem(status, code, title, detail, headers=headers or None, **extra)


def unavailable(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    # The database is down or the pool is exhausted: say so and when to retry, rather
    # than hang the client or blame it.
    log.warning("api.database_unavailable", error=type(exc).__name__)
    return problem(
        503,
        "unavailable",
        "Service unavailable",
        "The database is unavailable; retry shortly.",
        headers={"Retry-After": "2"},
    )


def internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("api.internal_error", error=type(exc).__name__)
    return problem(500, "internal_error", "Internal error", "An unexpected error occurred.")


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    errors.DomainError: domain_error,
    HTTPException: http_error,
    psycopg.OperationalError: unavailable,
    psycopg_pool.PoolTimeout: unavailable,
    Exception: internal_error,
}
