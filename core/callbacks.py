"""Status callbacks to tenants: signing, and what to do after each attempt.

``X-Smsgw-Signature: t=<unix>,v1=<hex HMAC-SHA256(webhook_secret, "<t>.<body>")>`` lets
the tenant check that the body is ours and recent (the timestamp is inside the MAC, so
an old callback cannot be replayed as new).
"""

from __future__ import annotations

import hashlib
import hmac
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.retry import Backoff

SIGNATURE_HEADER = "X-Smsgw-Signature"
# Retries for a day, then the callback is abandoned (DESIGN.md).
GIVE_UP_AFTER = timedelta(hours=24)


def sign(secret: str, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(secret: str, body: bytes, header: str, *, now: int, tolerance: int = 300) -> bool:
    """What a tenant's endpoint does with the header (shipped for tests and docs)."""
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    outcome: str  # delivered | retry | abandoned
    next_attempt_at: datetime | None


def after_attempt(
    *,
    backoff: Backoff,
    succeeded: bool,
    attempts: int,
    created_at: datetime,
    now: datetime,
    rng: random.Random | None = None,
) -> AttemptOutcome:
    if succeeded:
        return AttemptOutcome("delivered", None)
    retry_at = now + timedelta(seconds=backoff.delay(attempts, rng))
    if retry_at > created_at + GIVE_UP_AFTER:
        return AttemptOutcome("abandoned", None)
    return AttemptOutcome("retry", retry_at)
