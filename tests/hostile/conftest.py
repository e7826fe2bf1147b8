"""A real `smsgw api` process on loopback, on a database of its own for the module, with
tenants and messages to find: schemathesis drives it over HTTP like any client would."""

from __future__ import annotations

import base64
import contextlib
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row

from smsgw import processes
from tests import support, two_way
from tests.conftest import ADMIN_TOKEN, Server
from tests.support import OTHER_TO, VALID_TO, TenantHandle
from tests.workers import _env

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@dataclass
class Gateway:
    base: str
    db_url: str
    log: Path
    tenant_id: str
    tenant_headers: dict[str, str]
    # Another tenant, for the admin endpoints to change at will: the tenant above keeps
    # its price, tier and keys.
    managed_tenant_id: str
    message_ids: list[str] = field(default_factory=list)

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def _tenant(client: httpx.Client, name: str, credit: int) -> dict[str, str]:
    created = client.post("/v1/admin/tenants", json={"name": name}, headers=ADMIN)
    assert created.status_code == 201, created.text
    body: dict[str, str] = created.json()
    credited = client.post(
        f"/v1/admin/tenants/{body['id']}/credits",
        json={"amount": credit, "reference": "seed"},
        headers=ADMIN,
    )
    assert credited.status_code == 201, credited.text
    return body


def _seed(client: httpx.Client) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """A tenant with queued, scheduled and canceled messages, so that reads and lists
    answer with real rows that must match the document too."""
    tenant = _tenant(client, "fuzzed", 1_000_000_000)
    managed = _tenant(client, "managed", 1_000_000)
    headers = {"Authorization": f"Bearer {tenant['api_key']}"}
    # Its sender ID, sent to a country that takes alphanumeric senders.
    registered = client.post(
        f"/v1/admin/tenants/{tenant['id']}/sender-ids", json={"sender_id": "ACME"}, headers=ADMIN
    )
    assert registered.status_code == 201, registered.text
    later = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    ids = []
    for fields in (
        {},
        {"send_at": later, "client_reference": "ref-1", "callback_url": "https://example.com/"},
        {"body": "ünïcödé 😀", "from": "ACME", "to": "+447400123456"},
    ):
        sent = client.post(
            "/v1/messages", json={"to": VALID_TO, "body": "hi", **fields}, headers=headers
        )
        assert sent.status_code == 202, sent.text
        ids.append(sent.json()["id"])
    canceled = client.post(f"/v1/messages/{ids[0]}/cancel", headers=headers)
    assert canceled.status_code == 200, canceled.text
    return tenant, managed, ids


@contextlib.contextmanager
def api_on_loopback(
    pg_server: Server, template_db: str, log: Path, **settings: Any
) -> Iterator[tuple[str, str]]:
    """A real `smsgw api` process (JSON logs into ``log``) on a fresh database; yields
    its base URL and the database URL. The ledger invariant is checked at the end."""
    name = f"h_{uuid.uuid4().hex[:16]}"
    janitor = pg_server.janitor(name, template=template_db)
    janitor.init()
    db_url = pg_server.url(name)
    port = processes.free_port()
    env = _env(db_url, {"auth_failures_limit": 1_000_000, **settings})
    env["SMSGW_ADMIN_TOKEN"] = ADMIN_TOKEN
    log.unlink(missing_ok=True)
    proc = processes.spawn(processes.smsgw_command("api", "--port", str(port)), env=env, log=log)
    base = f"http://127.0.0.1:{port}"
    try:
        try:
            processes.wait_http(f"{base}/ready", watch=[proc], timeout=30)
        except processes.StartError as exc:
            raise AssertionError(f"{exc}\n{log.read_text(errors='replace')}") from None
        yield base, db_url
        with psycopg.connect(db_url, autocommit=True, row_factory=dict_row) as conn:
            problems = conn.execute(
                "SELECT tenant_id, message_id, problem FROM smsgw_ledger_violations_v1()"
            ).fetchall()
        assert problems == [], f"ledger invariant broken: {problems}"
    finally:
        processes.stop(proc, timeout=20)
        janitor.drop()


@pytest.fixture(scope="module")
def gateway(pg_server: Server, template_db: str, tmp_path_factory) -> Iterator[Gateway]:
    log = tmp_path_factory.mktemp("gateway") / "api.log"
    with api_on_loopback(pg_server, template_db, log) as (base, db_url):
        with httpx.Client(base_url=base, timeout=10) as client:
            tenant, managed, ids = _seed(client)
        yield Gateway(
            base=base,
            db_url=db_url,
            log=log,
            tenant_id=tenant["id"],
            tenant_headers={"Authorization": f"Bearer {tenant['api_key']}"},
            managed_tenant_id=managed["id"],
            message_ids=ids,
        )
        # Whatever the checks looked at, the server itself never answered a 5xx (the
        # probes schemathesis sends on its own included) nor logged an internal error.
        failures = [
            line
            for line in log.read_text(errors="replace").splitlines()
            if '"api.internal_error"' in line or re.search(r'"status": ?5\d\d', line)
        ]
        assert failures == [], "\n".join(failures[:20])


