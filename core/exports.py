"""A tenant's messages of a window as CSV or JSON lines, streamed with constant memory:
rows come from a server-side cursor on the reporting pool a few thousand at a time, and
each batch is encoded and handed to the response before the next is read."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

import msgspec
from psycopg_pool import AsyncConnectionPool

from core.errors import FieldError, InvalidRequest
from core.reports import exact_window
from db import Conn, Row
from db import exports as exports_db

FORMATS = {"csv": "text/csv", "jsonl": "application/jsonl"}
COLUMNS = (
    "id",
    "created_at",
    "status",
    "to",
    "from",
    "segments",
    "encoding",
    "price",
    "provider",
    "error_code",
    "client_reference",
    "sent_at",
    "delivered_at",
    "body",
)
# Rows encoded per chunk handed to the response.
CHUNK_ROWS = 1000


class Export(msgspec.Struct, frozen=True):
    media_type: str
    filename: str
    body: AsyncIterator[bytes]


def _instant(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def _record(row: Row) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "created_at": _instant(row["created_at"]),
        "status": row["status"],
        "to": row["to_number"],
        "from": row["sender"],
        "segments": row["segments"],
        "encoding": row["encoding"],
        "price": row["price"],
        "provider": row["provider"],
        "error_code": row["error_code"],
        "client_reference": row["client_reference"],
        "sent_at": _instant(row["sent_at"]),
        "delivered_at": _instant(row["delivered_at"]),
        "body": row["body"],
    }


def _csv_chunk(records: list[dict[str, Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerows([["" if r[c] is None else r[c] for c in COLUMNS] for r in records])
    return out.getvalue().encode()


_json = msgspec.json.Encoder()


def _jsonl_chunk(records: list[dict[str, Any]]) -> bytes:
    return b"".join(_json.encode(r) + b"\n" for r in records)


async def messages(
    pool: AsyncConnectionPool[Conn],
    *,
    tenant_id: uuid.UUID,
    from_: str | None,
    to: str | None,
    format_: str | None,
) -> Export:
    """Validate the request (422 before the first byte), then stream the tenant's
    messages of the window, oldest first."""
    chosen = format_ or "csv"
    if chosen not in FORMATS:
        raise InvalidRequest(
            "The request parameters are not valid.",
            [FieldError("format", "must be one of csv, jsonl")],
        )
    span = exact_window(from_, to)
    encode: Callable[[list[dict[str, Any]]], bytes] = (
        _csv_chunk if chosen == "csv" else _jsonl_chunk
    )

    async def body() -> AsyncIterator[bytes]:
        if chosen == "csv":
            yield _csv_chunk([{c: c for c in COLUMNS}])
        async with pool.connection() as conn, conn.transaction():
            batch: list[dict[str, Any]] = []
            async for row in exports_db.tenant_messages(
                conn, tenant_id=tenant_id, starts=span.starts, ends=span.ends
            ):
                batch.append(_record(row))
                if len(batch) >= CHUNK_ROWS:
                    yield encode(batch)
                    batch = []
            if batch:
                yield encode(batch)

    stamp = f"{span.starts:%Y%m%dT%H%M%SZ}-{span.ends:%Y%m%dT%H%M%SZ}"
    return Export(media_type=FORMATS[chosen], filename=f"messages-{stamp}.{chosen}", body=body())
