"""The SMPP 3.4 upstream: one transceiver bind per adapter, kept up in the background.

The SMPP codec and GSM 03.38 alphabet are aiosmpplib's; the session (window, timers,
reconnects) is ours, in providers/smpp_session.py, because aiosmpplib's ESME engine has
no window, and ends the session on a vendor command_status or a receipt whose dates
carry seconds (see providers/smpp_codec.py).

Sending: each message is split and encoded (providers/smpp_codec.py), its parts go out
one after another, and parts of different messages share a window of outstanding
submit_sm (``SmppConfig.window``), paced to ``mps`` when set. A throttling answer
(ESME_RTHROTTLED, ESME_RMSGQFUL) halves the window and pauses every sender for
``throttle_pause_seconds``; the window then grows back by one per window's worth of
accepted submits. A dropped connection is answered by reconnecting with exponential
backoff; a submit that was in flight at the drop comes back as a TransientError, never
as accepted (the SMSC may still have taken it: SMPP cannot tell, so a retry can deliver
twice, but it is never counted twice).

Receipts come from deliver_sm with the receipt bit, are answered at once and reach the
sink in small batches. Any other deliver_sm is a mobile-originated part, handed as is
(not reassembled) to the ``inbound`` callback. Both are sorted and handed on by
providers/smpp_inbound.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import re
import time
from collections.abc import Callable, Sequence
from typing import Literal

import structlog

from providers import smpp_codec as codec
from providers import smpp_receipts as receipts
from providers.base import (
    Accepted,
    OutboundMessage,
    PermanentError,
    ReceiptSink,
    SendResult,
    TransientError,
)
from providers.smpp_config import SmppConfig
from providers.smpp_flow import Pacer, Window
from providers.smpp_inbound import InboundHandler, Incoming
from providers.smpp_session import BindRefused, Session, SessionClosed

log = structlog.get_logger("smsgw.providers.smpp")


class SmppBindError(Exception):
    """start() could not bind; the adapter keeps retrying in the background."""


_NON_DIGITS = re.compile(r"[^0-9]")
# The longest short code (core/numbers.py says the same of inbound addresses).
_SHORT_CODE_DIGITS = 8


class SmppProvider:
    def __init__(
        self,
        config: SmppConfig,
        *,
        name: str = "smpp",
        sink: ReceiptSink | None = None,
        inbound: InboundHandler | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self._window = Window(config.window, config.throttle_pause_seconds)
        self._pacer = Pacer(config.mps)
        self._multipart = receipts.MultipartReceipts()
        self._incoming = Incoming(
            provider=name,
            multipart=self._multipart,
            sink=sink,
            inbound=inbound,
            submit_id_base=config.submit_id_base,
            receipt_id_base=config.receipt_id_base,
        )
        self._reference = random.randrange(256)
        self._session: Session | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._attempted = asyncio.Event()
        self._last_error = "not connected yet"
        self._retry_at = 0.0
        self._closing = False
        self._deliverer: asyncio.Task[None] | None = None

    # -- connection -----------------------------------------------------------------

    async def start(self) -> None:
        """Connect and bind now. Raises SmppBindError if that fails (refused bind,
        unreachable SMSC); reconnecting goes on in the background all the same."""
        await self._started()
        if self._session is None:
            raise SmppBindError(self._last_error)

    async def _started(self) -> None:
        if self._closing:
            raise RuntimeError(f"smpp provider {self.name} is closed")
        if self._supervisor is None:
            self._supervisor = asyncio.create_task(self._keep_bound(), name=f"smpp-{self.name}")
            self._deliverer = asyncio.create_task(
                self._incoming.run(), name=f"smpp-{self.name}-dlr"
            )
        await self._attempted.wait()

    def _backoff(self, failures: int) -> float:
        ceiling = min(
            self.config.reconnect_cap_seconds,
            self.config.reconnect_base_seconds * 2.0 ** min(failures, 30),
        )
        return ceiling * random.uniform(0.5, 1.0)

    async def _keep_bound(self) -> None:
        failures = 0
        config = self.config
        while not self._closing:
            try:
                session = await Session.open(
                    host=config.host,
                    port=config.port,
                    system_id=config.system_id,
                    password=config.password,
                    system_type=config.system_type,
                    ton=0,
                    npi=0,
                    connect_timeout=config.connect_timeout_seconds,
                    on_deliver=self._incoming.on_deliver,
                    enquire_link_seconds=config.enquire_link_seconds,
                    response_timeout=config.submit_timeout_seconds,
                )
            except BindRefused as exc:
                self._last_error = str(exc)
            except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError) as exc:
                self._last_error = f"cannot reach {config.host}:{config.port}: {exc!r}"
            else:
                failures = 0
                self._session = session
                self._attempted.set()
                log.info("smpp.bound", provider=self.name, host=config.host, port=config.port)
                await session.wait_closed()
                self._session = None
                self._last_error = session.close_reason
                if self._closing:
                    return
            delay = self._backoff(failures)
            failures += 1
            self._retry_at = time.monotonic() + delay
            self._attempted.set()
            log.warning(
                "smpp.reconnecting", provider=self.name, error=self._last_error, delay=delay
            )
            await asyncio.sleep(delay)

    def _unavailable(self) -> TransientError:
        return TransientError(
            "smpp_unavailable",
            self._last_error,
            retry_after=max(0.0, self._retry_at - time.monotonic()) or None,
        )

    # -- sending --------------------------------------------------------------------

    async def send(self, batch: Sequence[OutboundMessage]) -> list[SendResult]:
        if not batch:
            return []
        await self._started()
        if self._session is None:
            return [self._unavailable() for _ in batch]
        return list(await asyncio.gather(*(self._send_one(message) for message in batch)))

    def _addresses(
        self, message: OutboundMessage
    ) -> tuple[tuple[str, int, int], tuple[str, int, int]]:
        config = self.config
        sender = message.sender or config.source_addr
        if sender.startswith("+") and not _NON_DIGITS.search(sender[1:]):
            source = (sender[1:], 1, 1)  # E.164: international, ISDN plan
        elif _NON_DIGITS.search(sender):
            source = (sender, 5, 0)  # alphanumeric
        elif len(sender) > _SHORT_CODE_DIGITS:
            source = (sender, 1, 1)  # an international number written without its +
        else:
            # A short code: national to its network, no numbering plan.
            ton = 3 if config.source_ton is None else config.source_ton
            npi = 0 if config.source_npi is None else config.source_npi
            source = (sender, ton, npi)
        destination = (message.to.removeprefix("+"), config.dest_ton, config.dest_npi)
        return source, destination

    async def _send_one(self, message: OutboundMessage) -> SendResult:
        self._reference = (self._reference + 1) % 256
        try:
            parts = codec.encode_parts(message.body, message.encoding, self._reference)
            source, destination = self._addresses(message)
            # Each part encoded once, here, where aiosmpplib's checks of addresses and
            # lengths refuse what cannot be sent; a submit only sets its sequence number.
            encoded = [
                codec.submit_sm(
                    1,
                    part,
                    source=source,
                    destination=destination,
                    registered_delivery=self.config.registered_delivery,
                )
                for part in parts
            ]
            pdus = [functools.partial(codec.with_sequence, pdu) for pdu in encoded]
        except (ValueError, UnicodeError) as exc:
            return PermanentError("smpp_unencodable", str(exc))
        multipart: receipts.Parts | None = None
        for build in pdus:
            result = await self._submit(build)
            if not isinstance(result, Accepted):
                # Parts already accepted stay with the SMSC; a retry sends all of them
                # again under a new reference, as every SMPP client must.
                if multipart is not None:
                    self._multipart.forget(multipart)
                return result
            if len(pdus) == 1:
                return result
            if multipart is None:
                multipart = receipts.Parts(result.provider_message_id, len(pdus))
            self._multipart.add(multipart, result.provider_message_id)
        # The message is known by its first part's id; the other parts' receipts fold
        # into it (smpp_receipts.MultipartReceipts).
        assert multipart is not None
        return Accepted(multipart.first_id)

    async def _submit(self, build: Callable[[int], bytes]) -> SendResult:
        taken_at = await self._window.acquire()
        outcome: Literal["accepted", "throttled", "other"] = "other"
        try:
            await self._pacer.wait()
            session = self._session
            if session is None or session.closed:
                return self._unavailable()
            try:
                pdu = await session.request(build)
            except ValueError as exc:  # aiosmpplib refused to encode it
                return PermanentError("smpp_unencodable", str(exc))
            except TimeoutError:
                return TransientError(
                    "smpp_timeout", f"no submit_sm_resp in {self.config.submit_timeout_seconds}s"
                )
            except SessionClosed as exc:
                return TransientError("smpp_connection_lost", str(exc) or "connection lost")
            status = pdu.status
            name = codec.status_name(status)
            if pdu.command_id == codec.SUBMIT_SM_RESP and status == codec.ESME_ROK:
                outcome = "accepted"
                message_id = codec.submit_sm_resp_id(pdu.body)
                return Accepted(
                    receipts.canonical_message_id(message_id, self.config.submit_id_base)
                )
            if status in codec.THROTTLING_STATUSES:
                outcome = "throttled"
                return TransientError(
                    "throttled", name, retry_after=self.config.throttle_pause_seconds or None
                )
            if status in codec.PERMANENT_STATUSES:
                return PermanentError(name, f"SMSC rejected the message: {name}")
            return TransientError(name, f"SMSC answered {name}")
        finally:
            self._window.release(taken_at, outcome)

    async def close(self) -> None:
        """Unbind, stop reconnecting and hand over the receipts still buffered."""
        self._closing = True
        if self._session is not None:
            await self._session.unbind()
        for task in (self._supervisor, self._deliverer):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._session is not None:  # bound just as we cancelled
            await self._session.unbind()
        if self._incoming.pending:
            with contextlib.suppress(Exception):
                await self._incoming.flush()
