"""A JSON-over-HTTP aggregator (httpx, pooled connections, one request per message).

Submit: ``POST <url>`` with ``Authorization: Bearer <api_key>`` and
``{"to", "from", "text", "reference"}``; a 2xx answers ``{"id": "<their id>"}``.
Receipts come back to ``POST /v1/providers/<name>/dlr`` signed with the shared
``dlr_secret`` (see ``parse_receipts``).

Errors are classed as an upstream means them: 5xx, 408, timeouts and connection
failures are transient; 429 is throttling (transient, honouring Retry-After); any other
4xx is the message's fault and permanent.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from providers.base import (
    Accepted,
    InboundPart,
    OutboundMessage,
    PermanentError,
    Receipt,
    SendResult,
    TransientError,
)

SIGNATURE_HEADER = "X-Signature"
DELIVERED = frozenset({"delivered", "delivrd"})
UNDELIVERED = frozenset({"undelivered", "undeliv", "failed", "expired", "rejected", "deleted"})


@dataclass(frozen=True, slots=True)
class HttpConfig:
    url: str
    api_key: str = ""
    dlr_secret: str = ""
    # Requests in flight at once from one worker (the window).
    concurrency: int = 20
    timeout_seconds: float = 5.0

    def __post_init__(self) -> None:
        if not _absolute_http_url(self.url):
            # Refused when the provider is configured, not at its first send.
            raise ValueError(
                "http provider url must be an absolute http(s) URL with a host (and a"
                " port from 1 to 65535 if one is given), without spaces"
            )
        if self.concurrency < 1 or self.timeout_seconds <= 0:
            raise ValueError("http provider concurrency and timeout must be positive")


def _absolute_http_url(url: str) -> bool:
    if not url.isprintable() or any(c.isspace() for c in url):
        return False  # urlsplit drops tabs and newlines without a word; httpx refuses them
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a port that is not a number or out of range
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and port != 0


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def classify(response: httpx.Response) -> SendResult:
    status = response.status_code
    if 200 <= status < 300:
        try:
            provider_id = response.json()["id"]
        except (ValueError, KeyError, TypeError):
            return TransientError("bad_response", "2xx without a JSON id")
        return Accepted(str(provider_id))
    detail = response.text[:200]
    if status == 429:
        return TransientError(
            "throttled",
            f"HTTP 429: {detail}",
            retry_after=_retry_after(response.headers.get("retry-after")) or 1.0,
        )
    if status >= 500 or status == 408:
        return TransientError(f"http_{status}", f"HTTP {status}: {detail}")
    return PermanentError(f"http_{status}", f"HTTP {status}: {detail}")


class HttpProvider:
    """One keep-alive connection per lane, ``concurrency`` lanes.

    Lanes rather than one pooled client: httpx's pool gets slower per request as more
    requests wait on it (measured here: 411 req/s at 50 in flight against 2,274 with 50
    single-connection clients; ops/bench/http.py), and a window of requests in flight
    is exactly a set of lanes."""

    def __init__(self, config: HttpConfig, *, name: str = "http") -> None:
        self.name = name
        self.config = config
        timeout = httpx.Timeout(config.timeout_seconds, connect=min(2.0, config.timeout_seconds))
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        self._lanes: asyncio.Queue[httpx.AsyncClient] = asyncio.Queue()
        self._clients = [
            httpx.AsyncClient(limits=limits, timeout=timeout) for _ in range(config.concurrency)
        ]
        for client in self._clients:
            self._lanes.put_nowait(client)

    async def _send_one(self, message: OutboundMessage) -> SendResult:
        payload = {
            "to": message.to,
            "from": message.sender,
            "text": message.body,
            "reference": str(message.id),
        }
        headers = {"Authorization": f"Bearer {self.config.api_key}"} if self.config.api_key else {}
        client = await self._lanes.get()
        try:
            response = await client.post(self.config.url, json=payload, headers=headers)
        except httpx.TimeoutException:
            return TransientError("timeout", "the provider did not answer in time")
        except httpx.HTTPError as exc:
            return TransientError("connection", f"{type(exc).__name__}")
        finally:
            self._lanes.put_nowait(client)
        return classify(response)

    async def send(self, batch: Sequence[OutboundMessage]) -> list[SendResult]:
        return list(await asyncio.gather(*(self._send_one(m) for m in batch)))

    async def close(self) -> None:
        for client in self._clients:
            await client.aclose()


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header: str | None) -> bool:
    if not secret or not header:
        return False
    return hmac.compare_digest(signature(secret, body), header.strip())


def _receipt(provider: str, item: Any) -> Receipt:
    if not isinstance(item, dict) or not isinstance(item.get("id"), str | int):
        raise ValueError("each receipt needs an id")
    raw_status = str(item.get("status", "")).lower()
    if raw_status in DELIVERED:
        status = "delivered"
    elif raw_status in UNDELIVERED:
        status = "undelivered"
    else:
        raise ValueError(f"unknown receipt status {raw_status!r}")
    occurred = datetime.now(UTC)
    if isinstance(item.get("timestamp"), str):
        try:
            occurred = datetime.fromisoformat(item["timestamp"])
            if occurred.tzinfo is None:
                occurred = occurred.replace(tzinfo=UTC)
            # In UTC: PostgreSQL refuses offsets Python accepts (-23:59).
            occurred = occurred.astimezone(UTC)
        except (ValueError, OverflowError) as exc:
            raise ValueError("timestamp must be ISO 8601") from exc
    error_code = item.get("error_code")
    if "\x00" in f"{item['id']}{error_code or ''}":
        raise ValueError("id and error_code must not contain NUL")
    return Receipt(
        provider=provider,
        provider_message_id=str(item["id"]),
        status=status,  # type: ignore[arg-type]
        error_code=None if error_code is None else str(error_code)[:64],
        occurred_at=occurred,
    )


class MalformedBody(ValueError):
    """The body is not JSON at all (not UTF-8, not well formed, nested too deep), as
    opposed to JSON that says the wrong thing."""


def _json(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise MalformedBody("the body is not JSON") from exc


def parse_receipts(provider: str, body: bytes) -> list[Receipt]:
    """``{"id", "status", "error_code"?, "timestamp"?}``, a list of them, or
    ``{"receipts": [...]}``. Raises ValueError on anything else."""
    data = _json(body)
    if isinstance(data, dict) and "receipts" in data:
        data = data["receipts"]
    items = data if isinstance(data, list) else [data]
    if not items or len(items) > 1000:
        raise ValueError("send 1 to 1000 receipts")
    return [_receipt(provider, item) for item in items]


def _part_numbers(item: dict[str, Any]) -> tuple[int | None, int | None, int | None]:
    part = item.get("part")
    if part is None:
        return None, None, None
    try:
        reference, total, number = (int(part[k]) for k in ("reference", "total", "number"))
    except (TypeError, KeyError, ValueError) as exc:
        raise ValueError("part needs whole-number reference, total and number") from exc
    if not (0 <= reference <= 65535 and 1 <= number <= total <= 255):
        raise ValueError("part: reference 0-65535, 1 <= number <= total <= 255")
    return reference, total, number


def _inbound(provider: str, item: Any) -> InboundPart:
    if not isinstance(item, dict) or not isinstance(item.get("id"), str | int):
        raise ValueError("each inbound message needs an id")
    for key in ("from", "to", "text"):
        if not isinstance(item.get(key), str) or (key != "text" and not item[key].strip()):
            raise ValueError(f"each inbound message needs {key!r} as text")
    if "\x00" in item["text"] or len(item["text"]) > 10_000:
        raise ValueError("text must be at most 10000 characters, without NUL")
    if "\x00" in f"{item['id']}{item['from']}{item['to']}":
        raise ValueError("id, from and to must not contain NUL")
    received = datetime.now(UTC)
    reference, total, number = _part_numbers(item)
    return InboundPart(
        provider=provider,
        source=item["from"].strip()[:32],
        destination=item["to"].strip()[:32],
        text=item["text"],
        received_at=received,
        provider_message_id=str(item["id"])[:128],
        reference=reference,
        total=total,
        number=number,
    )


def parse_inbound(provider: str, body: bytes) -> list[InboundPart]:
    """Mobile-originated messages posted to ``/v1/providers/<name>/inbound``:
    ``{"id", "from", "to", "text", "part"?: {"reference", "total", "number"}}`` (a part
    of a long message), a list of them, or ``{"messages": [...]}``. Raises ValueError
    on anything else."""
    data = _json(body)
    if isinstance(data, dict) and "messages" in data:
        data = data["messages"]
    items = data if isinstance(data, list) else [data]
    if not items or len(items) > 1000:
        raise ValueError("send 1 to 1000 inbound messages")
    return [_inbound(provider, item) for item in items]
