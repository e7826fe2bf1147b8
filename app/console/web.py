"""What every console page shares: the session cookie and the guards that read it, the
CSRF check of every form, the security headers, and errors rendered as pages.

The cookie holds only a random id; the session (its audience, tenant, CSRF token) is a
row of `console_sessions` (core/console.py), so signing out ends it everywhere at once.
Forms shown before a session exists (sign-in, invitation) are protected by a double
submit: a random cookie of their own, repeated in a hidden field."""

from __future__ import annotations

import hmac
from typing import Any

import psycopg
import psycopg_pool
from litestar import Request, Response
from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie, MutableScopeHeaders
from litestar.exceptions import HTTPException
from litestar.handlers.base import BaseRouteHandler
from litestar.response import Redirect, Template
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from app import errors
from app.auth import client_address, request_state
from app.deps import services
from app.errors import STATUS
from core import console
from core.audit import Actor
from core.errors import DomainError, Forbidden, InvalidRequest, RateLimited, Unavailable

SESSION_COOKIE = "smsgw_console"
FORM_COOKIE = "smsgw_console_form"
CSRF_FIELD = "csrf_token"
PREFIX = "/console"

# No inline script or style anywhere: every script and sheet is a file of /console/static.
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "content-security-policy": POLICY,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    # Invitation and sign-in links carry their token in the path: never in a Referer.
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


def security_headers(app: ASGIApp) -> ASGIApp:
    """The headers above on every answer of the consoles, error pages included."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableScopeHeaders.from_message(message)
                for name, value in HEADERS.items():
                    headers[name] = value
            await send(message)

        await app(scope, receive, send_with_headers)

    return middleware


class SignInRequired(Exception):
    """No live session of the audience this page needs: go and sign in."""

    def __init__(self, where: str) -> None:
        super().__init__(where)
        self.where = where


def secure(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    # Behind a proxy that ends TLS the scheme reaches us as X-Forwarded-Proto. Trusting
    # a forged one only makes the cookie Secure on plain http, where it is then not sent.
    forwarded = connection.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return connection.url.scheme == "https" or forwarded == "https"


def session_cookie(connection: ASGIConnection[Any, Any, Any, Any], token: str) -> Cookie:
    return Cookie(
        key=SESSION_COOKIE,
        value=token,
        path=PREFIX,
        httponly=True,
        samesite="lax",
        secure=secure(connection),
        max_age=console.SESSION_SECONDS,
    )


def cleared_cookie(connection: ASGIConnection[Any, Any, Any, Any]) -> Cookie:
    return Cookie(
        key=SESSION_COOKIE,
        value="",
        path=PREFIX,
        httponly=True,
        samesite="lax",
        secure=secure(connection),
        max_age=0,
    )


async def _session(connection: ASGIConnection[Any, Any, Any, Any]) -> console.Session | None:
    token = connection.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    async with services(connection.app.state).pool.connection() as conn:
        return await console.find_session(conn, token=token)


async def operator_guard(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    found = await _session(connection)
    if found is None or found.audience != "operator":
        raise SignInRequired(f"{PREFIX}/operator/sign-in")
    request_state(connection)["console_session"] = found


async def tenant_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    found = await _session(connection)
    if found is None or found.audience != "tenant":
        raise SignInRequired(f"{PREFIX}/sign-in")
    request_state(connection)["console_session"] = found


def current(request: Request[Any, Any, Any]) -> console.Session:
    found = request_state(request).get("console_session")
    assert isinstance(found, console.Session), "a console guard runs first"
    return found


def console_actor(request: Request[Any, Any, Any]) -> Actor:
    """Who makes a console change, for the audit trail: the console user by id, or, for
    a session with no user (the operator's, a sign-in link's), the session by its
    ``ref``, so that one sitting's changes read together; never the cookie."""
    session = current(request)
    who = str(session.user_id) if session.user_id else f"{session.audience}-session:{session.ref}"
    return Actor(kind="console_user", id=who, address=client_address(request))


