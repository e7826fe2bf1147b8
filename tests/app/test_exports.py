"""A tenant's export of its messages: CSV or JSON lines, the exact window, oldest first,
only its own messages; bad parameters are 422 before any byte of the body."""

from __future__ import annotations

import csv
import io
import json
import uuid
from datetime import UTC, datetime, timedelta

from db import exports as exports_db
from tests import support


async def _send_some(api, tenant, count):
    ids = []
    for i in range(count):
        sent = await support.send(api, tenant, body=f'export {i}, "quoted"\nline')
        assert sent.status_code == 202, sent.text
        ids.append(sent.json()["id"])
    return ids


async def test_csv_and_jsonl_exports_list_the_tenants_messages_of_the_window(api, admin_headers):
    tenant = await support.make_tenant(api, admin_headers, credit=5_000_000, name="exporter")
    other = await support.make_tenant(api, admin_headers, credit=5_000_000, name="other")
    ids = await _send_some(api, tenant, 5)
    await _send_some(api, other, 2)

    as_csv = await api.get("/v1/messages/export", headers=tenant.headers)
    assert as_csv.status_code == 200, as_csv.text
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert "attachment" in as_csv.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert [r["id"] for r in rows] == ids  # oldest first, only the tenant's
    assert rows[0]["body"] == 'export 0, "quoted"\nline'
    assert rows[0]["status"] == "queued"
    assert rows[0]["price"] == "7900"

    as_jsonl = await api.get(
        "/v1/messages/export", params={"format": "jsonl"}, headers=tenant.headers
    )
    assert as_jsonl.status_code == 200
    assert as_jsonl.headers["content-type"].startswith("application/jsonl")
    lines = [json.loads(line) for line in as_jsonl.text.splitlines()]
    assert [m["id"] for m in lines] == ids
    for line in lines:
        shown = await support.message(api, tenant, line["id"])
        assert line["to"] == shown["to"]
        assert line["segments"] == shown["segments"]
        assert line["body"] == shown["body"]
        # The server formats instants as the API writes them (UTC, Z).
        assert line["created_at"] == shown["created_at"]
        assert line["sent_at"] is None
        assert line["provider"] is None
    # Both formats carry the same fields; an absent one is an empty CSV field.
    assert [r["created_at"] for r in rows] == [m["created_at"] for m in lines]
    assert rows[0]["sent_at"] == ""
    assert rows[0]["provider"] == ""

    # The window is exact: from the third message's creation on.
    third = lines[2]["created_at"]
    window = await api.get(
        "/v1/messages/export",
        params={"format": "jsonl", "from": third},
        headers=tenant.headers,
    )
    assert [json.loads(x)["id"] for x in window.text.splitlines()] == ids[2:]
    past = (datetime.now(UTC) - timedelta(days=3)).date().isoformat()
    empty = await api.get(
        "/v1/messages/export", params={"from": past, "to": past}, headers=tenant.headers
    )
    assert empty.text.splitlines() == [
        ",".join(
            [
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
            ]
        )
    ]


async def test_export_parameters_are_validated(api, tenant):
    for params, field in [
        ({"format": "xml"}, "format"),
        ({"from": "yesterday"}, "from"),
        ({"from": "2025-02-01", "to": "2025-01-01"}, "to"),
    ]:
        got = await api.get("/v1/messages/export", params=params, headers=tenant.headers)
        body = support.assert_problem(got, 422, "invalid_request")
        assert body["errors"][0]["field"] == field, body


