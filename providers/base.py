"""The contract between the dispatcher and an upstream.

A provider takes a batch and answers one result per message, in order: accepted (with
the upstream's id for it), a transient error (worth retrying), or a permanent error.
Delivery receipts arrive later and separately, through a ``ReceiptSink``.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    id: uuid.UUID
    to: str
    sender: str | None
    body: str
    encoding: Literal["GSM-7", "UCS-2"]
    segments: int
    # 1 for the first try; a provider may use it to vary behaviour on retries.
    attempt: int


@dataclass(frozen=True, slots=True)
class Accepted:
    provider_message_id: str


@dataclass(frozen=True, slots=True)
class TransientError:
    code: str
    message: str
    # Seconds the upstream asked us to wait (HTTP Retry-After, SMPP throttling).
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class PermanentError:
    code: str
    message: str


SendResult = Accepted | TransientError | PermanentError


@dataclass(frozen=True, slots=True)
class Receipt:
    """A delivery receipt as an upstream reports it."""

    provider: str
    provider_message_id: str
    status: Literal["delivered", "undelivered"]
    error_code: str | None
    occurred_at: datetime
    # Not to be applied before this instant (the simulator's receipt delay).
    not_before: datetime | None = None


ReceiptSink = Callable[[Sequence[Receipt]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class InboundPart:
    """A mobile-originated message, or one part of a long one, as an upstream hands it
    over: by text (HTTP webhook) or as the octets and data_coding of a deliver_sm (the
    SMS codings of providers/sms_text.py, decoded once a long message's parts are
    joined)."""

    provider: str
    source: str
    destination: str
    text: str | None
    received_at: datetime
    # The upstream's id for it: a repeat with the same id is stored once.
    provider_message_id: str | None = None
    data_coding: int | None = None
    payload: bytes | None = None
    # A part of a long message (UDH concatenation): its reference, the part count and
    # its number (1-based); None for a message in one piece.
    reference: int | None = None
    total: int | None = None
    number: int | None = None


class Provider(Protocol):
    name: str

    async def send(self, batch: Sequence[OutboundMessage]) -> list[SendResult]: ...

    async def close(self) -> None: ...
