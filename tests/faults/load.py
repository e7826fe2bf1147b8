"""The steady stream of sends: clients that behave as a careful integrator's would.

Each send carries an Idempotency-Key (and the same key as `client_reference`, so the
audit can find a message the client never heard back about). When a request fails, the
client retries it with the same key and the same body, honouring Retry-After, until it
gets its 202; so a response lost to a fault is not a lost message, and a message
accepted twice would be the gateway's fault. Every attempt is recorded: its outcome and
how long the client waited for it. A request that outlasts the client timeout is a hang.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.faults.peers import RequestStats, unclean_refusal

CLIENT_TIMEOUT_SECONDS = 5.0
# A client gives a send up after this long without a 202 (it is then not "accepted"):
# longer than the longest outage a scenario causes (a PostgreSQL restart can take a
# minute, see scenarios.restart_postgres).
GIVE_UP_SECONDS = 90.0
TO = "+14155552671"


@dataclass(frozen=True)
class Tenant:
    id: str
    api_key: str
    tier: str


@dataclass
class LoadResult:
    # Idempotency-Key -> the message id of its 202 (the same on every replay).
    accepted: dict[str, str] = field(default_factory=dict)
    tenant_of: dict[str, str] = field(default_factory=dict)
    # Ids of the accepted messages that asked for status callbacks.
    with_callbacks: set[str] = field(default_factory=set)
    # Keys whose replays named another message than the first 202 did.
    mismatched_replays: list[str] = field(default_factory=list)
    # Answers that are not a clean refusal (peers.unclean_refusal), and 4xx the client
    # did not cause.
    unclean: list[str] = field(default_factory=list)
    given_up: list[str] = field(default_factory=list)
    stats: RequestStats = field(default_factory=RequestStats)
    in_flight: int = 0


def _retry_after(response: httpx.Response, default: float) -> float:
    try:
        return min(5.0, max(0.0, float(response.headers.get("retry-after", default))))
    except ValueError:
        return default


class Load:
    """``clients`` concurrent clients over ``tenants``, each pausing ``pause`` seconds
    between sends, until ``stop()``. The first tenant's messages ask for status
    callbacks (to ``callback_url``); the others' do not, which keeps the callback
    traffic at a few per second per client."""

    def __init__(
        self,
        base_url: str,
        tenants: list[Tenant],
        *,
        callback_url: str | None,
        clients: int = 6,
        pause: float = 0.15,
    ) -> None:
        self.base_url = base_url
        self.tenants = tenants
        self.callback_url = callback_url
        self.clients = clients
        self.pause = pause
        self.result = LoadResult()
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        for n in range(self.clients):
            tenant = self.tenants[n % len(self.tenants)]
            self._tasks.append(asyncio.create_task(self._client(tenant)))

    async def stop(self) -> None:
        """No new sends; the ones under way finish (retrying until their 202)."""
        self._stopping.set()
        await asyncio.gather(*self._tasks)

    async def _client(self, tenant: Tenant) -> None:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(
            base_url=self.base_url, timeout=CLIENT_TIMEOUT_SECONDS, limits=limits
        ) as client:
            while not self._stopping.is_set():
                await self._send(client, tenant)
                await asyncio.sleep(self.pause)

    async def _send(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        key = str(uuid.uuid4())
        payload: dict[str, Any] = {"to": TO, "body": f"chaos {key[:8]}", "client_reference": key}
        callbacks = self.callback_url is not None and tenant is self.tenants[0]
        if callbacks:
            payload["callback_url"] = self.callback_url
        headers = {"Authorization": f"Bearer {tenant.api_key}", "Idempotency-Key": key}
        result = self.result
        give_up = time.monotonic() + GIVE_UP_SECONDS
        while True:
            started = time.monotonic()
            result.in_flight += 1
            response: httpx.Response | None = None
            try:
                response = await client.post("/v1/messages", json=payload, headers=headers)
                outcome = str(response.status_code)
            except httpx.TimeoutException:
                outcome = "timeout"
            except httpx.TransportError:
                outcome = "conn"
            finally:
                result.in_flight -= 1
            result.stats.record(outcome, time.monotonic() - started)
            wait = 0.2
            if response is not None:
                if response.status_code == 202:
                    message_id = str(response.json()["id"])
                    if result.accepted.setdefault(key, message_id) != message_id:
                        result.mismatched_replays.append(key)
                    result.tenant_of[key] = tenant.id
                    if callbacks:
                        result.with_callbacks.add(message_id)
                    return
                if response.status_code >= 500:
                    problem = unclean_refusal(response)
                    if problem:
                        result.unclean.append(problem)
                    wait = _retry_after(response, 0.5)
                elif response.status_code == 429:
                    wait = _retry_after(response, 1.0)
                else:
                    # Nothing in this load deserves a 4xx: the body and the key are valid
                    # and the tenant has credit. Not retried.
                    result.unclean.append(f"{response.status_code}: {response.text[:200]}")
                    return
            if time.monotonic() + wait > give_up:
                result.given_up.append(key)
                return
            await asyncio.sleep(wait)
