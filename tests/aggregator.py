"""A fake SMS aggregator on loopback that speaks providers/http.py's protocol for real:
it accepts submits (answering an id), throttles (429 + Retry-After), fails (503), rejects
(400) or hangs, as the test sets it, and posts signed delivery receipts back to the
gateway's DLR endpoint."""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

import httpx

from providers.http import SIGNATURE_HEADER, signature
from tests.httpd import LoopbackServer


@dataclass
class Aggregator:
    url: str = ""
    api_key: str = "agg-key"
    dlr_secret: str = "agg-dlr-secret"
    # accept | throttle | fail | reject | hang
    mode: str = "accept"
    retry_after: int = 1
    dlr_url: str | None = None
    dlr_delay: float = 0.05
    accepted: list[dict] = field(default_factory=list)
    refused: list[tuple[int, dict]] = field(default_factory=list)
    receipts_posted: int = 0
    latency: float = 0.0
    arrivals: list[float] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _post_receipt(self, provider_id: str) -> None:
        time.sleep(self.dlr_delay)
        assert self.dlr_url is not None
        body = json.dumps({"id": provider_id, "status": "DELIVRD"}).encode()
        response = httpx.post(
            self.dlr_url,
            content=body,
            headers={
                "Content-Type": "application/json",
                SIGNATURE_HEADER: signature(self.dlr_secret, body),
            },
            timeout=10,
        )
        response.raise_for_status()
        with self._lock:
            self.receipts_posted += 1


@contextlib.contextmanager
def running(**settings: object) -> Iterator[Aggregator]:
    aggregator = Aggregator(**settings)  # type: ignore[arg-type]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            payload = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
            if self.headers.get("Authorization") != f"Bearer {aggregator.api_key}":
                self._answer(401, {"error": "bad key"})
                return
            with aggregator._lock:
                aggregator.arrivals.append(time.monotonic())
                aggregator.in_flight += 1
                aggregator.max_in_flight = max(aggregator.max_in_flight, aggregator.in_flight)
            try:
                if aggregator.latency:
                    time.sleep(aggregator.latency)
                self._submit(payload)
            finally:
                with aggregator._lock:
                    aggregator.in_flight -= 1

        def _submit(self, payload: dict) -> None:
            mode = aggregator.mode
            if mode == "hang":
                time.sleep(30)
                return
            if mode == "throttle":
                aggregator.refused.append((429, payload))
                self._answer(
                    429, {"error": "slow down"}, {"Retry-After": str(aggregator.retry_after)}
                )
            elif mode == "fail":
                aggregator.refused.append((503, payload))
                self._answer(503, {"error": "down"})
            elif mode == "reject":
                aggregator.refused.append((400, payload))
                self._answer(400, {"error": "bad number"})
            else:
                with aggregator._lock:
                    provider_id = f"agg-{next(aggregator._ids)}"
                    aggregator.accepted.append({**payload, "id": provider_id})
                self._answer(200, {"id": provider_id})
                if aggregator.dlr_url:
                    threading.Thread(
                        target=aggregator._post_receipt, args=(provider_id,), daemon=True
                    ).start()

        def _answer(self, status: int, body: dict, headers: dict | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            return None

    server = LoopbackServer(("127.0.0.1", 0), Handler)
    aggregator.url = f"http://127.0.0.1:{server.server_address[1]}/messages"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield aggregator
    finally:
        server.shutdown()
        server.server_close()
