"""Inbound messages (MO): from an upstream to the tenant that owns the number.

Every upstream hands over ``InboundPart``s (the HTTP webhook, SMPP deliver_sm that are
not receipts). Each is taken in its own transaction: a provider id seen before is a
repeat and stores nothing; the destination names the tenant (an unowned one is dropped
and logged); a part of a long message waits in ``inbound_parts`` until its siblings are
there, and the whole message is then stored once. A long message whose siblings never
come is delivered with what arrived, ``complete`` false, after
``SMSGW_INBOUND_PARTS_TIMEOUT_SECONDS`` (``flush_stale``, run by upkeep).

Storing a whole message, in the same transaction: its row in ``inbound_messages``, the
effect of an opt-out keyword on the suppression list (core/keywords.py), the answer to
HELP (accepted like any message, free), and the POST to the tenant's ``inbound_url``
(a row in the callbacks outbox, signed and retried like status callbacks).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import msgspec
import structlog
from psycopg_pool import AsyncConnectionPool

from core import cursors, ids, keywords, numbers, segments
from core.accept import DispatchScheduler
from core.tenants import Tenant, tenant_from_row
from db import Conn, Row
from db import callbacks as callbacks_db
from db import inbound as inbound_db
from db import numbers as numbers_db
from providers.base import InboundPart
from providers.sms_text import decode_text

log = structlog.get_logger("smsgw.inbound")

MAX_PAGE = 500
DEFAULT_PAGE = 50
_CODINGS = {0: "GSM-7", 8: "UCS-2", 1: "ASCII", 3: "Latin-1"}


class InboundMessage(msgspec.Struct, frozen=True, kw_only=True):
    """An inbound message as the API and the tenant's webhook show it."""

    id: uuid.UUID
    direction: str = "inbound"
    status: str = "received"
    sender: str = msgspec.field(name="from")
    to: str
    body: str
    encoding: str
    parts: int
    parts_expected: int
    complete: bool
    keyword: str | None
    provider: str
    provider_message_id: str | None
    created_at: datetime


class InboundPage(msgspec.Struct, frozen=True, kw_only=True):
    messages: list[InboundMessage]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class Received:
    """What became of a batch of parts."""

    accepted: int = 0
    duplicates: int = 0
    unrouted: int = 0


def message_from_row(row: Row) -> InboundMessage:
    return InboundMessage(
        id=row["id"],
        sender=row["from_number"],
        to=row["to_number"],
        body=row["body"],
        encoding=row["encoding"],
        parts=row["parts"],
        parts_expected=row["parts_expected"],
        complete=row["complete"],
        keyword=row["keyword"],
        provider=row["provider"],
        provider_message_id=row["provider_message_id"],
        created_at=row["received_at"],
    )


async def receive(
    pool: AsyncConnectionPool[Conn], parts: Sequence[InboundPart], *, scheduler: DispatchScheduler
) -> Received:
    """Take ``parts``, each in a transaction of its own, on a connection of ``pool``."""
    accepted = duplicates = unrouted = 0
    async with pool.connection() as conn:
        for part in parts:
            async with conn.transaction():
                outcome = await _receive_one(conn, part, scheduler)
            if outcome == "duplicate":
                duplicates += 1
            elif outcome == "unrouted":
                unrouted += 1
            else:
                accepted += 1
    return Received(accepted=accepted, duplicates=duplicates, unrouted=unrouted)


def sink_for(
    pool: AsyncConnectionPool[Conn], scheduler: DispatchScheduler
) -> Callable[[InboundPart], Awaitable[None]]:
    """What a worker hands SMPP mobile-originated parts to."""

    async def sink(part: InboundPart) -> None:
        await receive(pool, [part], scheduler=scheduler)

    return sink


