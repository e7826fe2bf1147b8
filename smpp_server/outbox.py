"""Pushing the outbox (``smpp_outbox``) to the tenants' receiver and transceiver binds.

Rows are written by the database itself, in the transactions that change what they
report: a message's final status (trigger ``messages_smpp_receipts``, when its ESME
set registered_delivery) and an inbound message to a tenant with an SMPP account
(trigger ``inbound_messages_smpp``). This process claims due rows of the tenants it
holds receiver binds for, a batch per tenant, leased (a crashed listener's rows come
back when the lease ends), sends each as deliver_sm over the tenant's least busy
receiver bind, and deletes it on ESME_ROK in the deliver_sm_resp. A temporary refusal
or a timeout retries with backoff; a bind that drops puts its rows back at once. So a
receipt reaches the ESME at least once: one whose deliver_sm_resp was lost with its
bind comes again on the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

import structlog
from psycopg_pool import AsyncConnectionPool

from core import segments
from db import Conn, Row
from db import smpp as smpp_db
from providers import smpp_codec
from smpp_server import pdu, status
from smpp_server.session import Session, SessionClosed

log = structlog.get_logger("smsgw.smpp_server")

# stat, message_state (SMPP 3.4, 5.2.28) for each final status.
STATES: dict[str, tuple[str, int]] = {
    "delivered": ("DELIVRD", 2),
    "undelivered": ("UNDELIV", 5),
    "expired": ("EXPIRED", 3),
    "canceled": ("DELETED", 4),
    "failed": ("REJECTD", 8),
}
PER_TENANT = 50
LEASE_SECONDS = 60.0
DELIVER_TIMEOUT = 30.0
POLL_SECONDS = 0.1
# Letters, digits and the signs that are the same octet in ASCII and GSM 03.38: the
# receipt's text: field reads the same whichever an ESME decodes it as.
_PLAIN = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 !\"#%&'()*+,-./:;<=>?"
)


def receipt_text(row: Row) -> str:
    """The receipt's short_message, in the form of SMPP 3.4's Appendix B."""
    stat, _state = STATES.get(row["status"], ("UNKNOWN", 7))
    delivered = row["status"] == "delivered"
    error = row["error_code"] or ""
    err = error.zfill(3) if error.isdigit() and len(error) <= 3 else ("000" if delivered else "001")
    submitted: datetime = row["submitted_at"] or row["done_at"]
    done: datetime = row["done_at"]
    text = "".join(char if char in _PLAIN else "?" for char in (row["body"] or "")[:20])
    return (
        f"id:{uuid.UUID(str(row['message_id'])).hex} sub:001 "
        f"dlvrd:{'001' if delivered else '000'} "
        f"submit date:{submitted:%y%m%d%H%M} done date:{done:%y%m%d%H%M} "
        f"stat:{stat} err:{err} text:{text}"
    )


def render(row: Row) -> list[Callable[[int], bytes]]:
    """The deliver_sm PDUs (as builders taking a sequence number) of an outbox row."""
    if row["kind"] == "receipt":
        _stat, state = STATES.get(row["status"], ("UNKNOWN", 7))
        short_message = receipt_text(row).encode("ascii")
        message_id = uuid.UUID(str(row["message_id"])).hex

        def receipt(sequence: int) -> bytes:
            return pdu.deliver_sm(
                sequence,
                source=row["source"],
                destination=row["destination"],
                esm_class=pdu.ESM_CLASS_RECEIPT,
                data_coding=0,
                short_message=short_message,
                receipted_message_id=message_id,
                message_state=state,
            )

        return [receipt]
    body: str = row["body"]
    parts = smpp_codec.encode_parts(body, segments.encoding_of(body), random.randrange(256))

    def mobile(part: smpp_codec.Part) -> Callable[[int], bytes]:
        return lambda sequence: pdu.deliver_sm(
            sequence,
            source=row["source"],
            destination=row["destination"],
            esm_class=part.esm_class,
            data_coding=part.data_coding,
            short_message=part.short_message,
        )

    return [mobile(part) for part in parts]


class Receivers(Protocol):
    """Which tenants this process can push to, and over which binds."""

    def receiving_tenants(self) -> Sequence[uuid.UUID]: ...

    def receivers(self, tenant_id: uuid.UUID) -> list[Session]: ...


class OutboxPusher:
    def __init__(self, pool: AsyncConnectionPool[Conn], receivers: Receivers) -> None:
        self._pool = pool
        self._receivers = receivers
        self._in_flight: dict[uuid.UUID, int] = defaultdict(int)
        self._acked: list[int] = []
        self._retry: dict[int, float] = {}
        # Claimed and not yet settled: given back at once when the pusher stops.
        self._claimed: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """A receiver bind came up: look for its tenant's waiting rows now."""
        self._wake.set()

    async def run(self) -> None:
        try:
            while True:
                claimed = await self._round()
                await self._settle()
                if claimed < PER_TENANT:
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(POLL_SECONDS):
                            await self._wake.wait()
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            # Whatever was claimed and not delivered is due again at once.
            acked = set(self._acked)
            self._retry.update({i: 0.0 for i in self._claimed - acked if i not in self._retry})
            with contextlib.suppress(Exception):
                await self._settle()

    async def _round(self) -> int:
        tenants = [
            t for t in self._receivers.receiving_tenants() if self._in_flight[t] < PER_TENANT
        ]
        if not tenants:
            return 0
        try:
            async with self._pool.connection() as conn, conn.transaction():
                rows = await smpp_db.claim_outbox(
                    conn, tenant_ids=tenants, per_tenant=PER_TENANT, lease_seconds=LEASE_SECONDS
                )
        except Exception as exc:
            log.warning("smpp.outbox_claim_failed", error=type(exc).__name__)
            await asyncio.sleep(1.0)
            return 0
        for row in rows:
            self._in_flight[row["tenant_id"]] += 1
            self._claimed.add(row["id"])
            task = asyncio.create_task(self._push(row), name="smpp-server-deliver")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return len(rows)

    async def _push(self, row: Row) -> None:
        tenant_id: uuid.UUID = row["tenant_id"]
        try:
            answer = await self._send(row)
            if answer == status.ESME_ROK:
                self._acked.append(row["id"])
            elif answer is None:
                self._retry[row["id"]] = 0.0  # no bind, or it dropped: when one is up
            elif answer == status.ESME_RX_P_APPN:
                # The ESME refuses it for good: keeping it would block nothing, but it
                # would be offered forever.
                log.info("smpp.deliver_refused", tenant_id=str(tenant_id), row=row["id"])
                self._acked.append(row["id"])
            else:
                self._retry[row["id"]] = min(300.0, 2.0 ** min(int(row["attempts"]), 8))
        finally:
            self._in_flight[tenant_id] -= 1

    async def _send(self, row: Row) -> int | None:
        """The ESME's answer (the first non-OK one for a multi-part message); None when
        no receiver bind of the tenant could take it."""
        builders = render(row)
        for _attempt in range(3):
            sessions = [s for s in self._receivers.receivers(row["tenant_id"]) if s.can_receive]
            if not sessions:
                return None
            session = min(sessions, key=lambda s: s.outstanding_deliveries)
            try:
                for build in builders:
                    answer = await session.deliver(build, DELIVER_TIMEOUT)
                    if answer != status.ESME_ROK:
                        return answer
                return status.ESME_ROK
            except SessionClosed:
                continue  # another bind of the tenant may take it
            except TimeoutError:
                return status.ESME_RX_T_APPN
        return None

    async def _settle(self) -> None:
        if not self._acked and not self._retry:
            return
        acked, self._acked = self._acked, []
        retry, self._retry = self._retry, {}
        try:
            async with self._pool.connection() as conn, conn.transaction():
                if acked:
                    await smpp_db.delete_outbox(conn, ids=acked)
                if retry:
                    await smpp_db.retry_outbox(conn, ids=list(retry), delays=list(retry.values()))
        except Exception as exc:
            # Left as claimed: the lease brings them back (an acked one comes twice).
            log.warning("smpp.outbox_settle_failed", error=type(exc).__name__)
        for row_id in (*acked, *retry):
            self._claimed.discard(row_id)
