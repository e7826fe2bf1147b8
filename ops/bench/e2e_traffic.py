"""The traffic of ops/bench/e2e.py and what it reads back: batches of 1,000 from this
process, single sends from wrk, and the counts and latencies of the messages sent."""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import psycopg

from ops.bench import load
from ops.bench.bodies import json_body


async def ingest(client: httpx.AsyncClient, keys: list[str], total: int, inflight: int) -> None:
    per_request = 1000
    requests = [
        (keys[i % len(keys)], min(per_request, total - i * per_request))
        for i in range((total + per_request - 1) // per_request)
    ]
    gate = asyncio.Semaphore(inflight)

    async def one(key: str, size: int) -> None:
        body = {"messages": [{"to": "+14155552671", "body": "bench"}] * size}
        async with gate:
            response = await client.post(
                "/v1/messages/batch", json=body, headers={"Authorization": f"Bearer {key}"}
            )
            response.raise_for_status()

    await asyncio.gather(*(one(key, size) for key, size in requests))


def single_ingest(port: int, keys: list[str], seconds: float) -> tuple[float, float, float]:
    """Single sends from wrk for ``seconds``: accepted msg/s, p50 and p99 latency (ms)."""
    with tempfile.TemporaryDirectory(prefix="smsgw-e2e-wrk-") as work:
        workdir = Path(work)
        key_file = workdir / "keys"
        key_file.write_text("".join(f"{k}\n" for k in keys))
        proc = load.start_wrk(
            url=f"http://127.0.0.1:{port}/v1/messages",
            keys=key_file,
            body=json_body(1),
            connections=64,
            seconds=seconds,
            workdir=workdir,
            tag="single",
        )
        result = load.wrk_result(proc)
    accepted = result.requests - result.status_errors
    return accepted / result.seconds, result.p50_ms, result.p99_ms


def count(db_url: str, query: str) -> int:
    with psycopg.connect(db_url, autocommit=True) as conn:
        row = conn.execute(query).fetchone()
    return int(row[0]) if row else 0


def wait_sent(db_url: str, expected: int, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    with psycopg.connect(db_url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute("SELECT count(*) FROM messages WHERE sent_at IS NOT NULL").fetchone()
            if row and row[0] >= expected:
                return time.monotonic()
            time.sleep(0.05)
    raise SystemExit(f"not all {expected} messages were sent within {timeout} s")


def latencies(db_url: str, since_count: int) -> tuple[float, float]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT extract(epoch FROM sent_at - created_at) FROM messages"
            " WHERE sent_at IS NOT NULL ORDER BY created_at OFFSET %s",
            (since_count,),
        ).fetchall()
    values = sorted(float(r[0]) for r in rows)
    return statistics.median(values), values[int(len(values) * 0.99) - 1]
