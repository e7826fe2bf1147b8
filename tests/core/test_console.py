"""Console people and sessions at the core: one-time links, passwords, expiry, upkeep."""

from __future__ import annotations

import pytest

from core import console, tenants
from core.errors import InvalidRequest, NotFound, Unauthorized


async def _tenant(conn):
    tenant, _ = await tenants.create_tenant(conn, name="acme", tier="standard", rate_limit_mps=None)
    return tenant


async def test_an_invitation_sets_a_password_once_and_the_hash_is_argon2id(conn):
    tenant = await _tenant(conn)
    token = await console.invite(conn, tenant_id=tenant.id, email=" Owner@Acme.Example ")
    assert await console.invitation_email(conn, token=token) == "owner@acme.example"
    with pytest.raises(InvalidRequest):
        await console.new_password_hash("short")
    chosen = await console.new_password_hash("long enough pass")
    opened = await console.accept_invitation(conn, token=token, password_hash=chosen)
    assert opened.tenant_id == tenant.id
    with pytest.raises(NotFound):
        await console.accept_invitation(conn, token=token, password_hash=chosen)
    cursor = await conn.execute("SELECT password_hash FROM console_users")
    stored = (await cursor.fetchone())["password_hash"]
    assert stored.startswith("$argon2id$")
    assert "long enough pass" not in stored


async def test_sign_in_fails_the_same_way_for_a_wrong_password_and_an_unknown_address(conn):
    tenant = await _tenant(conn)
    token = await console.invite(conn, tenant_id=tenant.id, email="owner@acme.example")
    chosen = await console.new_password_hash("long enough pass")
    await console.accept_invitation(conn, token=token, password_hash=chosen)
    answers = []
    for email, password in (("owner@acme.example", "wrong password!"), ("nobody@x.example", "x")):
        with pytest.raises(Unauthorized) as refused:
            await console.sign_in(conn, email=email, password=password)
        answers.append(refused.value.detail)
    assert answers[0] == answers[1]
    opened = await console.sign_in(conn, email="OWNER@acme.example", password="long enough pass")
    assert (await console.find_session(conn, token=opened.token)) is not None


async def test_expired_and_revoked_sessions_sign_nobody_in_and_are_purged(conn):
    tenant = await _tenant(conn)
    live = await console.open_session(conn, audience="tenant", tenant_id=tenant.id, user_id=None)
    old = await console.open_session(conn, audience="operator", tenant_id=None, user_id=None)
    gone = await console.open_session(conn, audience="operator", tenant_id=None, user_id=None)
    await conn.execute(
        "UPDATE console_sessions SET expires_at = now() - interval '2 days' WHERE id_sha256 = %s",
        (console.digest(old.token),),
    )
    await console.revoke_session(conn, token=gone.token)
    assert await console.find_session(conn, token=old.token) is None
    assert await console.find_session(conn, token=gone.token) is None
    await conn.execute(
        "UPDATE console_sessions SET revoked_at = now() - interval '2 days'"
        " WHERE revoked_at IS NOT NULL"
    )
    assert await console.purge_expired(conn) == 2
    assert await console.find_session(conn, token=live.token) is not None
