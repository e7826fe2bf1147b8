"""Why an accept took nothing: the wording of each refusal, and which one a batch hears
when none of its messages was accepted (core/accept.py decides; this says why)."""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn

from core import senders, submission
from core.errors import (
    DestinationNotPermitted,
    DestinationNotPriced,
    DestinationSuspended,
    DomainError,
    InsufficientCredit,
    RateLimited,
    RecipientOptedOut,
    SpendLimitReached,
    TenantSuspended,
)
from core.tenants import Tenant

OPTED_OUT = (
    "The recipient opted out of messages from this sender (they texted STOP); "
    "they must text START to receive messages again."
)


ACCOUNT_SUSPENDED = (
    "This account is suspended by the gateway's operator: no message is accepted until "
    "the operator resumes it. Nothing was sent or held."
)


def not_priced(to: str) -> str:
    return f"No rate of this account's rate card covers {to}: nothing was sent or held."


def sender_refused(
    draft: submission.Draft, reason: str, retry_at: datetime | str | None = None
) -> DomainError:
    """The error for a rule's refusal of a message: the tenant's (suspended by the
    operator), its destination's (geo permissions, a suspension until ``retry_at``) or
    its sender's (smsgw_sender_v1's reasons)."""
    if reason == "tenant_suspended":
        return TenantSuspended(ACCOUNT_SUSPENDED)
    country = draft.to_country or "the destination's country"
    if reason == "destination_not_permitted":
        return DestinationNotPermitted(
            f"This account may not send to {country}: it is not in the account's geo "
            "permissions. Nothing was sent or held."
        )
    if reason == "destination_suspended":
        until = _moment(retry_at)
        left = 1.0 if until is None else (until - datetime.now(UTC)).total_seconds()
        wait = max(1, math.ceil(left))
        return DestinationSuspended(
            f"Sends to {draft.to}'s range in {country} are suspended for this account "
            f"until {until.isoformat() if until else 'later'}: its traffic there broke the "
            "hourly limit (SMS pumping protection). Nothing was sent or held.",
            retry_after=wait,
        )
    return senders.refusal(reason, sender=draft.sender, to_country=draft.to_country)


def _moment(value: datetime | str | None) -> datetime | None:
    # From JSON (a batch call's refusals) a time arrives as text.
    if isinstance(value, str):
        return datetime.fromisoformat(value)
    return value


def refuse(
    outcome: Mapping[str, Any], *, tenant: Tenant, total: int, count: int, rate: float | None
) -> NoReturn:
    """Say why nothing was accepted. Over the rate comes first: a client sending too
    fast hears that, whatever its credit."""
    tokens = outcome["tokens"]
    if rate is not None and tokens is not None and tokens < 1:
        wait = max(1, math.ceil((1 - tokens) / rate))
        raise RateLimited(
            f"Over the rate limit of {tenant.rate_limit_mps} requests per second.",
            retry_after=wait,
        )
    room = outcome.get("cap_room")
    if room is not None and room < total:
        raise SpendLimitReached(
            f"{total} micro-units ({count} message(s)) would take this account past its "
            f"spend cap: {max(room, 0)} left this period. Nothing was sent or held."
        )
    raise InsufficientCredit(
        f"Available credit does not cover {total} micro-units ({count} message(s))."
    )


def nothing_accepted(
    drafts: Sequence[submission.Draft],
    *,
    opted_out: frozenset[uuid.UUID],
    unpriced: frozenset[uuid.UUID],
    unsent: Mapping[uuid.UUID, tuple[str, Any]],
) -> None:
    """When every message of an accept was refused by a rule (its sender, its
    destination's price, an opt-out), the refusal to answer; returns when some were
    refused for credit or rate instead (``refuse`` says which)."""
    if len(opted_out) + len(unpriced) + len(unsent) != len(drafts):
        return
    if unsent:
        first = next(d for d in drafts if d.id in unsent)
        reason, retry_at = unsent[first.id]
        error = sender_refused(first, reason, retry_at)
        if len(drafts) == 1 or isinstance(error, TenantSuspended):
            raise error
        detail = f"No message of the batch was accepted. The first refused: {error.detail}"
        if isinstance(error, DestinationSuspended):
            raise DestinationSuspended(detail, retry_after=error.retry_after)
        raise type(error)(detail)
    if unpriced:
        raise DestinationNotPriced(
            not_priced(drafts[0].to)
            if len(drafts) == 1
            else "No rate of this account's rate card covers any destination of "
            "the batch that did not opt out."
        )
    raise RecipientOptedOut(
        OPTED_OUT
        if len(drafts) == 1
        else "Every recipient in the batch opted out of messages from its sender."
    )
