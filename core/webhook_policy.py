"""Where webhooks may go: addresses outside the operator's own network, unless the
operator opens a range (``SMSGW_WEBHOOK_ALLOWED_NETWORKS``).

A tenant names the URL; the gateway's workers make the request from inside. Without
this a tenant could reach databases, admin ports and the cloud metadata service
(169.254.169.254) and read their status codes back. The same rules are applied twice:
to a literal IP in a URL when a tenant gives it (nothing stored), and to every address
a worker is about to connect to (``jobs/webhook_transport.py``), since a name can
resolve elsewhere by delivery time.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# (network, what it is): the words the tenant reads in a refusal.
_FORBIDDEN: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(cidr), what)
    for cidr, what in (
        # 0.0.0.0 is "this host" to Linux's connect(): as good as loopback.
        ("0.0.0.0/8", "unspecified"),
        ("127.0.0.0/8", "loopback"),
        ("10.0.0.0/8", "private (RFC 1918)"),
        ("172.16.0.0/12", "private (RFC 1918)"),
        ("192.168.0.0/16", "private (RFC 1918)"),
        ("169.254.0.0/16", "link-local"),
        ("100.64.0.0/10", "shared address space (CGNAT)"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("fc00::/7", "unique-local"),
        ("fe80::/10", "link-local"),
        ("ff00::/8", "multicast"),
    )
)
# The same as integer bounds: comparing ints is ~10x cheaper than `address in network`.
_FORBIDDEN_BOUNDS: tuple[tuple[int, int, int, str], ...] = tuple(
    (net.version, int(net.network_address), int(net.broadcast_address), what)
    for net, what in _FORBIDDEN
)
# IPv6 forms that carry an IPv4 address a host or a translator delivers to: the
# embedded address is judged too. IPv4-mapped (::ffff:a.b.c.d) is ipv4_mapped below.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def parse_networks(text: str) -> tuple[IPNetwork, ...]:
    """``SMSGW_WEBHOOK_ALLOWED_NETWORKS``: comma-separated CIDRs (a bare address is its
    /32 or /128). Raises ValueError naming the entry it cannot read."""
    networks: list[IPNetwork] = []
    for entry in text.split(","):
        entry = entry.strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"not a network in CIDR form: {entry!r}") from None
    return tuple(networks)


def literal_ip(host: str) -> IPAddress | None:
    """The address ``host`` (a URL's host, without brackets) names literally, or None for
    a name. The resolver's legacy IPv4 forms count too: ``127.1``, ``2130706433`` and
    ``0x7f.0.0.1`` all connect to 127.0.0.1."""
    if ":" not in host and not host[:1].isdigit():
        return None  # a name: every IPv4 form starts with a digit, IPv6 has colons
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    if host and all(c in "0123456789abcdefxABCDEFX." for c in host) and host[0].isdigit():
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


@dataclass(frozen=True, slots=True)
class DestinationPolicy:
    """The forbidden ranges, minus what the operator opened."""

    allowed: tuple[IPNetwork, ...] = ()

    def refusal(self, address: IPAddress | str) -> str | None:
        """None when a webhook may connect to ``address``; else why not, in words a
        tenant can read ("127.0.0.2 is loopback")."""
        ip = ipaddress.ip_address(address) if isinstance(address, str) else address
        if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
            ip = ipaddress.IPv6Address(str(ip).split("%", 1)[0])
        candidates: list[IPAddress] = [ip]
        if isinstance(ip, ipaddress.IPv6Address) and (inner := _embedded_ipv4(ip)) is not None:
            candidates.append(inner)
        for candidate in candidates:
            if self._opened(candidate):
                continue
            value = int(candidate)
            for version, first, last, what in _FORBIDDEN_BOUNDS:
                if candidate.version == version and first <= value <= last:
                    shown = str(ip) if candidate is ip else f"{ip} ({candidate})"
                    return f"{shown} is {what}"
        return None

    def url_refusal(self, url: str) -> str | None:
        """The refusal of a URL whose host is a literal address; None for a host name
        (judged when a worker resolves it) or a URL too broken to name a host (the URL
        checks of core/submission.py refuse those)."""
        try:
            host = urlsplit(url).hostname
        except ValueError:
            return None
        if not host:
            return None
        ip = literal_ip(host)
        return None if ip is None else self.refusal(ip)

    def _opened(self, ip: IPAddress) -> bool:
        return any(ip.version == net.version and ip in net for net in self.allowed)


@functools.lru_cache(maxsize=8)
def policy(allowed_networks: str) -> DestinationPolicy:
    """The policy of a ``webhook_allowed_networks`` setting (read once per value)."""
    return DestinationPolicy(parse_networks(allowed_networks))
