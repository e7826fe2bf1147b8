"""Twilio's vocabulary: accounts and their credentials, SIDs, message resources, status
values, error codes, and X-Twilio-Signature. The facade's operations are in
core/twilio_api.py; both sit on the same domain functions as the REST API.

Credentials: one account per tenant, ``AC`` + 32 hex. Each issue makes a new auth
token (32 hex, Twilio's form) and the previous one stops working. Requests compare the
token's SHA-256; the token itself is kept too, as ``webhook_secret`` is, because
Twilio's status-callback signature is an HMAC-SHA1 keyed by the auth token itself and
the gateway must compute it (README, "Twilio-compatible API").
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import format_datetime
from typing import Any

import msgspec

from core import ids, keywords
from core.errors import NotFound, Unauthorized
from core.messages import Message
from core.tenants import Tenant, tenant_from_row
from db import Conn, Row
from db import twilio as twilio_db

API_VERSION = "2010-04-01"
SIGNATURE_HEADER = "X-Twilio-Signature"
ACCOUNT_SID = re.compile(r"^AC[0-9a-f]{32}$")
MESSAGE_SID = re.compile(r"^(SM|MM)[0-9a-fA-F]{32}$")
SERVICE_SID = re.compile(r"^MG[0-9a-fA-F]{32}$")

# Our statuses as Twilio names them; `expired` is Twilio's failed with 30036.
STATUS: dict[str, str] = {
    "scheduled": "scheduled",
    "queued": "queued",
    "sending": "sending",
    "sent": "sent",
    "delivered": "delivered",
    "undelivered": "undelivered",
    "failed": "failed",
    "expired": "failed",
    "canceled": "canceled",
}
VALIDITY_EXPIRED = 30036
UNREACHABLE_HANDSET = 30003
UNKNOWN_ERROR = 30008
CAPTURED = frozenset({"sent", "delivered", "undelivered"})


@dataclass(frozen=True, slots=True)
class Account:
    account_sid: str
    tenant: Tenant


class Credentials(msgspec.Struct, frozen=True, kw_only=True):
    account_sid: str
    auth_token: str


class TwilioMessage(msgspec.Struct, frozen=True, kw_only=True):
    """A Message resource with Twilio's field names and formats."""

    account_sid: str
    api_version: str
    body: str
    date_created: str
    date_sent: str | None
    date_updated: str
    direction: str
    error_code: int | None
    error_message: str | None
    sender: str | None = msgspec.field(name="from")
    messaging_service_sid: str | None
    num_media: str
    num_segments: str
    price: str | None
    price_unit: str
    sid: str
    status: str
    subresource_uris: dict[str, str]
    to: str
    uri: str


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


_DUMMY = _digest("no token has this digest")


async def issue_credentials(conn: Conn, *, tenant_id: uuid.UUID) -> Credentials:
    """The tenant's account SID and a new auth token (shown once)."""
    token = secrets.token_hex(16)
    row = await twilio_db.put_account(
        conn,
        tenant_id=tenant_id,
        account_sid="AC" + secrets.token_hex(16),
        token_sha256=_digest(token),
        auth_token=token,
    )
    return Credentials(account_sid=row["account_sid"], auth_token=token)


async def authenticate(conn: Conn, *, account_sid: str, auth_token: str) -> Account:
    row = (
        await twilio_db.find_account(conn, account_sid=account_sid)
        if ACCOUNT_SID.match(account_sid)
        else None
    )
    expected = bytes(row["token_sha256"]) if row is not None else _DUMMY
    if not hmac.compare_digest(expected, _digest(auth_token)) or row is None:
        raise Unauthorized("The account SID or auth token is not valid.")
    return Account(account_sid=row["account_sid"], tenant=tenant_from_row(row))


def message_sid(message_id: uuid.UUID) -> str:
    return "SM" + message_id.hex


def parse_sid(sid: str) -> uuid.UUID:
    """Our id inside a Message SID; NotFound for anything that is not one of ours."""
    if not MESSAGE_SID.match(sid):
        raise NotFound(f"The requested resource {sid} was not found.")
    value = uuid.UUID(hex=sid[2:])
    if not ids.is_message_id(value):
        raise NotFound(f"The requested resource {sid} was not found.")
    return value


def rfc2822(value: datetime | None) -> str | None:
    return None if value is None else format_datetime(value.astimezone(UTC))


def price_text(price: int) -> str:
    """Micro-units as Twilio writes a price: negative, in the currency's units."""
    amount = Decimal(price).scaleb(-6)
    return f"-{amount:.6f}" if price else f"{amount:.6f}"


