"""The operator's price list uploads: a rate card, or a provider's cost list. A CSV file,
the dry run's diff against the version in effect, then confirm. Both kinds go through the
same steps, calling the core function of the admin API's upload with and without
`dry_run` (`core.rates.import_version` as `POST /v1/admin/rate-cards/{card}/versions`,
`core.rates.import_provider_costs` as `POST /v1/admin/providers/{name}/costs`) and
recording the same audit row."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from litestar import Controller, Request, get, post
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency
from litestar.params import FromQuery
from litestar.response import Template

from app.console.web import PREFIX, console_actor, operator_guard, page
from app.controllers.rates import MAX_CSV_BYTES
from core import audit, rates, upstreams
from core.errors import Conflict, FieldError, InvalidRequest
from db import Conn

# Room for the file, or for its text carried back by the confirm form.
MAX_FORM_BYTES = 2 * MAX_CSV_BYTES + 64 * 1024
DIFF_LINES = 200

Importer = Callable[[Conn, str, str, datetime | None, bool], Awaitable[rates.Imported | rates.Diff]]


@dataclass(frozen=True)
class PriceList:
    """What a rate card's and a cost list's uploads do not share."""

    what: str  # "rate card", "cost list"
    here: str  # the pages' address
    field: str  # the form field naming the card or the provider
    importer: Importer
    action: str  # the audit row's, as its API twin records it
    target: Callable[[str], str]
    card: Callable[[str], str]  # the card holding its versions


async def _import_card(
    conn: Conn, name: str, text: str, at: datetime | None, dry: bool
) -> rates.Imported | rates.Diff:
    return await rates.import_version(conn, card=name, csv_text=text, effective_at=at, dry_run=dry)


async def _import_costs(
    conn: Conn, name: str, text: str, at: datetime | None, dry: bool
) -> rates.Imported | rates.Diff:
    return await rates.import_provider_costs(
        conn, provider=name, csv_text=text, effective_at=at, dry_run=dry
    )


RATE_CARD = PriceList(
    what="rate card",
    here=f"{PREFIX}/operator/rate-cards",
    field="card",
    importer=_import_card,
    action="rate_card.version_imported",
    target=lambda name: f"rate_card:{name}",
    card=lambda name: name,
)
COST_LIST = PriceList(
    what="cost list",
    here=f"{PREFIX}/operator/cost-lists",
    field="provider",
    importer=_import_costs,
    action="provider_costs.imported",
    target=lambda name: f"provider:{name}",
    card=rates.provider_card,
)


async def _upload(
    request: Request[Any, Any, Any], kind: PriceList
) -> tuple[str, str, datetime | None]:
    """The card's or provider's name, the CSV's text (an uploaded file, or the text the
    confirm form carries back) and when it takes effect (None: now)."""
    form = await request.form()
    card = str(form.get(kind.field, "")).strip()
    upload = form.get("file")
    if isinstance(upload, UploadFile):
        raw = await upload.read()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidRequest(
                "The file is not valid.", [FieldError("line 1", "the file is not UTF-8 text")]
            ) from None
    else:
        text = str(form.get("csv", ""))
    when = str(form.get("effective_at", "")).strip()
    try:
        effective_at = datetime.fromisoformat(when) if when else None
    except ValueError:
        effective_at = None
    if when and (effective_at is None or effective_at.tzinfo is None):
        raise InvalidRequest(
            "The form is not valid.",
            [FieldError("effective_at", "must be an RFC 3339 time with its offset")],
        )
    return card, text, effective_at


async def _preview(request: Request[Any, Any, Any], conn: Conn, kind: PriceList) -> Template:
    """The dry run's diff (nothing written), in the handler's transaction."""
    name, text, effective_at = await _upload(request, kind)
    diff = await kind.importer(conn, name, text, effective_at, True)
    assert isinstance(diff, rates.Diff)
    return page(
        request,
        "rate_card_diff.html",
        kind=kind,
        card=name,
        csv=text,
        effective_at=effective_at.isoformat() if effective_at else "",
        diff=diff,
        limit=DIFF_LINES,
    )


async def _confirm(request: Request[Any, Any, Any], conn: Conn, kind: PriceList) -> Template:
    """Imports what was previewed, in the handler's transaction, unless another version
    took effect meanwhile: then the diff shown is stale, and the operator previews
    again."""
    name, text, effective_at = await _upload(request, kind)
    form = await request.form()
    against = str(form.get("against", ""))
    now = await kind.importer(conn, name, text, effective_at, True)
    assert isinstance(now, rates.Diff)
    if str(now.against or "") != against:
        raise Conflict(
            f"Another version of this {kind.what} took effect since the preview: "
            "upload the file again to see what it changes now."
        )
    done = await kind.importer(conn, name, text, effective_at, False)
    await audit.record_version(conn, console_actor(request), kind.action, kind.target(name), done)
    assert isinstance(done, rates.Imported)
    return page(
        request,
        "rate_card_done.html",
        kind=kind,
        done=done,
        card=await rates.get_card(conn, card=kind.card(name)),
    )


class RateCardsConsole(Controller):
    path = RATE_CARD.here
    guards = [operator_guard]
    include_in_schema = False

    @get("/")
    async def form(
        self, request: Request[Any, Any, Any], card: FromQuery[str | None] = None
    ) -> Template:
        return page(request, "rate_cards.html", kind=RATE_CARD, card=card or "")

    @post("/preview", request_max_body_size=MAX_FORM_BYTES)
    async def preview(
        self, request: Request[Any, Any, Any], conn: NamedDependency[Conn]
    ) -> Template:
        async with conn.transaction():
            return await _preview(request, conn, RATE_CARD)

    @post("/confirm", request_max_body_size=MAX_FORM_BYTES)
    async def confirm(
        self, request: Request[Any, Any, Any], conn: NamedDependency[Conn]
    ) -> Template:
        """As `POST /v1/admin/rate-cards/{card}/versions`."""
        async with conn.transaction():
            return await _confirm(request, conn, RATE_CARD)


class CostListsConsole(Controller):
    """A provider's cost list: what it charges per segment by destination, which
    replaces its routes' flat cost where it covers a destination."""

    path = COST_LIST.here
    guards = [operator_guard]
    include_in_schema = False

    @get("/")
    async def form(
        self,
        request: Request[Any, Any, Any],
        conn: NamedDependency[Conn],
        provider: FromQuery[str | None] = None,
    ) -> Template:
        configured = [p.name for p in await upstreams.provider_status(conn) if p.kind]
        return page(
            request, "rate_cards.html", kind=COST_LIST, card=provider or "", providers=configured
        )

    @post("/preview", request_max_body_size=MAX_FORM_BYTES)
    async def preview(
        self, request: Request[Any, Any, Any], conn: NamedDependency[Conn]
    ) -> Template:
        async with conn.transaction():
            return await _preview(request, conn, COST_LIST)

    @post("/confirm", request_max_body_size=MAX_FORM_BYTES)
    async def confirm(
        self, request: Request[Any, Any, Any], conn: NamedDependency[Conn]
    ) -> Template:
        """As `POST /v1/admin/providers/{name}/costs`."""
        async with conn.transaction():
            return await _confirm(request, conn, COST_LIST)
