"""From a submit_sm to an accepted message: the SMPP door's unit of work.

A whole message goes through the accept path of ``POST /v1/messages`` (validation,
opt-outs, rate limit, hold, rows and dispatch job in one call, its own transaction), and
like a single send there, in the accept call of the submits that arrive with it, from
any binds (``core/coalesce.py``): an ESME keeps a window of submits in flight, and one
accept call each cost the database ~10 times what a message costs in a shared call.
When the ESME asked for a receipt, the shared call writes a receipt request for the
message with it (with an accept call of its own, one is committed just before: see
``_whole``). The submit_sm_resp is written only after the accept's commit.

A part of a long message (UDH or SAR) is stored durably, per tenant, not per bind, in
``smpp_parts``: so a message whose parts arrive over several binds, or whose ESME
resends a part after a dropped bind or an ESME_RTHROTTLED, still completes. Every part
is answered with the id the whole message will have (drawn by the first part to
arrive, under a per-message lock), right after that part is committed: an ESME with a
window smaller than the part count (window 1 is common) could not send the last part
if earlier ones waited for it. The part that completes the set takes all of them, and
the message is accepted, billed as one message of N segments, in that same
transaction; if the accept refuses it, the transaction rolls back, the other parts
stay, and the refusal answers this part (resending it, after a throttle say, completes
the message then). Parts that never complete are dropped after the reassembly timeout,
billed nothing; an ESME that asked for receipts then gets one saying REJECTD for the id
it was given.
"""

from __future__ import annotations

import contextlib
import uuid

from psycopg_pool import AsyncConnectionPool

from core import ids, single_send, submission
from core.accept import DispatchScheduler
from core.coalesce import SendCoalescer
from core.errors import FieldError, InvalidRequest
from core.messages import Message
from core.tenants import Tenant
from db import Conn
from db import smpp as smpp_db
from smpp_server import submit
from smpp_server.status import ESME_RSUBMITFAIL, Refused
from smpp_server.submit import Submission

FACADE = "smpp"


def message_id_text(message_id: uuid.UUID) -> str:
    """The id an ESME sees: the UUID's 32 hex digits (fits SMPP's 65-octet field, and
    GET /v1/messages/{id} takes it as it is)."""
    return message_id.hex


class Intake:
    def __init__(
        self,
        pool: AsyncConnectionPool[Conn],
        scheduler: DispatchScheduler,
        sends: SendCoalescer | None = None,
    ) -> None:
        self._pool = pool
        self._scheduler = scheduler
        # None: each whole message in an accept call of its own.
        self._sends = sends

    async def submit(self, tenant: Tenant, sub: Submission) -> str:
        """Accept ``sub`` (or store it, a part); the message id to answer with. Raises
        a domain error or ``Refused``; nothing is stored then."""
        if sub.part is None:
            return message_id_text(await self._whole(tenant, sub))
        return message_id_text(await self._part(tenant, sub))

    async def _accept(
        self,
        conn: Conn,
        tenant: Tenant,
        request: submission.SendRequest,
        message_id: uuid.UUID,
    ) -> Message:
        accepted = await single_send.accept_message(
            conn,
            tenant=tenant,
            request=request,
            scheduler=self._scheduler,
            facade=FACADE,
            message_id=message_id,
        )
        message: Message = accepted.body
        return message

    async def _request_receipt(
        self, conn: Conn, tenant: Tenant, message_id: uuid.UUID, mode: int
    ) -> None:
        await smpp_db.request_receipt(
            conn,
            message_id=message_id,
            message_created_at=ids.created_at(message_id),
            tenant_id=tenant.id,
            mode=mode,
        )

    async def _whole(self, tenant: Tenant, sub: Submission) -> uuid.UUID:
        request = sub.request(submit.text(sub.data_coding, sub.payload))
        message_id = ids.uuid7()
        if self._sends is not None:
            await single_send.accept_together(
                self._sends,
                tenant=tenant,
                request=request,
                facade=FACADE,
                message_id=message_id,
                receipt=sub.receipt or None,
            )
            return message_id
        async with self._pool.connection() as conn:
            if sub.receipt:
                # Committed before the message exists, so whatever ends the message sees
                # it; if the accept refuses, it names a message that never will be, and
                # is dropped. The accept itself stays one statement, holding the tenant's
                # balance row no longer than a POST /v1/messages does.
                await self._request_receipt(conn, tenant, message_id, sub.receipt)
            try:
                await self._accept(conn, tenant, request, message_id)
            except Exception:
                if sub.receipt:
                    with contextlib.suppress(Exception):
                        await smpp_db.forget_receipt(conn, message_id=message_id)
                raise
        return message_id

    async def _part(self, tenant: Tenant, sub: Submission) -> uuid.UUID:
        part = sub.part
        assert part is not None
        # Addresses can be judged now: a part to a bad number is not worth keeping.
        errors: list[FieldError] = []
        submission.check_recipient(sub.to, errors)
        if sub.sender is not None:
            submission.check_sender(sub.sender, errors)
        if errors:
            raise InvalidRequest("The message is not valid.", errors)
        group = smpp_db.PartGroup(
            tenant_id=tenant.id,
            source=sub.sender or "",
            destination=sub.to,
            reference=part.reference,
            total=part.total,
        )
        async with self._pool.connection() as conn, conn.transaction():
            await smpp_db.lock_part_group(conn, **group)
            message_id = await smpp_db.save_part(
                conn,
                **group,
                number=part.number,
                message_id=ids.uuid7(),
                data_coding=sub.data_coding,
                payload=sub.payload,
                registered_delivery=sub.receipt,
            )
            if await smpp_db.count_parts(conn, **group) < part.total:
                return message_id
            parts = await smpp_db.take_parts(conn, **group)
            codings = {row["data_coding"] for row in parts}
            if len(codings) != 1:
                raise Refused(ESME_RSUBMITFAIL, "the parts of one message differ in data_coding")
            body = submit.text(codings.pop(), b"".join(bytes(row["payload"]) for row in parts))
            # A receipt if any part asked for one (some ESMEs ask on the last part only).
            wanted = {int(row["registered_delivery"]) for row in parts}
            receipt = 1 if 1 in wanted else (2 if 2 in wanted else 0)
            if receipt:
                await self._request_receipt(conn, tenant, message_id, receipt)
            await self._accept(conn, tenant, sub.request(body), message_id)
            return message_id
