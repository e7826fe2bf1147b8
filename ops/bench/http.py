"""HTTP adapter throughput against the fake aggregator of the tests, served by granian in
its own process (tests/aggregator_asgi.py). Pushes N messages through
``HttpProvider.send`` in batches of 200, as dispatcher turns do, for several windows,
and prints accepted messages per second. No database: this is the adapter alone.

    python -m ops.bench.http [--messages 5000] [--windows 1,10,50] [--turns 1]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import time
import uuid

import httpx

from ops.bench import load
from providers.base import Accepted, OutboundMessage
from providers.http import HttpConfig, HttpProvider
from smsgw.processes import free_port

BATCH = 200


async def run(url: str, messages: int, window: int, turns: int) -> float:
    provider = HttpProvider(HttpConfig(url=url, concurrency=window), name="bench")
    batches = [
        [
            OutboundMessage(uuid.uuid4(), "+14155552671", None, "bench", "GSM-7", 1, 1)
            for _ in range(min(BATCH, messages - start))
        ]
        for start in range(0, messages, BATCH)
    ]
    queue: asyncio.Queue[list[OutboundMessage]] = asyncio.Queue()
    for batch in batches:
        queue.put_nowait(batch)
    accepted = 0

    async def turn() -> None:
        nonlocal accepted
        while not queue.empty():
            results = await provider.send(queue.get_nowait())
            accepted += sum(isinstance(r, Accepted) for r in results)

    started = time.perf_counter()
    await asyncio.gather(*(turn() for _ in range(turns)))
    elapsed = time.perf_counter() - started
    await provider.close()
    assert accepted == messages, f"only {accepted} of {messages} accepted"
    return messages / elapsed


async def main_async(args: argparse.Namespace) -> None:
    port = free_port()
    peer = subprocess.Popen(
        load.asgi_peer("tests.aggregator_asgi:app", port),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/messages"
    try:
        for _ in range(100):
            try:
                httpx.post(url, json={}, timeout=1)
                break
            except httpx.HTTPError:
                await asyncio.sleep(0.05)
        print(f"{args.messages} messages, batches of {BATCH}, {args.turns} turn(s) at once")
        print(f"{'window':>8}{'msg/s':>10}")
        for window in (int(w) for w in args.windows.split(",")):
            rate = await run(url, args.messages, window, args.turns)
            print(f"{window:>8}{rate:>10.0f}")
    finally:
        peer.terminate()
        peer.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--windows", default="1,10,50")
    parser.add_argument("--turns", type=int, default=1)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
