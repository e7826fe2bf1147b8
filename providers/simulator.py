"""A simulated upstream: the embedded default, and the load source of benchmarks.

Every random choice is drawn from a generator seeded by (seed, message id, attempt), so
a run is reproducible whatever the batching, concurrency or process layout, and a retry
of the same message can fare differently from its first attempt.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from providers.base import (
    Accepted,
    OutboundMessage,
    PermanentError,
    Receipt,
    ReceiptSink,
    SendResult,
    TransientError,
)


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    seed: int | None = None
    # Latency per submit: `latency_ms` plus an exponential tail with mean `jitter_ms`,
    # the usual shape of a network round trip (a floor, then a long right tail).
    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    transient_rate: float = 0.0
    permanent_rate: float = 0.0
    dlr_delay_seconds: float = 1.0
    delivery_rate: float = 1.0

    def __post_init__(self) -> None:
        for name in ("transient_rate", "permanent_rate", "delivery_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"simulator {name} must be between 0 and 1, not {value}")
        if self.transient_rate + self.permanent_rate > 1.0:
            raise ValueError("simulator transient_rate + permanent_rate must not exceed 1")
        if min(self.latency_ms, self.latency_jitter_ms, self.dlr_delay_seconds) < 0:
            raise ValueError("simulator latencies and delays must not be negative")


class Simulator:
    def __init__(
        self, config: SimulatorConfig, *, sink: ReceiptSink | None = None, name: str = "simulator"
    ) -> None:
        self.name = name
        self.config = config
        self._sink = sink
        self._seed = (
            config.seed if config.seed is not None else random.SystemRandom().getrandbits(64)
        )

    def _draws(self, message: OutboundMessage) -> tuple[float, float, float, int]:
        """Four independent uniform draws from one hash: latency, failure, delivery, id.
        (A seeded random.Random per message cost a twentieth of a worker's CPU.)"""
        material = f"{self._seed}:{message.id}:{message.attempt}".encode()
        digest = hashlib.blake2b(material, digest_size=32).digest()
        scale = float(1 << 64)
        a, b, c, d = (int.from_bytes(digest[i : i + 8], "big") for i in range(0, 32, 8))
        return a / scale, b / scale, c / scale, d

    async def _send_one(self, message: OutboundMessage) -> tuple[SendResult, Receipt | None]:
        latency_draw, draw, delivery_draw, id_bits = self._draws(message)
        delay = self.config.latency_ms
        if self.config.latency_jitter_ms:
            # Exponential tail with the configured mean (inverse transform).
            delay += -self.config.latency_jitter_ms * math.log(1.0 - latency_draw)
        if delay:
            await asyncio.sleep(delay / 1000)
        if draw < self.config.permanent_rate:
            return PermanentError("sim_rejected", "simulated permanent rejection"), None
        if draw < self.config.permanent_rate + self.config.transient_rate:
            return TransientError("sim_unavailable", "simulated transient failure"), None
        provider_id = f"sim-{id_bits:016x}"
        delivered = delivery_draw < self.config.delivery_rate
        now = datetime.now(UTC)
        receipt = Receipt(
            provider=self.name,
            provider_message_id=provider_id,
            status="delivered" if delivered else "undelivered",
            error_code=None if delivered else "sim_unreachable",
            occurred_at=now + timedelta(seconds=self.config.dlr_delay_seconds),
            not_before=now + timedelta(seconds=self.config.dlr_delay_seconds),
        )
        return Accepted(provider_id), receipt

    async def send(self, batch: Sequence[OutboundMessage]) -> list[SendResult]:
        outcomes = await asyncio.gather(*(self._send_one(m) for m in batch))
        receipts = [receipt for _, receipt in outcomes if receipt is not None]
        if receipts and self._sink is not None:
            # Handed over before we answer, as a real SMSC may send its receipt before
            # the submit response is stored: the receipt path must cope with that.
            await self._sink(receipts)
        return [result for result, _ in outcomes]

    async def close(self) -> None:
        return None