async def _receive_one(conn: Conn, part: InboundPart, scheduler: DispatchScheduler) -> str:
    if part.provider_message_id is not None and not await inbound_db.mark_seen(
        conn, provider=part.provider, provider_message_id=part.provider_message_id
    ):
        return "duplicate"
    owner = await numbers_db.find_owner(conn, numbers=numbers.spellings(part.destination))
    if owner is None:
        log.warning("inbound.unrouted", provider=part.provider, to=part.destination)
        return "unrouted"
    tenant = tenant_from_row(owner)
    sender = numbers.canonical(part.source)
    if part.total is None or part.total < 2 or part.reference is None or part.number is None:
        text, encoding = _text([part.data_coding], [part.payload], [part.text])
        await _store(
            conn,
            tenant=tenant,
            scheduler=scheduler,
            to_number=owner["number"],
            from_number=sender,
            body=text,
            encoding=encoding,
            parts=1,
            parts_expected=1,
            provider=part.provider,
            provider_message_id=part.provider_message_id,
        )
        return "stored"
    group = {
        "tenant_id": tenant.id,
        "provider": part.provider,
        "from_number": sender,
        "to_number": owner["number"],
        "reference": part.reference,
        "total": part.total,
    }
    await inbound_db.lock_group(conn, key=_group_key(group))
    await inbound_db.insert_part(
        conn,
        **group,
        number=part.number,
        data_coding=part.data_coding,
        payload=part.payload,
        text=part.text,
        provider_message_id=part.provider_message_id,
    )
    rows = await inbound_db.group_parts(conn, **group)
    if len(rows) < part.total:
        return "waiting"
    await _store_group(conn, tenant=tenant, scheduler=scheduler, group=group, rows=rows)
    return "stored"


def _group_key(group: dict[str, object]) -> str:
    return "inbound:" + "|".join(str(group[k]) for k in sorted(group))


def _text(
    codings: Sequence[int | None], payloads: Sequence[bytes | None], texts: Sequence[str | None]
) -> tuple[str, str]:
    """The whole text and its encoding. Octets are joined before decoding, so a
    character split across two parts (a UCS-2 surrogate pair, a GSM escape) survives."""
    if payloads and all(p is not None for p in payloads) and len(set(codings)) == 1:
        coding = codings[0] if codings[0] is not None else 0
        octets = b"".join(bytes(p) for p in payloads if p is not None)
        decoded = decode_text(coding, octets)
        if decoded is None:
            return octets.hex(), "binary"
        return decoded, _CODINGS.get(coding, segments.count(decoded).encoding)
    text = "".join(t or "" for t in texts)
    return text, segments.count(text).encoding if text else "GSM-7"


async def _store_group(
    conn: Conn,
    *,
    tenant: Tenant,
    scheduler: DispatchScheduler,
    group: dict[str, object],
    rows: Sequence[Row],
) -> None:
    text, encoding = _text(
        [r["data_coding"] for r in rows],
        [None if r["payload"] is None else bytes(r["payload"]) for r in rows],
        [r["text"] for r in rows],
    )
    await inbound_db.delete_parts(conn, ids=[r["id"] for r in rows])
    first_id = next((r["provider_message_id"] for r in rows if r["provider_message_id"]), None)
    await _store(
        conn,
        tenant=tenant,
        scheduler=scheduler,
        to_number=str(group["to_number"]),
        from_number=str(group["from_number"]),
        body=text,
        encoding=encoding,
        parts=len(rows),
        parts_expected=int(str(group["total"])),
        provider=str(group["provider"]),
        provider_message_id=first_id,
    )


