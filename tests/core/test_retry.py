"""Backoff: exponential, capped, jittered; expiry when validity runs out."""

from __future__ import annotations

import random
import statistics
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from core import delivery
from core.retry import Backoff
from providers.base import TransientError


def test_ceilings_double_until_the_cap():
    backoff = Backoff(base_seconds=1.0, cap_seconds=30.0)
    assert [backoff.ceiling(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]


def test_full_jitter_spreads_delays_below_the_exponential_ceiling():
    backoff = Backoff(base_seconds=1.0, cap_seconds=1000.0, jitter=1.0)
    rng = random.Random(1)
    for attempt in range(1, 9):
        delays = [backoff.delay(attempt, rng) for _ in range(2000)]
        assert all(0 <= d <= backoff.ceiling(attempt) for d in delays)
        assert len(set(delays)) > 1900  # jittered: not all equal
        # Uniform on [0, ceiling]: the mean is half the ceiling, so it doubles per attempt.
        assert statistics.mean(delays) == pytest.approx(backoff.ceiling(attempt) / 2, rel=0.08)


def test_no_jitter_gives_the_plain_exponential_delay():
    backoff = Backoff(base_seconds=2.0, cap_seconds=600.0, jitter=0.0)
    assert [backoff.delay(n) for n in (1, 2, 3)] == [2.0, 4.0, 8.0]


def _row(attempts: int, expires_in: float, now: datetime) -> dict:
    return {
        "id": uuid.uuid4(),
        "created_at": now,
        "attempts": attempts,
        "expires_at": now + timedelta(seconds=expires_in),
    }


def test_a_transient_error_is_retried_while_validity_lasts_then_expires():
    now = datetime.now(UTC)
    backoff = Backoff(base_seconds=10.0, cap_seconds=10.0, jitter=0.0)
    error = TransientError("busy", "try later")
    plan = delivery.plan_settlement(
        [_row(1, 3600, now), _row(1, 5, now)], [error, error], backoff=backoff, now=now
    )
    assert plan.column("outcome") == ["queued", "expired"]
    assert plan.column("next_attempt_at")[0] == now + timedelta(seconds=10)
    assert plan.column("next_attempt_at")[1] is None
    assert plan.column("error_code") == ["busy", "validity_expired"]


def test_an_upstreams_retry_after_is_honoured():
    now = datetime.now(UTC)
    plan = delivery.plan_settlement(
        [_row(1, 3600, now)],
        [TransientError("throttled", "slow down", retry_after=120)],
        backoff=Backoff(base_seconds=1.0, cap_seconds=2.0),
        now=now,
    )
    assert plan.column("next_attempt_at")[0] >= now + timedelta(seconds=120)
