"""The soak's load generator (ops/load/soak.py), run in a process of its own: requests of
each kind on a schedule, open loop over keep-alive connections (a slow answer delays no
later request unless every connection is busy), and what each stream of them got back."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from array import array
from collections import Counter
from dataclasses import dataclass
from multiprocessing.connection import Connection as Pipe
from typing import Any

import uvloop

from ops.load import SEND_BODY, Connection, classify, percentile, raise_nofile, request_bytes


@dataclass(frozen=True)
class Stream:
    """Requests of one kind, paced: request ``i`` is due at ``start + i / rate``."""

    name: str
    requests: list[bytes]  # one per tenant, taken in turn
    per_request: int  # messages in each
    rate: float  # requests per second
    total: int
    connections: int


@dataclass(frozen=True)
class Plan:
    host: str
    port: int
    streams: list[Stream]
    timeout: float


def plan_for(host: str, port: int, keys: list[str], args: argparse.Namespace) -> tuple[Plan, int]:
    """Single sends for ``--singles`` of ``--rate``, batches of ``--batch`` for the rest;
    returns the plan and the messages it sends."""
    hostport = f"{host}:{port}"
    seconds = args.minutes * 60
    single_rate = args.rate * args.singles
    batch_rate = (args.rate - single_rate) / args.batch
    streams = []
    if single_rate > 0:
        streams.append(
            Stream(
                name="single",
                requests=[
                    request_bytes("POST", "/v1/messages", host=hostport, key=k, body=SEND_BODY)
                    for k in keys
                ],
                per_request=1,
                rate=single_rate,
                total=round(single_rate * seconds),
                connections=args.connections,
            )
        )
    if batch_rate > 0:
        body = json.dumps({"messages": [json.loads(SEND_BODY)] * args.batch}).encode()
        streams.append(
            Stream(
                name=f"batch of {args.batch}",
                requests=[
                    request_bytes("POST", "/v1/messages/batch", host=hostport, key=k, body=body)
                    for k in keys
                ],
                per_request=args.batch,
                rate=batch_rate,
                total=round(batch_rate * seconds),
                connections=max(2, args.connections // 4),
            )
        )
    plan = Plan(host=host, port=port, streams=streams, timeout=args.timeout)
    return plan, sum(s.total * s.per_request for s in streams)


async def send_stream(plan: Plan, stream: Stream, started: float) -> dict[str, Any]:
    """Sends ``stream.total`` requests on its schedule (open loop over its connections)."""
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    latencies = array("d")
    state = {"next": 0, "accepted": 0, "item_errors": 0, "max_lag": 0.0, "reconnects": 0}

    async def sender() -> None:
        conn: Connection | None = await Connection.open(plan.host, plan.port)
        while state["next"] < stream.total:
            i = int(state["next"])
            state["next"] = i + 1
            wait = started + i / stream.rate - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            else:
                state["max_lag"] = max(state["max_lag"], -wait)
            began = time.perf_counter()
            try:
                if conn is None:
                    conn = await Connection.open(plan.host, plan.port)
                    state["reconnects"] += 1
                status, body = await asyncio.wait_for(
                    conn.send(stream.requests[i % len(stream.requests)]), plan.timeout
                )
            except (OSError, TimeoutError, ValueError) as exc:
                errors[classify(exc)] += 1
                if conn is not None:
                    conn.close()
                conn = None
                continue
            latencies.append(time.perf_counter() - began)
            statuses[status] += 1
            if status == 202 and stream.per_request == 1:
                state["accepted"] += 1
            elif status == 202:  # a batch says which of its items it took
                answer = json.loads(body)
                state["accepted"] += len(answer["messages"])
                state["item_errors"] += len(answer["errors"])
        if conn is not None:
            conn.close()

    await asyncio.gather(*(sender() for _ in range(stream.connections)))
    ordered = sorted(latencies)
    return {
        "planned": stream.total,
        "per_request": stream.per_request,
        "requests": sum(statuses.values()) + sum(errors.values()),
        "accepted": int(state["accepted"]),
        "item_errors": int(state["item_errors"]),
        "statuses": {str(k): v for k, v in statuses.items()},
        "errors": dict(errors),
        "reconnects": int(state["reconnects"]),
        "seconds": time.monotonic() - started,
        "max_lag_s": state["max_lag"],
        "p50_ms": percentile(ordered, 0.50) * 1000,
        "p99_ms": percentile(ordered, 0.99) * 1000,
        "max_ms": (ordered[-1] if ordered else 0.0) * 1000,
    }


async def send_paced(plan: Plan) -> dict[str, Any]:
    started = time.monotonic()
    results = await asyncio.gather(*(send_stream(plan, s, started) for s in plan.streams))
    return {
        "seconds": time.monotonic() - started,
        "streams": {s.name: r for s, r in zip(plan.streams, results, strict=True)},
    }


def generator(plan: Plan, pipe: Pipe) -> None:
    raise_nofile()
    pipe.send(uvloop.run(send_paced(plan)))
    pipe.close()
