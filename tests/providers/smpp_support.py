"""What the SMPP adapter tests share: a receipt sink, messages, the adapter's settings for
the loopback SMSC, and sending as the dispatcher does."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from core import segments
from providers.base import Accepted, OutboundMessage, Receipt, TransientError
from providers.smpp import SmppProvider
from providers.smpp_config import SmppConfig
from tests.providers.smsc import Smsc


class Sink:
    def __init__(self) -> None:
        self.receipts: list[Receipt] = []
        self._changed = asyncio.Event()

    async def __call__(self, receipts: Sequence[Receipt]) -> None:
        self.receipts.extend(receipts)
        self._changed.set()

    async def wait_for(self, count: int) -> list[Receipt]:
        async with asyncio.timeout(10):
            while len(self.receipts) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.receipts


def outbound(
    body: str = "hello", to: str = "+447700900001", sender: str = "ACME"
) -> OutboundMessage:
    count = segments.count(body)
    return OutboundMessage(
        id=uuid.uuid4(),
        to=to,
        sender=sender,
        body=body,
        encoding=count.encoding,
        segments=count.segments,
        attempt=1,
    )


def settings(smsc: Smsc, **overrides: Any) -> SmppConfig:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": smsc.port,
        "system_id": "smsgw",
        "password": "secret",
        "system_type": "gw",
        "reconnect_base_seconds": 0.01,
        "reconnect_cap_seconds": 0.1,
        "throttle_pause_seconds": 0.002,
        "submit_timeout_seconds": 5.0,
    }
    return SmppConfig(**{**values, **overrides})


async def send_until_accepted(
    provider: SmppProvider, messages: list[OutboundMessage], *, batch: int = 200
) -> tuple[dict[uuid.UUID, str], Counter[str]]:
    """Send as the dispatcher does: batches, transient failures sent again later."""
    accepted: dict[uuid.UUID, str] = {}
    transient: Counter[str] = Counter()
    pending = messages
    for _ in range(100):
        if not pending:
            break
        retry: list[OutboundMessage] = []
        for start in range(0, len(pending), batch):
            chunk = pending[start : start + batch]
            for message, result in zip(chunk, await provider.send(chunk), strict=True):
                if isinstance(result, Accepted):
                    assert message.id not in accepted, "accepted twice"
                    accepted[message.id] = result.provider_message_id
                else:
                    assert isinstance(result, TransientError), result
                    transient[result.code] += 1
                    retry.append(replace(message, attempt=message.attempt + 1))
        if retry:
            await asyncio.sleep(0.01)
        pending = retry
    assert not pending
    return accepted, transient
