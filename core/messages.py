"""Messages as tenants see them: read, list, cancel, quote."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

import msgspec

from core import cursors, ids, submission
from core.errors import (
    Conflict,
    DestinationNotPermitted,
    DestinationNotPriced,
    FieldError,
    InvalidRequest,
    NotFound,
)
from core.tenants import Tenant
from db import Conn, Row
from db import messages as messages_db

Status = Literal[
    "scheduled",
    "queued",
    "sending",
    "sent",
    "delivered",
    "undelivered",
    "failed",
    "expired",
    "canceled",
]
STATUSES: tuple[str, ...] = Status.__args__  # type: ignore[attr-defined]
MAX_PAGE = 500
DEFAULT_PAGE = 50


class Message(msgspec.Struct, frozen=True, kw_only=True):
    """A message as the API shows it (DESIGN.md, "Message")."""

    id: uuid.UUID
    status: Status
    to: str
    sender: str | None = msgspec.field(name="from")
    body: str
    encoding: Literal["GSM-7", "UCS-2"]
    segments: int
    price: int
    # What it was priced at (None for a message accepted before rate cards, or free).
    price_per_segment: int | None
    rate_card: str | None
    rate_card_version: int | None
    rate_prefix: Annotated[
        str | None, msgspec.Meta(description="The destination prefix whose rate applied")
    ]
    provider: str | None
    provider_message_id: str | None
    attempts: int
    error_code: str | None
    error_message: str | None
    client_reference: str | None
    callback_url: str | None
    send_at: datetime | None
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None
    quiet_hours_until: Annotated[
        datetime | None,
        msgspec.Meta(
            description="Why it is scheduled: it waits for the end of the recipient's "
            "quiet hours (the account's setting), until this time"
        ),
    ] = None


class QuotedText(msgspec.Struct, frozen=True, kw_only=True):
    """A body's encoding, segments and price, as written or smart-encoded."""

    body: str
    encoding: Literal["GSM-7", "UCS-2"]
    segments: int
    price: int


class Quote(msgspec.Struct, frozen=True, kw_only=True):
    """What a send would be held at now: ``price`` is the total, segments x
    ``price_per_segment`` of the rate whose ``rate_prefix`` matched. ``as_written`` and
    ``smart_encoded`` show the body both ways; ``smart_encoding`` says which one the
    send would use (the message's field, else the account's setting)."""

    encoding: Literal["GSM-7", "UCS-2"]
    segments: int
    price: int
    smart_encoding: bool
    as_written: QuotedText
    smart_encoded: QuotedText
    price_per_segment: int
    rate_card: str
    rate_card_version: int
    rate_prefix: str


class Page(msgspec.Struct, frozen=True, kw_only=True):
    messages: list[Message]
    next_cursor: str | None


