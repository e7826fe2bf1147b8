"""Rate cards: price lists by destination prefix, in and out as carriers exchange them
(CSV ``prefix,country,network,price``), versioned, and which card a tenant is on.

A send is priced inside its accept statement (db/schema.sql: smsgw_rate_v1); this module
only writes and reads the cards. A file is judged whole: every problem is listed with its
line number and nothing is written unless there is none.
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import Sequence
from datetime import datetime

import msgspec
import phonenumbers

from core.errors import FieldError, InvalidRequest, NotFound
from db import Conn, Row
from db import rates as rates_db

HEADER = ("prefix", "country", "network", "price")
MAX_PRICE = 10**12  # the bound of a tenant's price per segment
MAX_NETWORK_CHARS = 200
# An import this large refreshes the planner's statistics in its own transaction (a
# new card of 50,000 rates is invisible to them until autovacuum gets to it).
ANALYZE_FROM = 1_000
CARD_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_PREFIX = re.compile(r"^[0-9]{0,15}$")
_PRICE = re.compile(r"^[0-9]+$")
# ISO 3166 alpha-2 codes of the regions phone numbers belong to.
COUNTRIES = frozenset(phonenumbers.SUPPORTED_REGIONS)


class Owner(msgspec.Struct, frozen=True, kw_only=True):
    """Who a card that is not an operator's belongs to."""

    tenant_id: uuid.UUID | None = None
    provider: str | None = None


class Rate(msgspec.Struct, frozen=True, kw_only=True):
    prefix: str
    country: str
    network: str
    price: int


class Version(msgspec.Struct, frozen=True, kw_only=True):
    version: int
    effective_at: datetime
    rates: int
    created_at: datetime


class Card(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    versions: list[Version]
    # The version sends are priced by now; None when every version is yet to come.
    current_version: int | None


class Imported(msgspec.Struct, frozen=True, kw_only=True):
    card: str
    version: int
    effective_at: datetime
    rates: int


class PriceChange(msgspec.Struct, frozen=True, kw_only=True):
    prefix: str
    old_price: int | None
    new_price: int | None


class Diff(msgspec.Struct, frozen=True, kw_only=True):
    """What an import would change against the version in effect now (``against``;
    None: the card has none)."""

    card: str
    against: int | None
    added: list[PriceChange]
    removed: list[PriceChange]
    price_up: list[PriceChange]
    price_down: list[PriceChange]
    unchanged: int


def parse_csv(text: str, *, allow_empty: bool = False) -> list[Rate]:
    """The rates of a CSV price list; ``InvalidRequest`` naming every bad line. A file of
    only its header is refused unless ``allow_empty`` (a tenant's own rates cleared)."""
    errors: list[FieldError] = []
    text = text.removeprefix("\ufeff")
    if not text.strip():
        raise InvalidRequest("The file is empty.", [FieldError("line 1", "the file is empty")])
    if "\x00" in text:
        raise InvalidRequest(
            "The file is not valid.", [FieldError("line 1", "the file contains NUL characters")]
        )
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader)
    if tuple(h.strip().lower() for h in header) != HEADER:
        errors.append(FieldError("line 1", "the header must be prefix,country,network,price"))
        raise InvalidRequest("The file is not valid.", errors)
    found: list[Rate] = []
    first_line: dict[str, int] = {}
    for fields in reader:
        line = reader.line_num
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            continue  # a blank line
        if len(fields) != 4:
            errors.append(FieldError(f"line {line}", f"has {len(fields)} fields, not 4"))
            continue
        prefix, country, network, price = (f.strip() for f in fields)
        problems = []
        if not _PREFIX.match(prefix):
            problems.append("prefix must be 0 to 15 digits (E.164 without '+')")
        elif prefix in first_line:
            problems.append(f"prefix {prefix!r} is also on line {first_line[prefix]}")
        else:
            first_line[prefix] = line
        if country and country not in COUNTRIES:
            problems.append(f"country {country!r} is not an ISO 3166 alpha-2 code")
        if len(network) > MAX_NETWORK_CHARS:
            problems.append(f"network must be at most {MAX_NETWORK_CHARS} characters")
        if not _PRICE.match(price):
            problems.append("price must be a whole number of micro-units, 0 or more")
        elif int(price) > MAX_PRICE:
            problems.append(f"price must be at most {MAX_PRICE}")
        if problems:
            errors.extend(FieldError(f"line {line}", p) for p in problems)
            continue
        found.append(Rate(prefix=prefix, country=country, network=network, price=int(price)))
    if not found and not errors and not allow_empty:
        errors.append(FieldError("line 2", "the file has no rates"))
    if errors:
        raise InvalidRequest("The file is not valid: nothing was imported.", errors)
    return found


