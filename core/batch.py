"""Batch sends (`POST /v1/messages/batch`): every valid item accepted together in the
accept transaction of core/accept.py, or none when credit does not cover them all; the
invalid, opted-out, unpriced and sender-refused items are listed by index."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import msgspec
from psycopg_pool import AsyncConnectionPool

from core import accept, refusals, submission
from core.errors import DestinationNotPriced, FieldError, InvalidRequest, RecipientOptedOut
from core.idempotency import Accepted, Idempotency
from core.messages import Message, message_from_draft
from core.tenants import Tenant
from db import Conn

MAX_BATCH = 1_000


class BatchItemError(msgspec.Struct, frozen=True):
    index: int
    code: str
    detail: str


class BatchResult(msgspec.Struct, frozen=True, kw_only=True):
    messages: list[Message]
    errors: list[BatchItemError]


def _item_error(index: int, exc: InvalidRequest) -> BatchItemError:
    detail = "; ".join(f"{e.field} {e.detail}" for e in exc.errors) or exc.detail
    return BatchItemError(index=index, code=exc.code, detail=detail)


async def accept_batch(
    pool: AsyncConnectionPool[Conn],
    *,
    tenant: Tenant,
    items: Sequence[submission.SendRequest | InvalidRequest],
    scheduler: accept.DispatchScheduler,
    idem: Idempotency | None = None,
) -> Accepted:
    """Accept every valid item together, or none when credit does not cover them all,
    in a unit of work of its own on a connection of ``pool``.

    ``items`` holds, per position, the decoded request or the error that decoding it gave.
    """
    if not 1 <= len(items) <= MAX_BATCH:
        raise InvalidRequest(
            "A batch holds 1 to 1000 messages.",
            [FieldError("messages", f"must hold 1 to {MAX_BATCH} messages")],
        )
    return await accept.accept_request(
        pool,
        tenant=tenant,
        prepare=lambda: _prepare(tenant, items),
        scheduler=scheduler,
        idem=idem,
    )


def _prepare(
    tenant: Tenant, items: Sequence[submission.SendRequest | InvalidRequest]
) -> accept.Prepared:
    batch_ms = accept.now_ms()
    drafts: list[submission.Draft] = []
    indexes: dict[uuid.UUID, int] = {}
    errors: list[BatchItemError] = []
    for index, item in enumerate(items):
        if isinstance(item, InvalidRequest):
            errors.append(_item_error(index, item))
            continue
        try:
            draft = submission.prepare(
                item,
                now_ms=batch_ms,
                sequence=index,
                smart=tenant.smart_encoding,
                quiet=tenant.quiet_hours,
            )
        except InvalidRequest as exc:
            errors.append(_item_error(index, exc))
            continue
        drafts.append(draft)
        indexes[draft.id] = index
    if not drafts:
        raise InvalidRequest(
            "No message in the batch is valid.",
            [FieldError(f"messages[{e.index}]", e.detail) for e in errors],
        )

    def respond(decided: accept.Decided) -> BatchResult:
        refused = (
            [
                BatchItemError(
                    index=indexes[d.id],
                    code=RecipientOptedOut.code,
                    detail=f"{d.to} opted out of messages from this sender",
                )
                for d in drafts
                if d.id in decided.opted_out
            ]
            + [
                BatchItemError(
                    index=indexes[d.id],
                    code=DestinationNotPriced.code,
                    detail=refusals.not_priced(d.to),
                )
                for d in drafts
                if d.id in decided.not_priced
            ]
            + [
                _sender_error(indexes[d.id], d, *refused_by)
                for d in drafts
                if (refused_by := decided.sender_refused.get(d.id)) is not None
            ]
        )
        return BatchResult(
            messages=[message_from_draft(d) for d in decided.drafts],
            errors=sorted([*errors, *refused], key=lambda e: e.index),
        )

    return drafts, respond


def _sender_error(
    index: int, draft: submission.Draft, reason: str, retry_at: Any
) -> BatchItemError:
    error = refusals.sender_refused(draft, reason, retry_at)
    return BatchItemError(index=index, code=error.code, detail=error.detail)
