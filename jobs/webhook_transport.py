"""The HTTP client of webhooks: it connects only to addresses the destination policy
allows (core/webhook_policy.py), judged on the address it actually connects to.

The check sits in httpcore's network backend, the one place every new connection
passes through: ``connect_tcp`` resolves the host itself, judges every address the
name resolves to (one forbidden address refuses the name: a name that answers both a
public and an internal address is a rebinding attempt), and connects to a judged
address, never to the name, so a DNS answer cannot change between check and connect.
TLS still verifies the URL's host name (httpcore passes it as SNI). A kept-alive
connection was judged when it was opened. Cost: the getaddrinfo that connecting would
have made anyway, and a few range comparisons per address, once per new connection.

httpx takes no network backend, so the transport is httpx's own with its httpcore pool
replaced by one that has this backend (``_pool`` is the attribute httpx's transport
sends through; tests/jobs/test_webhook_destinations.py fails if that ever changes).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Iterable

import httpcore
import httpx

from core.webhook_policy import DestinationPolicy, literal_ip

# host, port -> the addresses to try, in order.
Resolver = Callable[[str, int], Awaitable[list[str]]]


class DestinationNotAllowed(Exception):
    """The webhook's host is, or resolves to, an address the policy forbids. Final: the
    same URL will be refused again, so the delivery is not retried."""


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[str] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = str(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's default backend, connecting only to judged addresses."""

    def __init__(self, policy: DestinationPolicy, resolve: Resolver = system_resolver) -> None:
        self._policy = policy
        self._resolve = resolve
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        literal = literal_ip(host)
        if literal is not None:
            addresses = [str(literal)]
        else:
            try:
                async with asyncio.timeout_at(deadline):
                    addresses = await self._resolve(host, port)
            except TimeoutError:
                raise httpcore.ConnectTimeout(f"resolving {host} timed out") from None
            except OSError as exc:
                raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from None
        if not addresses:
            raise httpcore.ConnectError(f"{host} has no address")
        for address in addresses:
            if (reason := self._policy.refusal(address)) is not None:
                shown = reason if literal is not None else f"{reason} ({host} resolves to it)"
                raise DestinationNotAllowed(f"destination not allowed: {shown}")
        last: Exception | None = None
        for address in addresses:
            remaining = None if deadline is None else max(0.0, deadline - loop.time())
            try:
                return await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=remaining,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise DestinationNotAllowed("destination not allowed: a Unix socket")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def webhook_client(
    policy: DestinationPolicy,
    *,
    max_connections: int = 200,
    max_keepalive_connections: int = 50,
    resolve: Resolver = system_resolver,
) -> httpx.AsyncClient:
    """The client every webhook is POSTed with: judged connections, no redirects (a
    redirect could name any address), no proxy from the environment (a proxy would be
    the address judged, not the tenant's)."""
    transport = httpx.AsyncHTTPTransport(trust_env=False)
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(trust_env=False),
        max_connections=max_connections,
        max_keepalive_connections=max_keepalive_connections,
        keepalive_expiry=5.0,
        network_backend=GuardedBackend(policy, resolve),
    )
    return httpx.AsyncClient(transport=transport, follow_redirects=False, trust_env=False)
