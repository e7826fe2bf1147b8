"""Helpers shared by the tests: schema loading, tenants, sends."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Any

import httpx
import psycopg
from procrastinate.schema import SchemaManager
from psycopg import sql

from db import ledger as ledger_db

VALID_TO = "+14155552671"  # a valid US number per libphonenumber
OTHER_TO = "+447911123456"  # a valid UK mobile

# What a database built before 1.0.0 recorded: the history the baseline replaced.
PRE_RELEASE_HISTORY = [
    (1, "initial"),
    (2, "delivery"),
    (3, "providers"),
    (4, "operations"),
    (5, "rates_and_retention"),
    (6, "accept_in_one_call"),
    (7, "two_way"),
    (8, "smpp_server"),
    (9, "auth_throttle"),
    (10, "ingest_bucket_clock"),
    (11, "tier_turns"),
    (12, "lean_accept"),
    (13, "count_with_status_events"),
    (14, "accept_batch_parsed_once"),
    (15, "accept_sends_together"),
    (16, "paced_tier_turns"),
    (17, "receipt_requests_in_shared_accept"),
    (18, "queue_only_tenants_that_need_it"),
    (19, "ledger_entries_without_tenant_index"),
]


def load_schema(conn: psycopg.Connection[Any]) -> None:
    """procrastinate's schema, then ours from db/schema.sql, then today's partitions."""
    conn.execute(SchemaManager.get_schema())
    conn.execute(resources.files("db").joinpath("schema.sql").read_text("utf-8"))
    conn.execute("SELECT smsgw_ensure_partitions_v2((now() AT TIME ZONE 'UTC')::date - 1, 8)")


@dataclass(frozen=True)
class TenantHandle:
    id: str
    api_key: str
    webhook_secret: str
    body: dict[str, Any]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


async def make_tenant(
    api: httpx.AsyncClient,
    admin_headers: dict[str, str],
    *,
    credit: int = 0,
    name: str = "acme",
    tier: str = "standard",
    **fields: Any,
) -> TenantHandle:
    created = await api.post(
        "/v1/admin/tenants", json={"name": name, "tier": tier, **fields}, headers=admin_headers
    )
    assert created.status_code == 201, created.text
    body = created.json()
    if credit:
        credited = await api.post(
            f"/v1/admin/tenants/{body['id']}/credits",
            json={"amount": credit, "reference": f"initial-{body['id']}"},
            headers=admin_headers,
        )
        assert credited.status_code == 201, credited.text
    return TenantHandle(body["id"], body["api_key"], body["webhook_secret"], body)


async def own_number(
    api: httpx.AsyncClient, admin_headers: dict[str, str], tenant: TenantHandle, number: str
) -> None:
    """Give ``number`` to ``tenant``: it may send from it (and receives to it)."""
    response = await api.post(
        f"/v1/admin/tenants/{tenant.id}/numbers", json={"number": number}, headers=admin_headers
    )
    assert response.status_code in (200, 201), response.text


async def register_sender(
    api: httpx.AsyncClient,
    admin_headers: dict[str, str],
    tenant: TenantHandle,
    sender_id: str,
    countries: list[str] | None = None,
    status: str = "approved",
) -> dict[str, Any]:
    """Register the alphanumeric ``sender_id`` for ``tenant``."""
    response = await api.post(
        f"/v1/admin/tenants/{tenant.id}/sender-ids",
        json={"sender_id": sender_id, "countries": countries, "status": status},
        headers=admin_headers,
    )
    assert response.status_code in (200, 201), response.text
    result: dict[str, Any] = response.json()
    return result


async def send(
    api: httpx.AsyncClient,
    tenant: TenantHandle,
    headers: dict[str, str] | None = None,
    **fields: Any,
) -> httpx.Response:
    payload = {"to": VALID_TO, "body": "hello", **fields}
    return await api.post(
        "/v1/messages", json=payload, headers={**tenant.headers, **(headers or {})}
    )


async def send_batch(api: httpx.AsyncClient, tenant: TenantHandle, count: int) -> None:
    """``count`` messages to VALID_TO (bodies m0, m1, ...), 1,000 a batch, all accepted."""
    for start in range(0, count, 1000):
        batch = [{"to": VALID_TO, "body": f"m{i}"} for i in range(start, min(start + 1000, count))]
        response = await api.post(
            "/v1/messages/batch", json={"messages": batch}, headers=tenant.headers
        )
        assert response.status_code == 202, response.text


async def message(api: httpx.AsyncClient, tenant: TenantHandle, message_id: str) -> dict[str, Any]:
    """The message as ``GET /v1/messages/{id}`` shows it to its tenant."""
    response = await api.get(f"/v1/messages/{message_id}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def balance(api: httpx.AsyncClient, tenant: TenantHandle) -> dict[str, Any]:
    response = await api.get("/v1/balance", headers=tenant.headers)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """``response`` is an RFC 9457 problem with ``status`` and ``code``; returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert isinstance(body["title"], str)
    assert isinstance(body["detail"], str)
    assert body["title"]
    assert body["detail"]
    return body


