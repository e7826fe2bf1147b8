"""SMPP accounts: the system_id and password a tenant's ESMEs bind with, how many binds
it may hold at once, and the networks it may bind from.

SMPP 3.4 caps a password at 8 characters: 62^8 is about 2^48, few enough that a leaked
fast hash (the SHA-256 that suits 256-bit API keys) could be reversed in hours. So the
password is kept as scrypt (~16 MiB, tens of milliseconds per check), computed off the
event loop; binds are rare (an ESME binds once and stays), so the cost is paid rarely.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import secrets
import string
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import msgspec
import psycopg

from core.errors import Conflict, DomainError, FieldError, InvalidRequest, NotFound
from core.tenants import Tenant, tenant_from_row
from db import Conn, Row
from db import smpp as smpp_db
from db import tenants as tenants_db

MAX_SYSTEM_ID_CHARS = 15  # SMPP 3.4, 5.2.1
PASSWORD_CHARS = 8  # SMPP 3.4, 5.2.2
MAX_BINDS = 64
MAX_NETWORKS = 100
_PASSWORD_ALPHABET = string.ascii_letters + string.digits
# scrypt cost: n=2^14, r=8 takes 16 MiB and ~30-60 ms on one core.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1


class SmppAccount(msgspec.Struct, frozen=True, kw_only=True):
    tenant_id: uuid.UUID
    system_id: str
    max_binds: int
    # CIDR networks binds may come from; None: anywhere.
    allowed_networks: list[str] | None
    created_at: datetime
    password_changed_at: datetime


class BindRefused(DomainError):
    """A bind that may not go ahead. ``reason`` says why, for the listener's status
    and logs; the ESME learns only the SMPP status, never which check failed first."""

    code = "bind_refused"
    title = "Bind refused"

    def __init__(self, detail: str, reason: Literal["credentials", "network", "suspended"]) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Binding:
    """An authenticated bind: the account and its tenant as they were at bind time."""

    account: SmppAccount
    tenant: Tenant


def account_from_row(row: Row) -> SmppAccount:
    return SmppAccount(
        tenant_id=row["tenant_id"],
        system_id=row["system_id"],
        max_binds=row["max_binds"],
        allowed_networks=row["allowed_networks"],
        created_at=row["account_created_at"],
        password_changed_at=row["password_changed_at"],
    )


# -- passwords -----------------------------------------------------------------------


def new_password() -> str:
    return "".join(secrets.choice(_PASSWORD_ALPHABET) for _ in range(PASSWORD_CHARS))


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = secrets.token_bytes(16) if salt is None else salt
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32
    )
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        computed = hashlib.scrypt(
            password.encode(),
            salt=bytes.fromhex(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(digest) // 2,
        )
    except ValueError:
        return False
    return hmac.compare_digest(computed.hex(), digest)


# An unknown system_id costs the same scrypt as a known one: timing tells nothing.
_DUMMY_HASH = hash_password("-", salt=b"smsgw-no-account")


# -- validation ----------------------------------------------------------------------


def _check_system_id(system_id: str, errors: list[FieldError]) -> None:
    if not 1 <= len(system_id) <= MAX_SYSTEM_ID_CHARS or not all(
        "!" <= char <= "~" for char in system_id
    ):
        errors.append(
            FieldError("system_id", "must be 1 to 15 printable ASCII characters, no spaces")
        )


def _check_max_binds(max_binds: int, errors: list[FieldError]) -> None:
    if not 1 <= max_binds <= MAX_BINDS:
        errors.append(FieldError("max_binds", f"must be between 1 and {MAX_BINDS}"))


def _networks(values: list[str] | None, errors: list[FieldError]) -> list[str] | None:
    """Normalised CIDR networks (a bare address is a /32 or /128)."""
    if values is None:
        return None
    if len(values) > MAX_NETWORKS:
        errors.append(FieldError("allowed_networks", f"must hold at most {MAX_NETWORKS}"))
        return None
    networks: list[str] = []
    for index, value in enumerate(values):
        try:
            networks.append(str(ipaddress.ip_network(value, strict=False)))
        except ValueError:
            errors.append(
                FieldError(f"allowed_networks[{index}]", "must be an IP address or CIDR network")
            )
    return networks


def peer_allowed(account: SmppAccount, peer: str) -> bool:
    if account.allowed_networks is None:
        return True
    try:
        address = ipaddress.ip_address(peer.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in ipaddress.ip_network(net) for net in account.allowed_networks)


# -- administration ------------------------------------------------------------------


async def issue_credentials(
    conn: Conn,
    *,
    tenant_id: uuid.UUID,
    system_id: str | None = None,
    max_binds: int | None = None,
    allowed_networks: list[str] | msgspec.UnsetType | None = msgspec.UNSET,
) -> tuple[SmppAccount, str]:
    """Create the tenant's SMPP account, or give it a new password (binds made with the
    old one are closed by their listener). Returns the account and the password, which
    is never shown again."""
    errors: list[FieldError] = []
    if system_id is not None:
        _check_system_id(system_id, errors)
    if max_binds is not None:
        _check_max_binds(max_binds, errors)
    networks = None
    if not isinstance(allowed_networks, msgspec.UnsetType):
        networks = _networks(allowed_networks, errors)
    if errors:
        raise InvalidRequest("The SMPP credentials are not valid.", errors)
    if await tenants_db.get_tenant(conn, id=tenant_id) is None:
        raise NotFound("No tenant has this id.")
    password = new_password()
    password_hash = await asyncio.to_thread(hash_password, password)
    try:
        # One statement: in the caller's transaction (with its audit row), or its own.
        row = await smpp_db.save_account(
            conn,
            tenant_id=tenant_id,
            system_id=system_id or "smsgw" + secrets.token_hex(5),
            new_system_id=system_id,
            password_hash=password_hash,
            max_binds=max_binds,
            set_networks=not isinstance(allowed_networks, msgspec.UnsetType),
            allowed_networks=networks,
        )
    except psycopg.errors.UniqueViolation:
        raise Conflict("Another tenant's SMPP account has this system_id.") from None
    return account_from_row(row), password


async def get_account(conn: Conn, *, tenant_id: uuid.UUID) -> tuple[SmppAccount, int]:
    """The tenant's account and how many binds it holds now (across every listener)."""
    row = await smpp_db.get_account(conn, tenant_id=tenant_id)
    if row is None:
        raise NotFound("This tenant has no SMPP account.")
    return account_from_row(row), int(row["binds"])


