"""The consoles' users, one-time links and sessions; the operator's tenant list."""

from __future__ import annotations

import uuid

from db import Conn, Row
from db.sql import Queries

_q = Queries("console")


async def insert_link(
    conn: Conn,
    *,
    token_sha256: bytes,
    purpose: str,
    audience: str,
    tenant_id: uuid.UUID | None,
    email: str | None,
    ttl_seconds: int,
) -> None:
    await _q.run(
        conn,
        "insert_link",
        token_sha256=token_sha256,
        purpose=purpose,
        audience=audience,
        tenant_id=tenant_id,
        email=email,
        ttl_seconds=ttl_seconds,
    )


async def peek_link(conn: Conn, *, token_sha256: bytes, purpose: str) -> Row | None:
    return await _q.one(conn, "peek_link", token_sha256=token_sha256, purpose=purpose)


async def use_link(conn: Conn, *, token_sha256: bytes, purpose: str) -> Row | None:
    return await _q.one(conn, "use_link", token_sha256=token_sha256, purpose=purpose)


async def upsert_user(
    conn: Conn, *, id: uuid.UUID, tenant_id: uuid.UUID, email: str, password_hash: str
) -> Row | None:
    return await _q.one(
        conn, "upsert_user", id=id, tenant_id=tenant_id, email=email, password_hash=password_hash
    )


async def find_user(conn: Conn, *, email: str) -> Row | None:
    return await _q.one(conn, "find_user", email=email)


async def list_users(conn: Conn, *, tenant_id: uuid.UUID) -> list[Row]:
    return await _q.all(conn, "list_users", tenant_id=tenant_id)


async def insert_session(
    conn: Conn,
    *,
    id_sha256: bytes,
    audience: str,
    tenant_id: uuid.UUID | None,
    user_id: uuid.UUID | None,
    csrf_token: str,
    ttl_seconds: int,
) -> None:
    await _q.run(
        conn,
        "insert_session",
        id_sha256=id_sha256,
        audience=audience,
        tenant_id=tenant_id,
        user_id=user_id,
        csrf_token=csrf_token,
        ttl_seconds=ttl_seconds,
    )


async def find_session(conn: Conn, *, id_sha256: bytes) -> Row | None:
    return await _q.one(conn, "find_session", id_sha256=id_sha256)


async def revoke_session(conn: Conn, *, id_sha256: bytes) -> int:
    return await _q.run(conn, "revoke_session", id_sha256=id_sha256)


async def list_tenants(
    conn: Conn,
    *,
    id: uuid.UUID | None,
    name_prefix: str | None,
    after_name: str | None,
    after_id: uuid.UUID | None,
    limit: int,
) -> list[Row]:
    return await _q.all(
        conn,
        "list_tenants",
        id=id,
        name_prefix=name_prefix,
        after_name=after_name,
        after_id=after_id,
        limit=limit,
    )


async def list_api_keys(conn: Conn, *, tenant_id: uuid.UUID) -> list[Row]:
    return await _q.all(conn, "list_api_keys", tenant_id=tenant_id)


async def purge_expired(conn: Conn) -> int:
    row = await _q.one(conn, "purge_expired")
    return int(row["purged"]) if row else 0
