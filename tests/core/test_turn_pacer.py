"""TurnPacer: a worker process starts its claims of one tier at least a gap apart while
its turns come back small, so turns under a stream of sends carry more; a quiet tier,
and a tier draining a backlog in full turns, do not wait; and only one turn of a tier
waits at a time, so waiting turns never fill the worker's slots."""

from __future__ import annotations

import asyncio
import time

from core.dispatch import TurnPacer

GAP = 0.4


async def _turn(pacer: TurnPacer, tier: str) -> tuple[bool, float]:
    go = await pacer.wait_turn(tier)
    return go, time.monotonic()


async def test_small_turns_of_a_tier_start_a_gap_apart_one_waiting_at_a_time():
    pacer = TurnPacer(GAP)
    begin = time.monotonic()
    first, first_at = await _turn(pacer, "standard")
    pacer.claimed("standard", full=False)
    # Two more turns of the tier come while it is busy, and one of another tier.
    more = [asyncio.create_task(_turn(pacer, "standard")) for _ in range(2)]
    vip, vip_at = await _turn(pacer, "vip")
    outcomes = [await task for task in more]

    assert first
    assert first_at - begin < GAP / 2  # a quiet tier does not wait
    assert vip
    assert vip_at - begin < GAP / 2  # nor does another tier
    claims = [at for go, at in outcomes if go]
    skipped = [at for go, at in outcomes if not go]
    assert len(claims) == 1
    assert len(skipped) == 1
    assert claims[0] - first_at >= GAP * 0.99  # the waiting turn claims a gap later
    assert skipped[0] - begin < GAP / 2  # the other one leaves its slot at once


async def test_after_a_full_turn_the_next_one_does_not_wait():
    pacer = TurnPacer(GAP)
    await pacer.wait_turn("standard")
    pacer.claimed("standard", full=True)
    begin = time.monotonic()
    assert await pacer.wait_turn("standard")
    assert time.monotonic() - begin < GAP / 2
    pacer.claimed("standard", full=False)  # a small turn: the next one waits again
    assert await pacer.wait_turn("standard")
    assert time.monotonic() - begin >= GAP * 0.99


async def test_no_gap_means_no_wait():
    pacer = TurnPacer(0)
    begin = time.monotonic()
    for _ in range(50):
        assert await pacer.wait_turn("standard")
    assert time.monotonic() - begin < GAP / 2
