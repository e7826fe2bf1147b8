"""Who may send as whom. The operator registers alphanumeric sender IDs for a tenant
(beside the numbers it owns, core/numbers.py), keeps the sender rule of each destination
country and may let a tenant send from any sender (its sender policy). The accept judges
each message's sender by them inside its one statement (smsgw_sender_v1); ``refusal``
puts the reason it gives in words, as the domain error every front door maps to its own
answer (422 problem, Twilio 21606, ESME_RINVSRCADR)."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Literal

import msgspec
import structlog

from core import submission
from core.errors import (
    DomainError,
    FieldError,
    InvalidRequest,
    NoSenderForDestination,
    NotFound,
    SenderNotAllowed,
    SenderNotAllowedForDestination,
)
from db import Conn, Row
from db import senders as senders_db

log = structlog.get_logger("smsgw.senders")

SenderIdStatus = Literal["approved", "pending"]
SenderPolicy = Literal["own", "any"]
Alphanumeric = Literal["allowed", "registered", "not_supported"]

_COUNTRY = re.compile(r"^[A-Z]{2}$")
MAX_SOURCE_CHARS = 1_000


class SenderId(msgspec.Struct, frozen=True, kw_only=True):
    tenant_id: uuid.UUID
    sender_id: str
    countries: list[str] | None
    status: SenderIdStatus
    created_at: datetime
    updated_at: datetime


class SenderIdList(msgspec.Struct, frozen=True, kw_only=True):
    sender_ids: list[SenderId]


class CountryRule(msgspec.Struct, frozen=True, kw_only=True):
    country: str
    alphanumeric: Alphanumeric
    numeric_allowed: bool
    default_sender: str | None
    source: str | None
    updated_at: datetime


class CountryRuleList(msgspec.Struct, frozen=True, kw_only=True):
    rules: list[CountryRule]


def _sender_id(row: Row) -> SenderId:
    return SenderId(
        tenant_id=row["tenant_id"],
        sender_id=row["sender_id"],
        countries=row["countries"],
        status=row["status"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _rule(row: Row) -> CountryRule:
    return CountryRule(
        country=row["country"],
        alphanumeric=row["alphanumeric"],
        numeric_allowed=row["numeric_allowed"],
        default_sender=row["default_sender"],
        source=row["source"],
        updated_at=row["updated_at"],
    )


def _check_countries(countries: list[str] | None, errors: list[FieldError]) -> None:
    if countries is None:
        return
    if not countries:
        errors.append(FieldError("countries", "must list at least one country, or be null"))
    for i, country in enumerate(countries):
        if not _COUNTRY.match(country):
            errors.append(FieldError(f"countries[{i}]", "must be an ISO 3166 alpha-2 code (GB)"))


async def register_sender_id(
    conn: Conn,
    *,
    tenant_id: uuid.UUID,
    sender_id: str,
    countries: list[str] | None,
    status: SenderIdStatus,
) -> tuple[bool, SenderId]:
    """Register ``sender_id`` for the tenant, or change its registration (its countries,
    its status): (True, it) when new. Only alphanumeric IDs: a number is owned instead
    (POST .../numbers), so an inbound message to it finds its tenant."""
    errors: list[FieldError] = []
    if not submission.ALPHANUMERIC_SENDER.match(sender_id):
        errors.append(
            FieldError(
                "sender_id",
                "must be 1-11 letters, digits and spaces with at least one letter (a "
                "number is given to a tenant with POST .../numbers)",
            )
        )
    _check_countries(countries, errors)
    if errors:
        raise InvalidRequest("The sender ID is not valid.", errors)
    row = await senders_db.upsert_sender_id(
        conn,
        tenant_id=tenant_id,
        sender_id=sender_id,
        countries=sorted(set(countries)) if countries is not None else None,
        status=status,
    )
    return bool(row["created"]), _sender_id(row)


async def list_sender_ids(conn: Conn, *, tenant_id: uuid.UUID) -> SenderIdList:
    rows = await senders_db.list_sender_ids(conn, tenant_id=tenant_id)
    return SenderIdList(sender_ids=[_sender_id(row) for row in rows])


async def find_sender_id(conn: Conn, *, tenant_id: uuid.UUID, sender_id: str) -> SenderId | None:
    """The tenant's registration of ``sender_id``, None when there is none (read before a
    change, for the audit trail)."""
    found = await list_sender_ids(conn, tenant_id=tenant_id)
    return next((item for item in found.sender_ids if item.sender_id == sender_id), None)


async def delete_sender_id(conn: Conn, *, tenant_id: uuid.UUID, sender_id: str) -> None:
    if "\x00" in sender_id or not await senders_db.delete_sender_id(
        conn, tenant_id=tenant_id, sender_id=sender_id
    ):
        raise NotFound("The tenant has no such sender ID.")


async def set_sender_policy(conn: Conn, *, tenant_id: uuid.UUID, policy: SenderPolicy) -> None:
    """'any' lets the tenant send from any sender (a legacy integration); 'own' only from
    its numbers and sender IDs. A change is logged and its time kept on the tenant."""
    row = await senders_db.set_sender_policy(conn, tenant_id=tenant_id, policy=policy)
    if row is None:
        raise NotFound("No tenant has this id.")
    log.info("tenant.sender_policy_set", tenant_id=str(tenant_id), sender_policy=policy)


async def set_rule(
    conn: Conn,
    *,
    country: str,
    alphanumeric: Alphanumeric,
    numeric_allowed: bool,
    default_sender: str | None,
    source: str | None,
) -> CountryRule:
    """Set the sender rule of messages to ``country`` (replacing the seeded one)."""
    errors: list[FieldError] = []
    if not _COUNTRY.match(country):
        errors.append(FieldError("country", "must be an ISO 3166 alpha-2 code (GB)"))
    if default_sender is not None:
        submission.check_sender(default_sender, errors, "default_sender")
    if source is not None and (len(source) > MAX_SOURCE_CHARS or "\x00" in source):
        errors.append(FieldError("source", f"must be at most {MAX_SOURCE_CHARS} characters"))
    if errors:
        raise InvalidRequest("The sender rule is not valid.", errors)
    row = await senders_db.upsert_rule(
        conn,
        country=country,
        alphanumeric=alphanumeric,
        numeric_allowed=numeric_allowed,
        default_sender=default_sender,
        source=source,
    )
    log.info("sender_rule.set", country=country, alphanumeric=alphanumeric)
    return _rule(row)


async def list_rules(conn: Conn) -> CountryRuleList:
    return CountryRuleList(rules=[_rule(row) for row in await senders_db.list_rules(conn)])


async def get_rule(conn: Conn, *, country: str) -> CountryRule:
    row = await senders_db.get_rule(conn, country=country) if _COUNTRY.match(country) else None
    if row is None:
        raise NotFound(
            "No rule for this country: alphanumeric and numeric senders are allowed there."
        )
    return _rule(row)


async def delete_rule(conn: Conn, *, country: str) -> None:
    """Back to no rule: alphanumeric and numeric senders allowed, no default sender."""
    if not _COUNTRY.match(country) or not await senders_db.delete_rule(conn, country=country):
        raise NotFound("No rule for this country.")


def refusal(reason: str, *, sender: str | None, to_country: str | None) -> DomainError:
    """The error for a refusal ``reason`` of the accept (smsgw_sender_v1)."""
    country = to_country or "the destination's country"
    match reason:
        case "not_owned":
            return SenderNotAllowed(
                f"'{sender}' is not a number this account owns nor a sender ID approved "
                f"for it in {country}: nothing was sent or held."
            )
        case "alphanumeric_not_supported":
            return SenderNotAllowedForDestination(
                f"{country} takes no alphanumeric senders (numeric senders only): send to "
                "it from a number this account owns."
            )
        case "alphanumeric_unregistered":
            return SenderNotAllowedForDestination(
                f"{country} takes an alphanumeric sender only when it is registered for "
                f"{country}: '{sender}' is not registered for it."
            )
        case "numeric_not_supported":
            return SenderNotAllowedForDestination(
                f"{country} takes no numeric senders (only sender IDs registered for it): "
                f"'{sender}' is a number."
            )
        case "no_sender":
            return NoSenderForDestination(
                f"{country} requires a sender registered for it, and this account has none "
                f"there: register a sender ID for {country}, or name a sender."
            )
    raise ValueError(f"unknown sender refusal {reason!r}")
