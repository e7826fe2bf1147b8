"""The operator's rate card upload: a CSV file, the dry run's diff against the version in
effect, then confirm. Both steps call `core.rates.import_version`, as
`POST /v1/admin/rate-cards/{card}/versions` does (with and without `dry_run`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from litestar import Controller, Request, get, post
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency
from litestar.params import FromQuery
from litestar.response import Template

from app.console.web import PREFIX, console_actor, operator_guard, page
from app.controllers.rates import MAX_CSV_BYTES
from core import audit, rates
from core.errors import Conflict, FieldError, InvalidRequest
from db import Conn

# Room for the file, or for its text carried back by the confirm form.
MAX_FORM_BYTES = 2 * MAX_CSV_BYTES + 64 * 1024
DIFF_LINES = 200


async def _upload(request: Request[Any, Any, Any]) -> tuple[str, str, datetime | None]:
    """The card's name, the CSV's text (an uploaded file, or the text the confirm form
    carries back) and when it takes effect (None: now)."""
    form = await request.form()
    card = str(form.get("card", "")).strip()
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


class RateCardsConsole(Controller):
    path = f"{PREFIX}/operator/rate-cards"
    guards = [operator_guard]
    include_in_schema = False

    @get("/")
    async def form(
        self, request: Request[Any, Any, Any], card: FromQuery[str | None] = None
    ) -> Template:
        return page(request, "rate_cards.html", card=card or "")

    @post("/preview", request_max_body_size=MAX_FORM_BYTES)
    async def preview(
        self, request: Request[Any, Any, Any], conn: NamedDependency[Conn]
    ) -> Template:
        card, text, effective_at = await _upload(request)
        async with conn.transaction():
            diff = await rates.import_version(
                conn, card=card, csv_text=text, effective_at=effective_at, dry_run=True
            )
        assert isinstance(diff, rates.Diff)
        return page(
            request,
            "rate_card_diff.html",
            card=card,
            csv=text,
            effective_at=effective_at.isoformat() if effective_at else "",
            diff=diff,
            limit=DIFF_LINES,
        )

    @post("/confirm", request_max_body_size=MAX_FORM_BYTES)
    async def confirm(
        self, request: Request[Any, Any, Any], conn: NamedDependency[Conn]
    ) -> Template:
        """Imports what was previewed, unless another version took effect meanwhile: then
        the diff shown is stale, and the operator previews again."""
        card, text, effective_at = await _upload(request)
        form = await request.form()
        against = str(form.get("against", ""))
        async with conn.transaction():
            now = await rates.import_version(
                conn, card=card, csv_text=text, effective_at=effective_at, dry_run=True
            )
            assert isinstance(now, rates.Diff)
            if str(now.against or "") != against:
                raise Conflict(
                    "Another version of this card took effect since the preview: "
                    "upload the file again to see what it changes now."
                )
            done = await rates.import_version(
                conn, card=card, csv_text=text, effective_at=effective_at
            )
            # As `POST /v1/admin/rate-cards/{card}/versions` records its import.
            await audit.record_version(
                conn,
                console_actor(request),
                "rate_card.version_imported",
                f"rate_card:{card}",
                done,
            )
        assert isinstance(done, rates.Imported)
        return page(
            request, "rate_card_done.html", done=done, card=await rates.get_card(conn, card=card)
        )