def message_from_row(row: Row) -> Message:
    return Message(
        id=row["id"],
        status=row["status"],
        to=row["to_number"],
        sender=row["sender"],
        body=row["body"],
        encoding=row["encoding"],
        segments=row["segments"],
        price=row["price"],
        price_per_segment=row["price_per_segment"],
        rate_card=row["rate_card"],
        rate_card_version=row["rate_card_version"],
        rate_prefix=row["rate_prefix"],
        provider=row["provider"],
        provider_message_id=row["provider_message_id"],
        attempts=row["attempts"],
        error_code=row["error_code"],
        error_message=row["error_message"],
        client_reference=row["client_reference"],
        callback_url=row["callback_url"],
        send_at=row["send_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        sent_at=row["sent_at"],
        delivered_at=row["delivered_at"],
        quiet_hours_until=row.get("quiet_until"),
    )


def message_from_draft(draft: submission.Draft) -> Message:
    """The answer to an accept, from the draft as the accept call priced it."""
    if draft.price is None:
        raise ValueError("a draft is answered once its accept has priced it")
    return Message(
        id=draft.id,
        status="scheduled" if draft.send_at else "queued",
        to=draft.to,
        sender=draft.sender,
        body=draft.body,
        encoding=draft.encoding,
        segments=draft.segments,
        price=draft.price,
        price_per_segment=draft.price_per_segment,
        rate_card=draft.rate_card,
        rate_card_version=draft.rate_card_version,
        rate_prefix=draft.rate_prefix,
        provider=None,
        provider_message_id=None,
        attempts=0,
        error_code=None,
        error_message=None,
        client_reference=draft.client_reference,
        callback_url=draft.callback_url,
        send_at=draft.send_at,
        created_at=draft.created_at,
        updated_at=draft.created_at,
        sent_at=None,
        delivered_at=None,
        quiet_hours_until=draft.quiet_until,
    )


def parse_message_id(raw: str) -> uuid.UUID:
    """A message id from a URL; anything that is not one of ours is simply not found."""
    try:
        value = uuid.UUID(raw)
    except ValueError:
        raise NotFound("No message has this id.") from None
    if not ids.is_message_id(value):
        raise NotFound("No message has this id.")
    return value


async def quote(
    conn: Conn, request: submission.SendRequest, *, tenant: Tenant, now_ms: int
) -> Quote:
    """The price a send would be held at now, by the accept's own lookup of the rate,
    with the body as written and smart-encoded."""
    smart = request.smart_encoding
    if smart is None:
        smart = tenant.smart_encoding
    plain = submission.prepare(
        msgspec.structs.replace(request, smart_encoding=False), now_ms=now_ms
    )
    encoded = submission.prepare(
        msgspec.structs.replace(request, smart_encoding=True), now_ms=now_ms
    )
    draft = encoded if smart else plain
    rate = await messages_db.quote(
        conn, tenant_id=tenant.id, to_number=draft.to, to_country=draft.to_country
    )
    if rate["refusal"] is not None:
        raise DestinationNotPermitted(
            f"This account may not send to {draft.to_country}: it is not in the "
            "account's geo permissions."
        )
    if rate["price_per_segment"] is None:
        raise DestinationNotPriced(
            f"No rate of this account's rate card covers {draft.to}: nothing was sent or held."
        )
    per_segment = rate["price_per_segment"]
    return Quote(
        smart_encoding=smart,
        as_written=QuotedText(
            body=plain.body,
            encoding=plain.encoding,
            segments=plain.segments,
            price=plain.segments * per_segment,
        ),
        smart_encoded=QuotedText(
            body=encoded.body,
            encoding=encoded.encoding,
            segments=encoded.segments,
            price=encoded.segments * per_segment,
        ),
        encoding=draft.encoding,
        segments=draft.segments,
        price=draft.segments * rate["price_per_segment"],
        price_per_segment=rate["price_per_segment"],
        rate_card=rate["rate_card"],
        rate_card_version=rate["rate_card_version"],
        rate_prefix=rate["rate_prefix"],
    )


async def get_message(conn: Conn, *, tenant: Tenant, message_id: uuid.UUID) -> Message:
    row = await messages_db.get_message(
        conn, tenant_id=tenant.id, id=message_id, created_at=ids.created_at(message_id)
    )
    if row is None:
        raise NotFound("No message has this id.")
    return message_from_row(row)


class StatusChange(msgspec.Struct, frozen=True, kw_only=True):
    status: str
    at: datetime
    error_code: str | None


async def status_history(
    conn: Conn, *, tenant: Tenant, message_id: uuid.UUID
) -> list[StatusChange]:
    """The message's statuses in order; empty for another tenant's message."""
    rows = await messages_db.status_history(
        conn, tenant_id=tenant.id, id=message_id, created_at=ids.created_at(message_id)
    )
    return [StatusChange(status=r["status"], at=r["at"], error_code=r["error_code"]) for r in rows]


async def cancel_message(conn: Conn, *, tenant: Tenant, message_id: uuid.UUID) -> Message:
    """Cancel a scheduled or queued message and release its hold."""
    created_at = ids.created_at(message_id)
    row = await messages_db.cancel_message(
        conn, tenant_id=tenant.id, id=message_id, created_at=created_at
    )
    if row is not None:
        return message_from_row(row)
    current = await get_message(conn, tenant=tenant, message_id=message_id)
    raise Conflict(
        f"The message is {current.status}; only scheduled or queued messages can be canceled."
    )


async def list_messages(
    conn: Conn,
    *,
    tenant: Tenant,
    status: str | None = None,
    to: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    limit: int = DEFAULT_PAGE,
    cursor: str | None = None,
) -> Page:
    limit = cursors.size(limit, default=DEFAULT_PAGE, maximum=MAX_PAGE)
    errors: list[FieldError] = []
    if status is not None and status not in STATUSES:
        errors.append(FieldError("status", "must be one of " + ", ".join(STATUSES)))
    for name, value in (("created_after", created_after), ("created_before", created_before)):
        if value is not None and value.tzinfo is None:
            errors.append(FieldError(name, "must carry a time zone offset (RFC 3339)"))
    if to is not None and "\x00" in to:
        errors.append(FieldError("to", "must not contain NUL characters"))
    if errors:
        raise InvalidRequest("The filters are not valid.", errors)
    before = cursors.decode_id(cursor) if cursor else None
    rows = await messages_db.list_messages(
        conn,
        tenant_id=tenant.id,
        status=status,
        to_number=to,
        created_after=created_after,
        created_before=created_before,
        before_created_at=ids.created_at(before) if before else None,
        before_id=before,
        limit=limit + 1,
    )
    page, next_cursor = cursors.page(rows, limit, item=message_from_row, key=lambda m: m.id)
    return Page(messages=page, next_cursor=next_cursor)
