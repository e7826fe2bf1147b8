"""The audit trail: who changed which setting, from where, and what it was before and
after (issue 25). Append-only (a trigger refuses UPDATE, DELETE and TRUNCATE of
``audit_events``).

A change and its row commit together: ``record`` takes the connection of the change and
writes in the caller's transaction, so a change that fails (a 422, a conflict) leaves no
row and a row never names a change that did not happen. Who made it is an ``Actor`` the
caller passes down explicitly (the API builds it from its guard; the console of issue 28
passes its user; the operator's own tools pass ``system``): nothing here guesses it.

Secrets never reach the table: every value whose field names a secret (API keys, webhook
signing secrets, SMPP and Twilio credentials, each provider kind's secret settings from
providers/kinds.py) is written as ``MASK``, at any depth.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

import msgspec

from core import cursors, rates
from core.errors import FieldError, InvalidRequest
from db import Conn, Row
from db import audit as audit_db
from providers import kinds

ActorKind = Literal["admin", "api_key", "console_user", "system"]
MASK = "***"
MAX_PAGE = 500
DEFAULT_PAGE = 100
ACTION = re.compile(r"^[a-z_]+(\.[a-z_]+)+$")

# Field names whose values are secrets wherever they appear: the tenant's webhook signing
# secret, an API key, SMPP and Twilio credentials, and every provider kind's secrets.
SECRET_FIELDS: frozenset[str] = frozenset(
    {"api_key", "webhook_secret", "password", "password_hash", "auth_token", "secret_sha256"}
).union(*(kind.secrets for kind in kinds.KINDS.values()))


# Fields that move with every write, changed or not: alone, they are no change.
_BOOKKEEPING = frozenset({"updated_at"})


class Actor(msgspec.Struct, frozen=True, kw_only=True):
    """Who made a change: never a secret. ``id`` is the API key's id for ``api_key``, the
    console user's for ``console_user``, the tool's name for ``system``, None for the
    admin token (there is one)."""

    kind: ActorKind
    id: str | None = None
    # The client's address as the caller saw it; None where there is none (a CLI).
    address: str | None = None


class AuditEvent(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    at: datetime
    actor: Actor
    tenant_id: uuid.UUID | None
    action: str
    target: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class AuditPage(msgspec.Struct, frozen=True, kw_only=True):
    events: list[AuditEvent]
    next_cursor: str | None


def mask(value: Any) -> Any:
    """``value`` as JSON-ready builtins, every secret field's value replaced by MASK."""
    plain = msgspec.to_builtins(value)
    return _masked(plain)


def _masked(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: MASK if key in SECRET_FIELDS and item is not None else _masked(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_masked(item) for item in value]
    return value


def changed(
    before: Mapping[str, Any] | None, after: Mapping[str, Any] | None
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Both sides cut to the fields that differ (a creation or removal keeps its side
    whole); two empty dicts when nothing changed."""
    if before is None or after is None:
        return (None if before is None else dict(before)), (None if after is None else dict(after))
    keys = [key for key in {**before, **after} if before.get(key) != after.get(key)]
    if set(keys) <= _BOOKKEEPING:
        return {}, {}
    return {key: before.get(key) for key in keys}, {key: after.get(key) for key in keys}


async def record(
    conn: Conn,
    *,
    actor: Actor,
    action: str,
    target: str,
    tenant_id: uuid.UUID | None = None,
    before: Any = None,
    after: Any = None,
) -> bool:
    """Write the change in the caller's transaction; False (nothing written) when before
    and after are the same once masked: a request that changed nothing is no change."""
    assert ACTION.match(action), action
    old, new = changed(mask(before), mask(after))
    if old == {} and new == {}:
        return False
    await audit_db.insert_event(
        conn,
        actor_kind=actor.kind,
        actor_id=actor.id,
        address=actor.address,
        tenant_id=tenant_id,
        action=action,
        target=target,
        before=None if old is None else msgspec.json.encode(old).decode(),
        after=None if new is None else msgspec.json.encode(new).decode(),
    )
    return True


async def record_version(
    conn: Conn,
    actor: Actor,
    action: str,
    target: str,
    result: rates.Imported | rates.Diff,
    *,
    tenant_id: uuid.UUID | None = None,
) -> None:
    """A price list's new version (a dry run's diff wrote nothing): its number, time and
    count of rates, and the version it follows; the rates themselves are the version,
    read back as CSV (GET .../versions/<n>.csv), not copied here."""
    if isinstance(result, rates.Imported):
        await record(
            conn,
            actor=actor,
            action=action,
            target=target,
            tenant_id=tenant_id,
            before={"version": result.version - 1 if result.version > 1 else None},
            after=result,
        )


def _event(row: Row) -> AuditEvent:
    return AuditEvent(
        id=row["id"],
        at=row["at"],
        actor=Actor(kind=row["actor_kind"], id=row["actor_id"], address=row["address"]),
        tenant_id=row["tenant_id"],
        action=row["action"],
        target=row["target"],
        before=row["before"],
        after=row["after"],
    )


def _bound(raw: str, field: str, *, end: bool) -> datetime:
    """A date is a whole UTC day (``to=2026-01-31`` includes the 31st); a timestamp must
    carry its UTC offset. As the reports read their windows (core/reports.py)."""
    text = raw.strip()
    try:
        if len(text) == 10:
            midnight = datetime.combine(date.fromisoformat(text), time(0), tzinfo=UTC)
            return midnight + timedelta(days=1) if end else midnight
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise InvalidRequest(
            "The filters are not valid.",
            [FieldError(field, "must be a date (YYYY-MM-DD) or an RFC 3339 time with offset")],
        )
    return moment


def tenant_filter(raw: str | None) -> uuid.UUID | None:
    """The admin's ``tenant_id`` filter; 422 when it is not a tenant id."""
    if raw is None:
        return None
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise InvalidRequest(
            "The filters are not valid.", [FieldError("tenant_id", "must be a tenant id (UUID)")]
        ) from None


async def list_events(
    conn: Conn,
    *,
    tenant_id: uuid.UUID | None,
    from_: str | None = None,
    to: str | None = None,
    action: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> AuditPage:
    """Events newest first, ``from`` inclusive, ``to`` exclusive; ``tenant_id`` None:
    every tenant's and the operator-wide ones (the admin's view: a tenant's reads always
    name its own id)."""
    size = cursors.size(limit, default=DEFAULT_PAGE, maximum=MAX_PAGE)
    since = _bound(from_, "from", end=False) if from_ else None
    until = _bound(to, "to", end=True) if to else None
    if since is not None and until is not None and until <= since:
        raise InvalidRequest("The filters are not valid.", [FieldError("to", "must be after from")])
    if action is not None and not ACTION.match(action):
        raise InvalidRequest(
            "The filters are not valid.",
            [FieldError("action", "must be a dotted action name, e.g. tenant.updated")],
        )
    after_at, after_id = cursors.decode(cursor, tuple[datetime, int]) if cursor else (None, None)
    rows = await audit_db.list_events(
        conn,
        tenant_id=tenant_id,
        from_=since,
        to=until,
        action=action,
        after_at=after_at,
        after_id=after_id,
        limit=size + 1,
    )
    events, next_cursor = cursors.page(
        rows, size, item=_event, key=lambda event: (event.at, event.id)
    )
    return AuditPage(events=events, next_cursor=next_cursor)
