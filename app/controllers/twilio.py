"""The Twilio-compatible Messages API under ``/2010-04-01/Accounts/{AccountSid}``: form
bodies, HTTP Basic auth with the tenant's account SID and auth token, Twilio's resource
shapes and error bodies. Code written against Twilio moves here by changing its base URL
and credentials (README, "Twilio-compatible API")."""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import parse_qs

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath

from app.auth import request_state, twilio_guard
from app.deps import services
from app.openapi import twilio_errors
from app.twilio_errors import TWILIO_EXCEPTION_HANDLERS
from core import twilio, twilio_api
from core.errors import FieldError, InvalidRequest, NotFound
from core.idempotency import Idempotency
from db import Conn

IDEMPOTENCY_HEADER = "I-Twilio-Idempotency-Token"


def provide_account(request: Request[Any, Any, Any]) -> twilio.Account:
    account = request_state(request)["twilio_account"]
    assert isinstance(account, twilio.Account)
    return account


def _params(raw: bytes) -> dict[str, str]:
    """A form body (or query string) as Twilio reads it: one value per name."""
    try:
        parsed = parse_qs(raw.decode(), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise InvalidRequest("The request body is not valid form data.") from None
    return {name: values[-1] for name, values in parsed.items()}


def _idempotency(request: Request[Any, Any, Any], form: dict[str, str]) -> Idempotency | None:
    token = request.headers.get(IDEMPOTENCY_HEADER)
    if token is None:
        return None
    if not token or len(token) > 200 or not token.isprintable():
        raise InvalidRequest(
            "The idempotency token is not valid.",
            [FieldError(IDEMPOTENCY_HEADER, "must be 1 to 200 printable characters")],
        )
    canonical = json.dumps(form, sort_keys=True, separators=(",", ":")).encode()
    return Idempotency(
        # Its own namespace: a REST Idempotency-Key of the same text is another request.
        key=f"twilio:{token}",
        request_sha256=hashlib.sha256(canonical).digest(),
        ttl_seconds=services(request.app.state).settings.idempotency_ttl_seconds,
    )


def _sid(resource: str) -> str:
    if not resource.endswith(".json"):
        raise NotFound(f"The requested resource {resource} was not found.")
    return resource.removesuffix(".json")


class TwilioController(Controller):
    path = "/2010-04-01/Accounts/{account_sid:str}"
    tags = ["twilio"]
    guards = [twilio_guard]
    exception_handlers = TWILIO_EXCEPTION_HANDLERS
    dependencies = {"account": Provide(provide_account, sync_to_thread=False)}

    @post("/Messages.json", status_code=201, responses=twilio_errors(402, 413, 422))
    async def create_message(
        self,
        request: Request[Any, Any, Any],
        state: State,
        account: NamedDependency[twilio.Account],
        account_sid: FromPath[str],
    ) -> Response[Any]:
        """Send: form `To`, `From` or `MessagingServiceSid`, `Body`, `StatusCallback`,
        `ValidityPeriod`, `SendAt` with `ScheduleType=fixed`. Header
        `I-Twilio-Idempotency-Token` replays the first answer."""
        form = _params(await request.body())
        svc = services(state)
        # No connection of its own while it waits for a shared accept call.
        result = await twilio_api.create_message(
            svc.pool,
            account=account,
            form=form,
            scheduler=svc.scheduler,
            idem=_idempotency(request, form),
            sends=svc.sends,
            destinations=svc.destinations,
        )
        return Response(result.body, status_code=201)

    @get("/Messages.json")
    async def list_messages(
        self,
        request: Request[Any, Any, Any],
        conn: NamedDependency[Conn],
        account: NamedDependency[twilio.Account],
        account_sid: FromPath[str],
    ) -> dict[str, Any]:
        """Outbound and inbound messages, newest first; `To`, `From`, `DateSent`,
        `DateSent<`, `DateSent>`, `PageSize` (at most 1000), `Page`, `PageToken`."""
        query = _params(request.scope.get("query_string", b""))
        return await twilio_api.list_messages(conn, account=account, query=query)

    @get("/Messages/{resource:str}")
    async def fetch_message(
        self,
        conn: NamedDependency[Conn],
        account: NamedDependency[twilio.Account],
        account_sid: FromPath[str],
        resource: FromPath[str],
    ) -> twilio.TwilioMessage:
        """`GET .../Messages/{Sid}.json`."""
        return await twilio_api.fetch_message(conn, account=account, sid=_sid(resource))

    @post("/Messages/{resource:str}", status_code=200, responses=twilio_errors(413))
    async def update_message(
        self,
        request: Request[Any, Any, Any],
        conn: NamedDependency[Conn],
        account: NamedDependency[twilio.Account],
        account_sid: FromPath[str],
        resource: FromPath[str],
    ) -> twilio.TwilioMessage:
        """`POST .../Messages/{Sid}.json` with `Status=canceled`: cancel a scheduled or
        queued message (its hold is released)."""
        return await twilio_api.update_message(
            conn, account=account, sid=_sid(resource), form=_params(await request.body())
        )
