"""Numbers and sender ids tenants own: inbound messages find their tenant by them."""

from __future__ import annotations

import re
import uuid
from datetime import datetime

import msgspec

from core import submission
from core.errors import Conflict, FieldError, InvalidRequest, NotFound
from db import Conn, Row
from db import numbers as numbers_db

_DIGITS = re.compile(r"^[0-9]+$")
# Longest short code; a longer all-digit address is an international number without +.
SHORT_CODE_DIGITS = 8


class OwnedNumber(msgspec.Struct, frozen=True, kw_only=True):
    number: str
    tenant_id: uuid.UUID
    created_at: datetime


class NumberList(msgspec.Struct, frozen=True, kw_only=True):
    numbers: list[OwnedNumber]


def _view(row: Row) -> OwnedNumber:
    return OwnedNumber(
        number=row["number"], tenant_id=row["tenant_id"], created_at=row["created_at"]
    )


def canonical(address: str) -> str:
    """An address as upstreams write it, the way we store numbers: an SMPP source or
    destination of 9 or more digits is an international number (E.164 without +)."""
    address = address.strip()
    if _DIGITS.match(address) and len(address) > SHORT_CODE_DIGITS:
        return "+" + address
    return address


def spellings(destination: str) -> list[str]:
    """The ways an owned number may be written, for matching an inbound destination."""
    found = [destination.strip(), canonical(destination)]
    return list(dict.fromkeys(found))


async def add_number(conn: Conn, *, tenant_id: uuid.UUID, number: str) -> tuple[bool, OwnedNumber]:
    """Give ``number`` to the tenant: (True, it) when new, (False, it) when the tenant
    owned it already; Conflict when another tenant does."""
    errors: list[FieldError] = []
    submission.check_sender(number, errors, "number")
    if errors:
        raise InvalidRequest("The number is not valid.", errors)
    row = await numbers_db.add_number(conn, tenant_id=tenant_id, number=number)
    if row is not None:
        return True, _view(row)
    existing = await numbers_db.get_number(conn, number=number)
    if existing is not None and existing["tenant_id"] == tenant_id:
        return False, _view(existing)
    raise Conflict("Another tenant owns this number.")


async def list_numbers(conn: Conn, *, tenant_id: uuid.UUID) -> NumberList:
    return NumberList(
        numbers=[_view(row) for row in await numbers_db.list_numbers(conn, tenant_id=tenant_id)]
    )


async def delete_number(conn: Conn, *, tenant_id: uuid.UUID, number: str) -> None:
    # No stored number holds a NUL, and PostgreSQL text cannot carry one to compare.
    if "\x00" in number or not await numbers_db.delete_number(
        conn, tenant_id=tenant_id, number=number
    ):
        raise NotFound("The tenant owns no such number.")
