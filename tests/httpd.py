"""A real HTTP server on loopback that records what it receives (a tenant's callback
endpoint in tests). Its answers are scripted: a status per request, or a hang."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LoopbackServer(ThreadingHTTPServer):
    """A threading HTTP server for test peers on loopback."""

    daemon_threads = True
    # The gateway opens many connections at once (submits, callbacks); the default
    # backlog of 5 drops SYNs when the accept thread waits for the GIL, and a dropped
    # SYN is retried after 1 s, then 3 s: a healthy peer would look like a timeout.
    request_queue_size = 256

    def handle_error(self, request: object, client_address: object) -> None:
        # A peer that went away mid-request (a SIGKILLed worker, a timed-out client) is
        # part of the suite, not an error of this server.
        return None


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Endpoint:
    url: str
    received: list[Received] = field(default_factory=list)
    # Called with the request number (0-based); returns (status, seconds to stall first).
    script: Callable[[int], tuple[int, float]] = lambda n: (200, 0.0)
    # The body of every answer, and its content type.
    answer: bytes = b""
    answer_type: str = "text/plain"
    answer_headers: dict[str, str] = field(default_factory=dict)


@contextlib.contextmanager
def serve(
    script: Callable[[int], tuple[int, float]] | None = None, *, host: str = "127.0.0.1"
) -> Iterator[Endpoint]:
    endpoint = Endpoint(url="")
    if script is not None:
        endpoint.script = script
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            with lock:
                number = len(endpoint.received)
                endpoint.received.append(
                    Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                )
            status, stall = endpoint.script(number)
            if stall:
                time.sleep(stall)
            self.send_response(status)
            self.send_header("Content-Length", str(len(endpoint.answer)))
            if endpoint.answer:
                self.send_header("Content-Type", endpoint.answer_type)
            for name, value in endpoint.answer_headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(endpoint.answer)

        def log_message(self, format: str, *args: object) -> None:
            return None

    server = LoopbackServer((host, 0), Handler)
    endpoint.url = f"http://{host}:{server.server_address[1]}/hooks/sms"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield endpoint
    finally:
        server.shutdown()
        server.server_close()
