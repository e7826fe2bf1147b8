"""Tenant API: send, quote, read, list and cancel messages."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery, HeaderParameter, JSONBody, QueryParameter

from app.auth import (
    KEY_CACHE,
    UncopiedGuards,
    provide_tenant,
    reauthenticate,
    request_state,
    tenant_guard,
)
from app.body import StrictBody, decode, validation_error
from app.deps import Services, services
from app.openapi import problems
from core import accept, batch, idempotency, inbound, messages, single_send, submission
from core.batch import BatchResult
from core.errors import FieldError, InvalidRequest
from core.inbound import InboundMessage, InboundPage
from core.messages import Message, Page, Quote
from core.submission import SendRequest
from core.tenants import Tenant
from db import Conn

IDEMPOTENCY_KEY = HeaderParameter(
    name="Idempotency-Key",
    required=False,
    description="Replays the first 202 answer for 24 h; another body gets 422.",
)


class BatchRequest(msgspec.Struct, forbid_unknown_fields=True):
    messages: Annotated[list[SendRequest], msgspec.Meta(min_length=1, max_length=1000)]


class _RawBatch(msgspec.Struct, forbid_unknown_fields=True):
    messages: list[msgspec.Raw]


class BatchBody(StrictBody[BatchRequest]):
    """Decodes each item on its own, so one bad item does not sink the batch."""

    def decode_bytes(self, value: bytes) -> Any:
        raw = decode(value, _RawBatch)
        items: list[SendRequest | InvalidRequest] = []
        for item in raw.messages:
            try:
                items.append(msgspec.json.decode(item, type=SendRequest, strict=True))
            except msgspec.ValidationError as exc:
                items.append(validation_error(exc))
            except msgspec.DecodeError as exc:  # pragma: no cover - the whole body parsed
                items.append(InvalidRequest(str(exc)))
        return items


@dataclass
class MessagesPage:
    """How the document shows `Page | InboundPage`: Litestar renders a union as `oneOf`,
    which an empty page (valid as either) would break. (A dataclass: msgspec has no
    untagged unions of Structs.)"""

    messages: list[Message | InboundMessage]
    next_cursor: str | None


INSTANT = QueryParameter(format="date-time", description="RFC 3339 timestamp, exclusive")


def _instant(name: str, raw: str | None) -> datetime | None:
    """RFC 3339 only: left to Litestar, a query datetime also takes a number as Unix time
    (`created_before=0.5`), which no client means."""
    if raw is None:
        return None
    try:
        return msgspec.convert(raw, datetime)
    except msgspec.ValidationError:
        raise InvalidRequest(
            "The filters are not valid.", [FieldError(name, "must be an RFC 3339 timestamp")]
        ) from None


async def _accept_one(
    svc: Services,
    tenant: Tenant,
    data: SendRequest,
    idem: idempotency.Idempotency | None,
    *,
    key_id: uuid.UUID | None,
) -> idempotency.Accepted:
    return await single_send.accept_single(
        svc.pool,
        svc.sends,
        tenant=tenant,
        request=data,
        scheduler=svc.scheduler,
        idem=idem,
        key_id=key_id,
    )


def _accepted(result: idempotency.Accepted) -> Response[Any]:
    return Response(result.body, status_code=202)


class MessagesController(Controller):
    path = "/v1/messages"
    tags = ["messages"]
    guards = [tenant_guard]
    dependencies = {"tenant": Provide(provide_tenant, sync_to_thread=False)}

    @UncopiedGuards(
        "/",
        http_method="POST",
        dto=StrictBody[SendRequest],
        return_dto=None,
        status_code=202,
        responses=problems(402),
        opt={KEY_CACHE: True},
    )
    async def send(
        self,
        request: Request[Any, Any, Any],
        state: State,
        data: JSONBody[SendRequest],
        idempotency_key: Annotated[str | None, IDEMPOTENCY_KEY] = None,
    ) -> Response[Message]:
        # The hot path takes its connection and tenant itself: two dependencies would be
        # resolved in a task group of their own per request (~6% of the API's CPU).
        svc = services(state)
        submission.check_destinations(data, svc.destinations)
        idem = idempotency.from_header(
            idempotency_key, await request.body(), svc.settings.idempotency_ttl_seconds
        )
        try:
            result = await _accept_one(
                svc, provide_tenant(request), data, idem, key_id=request_state(request)["key_id"]
            )
            return _accepted(result)
        except accept.StaleKey:
            pass
        # The cached key was revoked or its tenant changed: look it up again (401 if
        # revoked), with the connection given back first.
        tenant = await reauthenticate(request)
        return _accepted(await _accept_one(svc, tenant, data, idem, key_id=None))

    @post("/batch", dto=BatchBody, return_dto=None, status_code=202, responses=problems(402))
    async def send_batch(
        self,
        request: Request[Any, Any, Any],
        state: State,
        tenant: NamedDependency[Tenant],
        data: JSONBody[BatchRequest],
        idempotency_key: Annotated[str | None, IDEMPOTENCY_KEY] = None,
    ) -> Response[BatchResult]:
        svc = services(state)
        items: list[SendRequest | InvalidRequest] = data  # type: ignore[assignment]
        items = submission.screen_destinations(items, svc.destinations)
        result = await batch.accept_batch(
            svc.pool,
            tenant=tenant,
            items=items,
            scheduler=svc.scheduler,
            idem=idempotency.from_header(
                idempotency_key, await request.body(), svc.settings.idempotency_ttl_seconds
            ),
        )
        return _accepted(result)

    @post("/quote", dto=StrictBody[SendRequest], return_dto=None, status_code=200)
    async def quote(
        self,
        state: State,
        conn: NamedDependency[Conn],
        tenant: NamedDependency[Tenant],
        data: JSONBody[SendRequest],
    ) -> Quote:
        submission.check_destinations(data, services(state).destinations)
        return await messages.quote(conn, data, tenant=tenant, now_ms=accept.now_ms())

    @get("/{message_id:str}")
    async def get_message(
        self,
        conn: NamedDependency[Conn],
        tenant: NamedDependency[Tenant],
        message_id: FromPath[str],
    ) -> Message:
        return await messages.get_message(
            conn, tenant=tenant, message_id=messages.parse_message_id(message_id)
        )

    @post("/{message_id:str}/cancel", status_code=200, responses=problems(409))
    async def cancel(
        self,
        conn: NamedDependency[Conn],
        tenant: NamedDependency[Tenant],
        message_id: FromPath[str],
    ) -> Message:
        return await messages.cancel_message(
            conn, tenant=tenant, message_id=messages.parse_message_id(message_id)
        )

    @get(
        "/",
        responses={
            200: ResponseSpec(
                MessagesPage,
                description="Outbound messages, or inbound ones with `direction=inbound`",
                generate_examples=False,
            )
        },
    )
    async def list_messages(
        self,
        conn: NamedDependency[Conn],
        tenant: NamedDependency[Tenant],
        status: FromQuery[str | None] = None,
        to: FromQuery[str | None] = None,
        created_after: Annotated[str | None, INSTANT] = None,
        created_before: Annotated[str | None, INSTANT] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=messages.MAX_PAGE)] = messages.DEFAULT_PAGE,
        cursor: FromQuery[str | None] = None,
        direction: Annotated[
            Literal["outbound", "inbound"],
            QueryParameter(description="inbound: messages received on the tenant's numbers"),
        ] = "outbound",
    ) -> Page | InboundPage:
        after = _instant("created_after", created_after)
        before = _instant("created_before", created_before)
        if direction == "inbound":
            if status not in (None, "received"):
                raise InvalidRequest(
                    "The filters are not valid.",
                    [FieldError("status", "inbound messages are all 'received'")],
                )
            return await inbound.list_inbound(
                conn,
                tenant=tenant,
                to=to,
                created_after=after,
                created_before=before,
                limit=limit,
                cursor=cursor,
            )
        return await messages.list_messages(
            conn,
            tenant=tenant,
            status=status,
            to=to,
            created_after=after,
            created_before=before,
            limit=limit,
            cursor=cursor,
        )
