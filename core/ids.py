"""Message ids are UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then randomness.

The message's ``created_at`` is exactly the millisecond in its id, so the id alone names
the daily partition that holds the row and a lookup never scans every partition.
"""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime


def uuid7(now_ms: int | None = None, sequence: int | None = None) -> uuid.UUID:
    """A new UUIDv7. ``sequence`` (0-4095) fills the 12 bits after the timestamp, so ids
    made in one millisecond, as in a batch, sort in the order they were made."""
    ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    rand = int.from_bytes(os.urandom(10), "big")
    rand_a = (rand >> 62) & 0xFFF if sequence is None else sequence & 0xFFF
    value = (ms & 0xFFFF_FFFF_FFFF) << 80
    value |= 0x7 << 76  # version
    value |= rand_a << 64
    value |= 0b10 << 62  # variant
    value |= rand & 0x3FFF_FFFF_FFFF_FFFF  # rand_b, 62 bits
    return uuid.UUID(int=value)


def created_at(message_id: uuid.UUID) -> datetime:
    """The creation instant carried by a UUIDv7."""
    ms = message_id.int >> 80
    return datetime.fromtimestamp(ms // 1000, tz=UTC).replace(microsecond=(ms % 1000) * 1000)


def is_uuid7(value: uuid.UUID) -> bool:
    return value.version == 7 and value.variant == uuid.RFC_4122


def is_message_id(value: uuid.UUID) -> bool:
    """Could be one of our message ids: a UUIDv7 whose time a datetime can hold (one can
    carry a millisecond past year 9999)."""
    if not is_uuid7(value):
        return False
    try:
        created_at(value)
    except (ValueError, OverflowError):
        return False
    return True