def to_csv(rates: Sequence[Rate]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows((r.prefix, r.country, r.network, r.price) for r in rates)
    return out.getvalue()


def check_card_name(name: str) -> None:
    if not CARD_NAME.match(name):
        raise InvalidRequest(
            "The card name is not valid.",
            [FieldError("card", "must be 1 to 64 letters, digits, '.', '_' or '-'")],
        )


def _rows(rates: Sequence[Rate]) -> list[dict[str, object]]:
    return [msgspec.structs.asdict(r) for r in rates]


async def _diff(conn: Conn, *, card: str, card_id: int | None, rates: Sequence[Rate]) -> Diff:
    current = (
        await rates_db.version_in_effect(conn, card_id=card_id) if card_id is not None else None
    )
    changes = await rates_db.diff(
        conn, version_id=current["id"] if current else None, rates=_rows(rates)
    )
    added, removed, up, down = [], [], [], []
    for row in changes:
        change = PriceChange(
            prefix=row["prefix"], old_price=row["old_price"], new_price=row["new_price"]
        )
        if row["old_price"] is None:
            added.append(change)
        elif row["new_price"] is None:
            removed.append(change)
        elif row["new_price"] > row["old_price"]:
            up.append(change)
        else:
            down.append(change)
    return Diff(
        card=card,
        against=current["version"] if current else None,
        added=added,
        removed=removed,
        price_up=up,
        price_down=down,
        unchanged=len(rates) - len(added) - len(up) - len(down),
    )


async def import_version(
    conn: Conn,
    *,
    card: str,
    csv_text: str,
    effective_at: datetime | None = None,
    dry_run: bool = False,
) -> Imported | Diff:
    """A new version of ``card`` (made if new) from a CSV price list, in effect from
    ``effective_at`` (default now); with ``dry_run``, what it would change, nothing
    written. In the caller's transaction."""
    check_card_name(card)
    rates = parse_csv(csv_text)
    return await _write(conn, card=card, owner=Owner(), rates=rates, at=effective_at, dry=dry_run)


def provider_card(provider: str) -> str:
    """The name of a provider's cost price list, kept as a card of its own."""
    return f"provider:{provider}"


async def import_provider_costs(
    conn: Conn,
    *,
    provider: str,
    csv_text: str,
    effective_at: datetime | None = None,
    dry_run: bool = False,
) -> Imported | Diff:
    """A new version of a provider's cost price list (the card format, price = what the
    provider charges per segment), which replaces its routes' flat cost_per_segment
    for the destinations it covers."""
    rates = parse_csv(csv_text)
    if not await rates_db.provider_exists(conn, name=provider):
        raise NotFound("No provider has this name.")
    return await _write(
        conn,
        card=provider_card(provider),
        owner=Owner(provider=provider),
        rates=rates,
        at=effective_at,
        dry=dry_run,
    )


async def _write(
    conn: Conn,
    *,
    card: str,
    owner: Owner,
    rates: Sequence[Rate],
    at: datetime | None,
    dry: bool,
) -> Imported | Diff:
    if at is not None and at.tzinfo is None:
        raise InvalidRequest(
            "The version is not valid.",
            [FieldError("effective_at", "must carry a time zone offset (RFC 3339)")],
        )
    if dry:
        found = await rates_db.get_card(conn, name=card)
        return await _diff(conn, card=card, card_id=found["id"] if found else None, rates=rates)
    locked = await rates_db.lock_card(
        conn, name=card, tenant_id=owner.tenant_id, provider=owner.provider
    )
    row = await rates_db.insert_version(
        conn,
        card_id=locked["id"],
        effective_at=at,
        rates=_rows(rates),
    )
    if len(rates) >= ANALYZE_FROM:
        await rates_db.analyze(conn)
    return Imported(
        card=card, version=row["version"], effective_at=row["effective_at"], rates=row["rates"]
    )


async def _find_card(conn: Conn, card: str) -> Row:
    # Any text may come in a URL; one that no card could be named is simply not found.
    found = None if "\x00" in card or len(card) > 100 else await rates_db.get_card(conn, name=card)
    if found is None:
        raise NotFound("No rate card has this name.")
    return found


async def get_card(conn: Conn, *, card: str) -> Card:
    found = await _find_card(conn, card)
    current = await rates_db.version_in_effect(conn, card_id=found["id"])
    return Card(
        name=found["name"],
        versions=[
            Version(
                version=v["version"],
                effective_at=v["effective_at"],
                rates=v["rates"],
                created_at=v["created_at"],
            )
            for v in await rates_db.versions(conn, card_id=found["id"])
        ],
        current_version=current["version"] if current else None,
    )


async def export_version(conn: Conn, *, card: str, version: int | None = None) -> str:
    """A version of ``card`` as CSV (None: the one in effect now)."""
    found = await _find_card(conn, card)
    if version is None:
        row = await rates_db.version_in_effect(conn, card_id=found["id"])
    else:
        row = await rates_db.get_version(conn, card_id=found["id"], version=version)
    if row is None:
        raise NotFound("The rate card has no such version.")
    rows = await rates_db.rates(conn, version_id=row["id"])
    return to_csv([Rate(**r) for r in rows])


def own_card(tenant_id: uuid.UUID) -> str:
    """The name of a tenant's own rates, kept as a card that only it uses."""
    return f"tenant:{tenant_id}"


async def put_own_rates(
    conn: Conn, *, tenant_id: uuid.UUID, csv_text: str, dry_run: bool = False
) -> Imported | Diff:
    """Replace a tenant's own rates (they win over its card's for the prefixes they
    cover) from a CSV price list, in effect now; an empty list clears them."""
    rates = parse_csv(csv_text, allow_empty=True)
    if await rates_db.tenant_card(conn, tenant_id=tenant_id) is None:
        raise NotFound("No tenant has this id.")
    return await _write(
        conn,
        card=own_card(tenant_id),
        owner=Owner(tenant_id=tenant_id),
        rates=rates,
        at=None,
        dry=dry_run,
    )


async def set_flat_price(conn: Conn, *, tenant_id: uuid.UUID, price_per_segment: int) -> None:
    """A tenant's price for every destination (the `price_per_segment` of 1.0.0): its own
    rate for the empty prefix, its other own rates kept."""
    kept = [Rate(**r) for r in await rates_db.own_rates_with_flat_price(conn, tenant_id=tenant_id)]
    rates = [Rate(prefix="", country="", network="", price=price_per_segment), *kept]
    await _write(
        conn,
        card=own_card(tenant_id),
        owner=Owner(tenant_id=tenant_id),
        rates=rates,
        at=None,
        dry=False,
    )


async def set_tenant_card(conn: Conn, *, tenant_id: uuid.UUID, card: str | None) -> None:
    """Put a tenant on ``card`` (None: back on its tier's card)."""
    card_id = None
    if card is not None:
        found = await rates_db.get_card(conn, name=card)
        if found is None or found["tenant_id"] is not None or found["provider"] is not None:
            raise InvalidRequest(
                "The change is not valid.", [FieldError("rate_card", "no rate card has this name")]
            )
        card_id = found["id"]
    if not await rates_db.set_tenant_card(conn, tenant_id=tenant_id, card_id=card_id):
        raise NotFound("No tenant has this id.")


async def tenant_card(conn: Conn, *, tenant_id: uuid.UUID) -> str | None:
    """The name of the card a tenant is on (its tier's when it chose none)."""
    row = await rates_db.tenant_card(conn, tenant_id=tenant_id)
    return row["name"] if row else None
