"""A tenant's export of its messages: CSV or JSON lines, the exact window, oldest first,
only its own messages; bad parameters are 422 before any byte of the body."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

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
