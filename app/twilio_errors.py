"""Errors of the Twilio facade in Twilio's shape: ``{code, message, more_info, status}``,
with Twilio's numeric codes where one fits and the HTTP status otherwise. The facade's
controller installs these handlers in place of the problem+json ones."""

from __future__ import annotations

from typing import Any

import psycopg
import psycopg_pool
import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.types import ExceptionHandlersMap

from core import errors

log = structlog.get_logger("smsgw.api")

AUTHENTICATE = 20003
NOT_FOUND = 20404
TOO_MANY_REQUESTS = 20429
ACCOUNT_NOT_ACTIVE = 20005  # Twilio's answer to an account out of funds or suspended
UNSUBSCRIBED_RECIPIENT = 21610
# "Permission to send an SMS has not been enabled for the region indicated by the To"
REGION_NOT_ENABLED = 21408
CANNOT_CANCEL = 30409
# "Message delivery blocked" by SMS Pumping Protection: a destination suspended for
# the account. (A spend cap has no Twilio code: the HTTP status, 402, stands.)
PUMPING_BLOCKED = 30450
# "The From phone number is not a valid, SMS-capable inbound phone number or short code
# for your account": Twilio's answer to a From the account does not own, or cannot use
# to that destination.
FROM_NOT_ALLOWED = 21606
# "A 'From' phone number is required" (nor a MessagingServiceSid that has one).
FROM_REQUIRED = 21603
INTERNAL = 20500
UNAVAILABLE = 20503

# (parameter, "required"?) -> code; the REST API's field names for the shared rules.
_FIELD_CODES: dict[str, tuple[int, int]] = {
    # field: (code when missing, code when invalid)
    "To": (21604, 21211),
    "to": (21604, 21211),
    "From": (21603, 21212),
    "from": (21603, 21212),
    "MessagingServiceSid": (21603, 21701),
    "Body": (21602, 21617),
    "body": (21602, 21617),
    "callback_url": (21609, 21609),
    "StatusCallback": (21609, 21609),
    "ScheduleType": (35126, 35126),
    "SendAt": (35111, 35114),
    "send_at": (35111, 35114),
    "ValidityPeriod": (90007, 90007),
    "validity_seconds": (90007, 90007),
}
_STATUS: dict[type[errors.DomainError], tuple[int, int]] = {
    errors.Unauthorized: (401, AUTHENTICATE),
    errors.Forbidden: (403, AUTHENTICATE),
    errors.NotFound: (404, NOT_FOUND),
    errors.RecipientOptedOut: (400, UNSUBSCRIBED_RECIPIENT),
    errors.DestinationNotPriced: (400, REGION_NOT_ENABLED),
    # Geo permissions: exactly Twilio's "region not enabled" answer.
    errors.DestinationNotPermitted: (400, REGION_NOT_ENABLED),
    errors.DestinationSuspended: (429, PUMPING_BLOCKED),
    # Twilio's "Account not active": what a suspended Twilio account hears.
    errors.TenantSuspended: (403, ACCOUNT_NOT_ACTIVE),
    errors.SpendLimitReached: (402, 402),
    errors.SenderNotAllowed: (400, FROM_NOT_ALLOWED),
    errors.SenderNotAllowedForDestination: (400, FROM_NOT_ALLOWED),
    errors.NoSenderForDestination: (400, FROM_REQUIRED),
    errors.InsufficientCredit: (402, ACCOUNT_NOT_ACTIVE),
    errors.Conflict: (400, CANNOT_CANCEL),
    errors.IdempotencyMismatch: (422, 422),
    errors.RateLimited: (429, TOO_MANY_REQUESTS),
    errors.PayloadTooLarge: (413, 413),
    errors.Unavailable: (503, UNAVAILABLE),
}


def twilio_error(
    status: int, code: int, message: str, *, headers: dict[str, str] | None = None
) -> Response[dict[str, Any]]:
    body = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _invalid(exc: errors.InvalidRequest) -> Response[Any]:
    if isinstance(exc, errors.MalformedRequest) or not exc.errors:
        return twilio_error(400, 400, exc.detail)
    first = exc.errors[0]
    missing, invalid = _FIELD_CODES.get(first.field, (400, 400))
    required = "required" in first.detail or "must not be empty" in first.detail
    code = missing if required else invalid
    if first.field in ("to", "To") and not required:
        message = f"The 'To' number {first.detail}."
    else:
        message = "; ".join(f"'{e.field}' {e.detail}" for e in exc.errors) + "."
    return twilio_error(400, code, message)


def domain_error(request: Request[Any, Any, Any], exc: errors.DomainError) -> Response[Any]:
    if isinstance(exc, errors.InvalidRequest):
        return _invalid(exc)
    status, code = next(
        (pair for cls, pair in _STATUS.items() if isinstance(exc, cls)), (500, INTERNAL)
    )
    headers: dict[str, str] = {}
    if isinstance(exc, errors.RateLimited | errors.Unavailable | errors.DestinationSuspended):
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, errors.Unauthorized):
        headers["WWW-Authenticate"] = 'Basic realm="smsgw"'
    return twilio_error(status, code, exc.detail, headers=headers or None)


def http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    if status >= 500:
        return internal_error(request, exc)
    code = NOT_FOUND if status == 404 else status
    return twilio_error(status, code, exc.detail or "The request is not valid.")


def unavailable(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.warning("api.database_unavailable", error=type(exc).__name__)
    return twilio_error(
        503, UNAVAILABLE, "The service is unavailable; retry shortly.", headers={"Retry-After": "2"}
    )


def internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("api.internal_error", error=type(exc).__name__)
    return twilio_error(500, INTERNAL, "An unexpected error occurred.")


TWILIO_EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    errors.DomainError: domain_error,
    HTTPException: http_error,
    psycopg.OperationalError: unavailable,
    psycopg_pool.PoolTimeout: unavailable,
    Exception: internal_error,
}
