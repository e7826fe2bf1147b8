"""Page cursors for newest-first lists keyed by UUIDv7 ids (outbound and inbound
messages): the last id of a page, base64url without padding. Opaque to clients; an id
is enough because a UUIDv7 orders by creation time and names its partition."""

from __future__ import annotations

import base64
import binascii
import uuid

from core import ids
from core.errors import FieldError, InvalidRequest


def encode(last_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(last_id.bytes).decode().rstrip("=")


def decode(cursor: str) -> uuid.UUID:
    """The id a cursor of ours carries; 422 for anything else."""
    try:
        value = uuid.UUID(bytes=base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        # A UUIDv7 can carry a millisecond past year 9999, which no datetime can hold.
        ids.created_at(value)
    except (ValueError, OverflowError, binascii.Error):
        value = uuid.UUID(int=0)
    if not ids.is_uuid7(value):
        raise InvalidRequest(
            "The cursor is not one this API gave out.",
            [FieldError("cursor", "is not a cursor from next_cursor")],
        )
    return value
