"""Messages: accept, read, list, cancel."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import psycopg

from db import Conn, Row
from db.sql import Queries, json_rows

_q = Queries("messages")

# smsgw_accept_one_v4: the credit, the ingest bucket or the spend cap's room went to a
# concurrent send.
REFUSED_BY_A_CONCURRENT_SEND = "SMG01"


async def accept(
    conn: Conn,
    *,
    tenant_id: uuid.UUID,
    rate: float | None,
    messages: Sequence[Mapping[str, Any]],
    queue: str,
    task: str,
    honour_opt_outs: bool = True,
) -> Row:
    """Refuse the messages to a destination the tenant may not send to or that is
    suspended for it, or whose sender the tenant may not use there (``sender_refused``:
    [[id, reason, retry_at]]: 'destination_not_permitted', 'destination_suspended' with
    the suspension's end, or smsgw_sender_v1's reasons), to opted-out recipients (their ids in
    ``opted_out``) and to destinations no rate of the tenant covers (``not_priced``),
    price the others (a message's ``price`` None: from the tenant's rates; ``rates``
    lists the messages priced alike as [price, price_per_segment, rate_card,
    rate_card_version, rate_prefix, sender, [id, ...]], the sender chosen for a message
    that named none), hold
    their total, insert them and make sure a dispatch job (``task`` on ``queue``) runs
    by the earliest one's due time. ``accepted`` is 0, and nothing written, when every
    message was refused, credit is short or, with a ``rate``, the tenant's ingest
    bucket is empty, or a spend cap would be passed; ``available``, ``tokens`` and
    ``cap_room`` (what the caps leave, None without one) then say which."""
    row = await _q.one(
        conn,
        "accept",
        tenant_id=tenant_id,
        rate=rate,
        messages=json_rows(messages),
        queue=queue,
        task=task,
        honour_opt_outs=honour_opt_outs,
    )
    assert row is not None
    return row


async def accept_one(
    conn: Conn,
    *,
    tenant_id: uuid.UUID,
    rate: float | None,
    message: Mapping[str, Any],
    queue: str,
    task: str,
    honour_opt_outs: bool = True,
    key_id: uuid.UUID | None = None,
    settings: Mapping[str, Any] | None = None,
) -> Row:
    """``accept`` for one message (``message`` holds the same fields), without JSON;
    ``opted_out`` and ``not_priced`` are booleans here, ``sender_refused`` the reason
    or None, and the price, rate and sender are columns. With ``key_id``, nothing is
    written and ``stale`` is true unless that key is live and the tenant's tier and rate
    are still ``queue`` and ``rate``, and its other ``settings`` (``smart``,
    ``quiet_start``, ``quiet_end``) as given."""
    try:
        row = await _q.one(
            conn,
            "accept_one",
            tenant_id=tenant_id,
            rate=rate,
            queue=queue,
            task=task,
            honour_opt_outs=honour_opt_outs,
            key_id=key_id,
            **(settings or {"smart": None, "quiet_start": None, "quiet_end": None}),
            **message,
        )
    except psycopg.Error as exc:
        if exc.sqlstate != REFUSED_BY_A_CONCURRENT_SEND:
            raise
        # The call undid its rows; in a transaction, the caller's refusal rolls it back.
        left = json.loads(exc.diag.message_detail or "{}")
        return {
            "accepted": 0,
            "available": left.get("available"),
            "tokens": left.get("tokens"),
            "opted_out": False,
            "stale": False,
            "not_priced": False,
            "sender_refused": None,
            "retry_at": None,
            "price": left.get("price"),
            "cap_room": left.get("cap_room"),
        }
    assert row is not None
    return row


async def accept_sends(conn: Conn, *, sends: Sequence[Mapping[str, Any]], task: str) -> list[Row]:
    """Single sends of any tenants in one call: each holds a tenant's ``tenant_id``,
    ``tier``, ``rate`` and ``key_id`` (``accept_one``'s) and a message's fields. One row
    per send: its ``id`` and ``outcome`` ('accepted', 'stale', 'sender_refused' with its
    ``refusal``, a destination's included, and ``retry_at`` for a suspension,
    'opted_out', 'not_priced', or 'refused' with the ``available`` credit, ``tokens``
    and ``cap_room`` left for it); an accepted or refused send carries its ``price``, rate
    (``price_per_segment``, ``rate_card``, ``rate_card_version``, ``rate_prefix``) and
    ``sender``."""
    return await _q.all(conn, "accept_sends", sends=json_rows(sends), task=task)


async def quote(conn: Conn, *, tenant_id: uuid.UUID, to_number: str, to_country: str | None) -> Row:
    """The tenant's rate for ``to_number`` now, by the accept's lookup (its fields None
    when no rate covers it), and ``refusal``: 'destination_not_permitted' when the
    tenant's geo permissions leave out ``to_country``."""
    row = await _q.one(
        conn, "quote", tenant_id=tenant_id, to_number=to_number, to_country=to_country
    )
    assert row is not None
    return row


async def get_message(
    conn: Conn, *, tenant_id: uuid.UUID, id: uuid.UUID, created_at: datetime
) -> Row | None:
    return await _q.one(conn, "get_message", tenant_id=tenant_id, id=id, created_at=created_at)


async def status_history(
    conn: Conn, *, tenant_id: uuid.UUID, id: uuid.UUID, created_at: datetime
) -> list[Row]:
    return await _q.all(conn, "status_history", tenant_id=tenant_id, id=id, created_at=created_at)


async def cancel_message(
    conn: Conn, *, tenant_id: uuid.UUID, id: uuid.UUID, created_at: datetime
) -> Row | None:
    return await _q.one(conn, "cancel_message", tenant_id=tenant_id, id=id, created_at=created_at)


# A status's statement, by the index that finds it (db/queries/messages.sql); the others
# are in messages_tenant_rare_status_idx.
_BY_STATUS = {
    "scheduled": "list_messages_waiting",
    "queued": "list_messages_waiting",
    "sending": "list_messages_walking",
    "delivered": "list_messages_walking",
}


async def list_messages(
    conn: Conn,
    *,
    tenant_id: uuid.UUID,
    status: str | None,
    to_number: str | None,
    created_after: datetime | None,
    created_before: datetime | None,
    before_created_at: datetime | None,
    before_id: uuid.UUID | None,
    limit: int,
) -> list[Row]:
    window: dict[str, Any] = {
        "tenant_id": tenant_id,
        "created_after": created_after,
        "created_before": created_before,
        "before_created_at": before_created_at,
        "before_id": before_id,
        "limit": limit,
    }
    if to_number is not None:
        return await _q.all(conn, "list_messages_to", to_number=to_number, status=status, **window)
    if status is None:
        return await _q.all(conn, "list_messages", **window)
    return await _q.all(
        conn, _BY_STATUS.get(status, "list_messages_rare_status"), status=status, **window
    )


async def index_recipients(conn: Conn, *, through: datetime) -> int:
    """Index the recipients of the messages created before ``through``, from where the
    last call stopped; how many. Serialised on the mark's row lock."""
    row = await _q.one(conn, "index_recipients", through=through)
    assert row is not None
    return int(row["indexed"])
