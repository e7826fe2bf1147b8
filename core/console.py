"""The consoles' people and sessions: invitations and one-time sign-in links, passwords
(argon2id), sessions kept in the database so that one can be ended at once, and the
operator's tenant list. No HTTP here: app/console/ turns these into pages.

Tokens (session ids, link tokens) carry 256 random bits and are stored as their SHA-256,
like API keys: a leaked table signs nobody in."""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import uuid
from datetime import datetime
from typing import Literal

import msgspec
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from core import cursors
from core.errors import FieldError, InvalidRequest, NotFound, Unauthorized
from db import Conn
from db import console as console_db

Audience = Literal["operator", "tenant"]
SESSION_SECONDS = 12 * 3600
INVITATION_SECONDS = 7 * 24 * 3600
SIGN_IN_LINK_SECONDS = 24 * 3600
MIN_PASSWORD = 12
MAX_PASSWORD = 1024
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
# argon2-cffi's defaults (RFC 9106's second recommendation: 64 MiB, 3 passes, 4 lanes).
_HASHER = PasswordHasher()
# Checked when the address is unknown, so that an answer takes as long either way.
_DUMMY_HASH = _HASHER.hash("no user has this password")


class Session(msgspec.Struct, frozen=True, kw_only=True):
    audience: Audience
    tenant_id: uuid.UUID | None
    user_id: uuid.UUID | None
    email: str | None
    csrf_token: str
    expires_at: datetime
    # Names the session in the audit trail where it has no user (the operator's, or one
    # opened by a sign-in link): the start of its id's digest, which cannot sign anyone in.
    ref: str


