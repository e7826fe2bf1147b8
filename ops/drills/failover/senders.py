"""The clients: senders that POST /v1/messages through the failover and record what
each attempt got back."""

from __future__ import annotations

import asyncio
import secrets
import time
from contextlib import suppress
from dataclasses import dataclass, field

import httpx

TO = "+14155552671"
RETRY_DELAY = 0.25  # a client's pause before retrying a failed send with the same key


@dataclass(frozen=True)
class Attempt:
    started: float
    ended: float
    outcome: str  # "202", "503 unavailable", "ReadTimeout"...
    retry_after: str | None


@dataclass
class Load:
    """Senders that POST /v1/messages, each send with its own Idempotency-Key, a failed
    send retried with the same key until it gets its 202."""

    base: str
    api_key: str
    rate: float
    senders: int
    timeout: float
    attempts: list[Attempt] = field(default_factory=list)
    accepted: dict[str, str] = field(default_factory=dict)  # message id -> key
    retried_then_accepted: int = 0
    abandoned: list[str] = field(default_factory=list)
    # Set by the first 202 after a failed send: the clients see the service back.
    recovered: asyncio.Event = field(default_factory=asyncio.Event)
    _failed: bool = False

    async def run(self, stop: asyncio.Event, give_up_after: float = 180) -> None:
        headers = {"Authorization": f"Bearer {self.api_key}"}
        async with httpx.AsyncClient(
            base_url=self.base, headers=headers, timeout=self.timeout
        ) as client:
            await asyncio.gather(
                *(self._sender(client, stop, give_up_after) for _ in range(self.senders))
            )

    async def _sender(self, client: httpx.AsyncClient, stop: asyncio.Event, give_up: float) -> None:
        interval = self.senders / self.rate
        while not stop.is_set():
            key = secrets.token_hex(16)
            payload = {"to": TO, "body": f"failover {key[:8]}", "client_reference": key}
            first = time.monotonic()
            tries = 0
            while True:
                tries += 1
                started = time.monotonic()
                retry_after = None
                try:
                    response = await client.post(
                        "/v1/messages", json=payload, headers={"Idempotency-Key": key}
                    )
                    outcome = str(response.status_code)
                    retry_after = response.headers.get("retry-after")
                    if response.status_code != 202:
                        with suppress(ValueError, AttributeError):
                            outcome += f" {response.json().get('code')}"
                except httpx.HTTPError as exc:
                    outcome = type(exc).__name__
                self.attempts.append(Attempt(started, time.monotonic(), outcome, retry_after))
                if outcome == "202":
                    self.accepted[response.json()["id"]] = key
                    if self._failed:
                        self.recovered.set()
                    self.retried_then_accepted += tries > 1
                    break
                self._failed = True
                if time.monotonic() - first > give_up:
                    self.abandoned.append(key)
                    break
                await asyncio.sleep(RETRY_DELAY)
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))