async def test_a_csv_export_outlasts_the_reporting_statement_timeout(api, conn, admin_headers):
    """A CSV export is one COPY statement as long as its window: the reporting
    session's statement timeout (a report's bound) must not cut it short."""
    tenant = await support.make_tenant(api, admin_headers, credit=1_000_000, name="long")
    await conn.execute(
        """
        WITH made AS (
            INSERT INTO messages (id, created_at, tenant_id, status, to_number, body,
                                  encoding, segments, price, expires_at, updated_at)
            SELECT (lpad(to_hex((extract(epoch FROM t) * 1000)::bigint), 12, '0') || '7'
                    || substr(md5(i::text), 1, 3) || '8' || substr(md5(i::text), 4, 15))::uuid,
                   t, %(tenant)s, 'delivered', '+447400' || lpad(i::text, 6, '0'),
                   repeat('z', 100), 'GSM-7', 1, 0, t + interval '1 day', t
              FROM generate_series(1, 50000) AS i,
                   LATERAL (SELECT date_trunc('day', now()) + i * interval '1 ms' AS t) AS at
            RETURNING id, created_at, tenant_id
        )
        INSERT INTO ledger_message_entries (message_created_at, message_id, tenant_id, kind,
                                            amount)
        SELECT created_at, id, tenant_id, kind, 0
          FROM made, (VALUES ('hold'), ('capture')) AS k (kind)
        """,
        {"tenant": tenant.id},
    )
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    await conn.execute("SET statement_timeout = '20ms'")  # COPY of 50,000 rows takes longer
    try:
        async with conn.transaction():
            body = b"".join(
                [
                    bytes(chunk)
                    async for chunk in exports_db.tenant_messages_csv(
                        conn,
                        tenant_id=uuid.UUID(str(tenant.id)),
                        starts=today,
                        ends=today + timedelta(days=1),
                    )
                ]
            )
    finally:
        await conn.execute("RESET statement_timeout")
    assert body.count(b"\n") == 50_000


# What COPY's text escapes, the JSON lines' own passes or CSV quoting could touch:
# backslashes before the letters of the text format's escapes (\\N is its NULL, \\v
# the escape JSON lacks), quotes, line breaks, tabs, every control character, DEL,
# commas, a printf-style %s, non-Latin text and emoji.
BODIES = [
    'a\\b "q" \\n\nline\ttab \x01\x02 \\u0001 — émoji 🙂 中文',
    "\\N",
    '"\\N"',
    "\\",
    "ends with a backslash \\",
    "\\v \\\\v \x0b vertical tab",
    "".join(chr(c) for c in range(1, 32)) + "\x7f",
    'comma, "quoted, text", %s %d %%',
    "\r\n windows line\r\nbreaks \x0c\x08",
    "null",
    "😀" * 5 + " Ωμέγα עברית العربية",
]


async def test_a_json_lines_export_keeps_every_character_of_the_stored_messages(api, tenant):
    sent = []
    for i, body in enumerate(BODIES):
        reference = None if i % 2 else f'ref "{i}"\t\\N,\x1f'
        made = await support.send(api, tenant, body=body, client_reference=reference)
        assert made.status_code == 202, made.text
        sent.append(made.json()["id"])
    exported = await api.get(
        "/v1/messages/export", params={"format": "jsonl"}, headers=tenant.headers
    )
    assert exported.status_code == 200
    assert exported.content.endswith(b"\n")
    lines = exported.content.split(b"\n")[:-1]  # one object a line, nothing else
    assert len(lines) == len(BODIES)
    for message_id, body, line in zip(sent, BODIES, lines, strict=True):
        got = json.loads(line)
        shown = await support.message(api, tenant, message_id)
        assert got["id"] == message_id
        assert got["body"] == shown["body"] == body
        assert got["client_reference"] == shown["client_reference"]
        assert got["from"] == shown["from"]
        assert got["created_at"] == shown["created_at"]
        assert got["segments"] == shown["segments"]
        assert isinstance(got["segments"], int)
        assert got["price"] == shown["price"]
        assert isinstance(got["price"], int)
        assert got["sent_at"] is None
        assert got["delivered_at"] is None
    # CSV carries the same bodies.
    as_csv = await api.get("/v1/messages/export", headers=tenant.headers)
    rows = list(csv.DictReader(io.StringIO(as_csv.content.decode(), newline="")))
    assert [r["body"] for r in rows] == BODIES
