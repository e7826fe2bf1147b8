"""The gateway's loopback peers in the fault suite, each switchable between behaving and
misbehaving while load flows:

- an SMS aggregator speaking providers/http.py's protocol, which can answer every other
  submit with a transient error (503) or hang; it posts signed delivery receipts back
  through the gateway's API and, as a real aggregator does, retries a receipt until the
  gateway takes it (so an API outage delays receipts but loses none);
- a tenant's callback endpoint, which can answer 500 or hang.

Both are threaded HTTP servers so that they keep answering whatever the load's event
loop is doing.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Literal

import httpx

from providers.http import SIGNATURE_HEADER, signature
from tests.httpd import LoopbackServer

AggregatorMode = Literal["ok", "flaky", "hang"]
CallbackMode = Literal["ok", "fail", "hang"]

# A hung request is answered (503/500) after this, or when the mode changes back.
HANG_LIMIT_SECONDS = 10.0
# The aggregator's receipts client: as patient as the suite's clients (see load.py).
RECEIPT_TIMEOUT_SECONDS = 5.0


@dataclass
class RequestStats:
    """What one kind of client saw of the API: outcomes and the longest single wait."""

    outcomes: Counter[str] = field(default_factory=Counter)
    max_wait: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, outcome: str, seconds: float) -> None:
        with self._lock:
            self.outcomes[outcome] += 1
            self.max_wait = max(self.max_wait, seconds)


def unclean_refusal(response: httpx.Response) -> str | None:
    """Why a 5xx answer of the gateway is not a clean refusal, or None when it is: a
    problem+json body with a code, and, since every fault here is one the gateway can
    name, 503 `unavailable` with Retry-After (a 500 means a fault reached an unhandled
    path)."""
    status = response.status_code
    if not response.headers.get("content-type", "").startswith("application/problem+json"):
        return f"{status} without a problem+json body"
    code = response.json().get("code")
    if status != 503:
        return f"{status} {code} where a 503 was due"
    if not response.headers.get("retry-after"):
        return "503 without Retry-After"
    return None


def _hang(still: threading.Event) -> None:
    """Hold the request while ``still`` is set, at most HANG_LIMIT_SECONDS."""
    deadline = time.monotonic() + HANG_LIMIT_SECONDS
    while still.is_set() and time.monotonic() < deadline:
        time.sleep(0.05)


class _Quiet(BaseHTTPRequestHandler):
    # Keep-alive, as the gateway's clients expect of a real peer.
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        return None

    def answer(self, status: int, body: bytes = b"") -> None:
        with contextlib.suppress(OSError):
            self._answer(status, body)

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))


@contextlib.contextmanager
def _serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[int]:
    server = LoopbackServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


class Aggregator:
    def __init__(self, *, latency: float = 0.03) -> None:
        self.api_key = "chaos-agg-key"
        self.dlr_secret = "chaos-agg-dlr-secret"
        self.url = ""
        self.dlr_url: str | None = None
        self.latency = latency
        self.mode: AggregatorMode = "ok"
        self._hanging = threading.Event()
        self._ids = itertools.count(1)
        self._submits = itertools.count()
        self._lock = threading.Lock()
        # reference (our message id) -> provider ids given for it
        self.accepted: dict[str, list[str]] = {}
        self.refused: Counter[str] = Counter()
        self._receipts: list[str] = []
        self.receipts_posted = 0
        self.receipt_stats = RequestStats()
        self.receipt_unclean: list[str] = []
        self._stop = threading.Event()

    def set_mode(self, mode: AggregatorMode) -> None:
        self.mode = mode
        if mode == "hang":
            self._hanging.set()
        else:
            self._hanging.clear()

    def upstream_duplicates(self) -> int:
        """Messages submitted (and accepted) more than once: at-least-once upstream."""
        with self._lock:
            return sum(len(ids) - 1 for ids in self.accepted.values() if len(ids) > 1)

    def _submit(self, handler: _Quiet) -> None:
        payload = json.loads(handler.body())
        if handler.headers.get("Authorization") != f"Bearer {self.api_key}":
            handler.answer(401, b'{"error": "bad key"}')
            return
        if self.latency:
            time.sleep(self.latency)
        mode = self.mode
        if mode == "hang":
            with self._lock:
                self.refused["hang"] += 1
            _hang(self._hanging)
            handler.answer(503, b'{"error": "hung"}')
            return
        if mode == "flaky" and next(self._submits) % 2 == 0:
            with self._lock:
                self.refused["503"] += 1
            handler.answer(503, b'{"error": "try again"}')
            return
        with self._lock:
            provider_id = f"agg-{next(self._ids)}"
            self.accepted.setdefault(str(payload["reference"]), []).append(provider_id)
            self._receipts.append(provider_id)
        handler.answer(200, json.dumps({"id": provider_id}).encode())

    def _post_receipts(self) -> None:
        """Posts pending receipts in batches, retrying each batch until the API takes it."""
        with httpx.Client(timeout=RECEIPT_TIMEOUT_SECONDS) as client:
            while not self._stop.is_set():
                with self._lock:
                    batch, self._receipts = self._receipts[:200], self._receipts[200:]
                if not batch or self.dlr_url is None:
                    with self._lock:
                        self._receipts[:0] = batch
                    self._stop.wait(0.05)
                    continue
                body = json.dumps(
                    {"receipts": [{"id": i, "status": "DELIVRD"} for i in batch]}
                ).encode()
                headers = {
                    "Content-Type": "application/json",
                    SIGNATURE_HEADER: signature(self.dlr_secret, body),
                }
                started = time.monotonic()
                try:
                    response = client.post(self.dlr_url, content=body, headers=headers)
                    outcome = str(response.status_code)
                    if response.status_code >= 500:
                        problem = unclean_refusal(response)
                        if problem:
                            self.receipt_unclean.append(f"receipts: {problem}")
                except httpx.TimeoutException:
                    outcome = "timeout"
                except httpx.TransportError:
                    outcome = "conn"
                self.receipt_stats.record(outcome, time.monotonic() - started)
                if outcome.startswith("2"):
                    with self._lock:
                        self.receipts_posted += len(batch)
                    continue
                with self._lock:
                    self._receipts[:0] = batch
                self._stop.wait(0.2)

    @contextlib.contextmanager
    def running(self) -> Iterator[Aggregator]:
        peer = self

        class Handler(_Quiet):
            def do_POST(self) -> None:
                peer._submit(self)

        poster = threading.Thread(target=self._post_receipts, daemon=True)
        with _serve(Handler) as port:
            self.url = f"http://127.0.0.1:{port}/messages"
            poster.start()
            try:
                yield self
            finally:
                self.set_mode("ok")
                self._stop.set()
                poster.join(timeout=10)


class CallbackEndpoint:
    def __init__(self) -> None:
        self.url = ""
        self.mode: CallbackMode = "ok"
        self._hanging = threading.Event()
        self._lock = threading.Lock()
        # (message id, status) -> callbacks answered 200
        self.delivered: Counter[tuple[str, str]] = Counter()
        self.refused: Counter[str] = Counter()

    def set_mode(self, mode: CallbackMode) -> None:
        self.mode = mode
        if mode == "hang":
            self._hanging.set()
        else:
            self._hanging.clear()

    def heard(self, status: str) -> set[str]:
        """Ids of the messages whose ``status`` callback was answered 200."""
        with self._lock:
            return {mid for (mid, s) in self.delivered if s == status}

    def _receive(self, handler: _Quiet) -> None:
        payload = json.loads(handler.body())
        mode = self.mode
        if mode == "hang":
            with self._lock:
                self.refused["hang"] += 1
            _hang(self._hanging)
            handler.answer(500)
            return
        if mode == "fail":
            with self._lock:
                self.refused["500"] += 1
            handler.answer(500)
            return
        with self._lock:
            self.delivered[(str(payload["id"]), str(payload["status"]))] += 1
        handler.answer(200)

    @contextlib.contextmanager
    def running(self) -> Iterator[CallbackEndpoint]:
        peer = self

        class Handler(_Quiet):
            def do_POST(self) -> None:
                peer._receive(self)

        with _serve(Handler) as port:
            self.url = f"http://127.0.0.1:{port}/hooks/sms"
            try:
                yield self
            finally:
                self.set_mode("ok")