async def check_csrf(request: Request[Any, Any, Any]) -> None:
    """Every form post carries the token of its session (or of its form cookie before
    one exists); one without it is refused before the handler runs."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    form = await request.form()
    sent = form.get(CSRF_FIELD)
    found = request_state(request).get("console_session")
    if not isinstance(found, console.Session):
        found = await _session(request)  # signing out: no guard ran
    expected = [request.cookies.get(FORM_COOKIE), found.csrf_token if found else None]
    if not (
        isinstance(sent, str)
        and sent
        and any(e and hmac.compare_digest(sent.encode(), e.encode()) for e in expected)
    ):
        raise Forbidden("The form's security token is missing or stale: reload the page.")


async def form_fields(request: Request[Any, Any, Any]) -> dict[str, str]:
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str) and k != CSRF_FIELD}


def form_token(request: Request[Any, Any, Any]) -> tuple[str, list[Cookie]]:
    """The double-submit token of a page shown before sign-in, and its cookie."""
    token = request.cookies.get(FORM_COOKIE) or console.new_token()
    cookie = Cookie(
        key=FORM_COOKIE,
        value=token,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=secure(request),
        max_age=3600,
    )
    return token, [cookie]


def page(
    request: Request[Any, Any, Any],
    template: str,
    *,
    status_code: int = 200,
    cookies: list[Cookie] | None = None,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> Template:
    found = request_state(request).get("console_session")
    session = found if isinstance(found, console.Session) else None
    context.setdefault("csrf", session.csrf_token if session else "")
    return Template(
        template_name=template,
        context={"session": session, "path": request.url.path, **context},
        status_code=status_code,
        cookies=cookies,
        headers=headers,
    )


def problem_view(exc: DomainError) -> tuple[int, dict[str, Any]]:
    """The same status and problem the API answers, for a page to show."""
    status = next((s for cls, s in STATUS.items() if isinstance(exc, cls)), 500)
    fields = [
        {"field": e.field, "detail": e.detail}
        for e in (exc.errors if isinstance(exc, InvalidRequest) else [])
    ]
    return status, {
        "status": status,
        "code": exc.code,
        "title": exc.title,
        "detail": exc.detail,
        "errors": fields,
    }


def domain_error_page(request: Request[Any, Any, Any], exc: DomainError) -> Response[Any]:
    status, problem = problem_view(exc)
    retry = (
        {"Retry-After": str(exc.retry_after)}
        if isinstance(exc, RateLimited | Unavailable)
        else None
    )
    return page(request, "error.html", status_code=status, headers=retry, problem=problem)


def http_error_page(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if exc.status_code >= 500:
        return internal_error_page(request, exc)
    problem: dict[str, Any] = {
        "status": exc.status_code,
        "code": "not_found" if exc.status_code == 404 else "invalid_request",
        "title": "Not found" if exc.status_code == 404 else "Invalid request",
        "detail": exc.detail,
        "errors": [],
    }
    return page(request, "error.html", status_code=exc.status_code, problem=problem)


def unavailable_page(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    errors.unavailable(request, exc)  # logged as the API logs it
    problem = {
        "status": 503,
        "code": "unavailable",
        "title": "Service unavailable",
        "detail": "The database is unavailable; retry shortly.",
        "errors": [],
    }
    return page(
        request, "error.html", status_code=503, headers={"Retry-After": "2"}, problem=problem
    )


def internal_error_page(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    errors.internal_error(request, exc)  # logged with its traceback, as the API does
    problem = {
        "status": 500,
        "code": "internal_error",
        "title": "Internal error",
        "detail": "An unexpected error occurred.",
        "errors": [],
    }
    return page(request, "error.html", status_code=500, problem=problem)


def sign_in_required(_: Request[Any, Any, Any], exc: SignInRequired) -> Response[Any]:
    return Redirect(exc.where, status_code=303)


EXCEPTION_HANDLERS: dict[Any, Any] = {
    DomainError: domain_error_page,
    HTTPException: http_error_page,
    SignInRequired: sign_in_required,
    psycopg.OperationalError: unavailable_page,
    psycopg_pool.PoolTimeout: unavailable_page,
    Exception: internal_error_page,
}
