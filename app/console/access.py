"""Signing in and out of the consoles: the operator's admin token exchanged for a session,
a tenant user's email and password, an invitation accepted, a one-time sign-in link."""

from __future__ import annotations

import hmac
from pathlib import Path
from typing import Any

from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Redirect, Template

from app.auth import client_address, throttled
from app.console.web import (
    PREFIX,
    SESSION_COOKIE,
    cleared_cookie,
    form_fields,
    form_token,
    page,
    session_cookie,
)
from app.deps import services
from core import changes, console
from core.errors import NotFound, Unauthorized
from db import Conn


def _home(session: console.Session) -> str:
    return f"{PREFIX}/operator/tenants" if session.audience == "operator" else f"{PREFIX}/"


class AccessController(Controller):
    path = PREFIX
    include_in_schema = False

    @get("/operator/sign-in")
    async def operator_form(self, request: Request[Any, Any, Any]) -> Template:
        token, cookies = form_token(request)
        return page(request, "operator_sign_in.html", csrf=token, cookies=cookies)

    @post("/operator/sign-in")
    async def operator_sign_in(
        self, request: Request[Any, Any, Any], state: State, conn: NamedDependency[Conn]
    ) -> Redirect:
        """The admin token, once, for a session cookie: the token is never put in the
        page or the cookie, so closing the tab leaves nothing that could be read back."""
        fields = await form_fields(request)
        async with throttled(request):
            expected = services(state).settings.admin_token
            sent = fields.get("token", "").strip()
            if not (expected and hmac.compare_digest(sent.encode(), expected.encode())):
                raise Unauthorized("The admin token is not valid.")
        opened = await console.open_session(conn, audience="operator", tenant_id=None, user_id=None)
        return Redirect(
            _home(opened), status_code=303, cookies=[session_cookie(request, opened.token)]
        )

    @get("/sign-in")
    async def tenant_form(self, request: Request[Any, Any, Any]) -> Template:
        token, cookies = form_token(request)
        return page(request, "sign_in.html", csrf=token, cookies=cookies)

    @post("/sign-in")
    async def tenant_sign_in(
        self, request: Request[Any, Any, Any], conn: NamedDependency[Conn]
    ) -> Redirect:
        fields = await form_fields(request)
        # Failures count towards the same per-address throttle as API keys.
        async with throttled(request):
            opened = await console.sign_in(
                conn, email=fields.get("email", ""), password=fields.get("password", "")
            )
        return Redirect(
            _home(opened), status_code=303, cookies=[session_cookie(request, opened.token)]
        )

    @get("/invitations/{token:str}")
    async def invitation(
        self, request: Request[Any, Any, Any], conn: NamedDependency[Conn], token: FromPath[str]
    ) -> Template:
        email = await console.invitation_email(conn, token=token)
        form, cookies = form_token(request)
        return page(
            request, "invitation.html", csrf=form, cookies=cookies, email=email, token=token
        )

    @post("/invitations/{token:str}")
    async def accept_invitation(
        self, request: Request[Any, Any, Any], conn: NamedDependency[Conn], token: FromPath[str]
    ) -> Redirect:
        fields = await form_fields(request)
        password_hash = await console.new_password_hash(fields.get("password", ""))
        async with conn.transaction():
            opened = await changes.accept_invitation(
                conn, token=token, password_hash=password_hash, address=client_address(request)
            )
        return Redirect(
            _home(opened), status_code=303, cookies=[session_cookie(request, opened.token)]
        )

    @get("/links/{token:str}")
    async def sign_in_link(
        self, request: Request[Any, Any, Any], conn: NamedDependency[Conn], token: FromPath[str]
    ) -> Redirect:
        async with throttled(request):
            opened = await console.use_sign_in_link(conn, token=token)
        return Redirect(
            _home(opened), status_code=303, cookies=[session_cookie(request, opened.token)]
        )

    @post("/sign-out")
    async def sign_out(
        self, request: Request[Any, Any, Any], conn: NamedDependency[Conn]
    ) -> Redirect:
        """Ends the session in the database, not only in this browser."""
        token = request.cookies.get(SESSION_COOKIE)
        found = await console.find_session(conn, token=token) if token else None
        if token:
            await console.revoke_session(conn, token=token)
        where = (
            f"{PREFIX}/operator/sign-in"
            if found is not None and found.audience == "operator"
            else f"{PREFIX}/sign-in"
        )
        return Redirect(where, status_code=303, cookies=[cleared_cookie(request)])


@get(f"{PREFIX}/{{rest:path}}", include_in_schema=False)
async def no_such_page(rest: FromPath[Path]) -> None:
    """Any other address under /console: the 404 as a page, not as JSON."""
    raise NotFound("There is no page at this address.")
