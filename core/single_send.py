"""One message from a front door (REST, the Twilio facade, the SMPP listener, a console's
test send): its draft, and the accept it takes part in -- the shared call of the single
sends that arrive with it (``accept_together``, core/coalesce.py), or a call of its own
(``accept_message`` in the caller's transaction, ``accept_single`` choosing between
them). The accept itself, and who opens its transaction, is core/accept.py's.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import msgspec
from psycopg_pool import AsyncConnectionPool

from core import ids, refusals, submission
from core.accept import (
    Decided,
    DispatchScheduler,
    Prepared,
    StaleKey,
    accept_drafts,
    accept_request,
    now_ms,
    rows_of,
    tenant_settings,
)
from core.coalesce import SendCoalescer
from core.errors import DestinationNotPriced, RecipientOptedOut
from core.idempotency import Accepted, Idempotency
from core.messages import Message, message_from_draft
from core.tenants import Tenant
from db import Conn


def _draft(
    tenant: Tenant,
    request: submission.SendRequest,
    facade: str | None,
    messaging_service_sid: str | None,
    message_id: uuid.UUID | None,
) -> submission.Draft:
    draft = submission.prepare(
        request, now_ms=now_ms(), smart=tenant.smart_encoding, quiet=tenant.quiet_hours
    )
    if message_id is not None:
        draft = msgspec.structs.replace(draft, id=message_id, created_at=ids.created_at(message_id))
    if facade is not None:
        draft = msgspec.structs.replace(
            draft, facade=facade, messaging_service_sid=messaging_service_sid
        )
    return draft


def _one(
    tenant: Tenant,
    request: submission.SendRequest,
    render: Callable[[Message], Any] | None,
    facade: str | None,
    messaging_service_sid: str | None,
    message_id: uuid.UUID | None,
) -> Prepared:
    draft = _draft(tenant, request, facade, messaging_service_sid, message_id)

    def respond(decided: Decided) -> Any:
        message = message_from_draft(decided.drafts[0])
        return render(message) if render is not None else message

    return [draft], respond


async def accept_message(
    conn: Conn,
    *,
    tenant: Tenant,
    request: submission.SendRequest,
    scheduler: DispatchScheduler,
    render: Callable[[Message], Any] | None = None,
    facade: str | None = None,
    messaging_service_sid: str | None = None,
    message_id: uuid.UUID | None = None,
    key_id: uuid.UUID | None = None,
) -> Accepted:
    """Accept one message without an Idempotency-Key, in the caller's transaction (or in
    autocommit, one statement). ``render`` shapes the answer for another front door;
    ``facade`` marks the message as that door's. ``message_id``: an id drawn earlier
    (the SMPP door answers the first parts of a long message with the id the whole will
    have). ``key_id``: ``tenant`` came from the cache of keys (core/key_cache.py); raises
    ``StaleKey`` when it no longer holds."""
    drafts, respond = _one(tenant, request, render, facade, messaging_service_sid, message_id)
    return await accept_drafts(
        conn,
        tenant=tenant,
        drafts=drafts,
        respond=respond,
        scheduler=scheduler,
        key_id=key_id,
    )


async def accept_together(
    sends: SendCoalescer,
    *,
    tenant: Tenant,
    request: submission.SendRequest,
    key_id: uuid.UUID | None = None,
    render: Callable[[Message], Any] | None = None,
    facade: str | None = None,
    messaging_service_sid: str | None = None,
    message_id: uuid.UUID | None = None,
    receipt: int | None = None,
) -> Accepted:
    """Accept one message without an Idempotency-Key, in the call of the single sends
    that arrive with it (core/coalesce.py): the rules, answers and errors of
    ``accept_message``, and its arguments. ``receipt``: an SMPP submit's
    registered_delivery, written as its receipt request if the message is accepted."""
    draft = _draft(tenant, request, facade, messaging_service_sid, message_id)
    rate = float(tenant.rate_limit_mps) if tenant.rate_limit_mps else None
    (row,) = rows_of([draft])
    outcome = await sends.accept(
        {
            "tenant_id": tenant.id,
            "tier": tenant.tier,
            "rate": rate,
            "key_id": key_id,
            "receipt": receipt,
            **tenant_settings(tenant),
            **row,
        }
    )
    match outcome["outcome"]:
        case "accepted":
            message = message_from_draft(submission.priced(draft, outcome))
            return Accepted(body=render(message) if render is not None else message, replayed=False)
        case "stale":
            raise StaleKey
        case "sender_refused":
            raise refusals.sender_refused(draft, outcome["refusal"], outcome["retry_at"])
        case "opted_out":
            raise RecipientOptedOut(refusals.OPTED_OUT)
        case "not_priced":
            raise DestinationNotPriced(refusals.not_priced(draft.to))
    refusals.refuse(outcome, tenant=tenant, total=outcome["price"], count=1, rate=rate)


async def accept_single(
    pool: AsyncConnectionPool[Conn],
    sends: SendCoalescer | None,
    *,
    tenant: Tenant,
    request: submission.SendRequest,
    scheduler: DispatchScheduler,
    idem: Idempotency | None = None,
    key_id: uuid.UUID | None = None,
    render: Callable[[Message], Any] | None = None,
    facade: str | None = None,
    messaging_service_sid: str | None = None,
) -> Accepted:
    """One message from a front door: in the shared call of the single sends that arrive
    with it (``accept_together``), unless it carries an idempotency key, whose row must
    share its transaction, or ``sends`` is None (SMSGW_ACCEPT_CALLS=0); then in an accept
    call of its own (``accept_request``) on a connection of ``pool``."""
    if idem is None and sends is not None:
        return await accept_together(
            sends,
            tenant=tenant,
            request=request,
            key_id=key_id,
            render=render,
            facade=facade,
            messaging_service_sid=messaging_service_sid,
        )
    return await accept_request(
        pool,
        tenant=tenant,
        prepare=lambda: _one(tenant, request, render, facade, messaging_service_sid, None),
        scheduler=scheduler,
        idem=idem,
        key_id=key_id,
    )
