"""Idempotency-Key: what a request's key and body are, and the first answer given to them.

A send with a key is accepted in one transaction with the key's row (core/accept.py);
a later request with the same key and body gets that first answer again, one with
another body gets 422, for ``ttl_seconds``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import msgspec

from core.errors import FieldError, IdempotencyMismatch, InvalidRequest
from core.tenants import Tenant
from db import Conn
from db import idempotency as idempotency_db

MAX_IDEMPOTENCY_KEY_CHARS = 255


@dataclass(frozen=True, slots=True)
class Idempotency:
    key: str
    request_sha256: bytes
    ttl_seconds: int


@dataclass(frozen=True, slots=True)
class Accepted:
    """What to answer: the new message(s), or the stored first answer of a replay."""

    body: Any
    replayed: bool


def fingerprint(raw_body: bytes) -> bytes:
    """SHA-256 of the request's JSON value: key order and whitespace do not matter."""
    canonical = msgspec.json.encode(msgspec.json.decode(raw_body), order="sorted")
    return hashlib.sha256(canonical).digest()


def from_header(key: str | None, raw_body: bytes, ttl_seconds: int) -> Idempotency | None:
    """The request's Idempotency-Key header (None when it has none) and body."""
    if key is None:
        return None
    if not key or len(key) > MAX_IDEMPOTENCY_KEY_CHARS or not key.isprintable():
        raise InvalidRequest(
            "The Idempotency-Key header is not valid.",
            [FieldError("Idempotency-Key", "must be 1 to 255 printable characters")],
        )
    return Idempotency(key=key, request_sha256=fingerprint(raw_body), ttl_seconds=ttl_seconds)


async def stored_answer(conn: Conn, tenant: Tenant, idem: Idempotency) -> Accepted | None:
    """The first answer given to this Idempotency-Key, while it replays; None if none."""
    row = await idempotency_db.get_key(conn, tenant_id=tenant.id, key=idem.key)
    if row is None or row["age"] > timedelta(seconds=idem.ttl_seconds):
        # Past the replay window the key is free again (claim_key takes the row over;
        # in one transaction both judge the age by the same now()).
        return None
    if bytes(row["request_sha256"]) != idem.request_sha256:
        raise IdempotencyMismatch("This Idempotency-Key was used with a different request body.")
    return Accepted(body=row["response"], replayed=True)
