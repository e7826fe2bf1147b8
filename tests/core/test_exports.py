"""JSON lines made from COPY's text format are the lines ``row_to_json`` writes for the
same rows, byte for byte, whatever the text holds and however the rows are chunked."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from core import exports
from db import exports as exports_db
from tests.app.test_exports import BODIES

# Every text column in its awkward forms; the NULLs of the nullable ones beside values.
TEXTS = [*BODIES, "", " ", "\t", "\\t", "plain"]


async def _messages(conn, tenant_id: str) -> datetime:
    """A message per awkward text (in the body, the sender, the provider, the error code
    and the client reference by turns), written directly, free (held and captured at 0).
    Returns the day's start."""
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    for i, text in enumerate(TEXTS):
        at = day + timedelta(seconds=i, microseconds=0 if i % 3 else 123_456)
        other = [text if i % 5 == k else (None if i % 2 else f"x{i}") for k in range(4)]
        await conn.execute(
            """
            INSERT INTO messages (id, created_at, tenant_id, status, to_number, sender, body,
                                  encoding, segments, price, expires_at, updated_at,
                                  provider, error_code, client_reference, sent_at,
                                  delivered_at)
            VALUES (%(id)s, %(at)s, %(tenant)s, 'delivered', '+447400000001', %(sender)s,
                    %(body)s, 'UCS-2', %(segments)s, 0, %(at)s + interval '1 day', %(at)s,
                    %(provider)s, %(error_code)s, %(reference)s,
                    %(at)s + interval '300 ms', CASE WHEN %(i)s %% 2 = 0
                    THEN %(at)s + interval '4 s' END)
            """,
            {
                "id": uuid.uuid4(),
                "at": at,
                "tenant": tenant_id,
                "sender": other[0],
                "body": text or "-",
                "segments": 1 + i % 10,
                "provider": other[1],
                "error_code": other[2],
                "reference": other[3],
                "i": i,
            },
        )
        await conn.execute(
            """
            INSERT INTO ledger_message_entries (message_created_at, message_id, tenant_id,
                                                kind, amount)
            SELECT created_at, id, tenant_id, k, 0
              FROM messages, unnest(ARRAY['hold', 'capture']) AS k
             WHERE tenant_id = %(tenant)s AND created_at = %(at)s
            """,
            {"tenant": tenant_id, "at": at},
        )
    return day


@pytest.mark.parametrize("chunk_bytes", [1, 700, 256 * 1024])
async def test_json_lines_are_row_to_json_byte_for_byte(conn, tenant, chunk_bytes):
    day = await _messages(conn, tenant.id)
    window = {"tenant_id": uuid.UUID(str(tenant.id)), "starts": day, "ends": day + timedelta(1)}
    async with conn.transaction():
        cursor = await conn.execute(
            f"SELECT row_to_json(r)::text AS line FROM ({exports_db._q['tenant_messages']}) r",
            window,
        )
        expected = [row["line"].encode() for row in await cursor.fetchall()]
        chunks = [
            exports.json_lines(chunk)
            async for chunk in exports_db.tenant_messages_text(
                conn, chunk_bytes=chunk_bytes, **window
            )
        ]
    assert len(expected) == len(TEXTS)
    assert b"".join(chunks) == b"".join(line + b"\n" for line in expected)
    # Each chunk is whole lines: the response can end after any of them.
    assert all(chunk.endswith(b"\n") for chunk in chunks)
    if chunk_bytes == 1:
        assert len(chunks) == len(TEXTS)
    decoded = [json.loads(line) for line in b"".join(chunks).splitlines()]
    assert {m["body"] for m in decoded} >= {t for t in BODIES}


def test_json_lines_refuse_a_cut_row():
    row = "\t".join(["x"] * len(exports.COLUMNS)).encode() + b"\n"
    assert exports.json_lines(row).count(b"\n") == 1
    with pytest.raises(ValueError, match="not whole rows"):
        exports.json_lines(row[:-1])
    with pytest.raises(ValueError, match="not whole rows"):
        exports.json_lines(row + b"y\tz\n")


async def test_a_copy_cut_short_by_the_server_raises(conn, tenant):
    """A COPY the server cuts short (an error, a cancel) fails the export instead of
    ending it quietly as if the window held no more."""
    day = await _messages(conn, tenant.id)
    window = {"tenant_id": uuid.UUID(str(tenant.id)), "starts": day, "ends": day + timedelta(1)}
    # The ninth row fails after eight went out in the same packet: libpq holds them and
    # the error, so the error is seen where buffered rows are taken without waiting.
    query = exports_db._q["tenant_messages"].replace(
        "SELECT m.id,",
        "SELECT 1 / (m.segments - 9) AS boom, m.id,",
        1,
    )
    got: list[bytes] = []

    async def export() -> None:
        async with conn.transaction():
            # The index in the rows' order, no sort: rows go out before the failing one.
            await conn.execute("SET LOCAL enable_sort = off")
            async for chunk in exports_db._copy(
                conn, query, options="FORMAT text", chunk_bytes=1, **window
            ):
                got.append(chunk)

    with pytest.raises(psycopg.errors.DivisionByZero):
        await export()
    assert len(got) == 8
    # The connection is usable again.
    assert (await (await conn.execute("SELECT 1 AS one")).fetchone()) == {"one": 1}
