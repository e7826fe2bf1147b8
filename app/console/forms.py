"""Form fields read as the API's JSON fields would be: a bad one is the same 422 with the
field's name, shown on the page."""

from __future__ import annotations

import uuid

from core.errors import FieldError, InvalidRequest, NotFound


def whole(fields: dict[str, str], name: str, *, optional: bool = False) -> int | None:
    raw = fields.get(name, "").strip().replace(",", "").replace("_", "")
    if not raw and optional:
        return None
    try:
        return int(raw)
    except ValueError:
        raise InvalidRequest(
            "The form is not valid.", [FieldError(name, "must be a whole number")]
        ) from None


def money(fields: dict[str, str], name: str) -> int:
    """An amount typed in currency units (``12.50``) as integer micro-units."""
    raw = fields.get(name, "").strip().replace(",", "")
    units, _, fraction = raw.partition(".")
    if not units.isdigit() or (fraction and (not fraction.isdigit() or len(fraction) > 6)):
        raise InvalidRequest(
            "The form is not valid.",
            [FieldError(name, "must be an amount such as 25 or 12.50 (at most 6 decimals)")],
        )
    return int(units) * 1_000_000 + int((fraction or "0").ljust(6, "0"))


def an_id(raw: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise NotFound(f"No {what} has this id.") from None


def optional_money(fields: dict[str, str], name: str) -> int | None:
    """An amount in currency units, or None when the field is left empty."""
    return money(fields, name) if fields.get(name, "").strip() else None


def countries(fields: dict[str, str], name: str) -> list[str]:
    """ISO 3166 alpha-2 codes typed as a list (``GB, us fr``): upper-cased; the core
    function judges each one and names the bad ones."""
    return [code.upper() for code in fields.get(name, "").replace(",", " ").split()]