# -- In-process: one of everything, for the tests that walk every endpoint -------------

TABLES = (
    "tenants",
    "api_keys",
    "messages",
    "ledger_credits",
    "ledger_message_entries",
    "idempotency_keys",
    "procrastinate_jobs",
    "receipts_inbox",
    "callbacks",
    "providers",
    "routes",
    "owned_numbers",
    "suppressions",
    "twilio_accounts",
    "inbound_messages",
    "inbound_parts",
    "smpp_accounts",
    "geo_permissions",
    "high_risk_countries",
    "pumping_limits",
    "destination_suspensions",
    "destination_counts",
    "destination_tallies",
    "alert_state",
)


async def snapshot(conn: Any) -> dict[str, Any]:
    """Row counts of every table a request could write, and the money in balances."""
    counts: dict[str, Any] = {}
    for table in TABLES:
        query = sql.SQL("SELECT count(*) AS n FROM {}").format(sql.Identifier(table))
        counts[table] = (await (await conn.execute(query)).fetchone())["n"]
    cursor = await conn.execute(
        "SELECT sum(credits) AS credits, sum(available) AS available, sum(held) AS held,"
        " sum(captured) AS captured FROM balances"
    )
    counts["balances"] = dict(await cursor.fetchone())
    return counts


@dataclass
class World:
    """A tenant with a queued message, Twilio and SMPP credentials, an owned number, a
    suppression, a spare API key; an HTTP provider with a route; and how to call each
    door with valid credentials."""

    tenant: TenantHandle
    ids: dict[str, str]
    headers: dict[str, dict[str, str]]
    secrets: dict[str, str]  # what was shown once (or configured): must never show again

    def url(self, path: str) -> str:
        return path.format(**self.ids)


async def _created(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code in (200, 201, 202), response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture
async def world(
    api: httpx.AsyncClient, admin_headers: dict[str, str], tenant: TenantHandle
) -> World:
    await two_way.http_provider(api, admin_headers)
    route = await _created(
        await api.post(
            "/v1/admin/routes", json={"prefix": "+44", "provider": "agg"}, headers=admin_headers
        )
    )
    await two_way.own(api, admin_headers, tenant, two_way.OUR_NUMBER)
    await support.register_sender(api, admin_headers, tenant, "ACME", ["GB"])
    await _created(
        await api.post("/v1/suppressions", json={"recipient": OTHER_TO}, headers=tenant.headers)
    )
    smpp = await _created(
        await api.post(
            f"/v1/admin/tenants/{tenant.id}/smpp-credentials", json={}, headers=admin_headers
        )
    )
    twilio = await _created(
        await api.post(f"/v1/admin/tenants/{tenant.id}/twilio-credentials", headers=admin_headers)
    )
    spare = await _created(
        await api.post(f"/v1/admin/tenants/{tenant.id}/api-keys", headers=admin_headers)
    )
    message = await _created(await support.send(api, tenant))
    basic = base64.b64encode(f"{twilio['account_sid']}:{twilio['auth_token']}".encode()).decode()
    return World(
        tenant=tenant,
        ids={
            "tenant_id": tenant.id,
            "message_id": message["id"],
            "key_id": spare["id"],
            "route_id": str(route["id"]),
            "name": "agg",
            "provider": "agg",
            "number": two_way.OUR_NUMBER,
            "sender_id": "ACME",
            "country": "GB",
            "recipient": OTHER_TO,
            "account_sid": twilio["account_sid"],
            "resource": "SM" + uuid.UUID(message["id"]).hex + ".json",
            "file_path": "dashboard.js",
            "path": "nothing",
            "card": "standard",
            "file": "1.csv",
            "suspension_id": str(uuid.uuid4()),  # none: a lift finds nothing
        },
        headers={
            "tenant": tenant.headers,
            "admin": admin_headers,
            "twilio": {"Authorization": f"Basic {basic}"},
            "provider": {},
            "public": {},
        },
        secrets={
            "api key": tenant.api_key,
            "secret half of the api key": tenant.api_key.split("_", 2)[2],
            "spare api key": spare["api_key"],
            "webhook secret": tenant.webhook_secret,
            "twilio auth token": twilio["auth_token"],
            "twilio basic credentials": basic,
            "smpp password": smpp["password"],
            "provider dlr secret": two_way.SECRET,
        },
    )
