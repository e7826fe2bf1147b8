"""Accepting messages: validation, the credit hold, the rows and the enqueue, all in one
transaction (DESIGN.md: "A credit hold, the message row and the work enqueue commit in ONE
transaction, or none of them does").

Who opens the transaction can be read from a signature. ``accept_request`` (and
``single_send.accept_single`` above it) take the pool: they take a connection and open
the unit of work themselves, because an Idempotency-Key replay must be decided inside
it; without a key the accept is one statement in autocommit, its own transaction, with
no BEGIN/COMMIT round trips. The functions that take a connection (``accept_drafts``,
``accept_keyed``, ``accept_reply``) run in whatever their caller opened. One message
from a front door is core/single_send.py's.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec
from psycopg_pool import AsyncConnectionPool

from core import refusals, submission
from core.errors import (
    DestinationNotPriced,
    RecipientOptedOut,
)
from core.idempotency import Accepted, Idempotency, stored_answer
from core.messages import Message, message_from_draft
from core.tenants import Tenant
from db import Conn
from db import idempotency as idempotency_db
from db import messages as messages_db


class StaleKey(Exception):
    """The cached key an accept was made with was revoked, or its tenant's tier or rate
    changed: nothing was written; authenticate again and retry."""


@dataclass(frozen=True, slots=True)
class Decided:
    """What an accept call made of a request's drafts: those it accepted, priced, in the
    request's order, and the ids it refused for an opt-out, an unpriced destination or
    a rule (its sender, with the reason smsgw_sender_v1 gave, or its destination: geo
    permissions, a suspension), with the reason and, for a suspension, its end."""

    drafts: Sequence[submission.Draft]
    opted_out: frozenset[uuid.UUID] = frozenset()
    not_priced: frozenset[uuid.UUID] = frozenset()
    sender_refused: Mapping[uuid.UUID, tuple[str, Any]] = field(default_factory=dict)


class DispatchScheduler(Protocol):
    """Names the dispatch task an accept queues its tenant's work for; implemented in
    ``jobs/``. The accept's database call queues the tenant in ``dispatch_queue`` under
    the balance row lock its hold takes, and makes sure the tier has a turn coming
    (smsgw_queue_tenant_v1)."""

    task: str


def rows_of(drafts: Sequence[submission.Draft]) -> list[dict[str, Any]]:
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
            "facade": d.facade,
            "messaging_service_sid": d.messaging_service_sid,
            "to_country": d.to_country,
            "quiet_until": d.quiet_until,
        }
        for d in drafts
    ]


# What to answer, given what the accept call made of the drafts.
Respond = Callable[[Decided], Any]
# A request's drafts and how to answer them.
Prepared = tuple[Sequence[submission.Draft], Respond]


async def accept_request(
    pool: AsyncConnectionPool[Conn],
    *,
    tenant: Tenant,
    prepare: Callable[[], Prepared],
    scheduler: DispatchScheduler,
    idem: Idempotency | None,
    key_id: uuid.UUID | None = None,
) -> Accepted:
    """A front door's request (one message or a batch) in a unit of work of its own, on
    a connection of ``pool``. ``prepare`` judges the request and builds its drafts, once
    an Idempotency-Key replay is ruled out: a replay is not judged again (its send_at may
    have passed since)."""
    if key_id is not None and idem is not None:
        # A replay answers from the key row before any accept call could check the key.
        raise ValueError("an Idempotency-Key request authenticates without the cache")
    async with pool.connection() as conn:
        if idem is None:
            drafts, respond = prepare()
            # One statement in autocommit: it is its own transaction.
            return await accept_drafts(
                conn,
                tenant=tenant,
                drafts=drafts,
                respond=respond,
                scheduler=scheduler,
                key_id=key_id,
            )
        if (replay := await stored_answer(conn, tenant, idem)) is not None:
            return replay
        drafts, respond = prepare()
        async with conn.transaction():
            return await accept_keyed(
                conn, tenant=tenant, drafts=drafts, respond=respond, scheduler=scheduler, idem=idem
            )


async def accept_drafts(
    conn: Conn,
    *,
    tenant: Tenant,
    drafts: Sequence[submission.Draft],
    respond: Respond,
    scheduler: DispatchScheduler,
    key_id: uuid.UUID | None = None,
) -> Accepted:
    """Without an Idempotency-Key: one accept call, in the caller's transaction, or in
    autocommit its own."""
    decided = await _hold_insert_enqueue(
        conn, tenant=tenant, drafts=drafts, scheduler=scheduler, key_id=key_id
    )
    return Accepted(body=respond(decided), replayed=False)


async def accept_keyed(
    conn: Conn,
    *,
    tenant: Tenant,
    drafts: Sequence[submission.Draft],
    respond: Respond,
    scheduler: DispatchScheduler,
    idem: Idempotency,
) -> Accepted:
    """With an Idempotency-Key, inside the caller's transaction: the key row and the
    accept call commit together, or neither does."""
    # The key row first, so a concurrent request with the same key waits for this one;
    # its answer is known once the accept has priced the messages.
    claimed = await idempotency_db.claim_key(
        conn,
        tenant_id=tenant.id,
        key=idem.key,
        request_sha256=idem.request_sha256,
        response={},
        ttl_seconds=idem.ttl_seconds,
    )
    if not claimed:
        # A concurrent request with this key committed first: answer as it did.
        replay = await stored_answer(conn, tenant, idem)
        assert replay is not None
        return replay
    decided = await _hold_insert_enqueue(conn, tenant=tenant, drafts=drafts, scheduler=scheduler)
    body = respond(decided)
    await idempotency_db.set_response(
        conn, tenant_id=tenant.id, key=idem.key, response=msgspec.to_builtins(body)
    )
    return Accepted(body=body, replayed=False)


async def _hold_insert_enqueue(
    conn: Conn,
    *,
    tenant: Tenant,
    drafts: Sequence[submission.Draft],
    scheduler: DispatchScheduler,
    honour_opt_outs: bool = True,
    key_id: uuid.UUID | None = None,
) -> Decided:
    """One call (smsgw_accept_one_v4 for one message, smsgw_accept_v7 for more), which
    judges each message's destination (geo permissions, suspensions) and sender, prices
    it by its destination and holds it within credit and the spend caps; raises when
    nothing was accepted."""
    rate = float(tenant.rate_limit_mps) if tenant.rate_limit_mps else None
    rows = rows_of(drafts)
    if len(rows) == 1:
        # A single send has its own call: typed arguments cost PostgreSQL much less than
        # the batch call's JSON.
        outcome = await messages_db.accept_one(
            conn,
            tenant_id=tenant.id,
            rate=rate,
            message=rows[0],
            queue=tenant.tier,
            task=scheduler.task,
            honour_opt_outs=honour_opt_outs,
            key_id=key_id,
            settings=tenant_settings(tenant),
        )
        if outcome["stale"]:
            raise StaleKey
        if outcome["sender_refused"]:
            raise refusals.sender_refused(
                drafts[0], outcome["sender_refused"], outcome.get("retry_at")
            )
        if outcome["opted_out"]:
            raise RecipientOptedOut(refusals.OPTED_OUT)
        if outcome["not_priced"]:
            raise DestinationNotPriced(refusals.not_priced(drafts[0].to))
        if outcome["accepted"] == 0:
            refusals.refuse(outcome, tenant=tenant, total=outcome["price"], count=1, rate=rate)
        return Decided(drafts=[submission.priced(drafts[0], outcome)])
    outcome = await messages_db.accept(
        conn,
        tenant_id=tenant.id,
        rate=rate,
        messages=rows,
        queue=tenant.tier,
        task=scheduler.task,
        honour_opt_outs=honour_opt_outs,
    )
    opted_out = frozenset(outcome["opted_out"] or ())
    unpriced = frozenset(outcome["not_priced"] or ())
    # [[id, reason, retry_at]]: retry_at for a suspended destination, else null.
    unsent = {uuid.UUID(r[0]): (r[1], r[2]) for r in outcome["sender_refused"] or ()}
    # What each accepted message was priced at, as seven arrays in one order: [[price],
    # [price_per_segment], [rate_card], [rate_card_version], [rate_prefix], [sender], [id]].
    rates: dict[uuid.UUID, tuple[Any, ...]] = {}
    if outcome["rates"] is not None:
        *fields, message_ids = outcome["rates"]
        rates = {
            uuid.UUID(message_id): priced_as
            for message_id, priced_as in zip(message_ids, zip(*fields, strict=True), strict=True)
        }
    if outcome["accepted"] == 0:
        refusals.nothing_accepted(drafts, opted_out=opted_out, unpriced=unpriced, unsent=unsent)
        refusals.refuse(
            outcome,
            tenant=tenant,
            total=sum(r[0] for r in rates.values()),
            count=len(rates),
            rate=rate,
        )
    return Decided(
        drafts=[submission.priced_at(d, *rates[d.id]) for d in drafts if d.id in rates],
        opted_out=opted_out,
        not_priced=unpriced,
        sender_refused=unsent,
    )


def tenant_settings(tenant: Tenant) -> dict[str, Any]:
    """The tenant's settings a draft was made with, beside its tier and rate: a cached
    key's accept is stale when they changed (its draft would be made otherwise now)."""
    quiet = tenant.quiet_hours
    return {
        "smart": tenant.smart_encoding,
        "quiet_start": None if quiet is None else quiet[0],
        "quiet_end": None if quiet is None else quiet[1],
    }


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def accept_reply(
    conn: Conn,
    *,
    tenant: Tenant,
    request: submission.SendRequest,
    scheduler: DispatchScheduler,
) -> Message:
    """An automatic answer (to HELP), inside the caller's transaction: the accept path
    of every message, free of charge (held and settled at 0), outside the tenant's
    ingest rate and sent even to a recipient who opted out."""
    draft = submission.prepare(request, now_ms=now_ms(), price_per_segment=0)
    await _hold_insert_enqueue(
        conn,
        tenant=msgspec.structs.replace(tenant, rate_limit_mps=None),
        drafts=[draft],
        scheduler=scheduler,
        honour_opt_outs=False,
    )
    return message_from_draft(draft)
