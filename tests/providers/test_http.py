"""The HTTP provider against a real aggregator on loopback: every answer classed as the
upstream means it."""

from __future__ import annotations

import uuid

import pytest

from providers.base import Accepted, OutboundMessage, PermanentError, TransientError
from providers.http import HttpConfig, HttpProvider
from tests import aggregator


def _message(body: str = "hello") -> OutboundMessage:
    return OutboundMessage(
        id=uuid.uuid4(),
        to="+14155552671",
        sender="ACME",
        body=body,
        encoding="GSM-7",
        segments=1,
        attempt=1,
    )


async def _send(peer, count=3, **config):
    provider = HttpProvider(HttpConfig(url=peer.url, api_key=peer.api_key, **config), name="agg")
    try:
        return await provider.send([_message(f"m{i}") for i in range(count)])
    finally:
        await provider.close()


async def test_accepted_submits_carry_the_aggregators_ids():
    with aggregator.running() as peer:
        results = await _send(peer, count=5)
    assert all(isinstance(r, Accepted) for r in results)
    assert sorted(r.provider_message_id for r in results) == [f"agg-{n}" for n in range(1, 6)]
    assert {m["text"] for m in peer.accepted} == {f"m{i}" for i in range(5)}
    assert all(m["to"] == "+14155552671" and m["from"] == "ACME" for m in peer.accepted)


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("throttle", TransientError),
        ("fail", TransientError),
        ("reject", PermanentError),
    ],
)
async def test_errors_are_classed_transient_or_permanent(mode, expected):
    with aggregator.running(mode=mode, retry_after=7) as peer:
        results = await _send(peer)
    assert all(type(r) is expected for r in results)
    if mode == "throttle":
        assert {(r.code, r.retry_after) for r in results} == {("throttled", 7.0)}
    if mode == "fail":
        assert {r.code for r in results} == {"http_503"}
    if mode == "reject":
        assert {r.code for r in results} == {"http_400"}


async def test_a_hanging_or_absent_aggregator_is_a_transient_error():
    with aggregator.running(mode="hang") as peer:
        results = await _send(peer, count=2, timeout_seconds=0.3)
    assert {(type(r), r.code) for r in results} == {(TransientError, "timeout")}
    url = peer.url  # the server is gone now: connection refused
    provider = HttpProvider(HttpConfig(url=url), name="agg")
    try:
        results = await provider.send([_message()])
    finally:
        await provider.close()
    assert isinstance(results[0], TransientError)
    assert results[0].code == "connection"


async def test_the_window_bounds_requests_in_flight():
    with aggregator.running(latency=0.02) as peer:
        results = await _send(peer, count=40, concurrency=4)
    assert all(isinstance(r, Accepted) for r in results)
    assert len(peer.accepted) == 40
    assert 2 <= peer.max_in_flight <= 4
