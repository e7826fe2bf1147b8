"""The Twilio Messages API on the gateway's own operations: create is core.accept (same
validation, ledger, limits, opt-outs, idempotency), fetch and cancel are core.messages,
and the list pages over outbound and inbound messages together, as Twilio's does.

Parameters arrive as Twilio names them; a refusal is an ``InvalidRequest`` whose field
is Twilio's parameter name (or the REST API's, for the rules both share), which
app/twilio_errors.py turns into Twilio's numeric codes.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

import msgspec
from psycopg_pool import AsyncConnectionPool

from core import cursors, ids, messages, single_send, submission, twilio
from core.accept import DispatchScheduler
from core.coalesce import SendCoalescer
from core.errors import FieldError, InvalidRequest, NotFound
from core.idempotency import Accepted, Idempotency
from core.webhook_policy import DestinationPolicy
from db import Conn, Row
from db import inbound as inbound_db
from db import messages as messages_db
from db import twilio as twilio_db

# Twilio's ValidityPeriod range; below the gateway's floor of a minute it is raised.
MAX_VALIDITY_PERIOD = 36_000
MAX_PAGE_SIZE = 1_000
DEFAULT_PAGE_SIZE = 50
# Form parameters of a create that change nothing here but are Twilio's.
UNSUPPORTED = ("MediaUrl", "ContentSid")


def _invalid(field: str, detail: str) -> InvalidRequest:
    return InvalidRequest(f"'{field}' {detail}.", [FieldError(field, detail)])


def _send_at(form: Mapping[str, str]) -> datetime | None:
    schedule_type, send_at = form.get("ScheduleType"), form.get("SendAt")
    if schedule_type is not None and schedule_type != "fixed":
        raise _invalid("ScheduleType", "must be 'fixed'")
    if schedule_type is None and send_at:
        raise _invalid("ScheduleType", "must be 'fixed' to schedule a message with SendAt")
    if schedule_type is None:
        return None
    if not send_at:
        raise _invalid("SendAt", "is required when ScheduleType is 'fixed'")
    try:
        when = datetime.fromisoformat(send_at)
    except ValueError:
        raise _invalid("SendAt", "must be an ISO 8601 timestamp") from None
    if when.tzinfo is None:
        raise _invalid("SendAt", "must be in UTC (end with Z) or carry an offset")
    return when


def _validity(form: Mapping[str, str]) -> int | None:
    raw = form.get("ValidityPeriod")
    if raw is None:
        return None
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_VALIDITY_PERIOD:
        raise _invalid("ValidityPeriod", f"must be a whole number from 1 to {MAX_VALIDITY_PERIOD}")
    return max(submission.MIN_VALIDITY_SECONDS, int(raw))


async def create_message(
    pool: AsyncConnectionPool[Conn],
    *,
    account: twilio.Account,
    form: Mapping[str, str],
    scheduler: DispatchScheduler,
    idem: Idempotency | None,
    sends: SendCoalescer | None = None,
    destinations: DestinationPolicy,
) -> Accepted:
    """``POST .../Messages.json``. Without an idempotency token, and given ``sends``, the
    accept goes in the call of the single sends that arrive with it (core/coalesce.py)."""
    for name in UNSUPPORTED:
        if form.get(name):
            raise _invalid(name, "is not supported: this gateway sends SMS text only")
    to = form.get("To")
    if not to:
        raise _invalid("To", "is required")
    body = form.get("Body")
    if not body:
        raise _invalid("Body", "is required")
    service = form.get("MessagingServiceSid") or None
    sender = form.get("From") or None
    if service is not None and not twilio.SERVICE_SID.match(service):
        raise _invalid("MessagingServiceSid", "is not a Messaging Service SID (MG...)")
    if sender is None and service is None:
        raise _invalid("From", "is required (or MessagingServiceSid)")
    if sender is None:
        # A Messaging Service stands for the tenant's numbers: its oldest one sends.
        async with pool.connection() as conn:
            sender = await twilio_db.first_number(conn, tenant_id=account.tenant.id)
    request = submission.SendRequest(
        to=to,
        body=body,
        sender=sender,
        callback_url=form.get("StatusCallback") or None,
        send_at=_send_at(form),
        validity_seconds=_validity(form),
        # Twilio's own name for it; absent: the account's setting.
        smart_encoding=_smart_encoded(form.get("SmartEncoded")),
    )
    submission.check_destinations(request, destinations, "StatusCallback")
    currency = account.tenant.currency

    def render(message: messages.Message) -> Any:
        return msgspec.to_builtins(
            twilio.from_message(
                message,
                account_sid=account.account_sid,
                currency=currency,
                messaging_service_sid=service,
            )
        )

    return await single_send.accept_single(
        pool,
        sends,
        tenant=account.tenant,
        request=request,
        scheduler=scheduler,
        idem=idem,
        render=render,
        facade="twilio",
        messaging_service_sid=service,
    )


async def _row(conn: Conn, account: twilio.Account, message_id: uuid.UUID) -> Row | None:
    return await messages_db.get_message(
        conn, tenant_id=account.tenant.id, id=message_id, created_at=ids.created_at(message_id)
    )


async def fetch_message(conn: Conn, *, account: twilio.Account, sid: str) -> twilio.TwilioMessage:
    """``GET .../Messages/{Sid}.json``: an outbound or an inbound message."""
    message_id = twilio.parse_sid(sid)
    currency = account.tenant.currency
    row = await _row(conn, account, message_id)
    if row is not None:
        return twilio.from_outbound(row, account_sid=account.account_sid, currency=currency)
    inbound = await inbound_db.get_message(
        conn,
        tenant_id=account.tenant.id,
        id=message_id,
        received_at=ids.created_at(message_id),
    )
    if inbound is None:
        raise NotFound(f"The requested resource {sid} was not found.")
    return twilio.from_inbound(inbound, account_sid=account.account_sid, currency=currency)


async def update_message(
    conn: Conn, *, account: twilio.Account, sid: str, form: Mapping[str, str]
) -> twilio.TwilioMessage:
    """``POST .../Messages/{Sid}.json``: ``Status=canceled`` cancels a scheduled or
    queued message (its hold is released)."""
    if "Body" in form:
        raise _invalid("Body", "cannot be changed: redaction is not supported")
    if form.get("Status") != "canceled":
        raise _invalid("Status", "must be 'canceled'")
    message_id = twilio.parse_sid(sid)
    await messages.cancel_message(conn, tenant=account.tenant, message_id=message_id)
    row = await _row(conn, account, message_id)
    assert row is not None
    return twilio.from_outbound(
        row, account_sid=account.account_sid, currency=account.tenant.currency
    )


def _day_or_time(name: str, raw: str, *, end: bool) -> datetime:
    """``YYYY-MM-DD`` (the day's start, or with ``end`` the next day's) or a timestamp."""
    try:
        if len(raw) == 10:
            day = date.fromisoformat(raw) + timedelta(days=1 if end else 0)
            return datetime.combine(day, time(), tzinfo=UTC)
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise _invalid(name, "must be YYYY-MM-DD or an ISO 8601 timestamp") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _encode_token(direction: str, message_id: uuid.UUID) -> str:
    return direction + cursors.encode(message_id)


def _decode_token(token: str) -> tuple[bool, uuid.UUID]:
    """(newer, cursor id) of a PageToken: PA pages go back in time, PB forward."""
    refused = _invalid("PageToken", "is not a token from a page URI")
    if token[:2] not in ("PA", "PB"):
        raise refused
    try:
        value = cursors.decode_id(token[2:])
    except InvalidRequest:
        raise refused from None
    return token.startswith("PB"), value


def _key(item: tuple[datetime, uuid.UUID, Any]) -> tuple[datetime, uuid.UUID]:
    return item[0], item[1]


async def list_messages(
    conn: Conn, *, account: twilio.Account, query: Mapping[str, str]
) -> dict[str, Any]:
    """``GET .../Messages.json``: a page with Twilio's paging fields, newest first."""
    raw_size = query.get("PageSize", str(DEFAULT_PAGE_SIZE))
    if not raw_size.isdigit() or int(raw_size) < 1:
        raise _invalid("PageSize", f"must be a whole number from 1 to {MAX_PAGE_SIZE}")
    size = min(int(raw_size), MAX_PAGE_SIZE)
    raw_page = query.get("Page", "0")
    if not raw_page.isdigit():
        raise _invalid("Page", "must be a whole number")
    page_number = int(raw_page)
    for name in ("To", "From"):
        if "\x00" in query.get(name, ""):
            raise _invalid(name, "must not contain NUL characters")
    since = until = None
    if query.get("DateSent"):
        since = _day_or_time("DateSent", query["DateSent"], end=False)
        until = since + timedelta(days=1)
    if query.get("DateSent>"):
        since = _day_or_time("DateSent>", query["DateSent>"], end=False)
    if query.get("DateSent<"):
        until = _day_or_time("DateSent<", query["DateSent<"], end=True)
    newer, cursor = (False, None)
    if query.get("PageToken"):
        newer, cursor = _decode_token(query["PageToken"])
    filters: dict[str, Any] = {
        "tenant_id": account.tenant.id,
        "to": query.get("To") or None,
        "from_number": query.get("From") or None,
        "since": since,
        "until": until,
        "cursor_at": ids.created_at(cursor) if cursor else None,
        "cursor_id": cursor,
        "limit": size + 1,
    }
    sid, currency = account.account_sid, account.tenant.currency
    items: list[tuple[datetime, uuid.UUID, Any]] = [
        (
            row["created_at"],
            row["id"],
            twilio.from_outbound(row, account_sid=sid, currency=currency),
        )
        for row in await twilio_db.page(conn, table="outbound", newer=newer, **filters)
    ] + [
        (
            row["received_at"],
            row["id"],
            twilio.from_inbound(row, account_sid=sid, currency=currency),
        )
        for row in await twilio_db.page(conn, table="inbound", newer=newer, **filters)
    ]
    items.sort(key=_key, reverse=not newer)
    more = len(items) > size
    items = items[:size]
    if newer:
        items.reverse()
    resources = [item[2] for item in items]
    base = f"/{twilio.API_VERSION}/Accounts/{sid}/Messages.json"
    kept = {
        k: v for k, v in query.items() if k in ("To", "From", "DateSent", "DateSent<", "DateSent>")
    }

    def uri(page: int, token: str | None = None) -> str:
        params = {**kept, "PageSize": str(size), "Page": str(page)}
        if token is not None:
            params["PageToken"] = token
        return f"{base}?{urlencode(params)}"

    older_exists = more if not newer else bool(items)
    newer_exists = (more if newer else cursor is not None) and bool(items)
    start = page_number * size
    return {
        "messages": [msgspec.to_builtins(r) for r in resources],
        "page": page_number,
        "page_size": size,
        "start": start,
        "end": start + max(len(resources) - 1, 0),
        "uri": uri(page_number, query.get("PageToken")),
        "first_page_uri": uri(0),
        "next_page_uri": (
            uri(page_number + 1, _encode_token("PA", items[-1][1]))
            if older_exists and items
            else None
        ),
        "previous_page_uri": (
            uri(max(page_number - 1, 0), _encode_token("PB", items[0][1])) if newer_exists else None
        ),
    }


def _smart_encoded(value: str | None) -> bool | None:
    if value is None or value == "":
        return None
    if value.lower() not in ("true", "false"):
        raise _invalid("SmartEncoded", "must be true or false")
    return value.lower() == "true"
