"""Accepting messages: validation, the credit hold, the rows and the enqueue, all in one
transaction (DESIGN.md: "A credit hold, the message row and the work enqueue commit in ONE
transaction, or none of them does").

The caller passes a connection with no transaction open; this module opens the unit of
work itself, because an Idempotency-Key replay must be decided inside it.
"""

from __future__ import annotations

import hashlib
import math
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NoReturn, Protocol

import msgspec

from core import submission
from core.errors import (
    FieldError,
    IdempotencyMismatch,
    InsufficientCredit,
    InvalidRequest,
    RateLimited,
)
from core.messages import Message, message_from_draft
from core.tenants import Tenant
from db import Conn
from db import idempotency as idempotency_db
from db import messages as messages_db

MAX_BATCH = 1_000
MAX_IDEMPOTENCY_KEY_CHARS = 255


class DispatchScheduler(Protocol):
    """Makes sure a tenant's queued messages will be picked up; implemented in ``jobs/``.

    ``ensure`` is called inside a transaction that holds the tenant's balance row lock
    (the dispatcher's settle), so the check it makes sees every accept of the tenant
    that committed before, and none can commit between the check and our commit. An
    accept applies the same rule inside its own database call, naming ``task``.
    """

    task: str

    async def ensure(
        self, conn: Conn, *, tenant_id: uuid.UUID, tier: str, due_at: datetime
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class Idempotency:
    key: str
    request_sha256: bytes
    ttl_seconds: int


@dataclass(frozen=True, slots=True)
class Accepted:
    """What to answer: the new message(s), or the stored first answer of a replay."""

    body: Any
    replayed: bool


class BatchItemError(msgspec.Struct, frozen=True):
    index: int
    code: str
    detail: str


class BatchResult(msgspec.Struct, frozen=True, kw_only=True):
    messages: list[Message]
    errors: list[BatchItemError]


def fingerprint(raw_body: bytes) -> bytes:
    """SHA-256 of the request's JSON value: key order and whitespace do not matter."""
    canonical = msgspec.json.encode(msgspec.json.decode(raw_body), order="sorted")
    return hashlib.sha256(canonical).digest()


def idempotency(key: str | None, raw_body: bytes, ttl_seconds: int) -> Idempotency | None:
    if key is None:
        return None
    if not key or len(key) > MAX_IDEMPOTENCY_KEY_CHARS or not key.isprintable():
        raise InvalidRequest(
            "The Idempotency-Key header is not valid.",
            [FieldError("Idempotency-Key", "must be 1 to 255 printable characters")],
        )
    return Idempotency(key=key, request_sha256=fingerprint(raw_body), ttl_seconds=ttl_seconds)


async def _replay(conn: Conn, tenant: Tenant, idem: Idempotency) -> Accepted | None:
    row = await idempotency_db.get_key(conn, tenant_id=tenant.id, key=idem.key)
    if row is None or row["age"] > timedelta(seconds=idem.ttl_seconds):
        # Past the replay window the key is free again (claim_key takes the row over;
        # in one transaction both judge the age by the same now()).
        return None
    if bytes(row["request_sha256"]) != idem.request_sha256:
        raise IdempotencyMismatch("This Idempotency-Key was used with a different request body.")
    return Accepted(body=row["response"], replayed=True)


def _rows(drafts: Sequence[submission.Draft]) -> list[dict[str, Any]]:
    return [
        {
            "id": d.id,
            "created_at": d.created_at,
            "status": d.status,
            "to_number": d.to,
            "sender": d.sender,
            "body": d.body,
            "encoding": d.encoding,
            "segments": d.segments,
            "price": d.price,
            "callback_url": d.callback_url,
            "client_reference": d.client_reference,
            "send_at": d.send_at,
            "expires_at": d.expires_at,
        }
        for d in drafts
    ]


async def _accept_drafts(
    conn: Conn,
    *,
    tenant: Tenant,
    drafts: Sequence[submission.Draft],
    response: Any,
    scheduler: DispatchScheduler,
    idem: Idempotency | None,
) -> Accepted:
    if idem is None:
        # One statement in autocommit: it is its own transaction.
        await _hold_insert_enqueue(conn, tenant=tenant, drafts=drafts, scheduler=scheduler)
        return Accepted(body=response, replayed=False)
    async with conn.transaction():
        claimed = await idempotency_db.claim_key(
            conn,
            tenant_id=tenant.id,
            key=idem.key,
            request_sha256=idem.request_sha256,
            response=msgspec.to_builtins(response),
            ttl_seconds=idem.ttl_seconds,
        )
        if not claimed:
            # A concurrent request with this key committed first: answer as it did.
            replay = await _replay(conn, tenant, idem)
            assert replay is not None
            return replay
        await _hold_insert_enqueue(conn, tenant=tenant, drafts=drafts, scheduler=scheduler)
    return Accepted(body=response, replayed=False)


async def _hold_insert_enqueue(
    conn: Conn, *, tenant: Tenant, drafts: Sequence[submission.Draft], scheduler: DispatchScheduler
) -> None:
    total = sum(d.price for d in drafts)
    rate = float(tenant.rate_limit_mps) if tenant.rate_limit_mps else None
    outcome = await messages_db.accept(
        conn,
        tenant_id=tenant.id,
        total=total,
        rate=rate,
        messages=_rows(drafts),
        queue=tenant.tier,
        task=scheduler.task,
        due=min(d.due_at for d in drafts),
    )
    if outcome["accepted"] == 0:
        _refuse(outcome, tenant=tenant, total=total, count=len(drafts), rate=rate)


def _refuse(
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
    raise InsufficientCredit(
        f"Available credit does not cover {total} micro-units ({count} message(s))."
    )


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def accept_message(
    conn: Conn,
    *,
    tenant: Tenant,
    request: submission.SendRequest,
    scheduler: DispatchScheduler,
    idem: Idempotency | None = None,
) -> Accepted:
    if idem is not None and (replay := await _replay(conn, tenant, idem)) is not None:
        return replay
    draft = submission.prepare(request, price_per_segment=tenant.price_per_segment, now_ms=now_ms())
    return await _accept_drafts(
        conn,
        tenant=tenant,
        drafts=[draft],
        response=message_from_draft(draft),
        scheduler=scheduler,
        idem=idem,
    )


def _item_error(index: int, exc: InvalidRequest) -> BatchItemError:
    detail = "; ".join(f"{e.field} {e.detail}" for e in exc.errors) or exc.detail
    return BatchItemError(index=index, code=exc.code, detail=detail)


async def accept_batch(
    conn: Conn,
    *,
    tenant: Tenant,
    items: Sequence[submission.SendRequest | InvalidRequest],
    scheduler: DispatchScheduler,
    idem: Idempotency | None = None,
) -> Accepted:
    """Accept every valid item together, or none when credit does not cover them all.

    ``items`` holds, per position, the decoded request or the error that decoding it gave.
    """
    if not 1 <= len(items) <= MAX_BATCH:
        raise InvalidRequest(
            "A batch holds 1 to 1000 messages.",
            [FieldError("messages", f"must hold 1 to {MAX_BATCH} messages")],
        )
    if idem is not None and (replay := await _replay(conn, tenant, idem)) is not None:
        return replay
    batch_ms = now_ms()
    drafts: list[submission.Draft] = []
    errors: list[BatchItemError] = []
    for index, item in enumerate(items):
        if isinstance(item, InvalidRequest):
            errors.append(_item_error(index, item))
            continue
        try:
            draft = submission.prepare(
                item, price_per_segment=tenant.price_per_segment, now_ms=batch_ms, sequence=index
            )
        except InvalidRequest as exc:
            errors.append(_item_error(index, exc))
            continue
        drafts.append(draft)
    if not drafts:
        raise InvalidRequest(
            "No message in the batch is valid.",
            [FieldError(f"messages[{e.index}]", e.detail) for e in errors],
        )
    response = BatchResult(messages=[message_from_draft(d) for d in drafts], errors=errors)
    return await _accept_drafts(
        conn, tenant=tenant, drafts=drafts, response=response, scheduler=scheduler, idem=idem
    )
