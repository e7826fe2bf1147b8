"""TurnPacer: a worker process starts its claims of one tier at least a gap apart while
its turns come back small, so turns under a stream of sends carry more; a quiet tier,
and a tier draining a backlog in full turns, do not wait."""

from __future__ import annotations

import asyncio
import time

from core.dispatch import TurnPacer

GAP = 0.4


async def _started(pacer: TurnPacer, tier: str) -> float:
    await pacer.wait_turn(tier)
    return time.monotonic()


async def test_turns_of_a_busy_tier_start_a_gap_apart_and_a_quiet_tier_goes_at_once():
    pacer = TurnPacer(GAP)
    begin = time.monotonic()
    # Three turns of one tier queued at once, and one of another tier.
    standard = [asyncio.create_task(_started(pacer, "standard")) for _ in range(3)]
    vip = await _started(pacer, "vip")
    starts = sorted([await task for task in standard])

    assert starts[0] - begin < GAP / 2  # the first turn of a quiet tier does not wait
    assert vip - begin < GAP / 2  # nor does another tier's
    assert starts[1] - starts[0] >= GAP * 0.99
    assert starts[2] - starts[1] >= GAP * 0.99


async def test_after_a_full_turn_the_next_one_does_not_wait():
    pacer = TurnPacer(GAP, full=200)
    await pacer.wait_turn("standard")
    pacer.claimed("standard", 200)
    begin = time.monotonic()
    await pacer.wait_turn("standard")
    assert time.monotonic() - begin < GAP / 2
    pacer.claimed("standard", 3)  # a small turn: the next one waits again
    await pacer.wait_turn("standard")
    assert time.monotonic() - begin >= GAP * 0.99


async def test_no_gap_means_no_wait():
    pacer = TurnPacer(0)
    begin = time.monotonic()
    for _ in range(50):
        await pacer.wait_turn("standard")
    assert time.monotonic() - begin < GAP / 2
