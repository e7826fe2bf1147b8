"""SMPP adapter throughput against the loopback SMSC of the tests (tests/providers/smsc.py).

For each window size, starts the SMSC on 127.0.0.1, binds one SmppProvider and pushes N
single-part messages through ``send`` in batches of 200, one batch after another, as a
dispatcher turn does. Prints accepted messages per second (first submit_sm to last
submit_sm_resp) and how long the delivery receipts took to reach the sink after that.
``--latency-ms`` delays each submit_sm_resp, standing in for the round trip to a real
SMSC, which is where the window pays off.

    python -m ops.bench.smpp [--messages 20000] [--windows 1,10,50] [--latency-ms 0]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
import uuid
from collections.abc import Sequence

import structlog

from providers.base import Accepted, OutboundMessage, Receipt
from providers.smpp import SmppProvider
from providers.smpp_config import SmppConfig
from tests.providers.smsc import Smsc

BATCH = 200


async def run(messages: int, window: int, latency_ms: float) -> tuple[float, float]:
    smsc = Smsc(response_delay=latency_ms / 1000, receipt_delay=0.0)
    await smsc.start()
    received = 0
    all_in = asyncio.Event()

    async def sink(receipts: Sequence[Receipt]) -> None:
        nonlocal received
        received += len(receipts)
        if received >= messages:
            all_in.set()

    provider = SmppProvider(
        SmppConfig(
            host="127.0.0.1",
            port=smsc.port,
            system_id=smsc.system_id,
            password=smsc.password,
            window=window,
        ),
        sink=sink,
    )
    await provider.start()
    batch = [
        OutboundMessage(
            id=uuid.uuid4(),
            to=f"+4477009{i:05d}",
            sender="ACME",
            body=f"Your code is {i:06d}",
            encoding="GSM-7",
            segments=1,
            attempt=1,
        )
        for i in range(messages)
    ]
    started = time.perf_counter()
    for start in range(0, messages, BATCH):
        results = await provider.send(batch[start : start + BATCH])
        assert all(isinstance(r, Accepted) for r in results), results
    sent = time.perf_counter()
    await asyncio.wait_for(all_in.wait(), 120)
    receipts_done = time.perf_counter()
    await provider.close()
    await smsc.stop()
    return messages / (sent - started), receipts_done - sent


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--windows", default="1,10,50")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args()
    # The adapter's bind/unbind lines would drown the figures.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    print(
        f"{args.messages} messages, batches of {BATCH}, "
        f"submit_sm_resp latency {args.latency_ms:g} ms"
    )
    for window in (int(w) for w in args.windows.split(",")):
        rate, receipts_after = await run(args.messages, window, args.latency_ms)
        print(
            f"window {window:>3}: {rate:>8.0f} msg/s accepted; "
            f"all receipts in {receipts_after:.2f} s later"
        )


if __name__ == "__main__":
    asyncio.run(main())