class TenantRow(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    name: str
    tier: str
    rate_limit_mps: int | None
    currency: str
    created_at: datetime
    available: int
    held: int
    captured: int
    suspended_at: datetime | None = None


class TenantPage(msgspec.Struct, frozen=True, kw_only=True):
    tenants: list[TenantRow]
    next_cursor: str | None


class KeyRow(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


class Opened(Session, frozen=True, kw_only=True):
    token: str


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def normal_email(raw: str) -> str:
    email = raw.strip().lower()
    if not _EMAIL.match(email) or len(email) > 254:
        raise InvalidRequest(
            "The address is not valid.", [FieldError("email", "must be an email address")]
        )
    return email


async def hash_password(password: str) -> str:
    # Hashing takes ~50 ms of one core and 64 MiB: off the event loop.
    return await asyncio.to_thread(_HASHER.hash, password)


async def password_matches(password_hash: str | None, password: str) -> bool:
    def verify() -> bool:
        try:
            return _HASHER.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(verify)


# -- one-time links ------------------------------------------------------------------------


async def invite(conn: Conn, *, tenant_id: uuid.UUID, email: str) -> str:
    """An invitation for ``email`` to the tenant's console; the token, shown once."""
    address = normal_email(email)
    token = new_token()
    await console_db.insert_link(
        conn,
        token_sha256=digest(token),
        purpose="invitation",
        audience="tenant",
        tenant_id=tenant_id,
        email=address,
        ttl_seconds=INVITATION_SECONDS,
    )
    return token


async def invitation_email(conn: Conn, *, token: str) -> str:
    row = await console_db.peek_link(conn, token_sha256=digest(token), purpose="invitation")
    if row is None:
        raise NotFound("This invitation is unknown, used or expired.")
    return str(row["email"])


async def new_password_hash(password: str) -> str:
    """A chosen password checked and hashed, before any transaction: hashing takes a
    core for tens of milliseconds and nothing should wait on it."""
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidRequest(
            "The password is not valid.",
            [FieldError("password", f"must be {MIN_PASSWORD} to {MAX_PASSWORD} characters")],
        )
    return await hash_password(password)


async def accept_invitation(conn: Conn, *, token: str, password_hash: str) -> Opened:
    """Give the invited user the password (``new_password_hash``) and open a session for
    them, in the caller's transaction: the link is used only if the session opens."""
    link = await console_db.use_link(conn, token_sha256=digest(token), purpose="invitation")
    if link is None:
        raise NotFound("This invitation is unknown, used or expired.")
    user = await console_db.upsert_user(
        conn,
        id=uuid.uuid4(),
        tenant_id=link["tenant_id"],
        email=link["email"],
        password_hash=password_hash,
    )
    if user is None:
        raise InvalidRequest(
            "The invitation cannot be accepted.",
            [FieldError("email", "this address already belongs to another account")],
        )
    return await open_session(
        conn, audience="tenant", tenant_id=user["tenant_id"], user_id=user["id"]
    )


async def sign_in_link(conn: Conn, *, audience: Audience, tenant_id: uuid.UUID | None) -> str:
    """A one-time link that opens a session (printed by `smsgw run`)."""
    token = new_token()
    await console_db.insert_link(
        conn,
        token_sha256=digest(token),
        purpose="sign_in",
        audience=audience,
        tenant_id=tenant_id,
        email=None,
        ttl_seconds=SIGN_IN_LINK_SECONDS,
    )
    return token


async def use_sign_in_link(conn: Conn, *, token: str) -> Opened:
    link = await console_db.use_link(conn, token_sha256=digest(token), purpose="sign_in")
    if link is None:
        raise Unauthorized("This sign-in link is unknown, used or expired.")
    return await open_session(
        conn, audience=link["audience"], tenant_id=link["tenant_id"], user_id=None
    )


# -- sessions ------------------------------------------------------------------------------


async def open_session(
    conn: Conn, *, audience: Audience, tenant_id: uuid.UUID | None, user_id: uuid.UUID | None
) -> Opened:
    token, csrf = new_token(), new_token()
    await console_db.insert_session(
        conn,
        id_sha256=digest(token),
        audience=audience,
        tenant_id=tenant_id,
        user_id=user_id,
        csrf_token=csrf,
        ttl_seconds=SESSION_SECONDS,
    )
    found = await find_session(conn, token=token)
    assert found is not None
    return Opened(token=token, **msgspec.structs.asdict(found))


async def sign_in(conn: Conn, *, email: str, password: str) -> Opened:
    """A tenant user's session; one answer for every failure (unknown address, no
    password yet, wrong password), after the same work."""
    row = await console_db.find_user(conn, email=email.strip().lower())
    if not await password_matches(row["password_hash"] if row else None, password) or not row:
        raise Unauthorized("The email address or the password is not right.")
    return await open_session(
        conn, audience="tenant", tenant_id=row["tenant_id"], user_id=row["id"]
    )


async def find_session(conn: Conn, *, token: str) -> Session | None:
    row = await console_db.find_session(conn, id_sha256=digest(token))
    if row is None:
        return None
    return Session(
        audience=row["audience"],
        tenant_id=row["tenant_id"],
        user_id=row["user_id"],
        email=row["email"],
        csrf_token=row["csrf_token"],
        expires_at=row["expires_at"],
        ref=digest(token).hex()[:16],
    )


async def revoke_session(conn: Conn, *, token: str) -> None:
    await console_db.revoke_session(conn, id_sha256=digest(token))


async def purge_expired(conn: Conn) -> int:
    """Forget sessions and one-time links a day after their end (the upkeep job)."""
    return await console_db.purge_expired(conn)


# -- what the operator lists ---------------------------------------------------------------

TENANT_PAGE = 25


async def list_tenants(conn: Conn, *, query: str | None, cursor: str | None) -> TenantPage:
    """Tenants in name order: those whose name starts with ``query`` (any case), or the
    one whose id it is."""
    text = (query or "").strip()
    if "\x00" in text or len(text) > 200:
        raise InvalidRequest(
            "The search is not valid.", [FieldError("q", "at most 200 characters")]
        )
    tenant_id: uuid.UUID | None = None
    prefix: str | None = None
    if text:
        try:
            tenant_id = uuid.UUID(text)
        except ValueError:
            escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            prefix = escaped + "%"
    after = cursors.decode(cursor, tuple[str, uuid.UUID]) if cursor else None
    rows = await console_db.list_tenants(
        conn,
        id=tenant_id,
        name_prefix=prefix,
        after_name=after[0] if after else None,
        after_id=after[1] if after else None,
        limit=TENANT_PAGE + 1,
    )
    page, next_cursor = cursors.page(
        rows,
        TENANT_PAGE,
        item=lambda r: msgspec.convert(r, TenantRow),
        key=lambda t: (t.name.lower(), t.id),
    )
    return TenantPage(tenants=page, next_cursor=next_cursor)


async def list_api_keys(conn: Conn, *, tenant_id: uuid.UUID) -> list[KeyRow]:
    return [
        msgspec.convert(r, KeyRow)
        for r in await console_db.list_api_keys(conn, tenant_id=tenant_id)
    ]


class UserRow(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    email: str
    role: str
    active: bool
    created_at: datetime


async def list_users(conn: Conn, *, tenant_id: uuid.UUID) -> list[UserRow]:
    """The tenant's console users; ``active``: the invitation was accepted."""
    rows = await console_db.list_users(conn, tenant_id=tenant_id)
    return [msgspec.convert(r, UserRow) for r in rows]


async def owns_api_key(conn: Conn, *, tenant_id: uuid.UUID, key_id: uuid.UUID) -> None:
    """NotFound unless the key is the tenant's: a console user revokes only their own."""
    if not any(k.id == key_id for k in await list_api_keys(conn, tenant_id=tenant_id)):
        raise NotFound("No API key has this id.")