async def stored(conn: Any) -> dict[str, int]:
    """How many messages, ledger entries, queued tenants, dispatch jobs and idempotency
    keys exist."""
    counts: dict[str, int] = {}
    for table in (
        "messages",
        "ledger_message_entries",
        "dispatch_queue",
        "procrastinate_jobs",
        "idempotency_keys",
    ):
        query = sql.SQL("SELECT count(*) AS n FROM {}").format(sql.Identifier(table))
        cursor = await conn.execute(query)
        row = await cursor.fetchone()
        counts[table] = row["n"]
    return counts


async def count(conn: Any, query: str, *params: Any) -> int:
    """The ``n`` of ``query`` (``SELECT count(*) AS n ...``)."""
    cursor = await conn.execute(query, params)
    row = await cursor.fetchone()
    return int(row["n"])


NOTHING_STORED = {
    "messages": 0,
    "ledger_message_entries": 0,
    "dispatch_queue": 0,
    "procrastinate_jobs": 0,
    "idempotency_keys": 0,
}


async def violations(conn: Any) -> list[dict[str, Any]]:
    """Rows of the ledger invariant check; empty when the books balance."""
    return await ledger_db.violations(conn)


def assert_token_bucket(times: list[float], *, rate: float, burst: float) -> None:
    """Event times obey a token bucket: any stretch [t_i, t_j] holds at most
    rate * (t_j - t_i) + burst events (plus one for rounding at the edges)."""
    ordered = sorted(times)
    for i, start in enumerate(ordered):
        for j in range(i, len(ordered)):
            allowed = rate * (ordered[j] - start) + burst + 1
            assert j - i + 1 <= allowed, (
                f"{j - i + 1} events in {ordered[j] - start:.3f} s: over {rate}/s, burst {burst}"
            )


# Every field of a message as the API shows it.
MESSAGE_FIELDS = {
    "quiet_hours_until",
    "id",
    "status",
    "to",
    "from",
    "body",
    "encoding",
    "segments",
    "price",
    # What the message was priced at (rate cards: issue 23).
    "price_per_segment",
    "rate_card",
    "rate_card_version",
    "rate_prefix",
    "provider",
    "provider_message_id",
    "attempts",
    "error_code",
    "error_message",
    "client_reference",
    "callback_url",
    "send_at",
    "created_at",
    "updated_at",
    "sent_at",
    "delivered_at",
}


def instant(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value.replace("Z", "+00:00"))


def same_message(a: dict, b: dict) -> None:
    """Equal field by field, times compared as instants (offsets may be spelt otherwise)."""
    assert set(a) == set(b) == MESSAGE_FIELDS
    for field in MESSAGE_FIELDS:
        if field.endswith("_at"):
            assert instant(a[field]) == instant(b[field]), field
        else:
            assert a[field] == b[field], field
