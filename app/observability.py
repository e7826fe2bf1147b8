"""Request logging and HTTP metrics: one observation per request and a log line with its
id, route template, status and duration: at INFO for a refusal (4xx), a fault (5xx) or
an answer slower than a second, at DEBUG for the rest. At the mission's peak a line per
accepted send would be a billion lines a day repeating the messages table, and writing it
was ~9% of the API's CPU on `POST /v1/messages` (py-spy, in-process); every request is
counted and timed in /metrics whatever the level. SMSGW_LOG_LEVEL=DEBUG logs them all.

Deliberately not Litestar's StructlogPlugin, which logs bodies and headers by default:
bodies hold message text and headers hold API keys. Metrics are labelled by the route
template (``/v1/messages/{message_id}``), never the raw path, so ids cannot explode the
number of series.
"""

from __future__ import annotations

import itertools
import os
import re
import time
import uuid
from typing import Any

import structlog
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import CollectorRegistry, Counter, Histogram

log = structlog.get_logger("smsgw.api")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
BOUND_PATH_PARAMS = ("message_id", "tenant_id")
# An answer this slow is logged at INFO even when it succeeded.
SLOW_REQUEST_SECONDS = 1.0
# From 1 ms (an idempotent replay) to 10 s (a batch of 1,000 on a loaded server).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class HttpMetrics:
    """This process's HTTP metrics, in a registry of its own (one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "smsgw_http_requests",
            "HTTP requests answered, by route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "smsgw_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

        # The labelled series of each (method, route, status): looking them up through
        # labels() on every request cost more than the observation itself.
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        series = self._series.get((method, route, status))
        if series is None:
            series = (
                self.requests.labels(method, route, str(status)),
                self.latency.labels(method, route),
            )
            self._series[(method, route, status)] = series
        count, latency = series
        count.inc()
        latency.observe(seconds)


# Request ids: this process's random prefix and a counter; unique across processes
# without a call for random bytes on every request. Drawn again in a forked child (the
# server's worker processes), which would otherwise repeat its parent's.
_process_prefix = ""
_request_count = itertools.count(1)


def _new_process() -> None:
    global _process_prefix, _request_count
    _process_prefix = uuid.uuid4().hex[:16]
    _request_count = itertools.count(1)


_new_process()
os.register_at_fork(after_in_child=_new_process)


def new_request_id() -> str:
    return f"{_process_prefix}{next(_request_count):016x}"


def request_observer(metrics: HttpMetrics) -> Any:
    """The ASGI middleware factory that logs and measures every routed request."""

    def middleware_factory(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            supplied = next(
                (v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), ""
            )
            request_id = supplied if _REQUEST_ID.match(supplied) else new_request_id()
            structlog.contextvars.clear_contextvars()
            structlog.contextvars.bind_contextvars(request_id=request_id)
            # Routing ran before this middleware: ids in the path are bound too, so every
            # line of a request about one message (or tenant) carries its id.
            params = scope.get("path_params") or {}
            structlog.contextvars.bind_contextvars(
                **{k: str(params[k]) for k in BOUND_PATH_PARAMS if k in params}
            )
            started = time.perf_counter()
            status = 500

            async def send_with_id(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    headers: list[Any] = list(message.get("headers", []))
                    headers.append((b"x-request-id", request_id.encode()))
                    message["headers"] = headers
                await send(message)

            try:
                await app(scope, receive, send_with_id)
            finally:
                route = scope.get("path_template") or "unmatched"
                method = scope.get("method", "")
                elapsed = time.perf_counter() - started
                metrics.observe(method, route, status, elapsed)
                emit = log.info if status >= 400 or elapsed >= SLOW_REQUEST_SECONDS else log.debug
                emit(
                    "http.request",
                    method=method,
                    route=route,
                    status=status,
                    duration_ms=round(elapsed * 1000, 2),
                )
                structlog.contextvars.clear_contextvars()

        return middleware

    return middleware_factory
