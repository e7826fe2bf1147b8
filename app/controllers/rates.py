"""Admin API: rate cards in and out as CSV (`prefix,country,network,price`), and a
tenant's own rates."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post, put
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery, QueryParameter

from app.auth import admin_guard
from app.controllers.admin import parse_id
from app.openapi import problems
from core import audit, rates
from core.audit import Actor
from core.errors import FieldError, InvalidRequest, NotFound
from db import Conn

CSV = "text/csv"
# A card of 50,000 prefixes with long network names fits with room to spare.
MAX_CSV_BYTES = 8 * 1024 * 1024
_CSV_TYPES = ("text/csv", "text/plain", "application/csv")


async def _csv_body(request: Request[Any, Any, Any]) -> str:
    raw = await request.body()  # read first: a body over the limit is 413, whatever it is
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in _CSV_TYPES:
        raise InvalidRequest(
            "The body must be a CSV price list.",
            [FieldError("Content-Type", "must be text/csv")],
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest(
            "The file is not valid.", [FieldError("line 1", "the file is not UTF-8 text")]
        ) from None


def _answer(result: rates.Imported | rates.Diff) -> Response[Any]:
    return Response(result, status_code=201 if isinstance(result, rates.Imported) else 200)


class RateCardsController(Controller):
    path = "/v1/admin"
    tags = ["admin"]
    guards = [admin_guard]

    @post(
        "/rate-cards/{card:str}/versions",
        status_code=201,
        request_max_body_size=MAX_CSV_BYTES,
        responses={
            200: ResponseSpec(
                rates.Diff,
                description="dry_run=true: the diff, nothing written",
                generate_examples=False,
            ),
            **problems(413, 422),
        },
    )
    async def import_version(
        self,
        request: Request[Any, Any, Any],
        conn: NamedDependency[Conn],
        actor: NamedDependency[Actor],
        card: FromPath[str],
        effective_at: Annotated[
            datetime | None,
            QueryParameter(description="RFC 3339; default now"),
        ] = None,
        dry_run: Annotated[
            bool, QueryParameter(description="true: answer the diff, write nothing")
        ] = False,
    ) -> Response[Any]:
        """A new version of the card (made if new) from a CSV price list, `text/csv` with
        the header `prefix,country,network,price` (price in micro-units per segment). A
        malformed file is refused whole, every problem listed by line."""
        text = await _csv_body(request)
        async with conn.transaction():
            result = await rates.import_version(
                conn, card=card, csv_text=text, effective_at=effective_at, dry_run=dry_run
            )
            await audit.record_version(
                conn, actor, "rate_card.version_imported", f"rate_card:{card}", result
            )
        return _answer(result)

    @get("/rate-cards/{card:str}")
    async def get_card(self, conn: NamedDependency[Conn], card: FromPath[str]) -> rates.Card:
        """The card's versions, the one in effect now and each one's count of rates."""
        return await rates.get_card(conn, card=card)

    @get("/rate-cards/{card:str}/versions/{file:str}", media_type=CSV)
    async def export_version(
        self, conn: NamedDependency[Conn], card: FromPath[str], file: FromPath[str]
    ) -> Response[str]:
        """A version as CSV: `/versions/3.csv`, or `/versions/current.csv` for the one in
        effect now."""
        number, _, extension = file.partition(".")
        if extension != "csv" or not (number.isdigit() or number == "current"):
            raise NotFound("Versions are read as /versions/<version>.csv.")
        text = await rates.export_version(
            conn, card=card, version=int(number) if number.isdigit() else None
        )
        return Response(text, media_type=CSV)

    @post(
        "/providers/{name:str}/costs",
        status_code=201,
        request_max_body_size=MAX_CSV_BYTES,
        responses={
            200: ResponseSpec(
                rates.Diff,
                description="dry_run=true: the diff, nothing written",
                generate_examples=False,
            ),
            **problems(413, 422),
        },
    )
    async def import_provider_costs(
        self,
        request: Request[Any, Any, Any],
        conn: NamedDependency[Conn],
        actor: NamedDependency[Actor],
        name: FromPath[str],
        effective_at: Annotated[
            datetime | None,
            QueryParameter(description="RFC 3339; default now"),
        ] = None,
        dry_run: Annotated[
            bool, QueryParameter(description="true: answer the diff, write nothing")
        ] = False,
    ) -> Response[Any]:
        """A new version of the provider's cost price list (the rate card CSV, price =
        what it charges per segment). It replaces its routes' flat `cost_per_segment`
        where it covers a destination; read it back as the card `provider:<name>`."""
        text = await _csv_body(request)
        async with conn.transaction():
            result = await rates.import_provider_costs(
                conn, provider=name, csv_text=text, effective_at=effective_at, dry_run=dry_run
            )
            await audit.record_version(
                conn, actor, "provider_costs.imported", f"provider:{name}", result
            )
        return _answer(result)

    @put(
        "/tenants/{tenant_id:str}/rates",
        status_code=200,
        request_max_body_size=MAX_CSV_BYTES,
        responses=problems(413, 422),
    )
    async def put_own_rates(
        self,
        request: Request[Any, Any, Any],
        conn: NamedDependency[Conn],
        actor: NamedDependency[Actor],
        tenant_id: FromPath[str],
        dry_run: FromQuery[bool] = False,
    ) -> Response[Any]:
        """Replace the tenant's own rates (CSV, the card format), in effect now. For the
        prefixes they cover they win over its card's; a file of only the header clears
        them."""
        text = await _csv_body(request)
        async with conn.transaction():
            tenant = parse_id(tenant_id, "tenant")
            result = await rates.put_own_rates(
                conn, tenant_id=tenant, csv_text=text, dry_run=dry_run
            )
            await audit.record_version(
                conn,
                actor,
                "tenant_rates.replaced",
                f"rate_card:{rates.own_card(tenant)}",
                result,
                tenant_id=tenant,
            )
        return Response(result, status_code=200)
