"""One ESME connection: the bind, then submit_sm in, deliver_sm out, enquire_link both
ways, unbind from either side.

Windowing: each submit_sm runs in a task of its own as soon as it is read, so many
outstanding submits of one bind are accepted concurrently (each on its own pooled
connection) and answered in the order they finish, as SMPP allows. At most
``smpp_window`` run at once; beyond that the session stops reading, and TCP pushes back
on the ESME. deliver_sm go out through ``deliver``, at most ``smpp_deliver_window``
unanswered per bind.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

import structlog

from core.smpp_accounts import Binding
from core.tenants import Tenant
from smpp_server import pdu, status, submit, submit_sm
from smpp_server.intake import Intake

log = structlog.get_logger("smsgw.smpp_server")

SYSTEM_ID = "smsgw"


class SessionClosed(Exception):
    """The bind ended before the ESME answered."""


class Host(Protocol):
    """What a session needs of the listener that accepted it (smpp_server/server.py)."""

    intake: Intake

    async def admit(self, session: Session, request: pdu.BindRequest) -> int: ...

    async def release(self, session: Session) -> None: ...

    def tenant(self, tenant_id: uuid.UUID) -> Tenant | None: ...


class Session:
    def __init__(
        self,
        listener: Host,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        window: int,
        deliver_window: int,
        enquire_link_seconds: float,
    ) -> None:
        self._listener = listener
        self._reader = reader
        self._writer = writer
        peer = writer.get_extra_info("peername")
        self.peer: str = str(peer[0]) if isinstance(peer, tuple) else "unknown"
        self.bind: pdu.BindRequest | None = None
        self.binding: Binding | None = None
        self.slot: int | None = None
        self.bound_at: datetime | None = None
        self._enquire_link_seconds = enquire_link_seconds
        self._window = asyncio.Semaphore(window)
        self._deliver_window = asyncio.Semaphore(deliver_window)
        self._submits: set[asyncio.Task[None]] = set()
        self._pending: dict[int, asyncio.Future[pdu.Pdu]] = {}
        self._sequence = 0
        self._last_read = time.monotonic()
        self._closed = asyncio.Event()
        self._unbinding = False
        self._unbind_sent = False
        self.outstanding_deliveries = 0

    # -- what the listener uses --------------------------------------------------------

    @property
    def tenant_id(self) -> uuid.UUID | None:
        return None if self.binding is None else self.binding.account.tenant_id

    @property
    def can_receive(self) -> bool:
        return self.bind is not None and self.bind.can_receive and not self.closed

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    async def run(self) -> None:
        """The connection's whole life; returns when it is over and cleaned up."""
        keepalive = asyncio.create_task(self._keepalive(), name="smpp-server-keepalive")
        try:
            await self._read_loop()
        finally:
            keepalive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keepalive
            await self._finish()

    async def deliver(self, build: Callable[[int], bytes], wait_seconds: float) -> int:
        """Send the deliver_sm ``build(sequence)``; the command_status of the ESME's
        deliver_sm_resp (or generic_nack). SessionClosed, TimeoutError otherwise."""
        async with self._deliver_window:
            self.outstanding_deliveries += 1
            try:
                response = await self._request(build, wait_seconds)
            finally:
                self.outstanding_deliveries -= 1
        if response.command_id == pdu.GENERIC_NACK:
            return response.status or status.ESME_RSYSERR
        return response.status

    async def unbind(self, wait_seconds: float = 2.0) -> None:
        """Ask the ESME to unbind (shutdown, credentials revoked) and close. Submits
        already read are answered first; later ones get ESME_RINVBNDSTS."""
        if self.closed or self._unbind_sent:
            return
        self._unbind_sent = self._unbinding = True
        if self._submits:
            await asyncio.gather(*self._submits, return_exceptions=True)
        with contextlib.suppress(SessionClosed, TimeoutError, ConnectionError, OSError):
            await self._request(pdu.unbind, wait_seconds)
        self._close("unbound by smsgw")

    # -- reading -------------------------------------------------------------------------

    async def _read_pdu(self) -> pdu.Pdu:
        header = await self._reader.readexactly(pdu.HEADER.size)
        try:
            length, command_id, command_status, sequence = pdu.parse_header(header)
        except pdu.FramingError:
            # The stream cannot be followed past a length we cannot trust.
            self._write(pdu.generic_nack(pdu.HEADER.unpack(header)[3], status.ESME_RINVCMDLEN))
            raise
        body = await self._reader.readexactly(length - pdu.HEADER.size)
        self._last_read = time.monotonic()
        return pdu.Pdu(command_id, command_status, sequence, body)

    async def _read_loop(self) -> None:
        reason = "connection closed by the ESME"
        try:
            while not self.closed:
                message = await self._read_pdu()
                command_id = message.command_id
                if command_id & pdu.RESPONSE_BIT:
                    future = self._pending.get(message.sequence)
                    if future is not None and not future.done():
                        future.set_result(message)
                elif command_id == pdu.SUBMIT_SM:
                    await self._on_submit(message)
                elif command_id in pdu.BINDS:
                    if not await self._on_bind(message):
                        reason = "bind refused"
                        return
                elif command_id == pdu.ENQUIRE_LINK:
                    self._write(pdu.enquire_link_resp(message.sequence))
                elif command_id == pdu.UNBIND:
                    await self._on_unbind(message)
                    reason = "unbound by the ESME"
                    return
                else:
                    self._write(pdu.generic_nack(message.sequence, status.ESME_RINVCMDID))
        except (asyncio.IncompleteReadError, ConnectionError, OSError) as exc:
            reason = f"connection lost: {type(exc).__name__}"
        except pdu.FramingError as exc:
            reason = f"framing lost: {exc}"
        finally:
            self._close(reason)

    async def _on_bind(self, message: pdu.Pdu) -> bool:
        """Answer a bind; False when it was refused (the connection then closes)."""
        if self.bind is not None:
            self._write(
                pdu.bind_resp(message.command_id, message.sequence, status.ESME_RALYBND, "")
            )
            return True
        try:
            request = pdu.parse_bind(message)
        except pdu.MalformedPdu:
            self._write(pdu.generic_nack(message.sequence, status.ESME_RINVCMDLEN))
            return True
        except pdu.InvalidBind as exc:
            self._write(pdu.bind_resp(message.command_id, message.sequence, exc.status, ""))
            await self._flush()
            return False
        answer = await self._listener.admit(self, request)
        self._write(pdu.bind_resp(message.command_id, message.sequence, answer, SYSTEM_ID))
        await self._flush()
        if answer != status.ESME_ROK:
            return False
        self.bind = request
        self.bound_at = datetime.now(UTC)
        return True

    async def _on_submit(self, message: pdu.Pdu) -> None:
        if self.bind is None or not self.bind.can_transmit or self._unbinding:
            self._write(pdu.submit_sm_resp(message.sequence, status.ESME_RINVBNDSTS))
            return
        await self._window.acquire()
        task = asyncio.create_task(self._submit(message), name="smpp-server-submit")
        self._submits.add(task)
        task.add_done_callback(self._submits.discard)

    async def _submit(self, message: pdu.Pdu) -> None:
        try:
            try:
                sm = submit_sm.parse_submit_sm(message.body)
            except pdu.MalformedPdu:
                self._write(pdu.generic_nack(message.sequence, status.ESME_RINVCMDLEN))
                return
            binding = self.binding
            assert binding is not None
            try:
                sub = submit.read(sm, datetime.now(UTC))
                tenant = self._listener.tenant(binding.account.tenant_id) or binding.tenant
                message_id = await self._intake.submit(tenant, sub)
            except Exception as exc:
                answer = status.submit_status(exc)
                self._log_refusal(exc, answer)
                self._write(pdu.submit_sm_resp(message.sequence, answer))
            else:
                self._write(pdu.submit_sm_resp(message.sequence, status.ESME_ROK, message_id))
            await self._flush()
        finally:
            self._window.release()

    @property
    def _intake(self) -> Intake:
        return self._listener.intake

    def _log_refusal(self, exc: Exception, answer: int) -> None:
        fields = {
            "tenant_id": str(self.tenant_id),
            "status": pdu.status_name(answer),
            "error": type(exc).__name__,
        }
        if status.is_outage(exc):
            log.warning("smpp.submit_unavailable", **fields)
        elif answer == status.ESME_RSYSERR:
            log.exception("smpp.submit_failed", **fields)
        else:
            log.info("smpp.submit_refused", detail=str(exc), **fields)

    async def _on_unbind(self, message: pdu.Pdu) -> None:
        # Submits already read are answered before the unbind_resp: the ESME waits for
        # them, and an answer after unbind_resp would land on a closed link.
        self._unbinding = True
        if self._submits:
            await asyncio.gather(*self._submits, return_exceptions=True)
        self._write(pdu.unbind_resp(message.sequence))
        await self._flush()

    # -- writing and requests --------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if not self._writer.is_closing():
            self._writer.write(data)

    async def _flush(self) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.drain()

    def _next_sequence(self) -> int:
        self._sequence = self._sequence % 0x7FFFFFFF + 1
        return self._sequence

    async def _request(self, build: Callable[[int], bytes], wait_seconds: float) -> pdu.Pdu:
        if self.closed:
            raise SessionClosed("the bind is closed")
        sequence = self._next_sequence()
        future: asyncio.Future[pdu.Pdu] = asyncio.get_running_loop().create_future()
        self._pending[sequence] = future
        try:
            self._write(build(sequence))
            async with asyncio.timeout(wait_seconds):
                await self._flush()
                return await future
        finally:
            self._pending.pop(sequence, None)

    async def _keepalive(self) -> None:
        """No bind within the interval, or no answer to an enquire_link after a quiet
        interval: the link is dead, close it."""
        interval = self._enquire_link_seconds
        while not self.closed:
            await asyncio.sleep(interval / 4)
            quiet = time.monotonic() - self._last_read
            if self.bind is None:
                if quiet >= interval:
                    self._close("no bind")
                    return
                continue
            if quiet < interval:
                continue
            try:
                await self._request(pdu.enquire_link, interval)
            except TimeoutError:
                self._close("enquire_link unanswered")
                return
            except SessionClosed:
                return

    # -- the end ---------------------------------------------------------------------------

    def _close(self, reason: str) -> None:
        if self.closed:
            return
        self._closed.set()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(SessionClosed(reason))
        self._writer.close()
        if self.bind is not None:
            log.info(
                "smpp.unbound",
                tenant_id=str(self.tenant_id),
                bind=self.bind.kind,
                peer=self.peer,
                reason=reason,
            )

    async def _finish(self) -> None:
        # Submits read before the end still finish: an accept half done is not cut off
        # (its answer may be lost with the link; the ESME resends, as SMPP expects).
        if self._submits:
            await asyncio.gather(*self._submits, return_exceptions=True)
        await self._listener.release(self)
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.wait_closed()
