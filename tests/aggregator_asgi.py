"""The fake aggregator as a bare ASGI app, for load: run it under granian in its own
process so the peer costs little next to the gateway it measures. Receipts are batched
(as aggregators do) and posted to the gateway over one keep-alive client.

    AGG_DLR_URL=http://127.0.0.1:8000/v1/providers/bench/dlr AGG_DLR_SECRET=s \\
        granian --interface asgi --port 9100 tests.aggregator_asgi:app
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
from typing import Any

import httpx

from providers.http import SIGNATURE_HEADER, signature

_ids = itertools.count(1)
_pending: list[str] = []
_flusher: asyncio.Task[None] | None = None


async def _flush_receipts() -> None:
    url = os.environ["AGG_DLR_URL"]
    secret = os.environ.get("AGG_DLR_SECRET", "")
    async with httpx.AsyncClient(timeout=30) as client:
        while True:
            await asyncio.sleep(0.05)
            while _pending:
                batch = [_pending.pop() for _ in range(min(1000, len(_pending)))]
                body = json.dumps(
                    {"receipts": [{"id": i, "status": "delivered"} for i in batch]}
                ).encode()
                headers = {
                    "Content-Type": "application/json",
                    SIGNATURE_HEADER: signature(secret, body),
                }
                try:
                    await client.post(url, content=body, headers=headers)
                except httpx.HTTPError:
                    _pending.extend(batch)
                    break


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global _flusher
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    provider_id = f"agg-{next(_ids)}"
    if os.environ.get("AGG_DLR_URL"):
        if _flusher is None:
            _flusher = asyncio.get_running_loop().create_task(_flush_receipts())
        _pending.append(provider_id)
    body = json.dumps({"id": provider_id}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})
