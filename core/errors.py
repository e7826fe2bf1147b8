"""Domain errors. They carry a stable machine code and a human detail, never an HTTP status:
``app/errors.py`` is the one place that maps them to responses."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    detail: str


class DomainError(Exception):
    code: str = "internal_error"
    title: str = "Internal error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidRequest(DomainError):
    code = "invalid_request"
    title = "Invalid request"

    def __init__(self, detail: str, errors: list[FieldError] | None = None) -> None:
        super().__init__(detail)
        self.errors = errors or []


class CallbackUrlNotAllowed(InvalidRequest):
    """A webhook URL names an address in the operator's network (loopback, private,
    link-local...; core/webhook_policy.py). Its ``errors`` name the field."""

    code = "callback_url_not_allowed"
    title = "Webhook destination not allowed"


class MalformedRequest(InvalidRequest):
    """The body is not JSON at all (as opposed to JSON that fails validation)."""


class Unauthorized(DomainError):
    code = "unauthorized"
    title = "Unauthorized"


class Forbidden(DomainError):
    code = "forbidden"
    title = "Forbidden"


class NotFound(DomainError):
    code = "not_found"
    title = "Not found"


class InsufficientCredit(DomainError):
    code = "insufficient_credit"
    title = "Insufficient credit"


class Conflict(DomainError):
    code = "conflict"
    title = "Conflict"


class RecipientOptedOut(DomainError):
    """The recipient is on the tenant's suppression list (they texted STOP)."""

    code = "recipient_opted_out"
    title = "Recipient opted out"


class DestinationNotPriced(DomainError):
    """No rate of the tenant's card (nor of its own rates) covers the destination."""

    code = "destination_not_priced"
    title = "Destination not priced"


class SenderNotAllowed(DomainError):
    """The sender is neither a number the tenant owns nor a sender ID registered and
    approved for it (and the operator did not let it send from any sender)."""

    code = "sender_not_allowed"
    title = "Sender not allowed"


class SenderNotAllowedForDestination(DomainError):
    """The sender breaks the sender rule of the destination's country (an alphanumeric
    sender where only numbers are taken, an unregistered one where registration is
    required, a number where only registered sender IDs are)."""

    code = "sender_not_allowed_for_destination"
    title = "Sender not allowed for this destination"


class NoSenderForDestination(DomainError):
    """No sender was named and the destination's country requires a registered one that
    the tenant does not have (nor the operator a default)."""

    code = "no_sender_for_destination"
    title = "No sender for this destination"


class DestinationNotPermitted(DomainError):
    """The tenant's geo permissions do not include the destination's country (or it is
    one of the operator's high-risk countries, not enabled for the tenant)."""

    code = "destination_not_permitted"
    title = "Destination not permitted"


class DestinationSuspended(DomainError):
    """Pumping protection suspended sends from the tenant to this destination (its
    traffic there broke the hourly limit) until ``retry_after`` seconds from now, unless
    lifted sooner."""

    code = "destination_suspended"
    title = "Destination suspended"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class TenantSuspended(DomainError):
    """The operator suspended the tenant: no message of it is accepted, whichever door
    it comes through, until the operator resumes it."""

    code = "tenant_suspended"
    title = "Account suspended"


class SpendLimitReached(DomainError):
    """The send would take the tenant's spend of the day or month past its cap (captured
    plus held money); distinct from a short balance."""

    code = "spend_limit_reached"
    title = "Spend limit reached"


class IdempotencyMismatch(DomainError):
    code = "idempotency_mismatch"
    title = "Idempotency key reused with a different body"


class RateLimited(DomainError):
    code = "rate_limited"
    title = "Rate limited"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class PayloadTooLarge(DomainError):
    code = "payload_too_large"
    title = "Payload too large"


class Unavailable(DomainError):
    code = "unavailable"
    title = "Service unavailable"

    def __init__(self, detail: str, retry_after: int = 1) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
