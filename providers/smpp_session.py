"""One bound SMPP transceiver session over one TCP connection.

It matches responses to requests by sequence number, answers what the SMSC asks of us
(enquire_link, deliver_sm, unbind), sends its own enquire_link on a timer and ends when
the link does: every request still waiting then fails with ``SessionClosed``. Windowing,
pacing and reconnecting belong to the provider above it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import structlog

from providers import smpp_codec as codec

log = structlog.get_logger("smsgw.providers.smpp")


class SessionClosed(Exception):
    """The session ended before the response came; the request's fate is unknown."""


class BindRefused(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"bind_transceiver refused: {codec.status_name(status)}")
        self.status = status


async def read_pdu(reader: asyncio.StreamReader) -> codec.Pdu:
    length, command_id, status, sequence = codec.parse_header(
        await reader.readexactly(codec.HEADER.size)
    )
    body = await reader.readexactly(length - codec.HEADER.size)
    return codec.Pdu(command_id, status, sequence, body)


class Session:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        on_deliver: Callable[[bytes], None],
        enquire_link_seconds: float,
        response_timeout: float,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._on_deliver = on_deliver
        self._enquire_link_seconds = enquire_link_seconds
        self._response_timeout = response_timeout
        self._pending: dict[int, asyncio.Future[codec.Pdu]] = {}
        # 1 went to the bind.
        self._sequence = 1
        self._closed = asyncio.Event()
        self.close_reason = ""
        self._tasks = [
            asyncio.create_task(self._read_loop(), name="smpp-read"),
            asyncio.create_task(self._keepalive(), name="smpp-enquire-link"),
        ]

    @classmethod
    async def open(
        cls,
        *,
        host: str,
        port: int,
        system_id: str,
        password: str,
        system_type: str,
        ton: int,
        npi: int,
        connect_timeout: float,
        on_deliver: Callable[[bytes], None],
        enquire_link_seconds: float,
        response_timeout: float,
    ) -> Session:
        """Connect and bind as a transceiver; raises BindRefused, OSError or TimeoutError."""
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port), connect_timeout
        )
        try:
            writer.write(
                codec.bind_transceiver(
                    1,
                    system_id=system_id,
                    password=password,
                    system_type=system_type,
                    ton=ton,
                    npi=npi,
                )
            )
            async with asyncio.timeout(connect_timeout):
                await writer.drain()
                pdu = await read_pdu(reader)
            if pdu.command_id not in (codec.BIND_TRANSCEIVER_RESP, codec.GENERIC_NACK):
                raise ValueError(f"expected bind_transceiver_resp, got 0x{pdu.command_id:08X}")
            if pdu.status != codec.ESME_ROK or pdu.command_id == codec.GENERIC_NACK:
                raise BindRefused(pdu.status)
        except BaseException:
            writer.close()
            raise
        return cls(
            reader,
            writer,
            on_deliver=on_deliver,
            enquire_link_seconds=enquire_link_seconds,
            response_timeout=response_timeout,
        )

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    def _next_sequence(self) -> int:
        self._sequence = self._sequence % 0x7FFFFFFF + 1
        return self._sequence

    async def request(self, build: Callable[[int], bytes]) -> codec.Pdu:
        """Send the PDU ``build(sequence)`` and wait for its response (or generic_nack).

        Raises SessionClosed if the link ends first and TimeoutError after the response
        timeout; in both cases the SMSC may or may not have acted on the request."""
        if self.closed:
            raise SessionClosed(self.close_reason)
        sequence = self._next_sequence()
        future: asyncio.Future[codec.Pdu] = asyncio.get_running_loop().create_future()
        self._pending[sequence] = future
        try:
            self._writer.write(build(sequence))
            async with asyncio.timeout(self._response_timeout):
                await self._writer.drain()
                return await future
        except TimeoutError:
            raise  # an OSError too, but only this request's
        except (ConnectionError, OSError) as exc:
            self._shutdown(f"write failed: {exc!r}")
            raise SessionClosed(self.close_reason) from exc
        finally:
            self._pending.pop(sequence, None)

    def _send(self, data: bytes) -> None:
        if not self.closed:
            self._writer.write(data)

    async def _read_loop(self) -> None:
        reason = "connection closed by the SMSC"
        try:
            while True:
                pdu = await read_pdu(self._reader)
                if pdu.command_id & codec.RESPONSE_BIT:
                    future = self._pending.get(pdu.sequence)
                    if future is not None and not future.done():
                        future.set_result(pdu)
                elif pdu.command_id == codec.DELIVER_SM:
                    # Always answered, whatever becomes of it: an unanswered deliver_sm
                    # is redelivered, and one that cannot be parsed would be forever.
                    self._send(codec.deliver_sm_resp(pdu.sequence))
                    self._on_deliver(pdu.body)
                elif pdu.command_id == codec.ENQUIRE_LINK:
                    self._send(codec.response(codec.ENQUIRE_LINK_RESP, pdu.sequence))
                elif pdu.command_id == codec.UNBIND:
                    self._send(codec.response(codec.UNBIND_RESP, pdu.sequence))
                    with contextlib.suppress(ConnectionError, OSError):
                        await self._writer.drain()
                    reason = "unbound by the SMSC"
                    return
                elif pdu.command_id != codec.ALERT_NOTIFICATION:
                    self._send(
                        codec.response(codec.GENERIC_NACK, pdu.sequence, codec.ESME_RINVCMDID)
                    )
        except (asyncio.IncompleteReadError, ConnectionError, OSError) as exc:
            reason = f"connection lost: {exc!r}"
        except ValueError as exc:
            reason = f"protocol error: {exc}"
        finally:
            self._shutdown(reason)

    async def _keepalive(self) -> None:
        """enquire_link every interval; a link that does not answer in time is dead."""
        while not self.closed:
            await asyncio.sleep(self._enquire_link_seconds)
            try:
                await self.request(lambda seq: codec.response(codec.ENQUIRE_LINK, seq))
            except TimeoutError:
                self._shutdown("enquire_link unanswered")
            except SessionClosed:
                return

    def _shutdown(self, reason: str) -> None:
        if self.closed:
            return
        self.close_reason = reason
        self._closed.set()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(SessionClosed(reason))
        self._pending.clear()
        self._writer.close()
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        log.info("smpp.session_closed", reason=reason)

    async def unbind(self, wait_seconds: float = 1.0) -> None:
        """Say goodbye (unbind, wait briefly for unbind_resp) and close."""
        if not self.closed:
            started = time.monotonic()
            with contextlib.suppress(SessionClosed, TimeoutError, ConnectionError, OSError):
                async with asyncio.timeout(wait_seconds):
                    await self.request(lambda seq: codec.response(codec.UNBIND, seq))
            log.debug("smpp.unbound", seconds=round(time.monotonic() - started, 3))
        self._shutdown("closed by us")
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.wait_closed()