async def find_account(conn: Conn, *, tenant_id: uuid.UUID) -> SmppAccount | None:
    """The tenant's account, None when it has none (read before a change, for the audit
    trail)."""
    row = await smpp_db.get_account(conn, tenant_id=tenant_id)
    return None if row is None else account_from_row(row)


async def update_account(
    conn: Conn,
    *,
    tenant_id: uuid.UUID,
    max_binds: int | None = None,
    allowed_networks: list[str] | msgspec.UnsetType | None = msgspec.UNSET,
) -> tuple[SmppAccount, int]:
    """Change the bind limit or the networks; binds already up are not dropped."""
    errors: list[FieldError] = []
    if max_binds is not None:
        _check_max_binds(max_binds, errors)
    networks = None
    if not isinstance(allowed_networks, msgspec.UnsetType):
        networks = _networks(allowed_networks, errors)
    if errors:
        raise InvalidRequest("The change is not valid.", errors)
    row = await smpp_db.update_account(
        conn,
        tenant_id=tenant_id,
        max_binds=max_binds,
        set_networks=not isinstance(allowed_networks, msgspec.UnsetType),
        allowed_networks=networks,
    )
    if row is None:
        raise NotFound("This tenant has no SMPP account.")
    return await get_account(conn, tenant_id=tenant_id)


async def delete_account(conn: Conn, *, tenant_id: uuid.UUID) -> None:
    """No more binds; the listeners close the tenant's binds within seconds."""
    if not await smpp_db.delete_account(conn, tenant_id=tenant_id):
        raise NotFound("This tenant has no SMPP account.")


# -- binding -------------------------------------------------------------------------


async def authenticate(conn: Conn, *, system_id: str, password: str, peer: str) -> Binding:
    """The account and tenant a bind names, if the password is right and the peer's
    address is allowed; BindRefused otherwise."""
    row = await smpp_db.find_account(conn, system_id=system_id)
    stored = row["password_hash"] if row is not None else _DUMMY_HASH
    matches = await asyncio.to_thread(verify_password, password, stored)
    if row is None or not matches:
        raise BindRefused("Unknown system_id or wrong password.", "credentials")
    account = account_from_row(row)
    if not peer_allowed(account, peer):
        raise BindRefused(f"Binds from {peer} are not allowed for this account.", "network")
    tenant = tenant_from_row(row)
    if tenant.suspended_at is not None:
        raise BindRefused("The tenant is suspended by the operator.", "suspended")
    return Binding(account=account, tenant=tenant)


async def current_bindings(
    conn: Conn, *, tenant_ids: list[uuid.UUID]
) -> dict[uuid.UUID, Binding | None]:
    """Accounts and tenants as they are now; None for a tenant whose account is gone or
    who is suspended (its binds close)."""
    found: dict[uuid.UUID, Binding | None] = dict.fromkeys(tenant_ids)
    for row in await smpp_db.bound_tenants(conn, tenant_ids=tenant_ids):
        if row["tenant_id"] is not None and row["suspended_at"] is None:
            found[row["id"]] = Binding(account=account_from_row(row), tenant=tenant_from_row(row))
    return found
