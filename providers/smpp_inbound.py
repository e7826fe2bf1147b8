"""What the SMSC sends the SMPP adapter: every deliver_sm, answered by the session
already, sorted here. Receipts (deliver_sm with the receipt bit) reach the sink in small
batches, the receipts of a multi-part message's parts folded into one; any other
deliver_sm is a mobile-originated part, handed as is (not reassembled) to the
``inbound`` callback."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from providers import smpp_codec as codec
from providers import smpp_receipts as receipts
from providers import sms_text
from providers.base import InboundPart, Receipt, ReceiptSink

log = structlog.get_logger("smsgw.providers.smpp")


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """One deliver_sm that is not a receipt: a mobile-originated message or a part of one.

    Parts of a long message arrive separately, each with its ``concatenation`` (UDH
    reference, total, number); reassembling them is the receiver's business."""

    provider: str
    source: str
    destination: str
    data_coding: int
    # Decoded for GSM-7, UCS-2, ASCII and Latin-1; None for binary or unknown codings.
    text: str | None
    payload: bytes
    concatenation: codec.Concatenation | None
    received_at: datetime

    def as_part(self) -> InboundPart:
        """As the gateway takes any upstream's inbound message: the octets and the UDH
        concatenation it came with (core/inbound.py reassembles the parts)."""
        parts = self.concatenation
        return InboundPart(
            provider=self.provider,
            source=self.source,
            destination=self.destination,
            text=self.text,
            received_at=self.received_at,
            data_coding=self.data_coding,
            payload=self.payload,
            reference=None if parts is None else parts.reference,
            total=None if parts is None else parts.total,
            number=None if parts is None else parts.number,
        )


InboundHandler = Callable[[InboundMessage], Awaitable[None]]


class Incoming:
    """The deliver_sm of one adapter, read on the session's read loop and handed on by
    ``run()``, a task of the adapter's own."""

    def __init__(
        self,
        *,
        provider: str,
        multipart: receipts.MultipartReceipts,
        sink: ReceiptSink | None,
        inbound: InboundHandler | None,
        submit_id_base: int | None,
        receipt_id_base: int | None,
    ) -> None:
        self.name = provider
        self._multipart = multipart
        self._sink = sink
        self._inbound = inbound
        self._submit_id_base = submit_id_base
        self._receipt_id_base = receipt_id_base
        # Receipts as read, then folded (multi-part) and waiting for the sink.
        self._incoming: list[Receipt] = []
        self._outgoing: list[Receipt] = []
        self._mobile: list[InboundMessage] = []
        self._delivery_ready = asyncio.Event()

    @property
    def pending(self) -> bool:
        """Receipts or mobile-originated parts read but not yet handed on."""
        return bool(self._incoming or self._outgoing or self._mobile)

    def on_deliver(self, body: bytes) -> None:
        """Called by the session for every deliver_sm, already answered; never raises:
        whatever one SMSC sends must not end the session that the others share."""
        try:
            self._take_deliver(codec.parse_deliver_sm(body))
        except Exception as exc:
            log.warning("smpp.deliver_sm_unreadable", provider=self.name, error=repr(exc))

    def _take_deliver(self, deliver: codec.DeliverSm) -> None:
        now = datetime.now(UTC)
        if deliver.is_receipt:
            receipt = receipts.from_deliver_sm(
                deliver,
                provider=self.name,
                submit_id_base=self._submit_id_base,
                receipt_id_base=self._receipt_id_base,
                received_at=now,
            )
            if receipt is None:
                readable = receipts.parse_receipt(deliver) is not None
                (log.debug if readable else log.warning)(
                    "smpp.receipt_not_final" if readable else "smpp.receipt_unreadable",
                    provider=self.name,
                    text=deliver.short_message[:160],
                )
            else:
                self._incoming.append(receipt)
                self._delivery_ready.set()
            return
        concatenation, payload = (
            codec.split_udh(deliver.short_message)
            if deliver.esm_class & codec.ESM_CLASS_UDHI
            else (None, deliver.short_message)
        )
        if self._inbound is not None:
            self._mobile.append(
                InboundMessage(
                    provider=self.name,
                    source=deliver.source,
                    destination=deliver.destination,
                    data_coding=deliver.data_coding,
                    text=sms_text.decode_text(deliver.data_coding, payload),
                    payload=payload,
                    concatenation=concatenation,
                    received_at=now,
                )
            )
            self._delivery_ready.set()

    async def run(self) -> None:
        """Hands receipts to the sink in batches and MO parts to ``inbound``, in order of
        arrival, off the session's read loop so a slow sink does not stall submits."""
        while True:
            await self._delivery_ready.wait()
            self._delivery_ready.clear()
            await self.flush()

    async def flush(self) -> None:
        # Folded here, not as read: the read loop can see a part's receipt before the
        # sender has noted that part's id, never before this task runs after it.
        incoming, self._incoming = self._incoming, []
        self._outgoing += [r for r in map(self._multipart.fold, incoming) if r is not None]
        mobile, self._mobile = self._mobile, []
        if self._outgoing and self._sink is not None:
            try:
                await self._sink(self._outgoing)
            except Exception:
                # Already acknowledged to the SMSC: keep them and try again shortly.
                log.exception(
                    "smpp.receipt_sink_failed", provider=self.name, count=len(self._outgoing)
                )
                await asyncio.sleep(1.0)
                self._delivery_ready.set()
            else:
                self._outgoing = []
        else:
            self._outgoing = []
        for message in mobile:
            if self._inbound is None:
                break
            try:
                await self._inbound(message)
            except Exception:
                log.exception("smpp.inbound_failed", provider=self.name, source=message.source)
