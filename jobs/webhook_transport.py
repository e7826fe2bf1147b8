"""The HTTP client of webhooks: it connects only to addresses the destination policy
allows (core/webhook_policy.py), judged on the address it actually connects to.

The client is aiohttp's: on this machine it POSTs ~3,500 callbacks/s at 100 in flight
on one core where httpx managed ~150 (its connection pool is scanned per request), and
status callbacks are one request per status change of every message (issue 22).

The check sits in the connector's resolver, the one place every new connection's
addresses come from: it resolves the host itself, judges every address the name
resolves to (one forbidden address refuses the name: a name that answers both a public
and an internal address is a rebinding attempt), and hands the connector only judged
addresses, which it connects to without resolving again, so a DNS answer cannot change
between check and connect. A host that is an IP literal never reaches a resolver, so
``url_refusal`` checks it before the request (aiohttp itself refuses the legacy numeric
forms of IPv4, 2130706433 or 127.1, that could hide an address). TLS still verifies the
URL's host name. A kept-alive connection, and the connector's 10 s DNS cache, hold only
judged addresses. Cost: the getaddrinfo that connecting would have made anyway, and a
few range comparisons per address, once per new connection.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

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


def url_refusal(policy: DestinationPolicy, url: str) -> str | None:
    """Why a URL whose host is a forbidden IP literal is refused; None for any other
    (the resolver judges names)."""
    host = URL(url).host
    literal = None if host is None else literal_ip(host)
    if literal is not None and (reason := policy.refusal(str(literal))) is not None:
        return f"destination not allowed: {reason}"
    return None


class GuardedResolver(AbstractResolver):
    """Resolves a webhook's host and answers only if every address is allowed."""

    def __init__(self, policy: DestinationPolicy, resolve: Resolver = system_resolver) -> None:
        self._policy = policy
        self._resolve = resolve

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = await self._resolve(host, port)
        if not addresses:
            raise OSError(f"{host} has no address")
        for address in addresses:
            if (reason := self._policy.refusal(address)) is not None:
                raise DestinationNotAllowed(
                    f"destination not allowed: {reason} ({host} resolves to it)"
                )
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for address in addresses
        ]

    async def close(self) -> None:
        return None


class WebhookClient:
    """POSTs webhooks through judged connections: an IP-literal host is judged before
    the request, a name by the resolver; redirects are never followed (a redirect could
    name any address)."""

    # URLs judged, with their refusal: a tenant's callbacks name the same URL again and
    # again, and parsing it and its address was a few percent of a callback's CPU. The
    # policy is the client's for its life, so an answer never goes stale.
    JUDGED_URLS = 10_000

    def __init__(self, policy: DestinationPolicy, session: aiohttp.ClientSession) -> None:
        self._policy = policy
        self._session = session
        self._judged: dict[str, str | None] = {}

    def post(
        self, url: str, *, data: bytes, headers: dict[str, str], timeout: aiohttp.ClientTimeout
    ) -> aiohttp.client._RequestContextManager:
        try:
            refusal = self._judged[url]
        except KeyError:
            if len(self._judged) >= self.JUDGED_URLS:
                self._judged.clear()
            refusal = self._judged[url] = url_refusal(self._policy, url)
        if refusal is not None:
            raise DestinationNotAllowed(refusal)
        return self._session.post(
            url, data=data, headers=headers, timeout=timeout, allow_redirects=False
        )

    async def close(self) -> None:
        await self._session.close()

    async def __aenter__(self) -> WebhookClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()


def webhook_client(
    policy: DestinationPolicy,
    *,
    max_connections: int = 200,
    resolve: Resolver = system_resolver,
) -> WebhookClient:
    """The client every webhook is POSTed with: judged connections, no proxy from the
    environment (a proxy would be the address judged, not the tenant's). Make it inside
    the event loop that uses it."""
    connector = aiohttp.TCPConnector(
        limit=max_connections,
        limit_per_host=0,
        keepalive_timeout=5.0,
        resolver=GuardedResolver(policy, resolve),
        # Both families: a name may resolve to IPv6 only.
        family=socket.AF_UNSPEC,
    )
    session = aiohttp.ClientSession(
        connector=connector,
        # No cookies kept: the session is shared by every tenant's webhooks, and a cookie
        # one tenant's endpoint sets would go with another tenant's callbacks to the same
        # host (two tenants of one integration platform, say).
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=False,
        auto_decompress=False,
        # Headers are the caller's: no default User-Agent beside the caller's own.
        skip_auto_headers=("User-Agent",),
    )
    return WebhookClient(policy, session)
