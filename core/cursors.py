"""Keyset pages, the one way every list of the API pages (messages, inbound messages,
suppressions, the reports, the Twilio facade's list).

A list is read in its sort order with ``limit + 1`` rows after the key its cursor
names; ``page`` keeps ``limit`` of them, and when there were more, the page's
``next_cursor`` is the key of its last item. A cursor is that key as JSON in base64url
without padding: opaque to clients, and anything we did not give out is a 422.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import msgspec

from core import ids
from core.errors import FieldError, InvalidRequest

K = TypeVar("K")
R = TypeVar("R")
T = TypeVar("T")


def encode(key: Any) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode(key)).decode().rstrip("=")


def decode(cursor: str, key_type: type[K], *, field: str = "cursor") -> K:
    """The key a cursor of ours carries, as ``key_type``; 422 for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return msgspec.json.decode(raw, type=key_type)
    except (binascii.Error, ValueError, msgspec.DecodeError, msgspec.ValidationError):
        raise _not_ours(field) from None


def decode_id(cursor: str, *, field: str = "cursor") -> uuid.UUID:
    """The message id of a newest-first list's cursor: a UUIDv7, whose time names the
    partition the next page starts in."""
    value = decode(cursor, uuid.UUID, field=field)
    if not ids.is_message_id(value):
        raise _not_ours(field)
    return value


def size(limit: int | None, *, default: int, maximum: int) -> int:
    """A page's size: ``default`` when none is asked, else 1 to ``maximum``."""
    if limit is None:
        return default
    if not 1 <= limit <= maximum:
        raise InvalidRequest(
            "The request parameters are not valid.",
            [FieldError("limit", f"must be between 1 and {maximum}")],
        )
    return limit


def page(
    rows: Sequence[R], limit: int, *, item: Callable[[R], T], key: Callable[[T], Any]
) -> tuple[list[T], str | None]:
    """``limit`` items of ``rows`` (read with ``limit + 1``) and the next page's cursor:
    the key of the last item, or None when no row follows it."""
    items = [item(row) for row in rows[:limit]]
    return items, encode(key(items[-1])) if len(rows) > limit else None


def _not_ours(field: str) -> InvalidRequest:
    return InvalidRequest(
        "The cursor is not one this API gave out.",
        [FieldError(field, "is not a cursor from next_cursor")],
    )
