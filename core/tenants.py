"""Tenants, their API keys and their credit."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from datetime import datetime, time
from typing import Literal

import msgspec
from psycopg import errors as pg_errors

from core import rates, segments, senders, submission
from core.errors import FieldError, InvalidRequest, NotFound, Unauthorized
from core.webhook_policy import DestinationPolicy
from db import Conn, Row
from db import ledger as ledger_db
from db import tenants as tenants_db

Tier = Literal["vip", "premium", "standard"]
InboundFormat = Literal["json", "twilio"]
TIERS: tuple[Tier, ...] = ("vip", "premium", "standard")
# Micro-units per segment (DESIGN.md): what a tenant pays unless priced otherwise.
DEFAULT_PRICE_PER_SEGMENT: dict[str, int] = {"standard": 7_900, "premium": 6_500, "vip": 5_000}
DEFAULT_CURRENCY = "USD"
MAX_CREDIT = 10**15  # a billion units in one credit: far above any real top-up

_KEY = re.compile(r"^smsgw_(?P<prefix>[0-9a-f]{12})_(?P<secret>[A-Za-z0-9_-]{43})$")


class Tenant(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    name: str
    tier: Tier
    rate_limit_mps: int | None
    price_per_segment: int
    currency: str
    webhook_secret: str
    created_at: datetime
    # Inbound messages are POSTed here (None: stored, not posted).
    inbound_url: str | None = None
    # The answer to an inbound HELP (None: no automatic answer).
    help_reply: str | None = None
    # How inbound messages are POSTed: the gateway's JSON, or Twilio's incoming-message
    # webhook (form-encoded, X-Twilio-Signature) for apps moved from Twilio.
    inbound_format: InboundFormat = "json"
    # The rate card it is on (its tier's when it chose none); read by the admin API only.
    rate_card: str | None = None
    # 'any': the operator let it send from any sender (the accept reads the table, not
    # this); read by the admin API only.
    sender_policy: str = "own"
    # Its messages' smart encoding when they do not say (core/smart_encoding.py).
    smart_encoding: bool = False
    # Its quiet hours (start, end) in recipients' local time; None: none.
    quiet_hours: tuple[time, time] | None = None
    # Set while the operator has it suspended (core/account_suspension.py); the accept
    # reads the table, not this.
    suspended_at: datetime | None = None
    suspension_reason: str | None = None


class Balance(msgspec.Struct, frozen=True, kw_only=True):
    available: int
    held: int
    captured: int


class RevokedKey(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    tenant_id: uuid.UUID
    revoked_at: datetime


class IssuedKey(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    tenant_id: uuid.UUID
    api_key: str
    created_at: datetime


def tenant_from_row(row: Row) -> Tenant:
    return Tenant(
        id=row["id"],
        name=row["name"],
        tier=row["tier"],
        rate_limit_mps=row["rate_limit_mps"],
        price_per_segment=row["price_per_segment"],
        currency=row["currency"],
        webhook_secret=row["webhook_secret"],
        created_at=row["created_at"],
        inbound_url=row.get("inbound_url"),
        help_reply=row.get("help_reply"),
        inbound_format=row.get("inbound_format") or "json",
        rate_card=row.get("rate_card"),
        sender_policy=row.get("sender_policy") or "own",
        smart_encoding=bool(row.get("smart_encoding")),
        quiet_hours=(
            (row["quiet_hours_start"], row["quiet_hours_end"])
            if row.get("quiet_hours_start") is not None
            else None
        ),
        suspended_at=row.get("suspended_at"),
        suspension_reason=row.get("suspension_reason"),
    )


def _digest(secret: str) -> bytes:
    # Keys carry 256 random bits, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(secret.encode()).digest()


async def create_tenant(
    conn: Conn, *, name: str, tier: Tier, rate_limit_mps: int | None
) -> tuple[Tenant, IssuedKey]:
    errors: list[FieldError] = []
    if not name.strip() or len(name) > 200 or "\x00" in name:
        errors.append(FieldError("name", "must be 1 to 200 characters, not blank"))
    if rate_limit_mps is not None and not 1 <= rate_limit_mps <= 1_000_000:
        errors.append(FieldError("rate_limit_mps", "must be null or between 1 and 1000000"))
    if errors:
        raise InvalidRequest("The tenant is not valid.", errors)
    row = await tenants_db.insert_tenant(
        conn,
        id=uuid.uuid4(),
        name=name,
        tier=tier,
        rate_limit_mps=rate_limit_mps,
        price_per_segment=DEFAULT_PRICE_PER_SEGMENT[tier],
        currency=DEFAULT_CURRENCY,
        webhook_secret="whsec_" + secrets.token_urlsafe(32),
    )
    tenant = tenant_from_row(row)
    return tenant, await issue_api_key(conn, tenant_id=tenant.id)


async def update_tenant(
    conn: Conn,
    *,
    tenant_id: uuid.UUID,
    tier: Tier | None = None,
    rate_limit_mps: int | msgspec.UnsetType | None = msgspec.UNSET,
    price_per_segment: int | None = None,
    inbound_url: str | msgspec.UnsetType | None = msgspec.UNSET,
    help_reply: str | msgspec.UnsetType | None = msgspec.UNSET,
    inbound_format: InboundFormat | None = None,
    rate_card: str | msgspec.UnsetType | None = msgspec.UNSET,
    sender_policy: senders.SenderPolicy | None = None,
    smart_encoding: bool | None = None,
    quiet_hours: tuple[time, time] | msgspec.UnsetType | None = msgspec.UNSET,
    destinations: DestinationPolicy,
) -> tuple[Tenant, Balance]:
    """Change a tenant's tier, rate limit (None: unlimited), price, inbound webhook, its
    format, HELP answer (None: none) or rate card (None: its tier's). An inbound webhook
    at a literal address of the gateway's network is refused (``destinations``). A price
    is the tenant's own rate for every destination (core/rates.py: set_flat_price); a
    tenant on its tier's card follows a tier change to the new tier's card. A sender
    policy of 'any' lets it send from any sender (core/senders.py)."""
    errors: list[FieldError] = []
    if isinstance(rate_limit_mps, int) and not 1 <= rate_limit_mps <= 1_000_000:
        errors.append(FieldError("rate_limit_mps", "must be null or between 1 and 1000000"))
    if price_per_segment is not None and not 0 <= price_per_segment <= 10**12:
        errors.append(FieldError("price_per_segment", "must be between 0 and 10^12"))
    if isinstance(inbound_url, str):
        submission.check_url(inbound_url, errors, "inbound_url")
    if isinstance(help_reply, str):
        _check_help_reply(help_reply, errors)
    if isinstance(quiet_hours, tuple) and quiet_hours[0] == quiet_hours[1]:
        errors.append(FieldError("quiet_hours", "start and end must differ"))
    if errors:
        raise InvalidRequest("The change is not valid.", errors)
    if isinstance(inbound_url, str):
        submission.check_destination(inbound_url, destinations, "inbound_url")
    found = await tenants_db.update_tenant(
        conn,
        id=tenant_id,
        tier=tier,
        set_rate=rate_limit_mps is not msgspec.UNSET,
        rate_limit_mps=None if rate_limit_mps is msgspec.UNSET else rate_limit_mps,
        price_per_segment=price_per_segment,
        set_inbound_url=inbound_url is not msgspec.UNSET,
        inbound_url=None if inbound_url is msgspec.UNSET else inbound_url,
        set_help_reply=help_reply is not msgspec.UNSET,
        help_reply=None if help_reply is msgspec.UNSET else help_reply,
        inbound_format=inbound_format,
        smart_encoding=smart_encoding,
        set_quiet_hours=quiet_hours is not msgspec.UNSET,
        quiet_hours_start=quiet_hours[0] if isinstance(quiet_hours, tuple) else None,
        quiet_hours_end=quiet_hours[1] if isinstance(quiet_hours, tuple) else None,
    )
    if not found:
        raise NotFound("No tenant has this id.")
    if price_per_segment is not None:
        await rates.set_flat_price(conn, tenant_id=tenant_id, price_per_segment=price_per_segment)
    if rate_card is not msgspec.UNSET:
        await rates.set_tenant_card(conn, tenant_id=tenant_id, card=rate_card)
    if sender_policy is not None:
        await senders.set_sender_policy(conn, tenant_id=tenant_id, policy=sender_policy)
    return await get_tenant(conn, tenant_id=tenant_id)


def _check_help_reply(text: str, errors: list[FieldError]) -> None:
    # The answer is sent as a message: it must pass as a message body.
    if not text.strip() or "\x00" in text:
        errors.append(FieldError("help_reply", "must be a non-blank text without NUL"))
    elif segments.count(text).segments > segments.MAX_SEGMENTS:
        errors.append(FieldError("help_reply", f"must fit in {segments.MAX_SEGMENTS} segments"))


async def get_tenant(
    conn: Conn, *, tenant_id: uuid.UUID, lock: bool = False
) -> tuple[Tenant, Balance]:
    """The tenant and its balances; ``lock``: its settings held still until the caller's
    transaction ends (read before a change, for the audit trail)."""
    if lock:
        await tenants_db.lock_tenant(conn, id=tenant_id)
    row = await tenants_db.get_tenant(conn, id=tenant_id)
    if row is None:
        raise NotFound("No tenant has this id.")
    return tenant_from_row(row), Balance(
        available=row["available"], held=row["held"], captured=row["captured"]
    )


async def rotate_webhook_secret(conn: Conn, *, tenant_id: uuid.UUID) -> str:
    """A new signing secret for the tenant's webhooks, used from the next delivery on."""
    secret = "whsec_" + secrets.token_urlsafe(32)
    if not await tenants_db.set_webhook_secret(conn, id=tenant_id, webhook_secret=secret):
        raise NotFound("No tenant has this id.")
    return secret


async def issue_api_key(conn: Conn, *, tenant_id: uuid.UUID) -> IssuedKey:
    prefix, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    row = await tenants_db.insert_api_key(
        conn, id=uuid.uuid4(), tenant_id=tenant_id, prefix=prefix, secret_sha256=_digest(secret)
    )
    return IssuedKey(
        id=row["id"],
        tenant_id=tenant_id,
        api_key=f"smsgw_{prefix}_{secret}",
        created_at=row["created_at"],
    )


async def revoke_api_key(conn: Conn, *, key_id: uuid.UUID) -> RevokedKey | None:
    """Revoke a key: the key when revoked now, None when it was revoked already;
    NotFound for an unknown one."""
    row = await tenants_db.revoke_api_key(conn, id=key_id)
    if row is not None:
        return RevokedKey(id=row["id"], tenant_id=row["tenant_id"], revoked_at=row["revoked_at"])
    if not await tenants_db.api_key_exists(conn, id=key_id):
        raise NotFound("No API key has this id.")
    return None


_DUMMY_DIGEST = _digest("no key has this digest")


async def authenticate(conn: Conn, *, api_key: str) -> Tenant:
    """The tenant owning a live ``api_key``; Unauthorized otherwise, with one message for
    every kind of failure so the answer reveals nothing about which keys exist."""
    _, tenant = await authenticate_key(conn, api_key=api_key)
    return tenant


async def authenticate_key(conn: Conn, *, api_key: str) -> tuple[uuid.UUID, Tenant]:
    """``authenticate``, with the key's id."""
    match = _KEY.match(api_key)
    if match is None:
        raise Unauthorized("The API key is missing, malformed, unknown or revoked.")
    row = await tenants_db.find_api_key(conn, prefix=match["prefix"])
    expected = row["secret_sha256"] if row is not None else _DUMMY_DIGEST
    if not hmac.compare_digest(expected, _digest(match["secret"])) or row is None:
        raise Unauthorized("The API key is missing, malformed, unknown or revoked.")
    return row["key_id"], tenant_from_row(row)


async def add_credit(
    conn: Conn, *, tenant_id: uuid.UUID, amount: int, reference: str
) -> tuple[bool, Balance]:
    """Credit ``amount`` once per ``reference``; (False, balance) for a repeat."""
    errors: list[FieldError] = []
    if not 1 <= amount <= MAX_CREDIT:
        errors.append(FieldError("amount", f"must be a whole number from 1 to {MAX_CREDIT}"))
    if not reference or len(reference) > 200 or "\x00" in reference:
        errors.append(FieldError("reference", "must be 1 to 200 characters"))
    if errors:
        raise InvalidRequest("The credit is not valid.", errors)
    if await tenants_db.get_tenant(conn, id=tenant_id) is None:
        raise NotFound("No tenant has this id.")
    created = await ledger_db.insert_credit(
        conn, tenant_id=tenant_id, amount=amount, reference=reference
    )
    if created:
        try:
            row = await ledger_db.add_credit(conn, tenant_id=tenant_id, amount=amount)
        except pg_errors.NumericValueOutOfRange:
            # The caller's transaction rolls the credit row back with this error.
            raise InvalidRequest(
                "The credit is not valid.",
                [FieldError("amount", "would take the balance past its largest amount")],
            ) from None
    else:
        row = await ledger_db.get_balance(conn, tenant_id=tenant_id)
    assert row is not None
    return created, Balance(available=row["available"], held=row["held"], captured=row["captured"])


async def get_balance(conn: Conn, *, tenant_id: uuid.UUID) -> tuple[Balance, str]:
    row = await ledger_db.get_balance(conn, tenant_id=tenant_id)
    if row is None:
        raise NotFound("No tenant has this id.")
    return (
        Balance(available=row["available"], held=row["held"], captured=row["captured"]),
        row["currency"],
    )
