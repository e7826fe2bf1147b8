"""Which addresses a webhook may reach: the forbidden ranges, their IPv4-mapped and other
IPv6 forms, and the operator's allowed networks."""

from __future__ import annotations

import pytest

from core.settings import Settings, SettingsError
from core.webhook_policy import DestinationPolicy, literal_ip, parse_networks, policy

DEFAULT = DestinationPolicy()


@pytest.mark.parametrize(
    ("address", "what"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("10.20.30.40", "private (RFC 1918)"),
        ("172.16.0.1", "private (RFC 1918)"),
        ("172.31.255.255", "private (RFC 1918)"),
        ("192.168.0.1", "private (RFC 1918)"),
        ("169.254.169.254", "link-local"),
        ("100.64.0.1", "CGNAT"),
        ("100.127.255.254", "CGNAT"),
        ("224.0.0.1", "multicast"),
        ("0.0.0.0", "unspecified"),  # noqa: S104 - an address judged, not bound
        ("::", "unspecified"),
        ("::1", "loopback"),
        ("fc00::1", "unique-local"),
        ("fdff:ffff::1", "unique-local"),
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("ff02::1", "multicast"),
        # IPv4-mapped, IPv4-compatible, NAT64 and 6to4 forms of internal IPv4 addresses.
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "link-local"),
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:0.0.0.0", "unspecified"),
        ("::127.0.0.2", "loopback"),
        ("64:ff9b::a9fe:a9fe", "link-local"),
        ("2002:c0a8:0101::1", "private"),
    ],
)
def test_internal_addresses_are_refused_with_what_they_are(address: str, what: str) -> None:
    reason = DEFAULT.refusal(address)
    assert reason is not None
    assert what in reason


@pytest.mark.parametrize(
    "address",
    ["93.184.216.34", "8.8.8.8", "172.32.0.1", "100.128.0.1", "2606:4700::1111", "::ffff:8.8.8.8"],
)
def test_public_addresses_pass(address: str) -> None:
    assert DEFAULT.refusal(address) is None


def test_an_allowed_network_opens_its_range_only_in_every_form() -> None:
    suite = DestinationPolicy(parse_networks("127.0.0.1/32, 10.1.0.0/16"))
    assert suite.refusal("127.0.0.1") is None
    assert suite.refusal("::ffff:127.0.0.1") is None
    assert suite.refusal("10.1.200.3") is None
    assert "loopback" in (suite.refusal("127.0.0.2") or "")
    assert "loopback" in (suite.refusal("::ffff:127.0.0.2") or "")
    assert "loopback" in (suite.refusal("::1") or "")
    assert "private" in (suite.refusal("10.2.0.1") or "")


@pytest.mark.parametrize(
    ("url", "refused"),
    [
        ("http://169.254.169.254/latest/meta-data/", True),
        ("http://[::ffff:127.0.0.2]:80/", True),
        ("http://[fe80::1%25eth0]/", True),
        ("https://user:pw@10.0.0.1:8443/x", True),
        ("http://0x7f.0.0.1/", True),  # inet_aton forms connect like 127.0.0.1
        ("http://2130706433/", True),
        ("http://017700000001/", True),
        ("https://93.184.216.34/", False),
        ("https://example.com/hook", False),
        ("https://localhost/", False),  # a name: judged at connect time
        ("http://[::1", False),  # broken: the URL checks refuse it as invalid_request
        ("not a url", False),
    ],
)
def test_url_refusal_judges_literal_hosts_only(url: str, refused: bool) -> None:
    assert (DEFAULT.url_refusal(url) is not None) is refused


def test_literal_ip_reads_the_resolvers_forms_and_leaves_names() -> None:
    assert str(literal_ip("127.1")) == "127.0.0.1"
    assert str(literal_ip("0xa9fea9fe")) == "169.254.169.254"
    assert str(literal_ip("::ffff:127.0.0.2")) == "::ffff:7f00:2"
    assert literal_ip("example.com") is None
    assert literal_ip("1.2.3.4.example") is None
    assert literal_ip("deadbeef") is None


def test_the_setting_is_checked_when_settings_are_read() -> None:
    env = {"DATABASE_URL": "postgresql://x/", "SMSGW_WEBHOOK_ALLOWED_NETWORKS": "10.0.0.0/8,"}
    assert Settings.from_env(env).webhook_allowed_networks == "10.0.0.0/8,"
    with pytest.raises(SettingsError, match=r"127\.0\.0\.300"):
        Settings.from_env({**env, "SMSGW_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.300/32"})
    assert policy("").allowed == ()
    assert policy(" 10.0.0.0/8 , ::1 ").refusal("::1") is None
