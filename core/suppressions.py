"""The suppression list: who opted out of a tenant's messages, and from which number.

Entries are per (tenant, our number, their number). ``number`` None (stored as '*')
covers every number of the tenant: STOPALL, or an entry added through the API without
a number. A send is checked inside its accept call (smsgw_accept_one_v4,
smsgw_accept_sends_v4, smsgw_accept_v7), after its sender is decided: refused when an
entry names its sender (the one the gateway chose, when it named none) or every number; a
send left without a sender is refused when any entry names its recipient, since the
number it will go out from is not known.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from core import cursors, submission
from core.errors import FieldError, InvalidRequest, NotFound
from core.tenants import Tenant
from db import Conn, Row
from db import suppressions as suppressions_db

ALL = suppressions_db.ALL_NUMBERS
MAX_PAGE = 500
DEFAULT_PAGE = 100


class Suppression(msgspec.Struct, frozen=True, kw_only=True):
    recipient: str
    # The tenant's number they opted out of; null: all of them.
    number: str | None
    source: str
    created_at: datetime


class SuppressionPage(msgspec.Struct, frozen=True, kw_only=True):
    suppressions: list[Suppression]
    next_cursor: str | None


def _view(row: Row) -> Suppression:
    number = row["number"]
    return Suppression(
        recipient=row["recipient"],
        number=None if number == ALL else number,
        source=row["source"],
        created_at=row["created_at"],
    )


def _check(recipient: str, number: str | None) -> None:
    errors: list[FieldError] = []
    submission.check_recipient(recipient, errors, "recipient")
    if number is not None:
        submission.check_sender(number, errors, "number")
    if errors:
        raise InvalidRequest("The suppression is not valid.", errors)


async def add(
    conn: Conn, *, tenant: Tenant, recipient: str, number: str | None, source: str = "api"
) -> tuple[bool, Suppression]:
    _check(recipient, number)
    row = await suppressions_db.add(
        conn, tenant_id=tenant.id, recipient=recipient, number=number or ALL, source=source
    )
    return bool(row["created"]), _view(row)


async def remove(
    conn: Conn, *, tenant: Tenant, recipient: str, number: str | None
) -> list[str | None]:
    """Lift the recipient's entries (only the one for ``number`` when given; '*' names
    the all-numbers entry): the numbers of the entries lifted (None: all numbers);
    NotFound when there was none."""
    # No entry holds a NUL, and PostgreSQL text cannot carry one to compare.
    removed = (
        []
        if "\x00" in recipient + (number or "")
        else await suppressions_db.remove(
            conn, tenant_id=tenant.id, recipient=recipient, number=number
        )
    )
    if not removed:
        raise NotFound("This recipient is not on the suppression list.")
    return [None if row["number"] == ALL else row["number"] for row in removed]


async def list_entries(
    conn: Conn,
    *,
    tenant: Tenant,
    recipient: str | None = None,
    limit: int = DEFAULT_PAGE,
    cursor: str | None = None,
) -> SuppressionPage:
    limit = cursors.size(limit, default=DEFAULT_PAGE, maximum=MAX_PAGE)
    if recipient is not None and "\x00" in recipient:
        raise InvalidRequest(
            "The filters are not valid.", [FieldError("recipient", "must not contain NUL")]
        )
    after = cursors.decode(cursor, tuple[str, str]) if cursor else (None, None)
    rows = await suppressions_db.list_entries(
        conn,
        tenant_id=tenant.id,
        recipient=recipient,
        after_recipient=after[0],
        after_number=after[1],
        limit=limit + 1,
    )
    page, next_cursor = cursors.page(
        rows, limit, item=_view, key=lambda entry: (entry.recipient, entry.number or ALL)
    )
    return SuppressionPage(suppressions=page, next_cursor=next_cursor)