async def flush_stale(
    pool: AsyncConnectionPool[Conn], *, older_than_seconds: float, scheduler: DispatchScheduler
) -> int:
    """Deliver long messages whose missing parts have not come in time, with the parts
    that did (``complete`` false). Returns how many."""
    flushed = 0
    async with pool.connection() as conn:
        groups = await inbound_db.stale_groups(conn, seconds=older_than_seconds, limit=500)
        for stale in groups:
            group = {
                key: stale[key]
                for key in ("tenant_id", "provider", "from_number", "to_number", "reference")
            }
            group["total"] = stale["total"]
            async with conn.transaction():
                await inbound_db.lock_group(conn, key=_group_key(group))
                rows = await inbound_db.group_parts(conn, **group)
                owner = await numbers_db.find_owner(conn, numbers=[str(group["to_number"])])
                if not rows:
                    continue
                if owner is None or owner["id"] != group["tenant_id"]:
                    # The number changed hands while the parts waited: nobody to tell.
                    await inbound_db.delete_parts(conn, ids=[r["id"] for r in rows])
                    continue
                await _store_group(
                    conn,
                    tenant=tenant_from_row(owner),
                    scheduler=scheduler,
                    group=group,
                    rows=rows,
                )
                flushed += 1
    if flushed:
        log.warning("inbound.incomplete_delivered", messages=flushed)
    return flushed


async def _store(
    conn: Conn,
    *,
    tenant: Tenant,
    scheduler: DispatchScheduler,
    to_number: str,
    from_number: str,
    body: str,
    encoding: str,
    parts: int,
    parts_expected: int,
    provider: str,
    provider_message_id: str | None,
) -> None:
    message_id = ids.uuid7()
    received_at = ids.created_at(message_id)
    keyword = keywords.classify(body)
    message = InboundMessage(
        id=message_id,
        sender=from_number,
        to=to_number,
        body=body,
        encoding=encoding,
        parts=parts,
        parts_expected=parts_expected,
        complete=parts >= parts_expected,
        keyword=keyword,
        provider=provider,
        provider_message_id=provider_message_id,
        created_at=received_at,
    )
    await inbound_db.insert_message(
        conn,
        id=message_id,
        received_at=received_at,
        tenant_id=tenant.id,
        to_number=to_number,
        from_number=from_number,
        body=body,
        encoding=encoding,
        parts=parts,
        parts_expected=parts_expected,
        complete=message.complete,
        provider=provider,
        provider_message_id=provider_message_id,
        keyword=keyword,
    )
    if keyword is not None:
        await keywords.apply(
            conn,
            tenant=tenant,
            keyword=keyword,
            sender=from_number,
            number=to_number,
            scheduler=scheduler,
        )
    if tenant.inbound_url:
        payload = msgspec.to_builtins(message)
        payload["timestamp"] = received_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        await callbacks_db.enqueue(
            conn,
            tenant_id=tenant.id,
            message_id=message_id,
            url=tenant.inbound_url,
            payload=payload,
            # Twilio's incoming-message webhook for apps moved from Twilio
            # (core/twilio_inbound.py), else the gateway's JSON.
            kind="twilio_inbound" if tenant.inbound_format == "twilio" else "inbound",
        )
    log.info(
        "inbound.received",
        tenant_id=str(tenant.id),
        message_id=str(message_id),
        provider=provider,
        parts=parts,
        complete=message.complete,
        keyword=keyword,
    )


async def list_inbound(
    conn: Conn,
    *,
    tenant: Tenant,
    to: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    limit: int = DEFAULT_PAGE,
    cursor: str | None = None,
) -> InboundPage:
    """The tenant's inbound messages, newest first (``GET /v1/messages?direction=inbound``)."""
    limit = cursors.size(limit, default=DEFAULT_PAGE, maximum=MAX_PAGE)
    before = cursors.decode_id(cursor) if cursor else None
    rows = await inbound_db.list_messages(
        conn,
        tenant_id=tenant.id,
        to_number=to,
        created_after=created_after,
        created_before=created_before,
        before_created_at=ids.created_at(before) if before else None,
        before_id=before,
        limit=limit + 1,
    )
    page, next_cursor = cursors.page(rows, limit, item=message_from_row, key=lambda m: m.id)
    return InboundPage(messages=page, next_cursor=next_cursor)