def error_code(status: str, code: str | None) -> int | None:
    """Twilio's code for why a message failed (ours is in error_message)."""
    if status == "expired" or code == "validity_expired":
        return VALIDITY_EXPIRED
    if status == "undelivered":
        return UNREACHABLE_HANDSET
    if status == "failed":
        return UNKNOWN_ERROR
    return None


def message_uri(account_sid: str, sid: str) -> str:
    return f"/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}.json"


def _resource(
    *,
    account_sid: str,
    message_id: uuid.UUID,
    direction: str,
    status: str,
    to: str,
    sender: str | None,
    body: str,
    segments: int,
    price: str | None,
    currency: str,
    error_code: int | None,
    error_message: str | None,
    created_at: datetime,
    updated_at: datetime,
    sent_at: datetime | None,
    messaging_service_sid: str | None,
) -> TwilioMessage:
    sid = message_sid(message_id)
    uri = message_uri(account_sid, sid)
    base = uri.removesuffix(".json")
    created = rfc2822(created_at)
    assert created is not None
    return TwilioMessage(
        account_sid=account_sid,
        api_version=API_VERSION,
        body=body,
        date_created=created,
        date_sent=rfc2822(sent_at),
        date_updated=rfc2822(updated_at) or created,
        direction=direction,
        error_code=error_code,
        error_message=error_message,
        sender=sender,
        messaging_service_sid=messaging_service_sid,
        num_media="0",
        num_segments=str(segments),
        price=price,
        price_unit=currency,
        sid=sid,
        status=status,
        subresource_uris={"media": f"{base}/Media.json", "feedback": f"{base}/Feedback.json"},
        to=to,
        uri=uri,
    )


def from_outbound(row: Mapping[str, Any], *, account_sid: str, currency: str) -> TwilioMessage:
    """From a messages row."""
    status = row["status"]
    failed = status in ("failed", "expired", "undelivered")
    return _resource(
        account_sid=account_sid,
        message_id=row["id"],
        direction=(
            "outbound-reply"
            if row["client_reference"] == keywords.HELP_REFERENCE
            else "outbound-api"
        ),
        status=STATUS[status],
        to=row["to_number"],
        sender=row["sender"],
        body=row["body"],
        segments=row["segments"],
        price=price_text(row["price"]) if status in CAPTURED else None,
        currency=currency,
        error_code=error_code(status, row["error_code"]) if failed else None,
        error_message=row["error_message"] if failed else None,
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        sent_at=row["sent_at"],
        messaging_service_sid=row["messaging_service_sid"],
    )


def from_message(
    message: Message, *, account_sid: str, currency: str, messaging_service_sid: str | None
) -> TwilioMessage:
    """From the answer to an accept (nothing has happened to the message yet)."""
    return _resource(
        account_sid=account_sid,
        message_id=message.id,
        direction="outbound-api",
        status=STATUS[message.status],
        to=message.to,
        sender=message.sender,
        body=message.body,
        segments=message.segments,
        price=None,
        currency=currency,
        error_code=None,
        error_message=None,
        created_at=message.created_at,
        updated_at=message.updated_at,
        sent_at=None,
        messaging_service_sid=messaging_service_sid,
    )


def from_inbound(row: Row, *, account_sid: str, currency: str) -> TwilioMessage:
    return _resource(
        account_sid=account_sid,
        message_id=row["id"],
        direction="inbound",
        status="received",
        to=row["to_number"],
        sender=row["from_number"],
        body=row["body"],
        segments=row["parts"],
        price=None,
        currency=currency,
        error_code=None,
        error_message=None,
        created_at=row["received_at"],
        updated_at=row["received_at"],
        sent_at=row["received_at"],
        messaging_service_sid=None,
    )


def signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """X-Twilio-Signature: base64 HMAC-SHA1 of the URL followed by each POST parameter's
    name and value, sorted by name, keyed by the auth token."""
    data = url + "".join(name + params[name] for name in sorted(params))
    mac = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode()


def status_callback(payload: Mapping[str, Any], *, account_sid: str) -> dict[str, str]:
    """The form parameters of a status callback, from a 'twilio_status' outbox row."""
    sid = message_sid(uuid.UUID(str(payload["id"])))
    status = STATUS[payload["status"]]
    params = {
        "AccountSid": account_sid,
        "ApiVersion": API_VERSION,
        "MessageSid": sid,
        "SmsSid": sid,
        "MessageStatus": status,
        "SmsStatus": status,
        "To": str(payload["to"]),
    }
    if payload.get("from"):
        params["From"] = str(payload["from"])
    if payload.get("messaging_service_sid"):
        params["MessagingServiceSid"] = str(payload["messaging_service_sid"])
    code = error_code(payload["status"], payload.get("error_code"))
    if code is not None and payload["status"] in ("failed", "expired", "undelivered"):
        params["ErrorCode"] = str(code)
    return params
