"""A Python load generator process, for the phases wrk cannot drive: batch sends that
pause while the queue is over a cap (so ingest and delivery share the machine at the
rate delivery sustains, instead of ingest running away with the CPU), a fixed total,
and paced single sends (a small tenant's few messages a second).

    python -m ops.bench.loadgen batch --url U --keys F --seconds S [--inflight 4]
        [--size 1000] [--total N] [--max-backlog N --db-url URL [--tenant ID]]
    python -m ops.bench.loadgen paced --url U --keys F --seconds S --rate 5

Prints one JSON line when done: requests, accepted messages, and answers by status.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from pathlib import Path

import httpx
import psycopg
import uvloop

from ops.bench import backend_cpu
from ops.bench.bodies import json_body
from ops.bench.measure import DEPTH_SQL, QUEUE_DEPTH_SQL


class Backlog:
    """The queue's depth, read every ``every`` s by one task; ``over`` is cheap."""

    def __init__(self, db_url: str | None, cap: int, tenant: str | None, every: float) -> None:
        self.db_url, self.cap, self.tenant, self.every = db_url, cap, tenant, every
        self.depth = 0
        self.backend_seconds = 0.0
        self.read = asyncio.Event()  # the first reading is in

    def over(self) -> bool:
        return self.db_url is not None and self.depth >= self.cap

    async def watch(self, deadline: float) -> None:
        if self.db_url is None:
            self.read.set()
            return
        async with await psycopg.AsyncConnection.connect(self.db_url, autocommit=True) as conn:
            try:
                while time.monotonic() < deadline:
                    cursor = await (
                        conn.execute(DEPTH_SQL, {"tenant": self.tenant})
                        if self.tenant
                        else conn.execute(QUEUE_DEPTH_SQL)
                    )
                    row = await cursor.fetchone()
                    self.depth = int(row[0]) if row else 0
                    self.read.set()
                    await asyncio.sleep(self.every)
            finally:
                # The harness's, not the product's (ops/bench/backend_cpu.py).
                self.backend_seconds = backend_cpu.backend_seconds(conn.info.backend_pid)


async def batch(args: argparse.Namespace) -> dict[str, int]:
    keys = Path(args.keys).read_text().split()
    body = json_body(args.size, args.callback_url)
    deadline = time.monotonic() + args.seconds
    backlog = Backlog(args.db_url, args.max_backlog, args.tenant, args.poll)
    statuses: Counter[int] = Counter()
    sent = 0
    turn = 0

    async def sender(client: httpx.AsyncClient) -> None:
        nonlocal sent, turn
        while time.monotonic() < deadline and (args.total is None or sent < args.total):
            if backlog.over():
                await asyncio.sleep(0.02)
                continue
            key = keys[turn % len(keys)]
            turn += 1
            sent += args.size
            try:
                answer = await client.post(
                    "/v1/messages/batch",
                    content=body,
                    headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
                )
                statuses[answer.status_code] += 1
            except httpx.HTTPError:
                statuses[0] += 1

    watcher = asyncio.create_task(backlog.watch(deadline))
    first = asyncio.create_task(backlog.read.wait())
    await asyncio.wait({watcher, first}, return_when=asyncio.FIRST_COMPLETED)
    if watcher.done() and watcher.exception() is not None:
        raise RuntimeError("cannot read the backlog") from watcher.exception()
    # A new connection per batch: keep-alive connections stay with the server process that
    # accepted them, and four of them can all land on one of the API's processes.
    limits = httpx.Limits(max_connections=args.inflight, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=args.url, timeout=120, limits=limits) as client:
        await asyncio.gather(*(sender(client) for _ in range(args.inflight)))
    watcher.cancel()
    first.cancel()
    await asyncio.gather(watcher, return_exceptions=True)  # its backend's CPU read
    return {
        "requests": sum(statuses.values()),
        "accepted": statuses[202] * args.size,
        "backend_cpu_ms": round(backlog.backend_seconds * 1000),
        **{f"status_{code}": count for code, count in statuses.items()},
    }


async def paced(args: argparse.Namespace) -> dict[str, int]:
    keys = Path(args.keys).read_text().split()
    body = json_body(1)
    statuses: Counter[int] = Counter()
    started = time.monotonic()
    total = int(args.seconds * args.rate)

    async def one(client: httpx.AsyncClient, i: int) -> None:
        try:
            answer = await client.post(
                "/v1/messages",
                content=body,
                headers={
                    "Authorization": f"Bearer {keys[i % len(keys)]}",
                    "Content-Type": "application/json",
                },
            )
            statuses[answer.status_code] += 1
        except httpx.HTTPError:
            statuses[0] += 1

    async with httpx.AsyncClient(base_url=args.url, timeout=60) as client:
        tasks = []
        for i in range(total):
            # An open-loop schedule: a slow answer does not delay the next send.
            await asyncio.sleep(max(0.0, started + i / args.rate - time.monotonic()))
            tasks.append(asyncio.create_task(one(client, i)))
        await asyncio.gather(*tasks)
    return {
        "requests": sum(statuses.values()),
        "accepted": statuses[202],
        **{f"status_{code}": count for code, count in statuses.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["batch", "paced"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--keys", required=True, help="file of API keys, one a line")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--inflight", type=int, default=4)
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--callback-url", default=None, help="every message's callback_url")
    parser.add_argument("--total", type=int, default=None, help="stop after N messages")
    parser.add_argument("--max-backlog", type=int, default=0)
    parser.add_argument("--db-url", default=None, help="where to read the backlog")
    parser.add_argument("--tenant", default=None, help="count only this tenant's backlog")
    parser.add_argument("--poll", type=float, default=0.5, help="backlog reading interval")
    parser.add_argument("--rate", type=float, default=5.0, help="paced: messages per second")
    args = parser.parse_args()
    run = batch if args.mode == "batch" else paced
    result = uvloop.run(run(args))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
