"""A valid body for every endpoint that reads one, and how to post raw bytes through each
door (credentials, content type, the provider's signature)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx

from providers.http import SIGNATURE_HEADER, signature
from tests import support, two_way
from tests.hostile.conftest import World
from tests.isolation.routes import Endpoint, endpoints
from tests.support import VALID_TO

# JSON bodies the endpoint accepts, keyed by (method, path template). Provider bodies are
# receipts and inbound messages; Twilio's are forms.
JSON_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/v1/messages"): {"to": VALID_TO, "body": "hello", "client_reference": "r"},
    ("POST", "/v1/messages/quote"): {"to": VALID_TO, "body": "hello"},
    ("POST", "/v1/messages/batch"): {"messages": [{"to": VALID_TO, "body": "hello"}]},
    ("POST", "/v1/suppressions"): {"recipient": "+447911123457", "number": two_way.OUR_NUMBER},
    ("POST", "/v1/admin/tenants"): {"name": "acme", "tier": "premium"},
    ("PATCH", "/v1/admin/tenants/{tenant_id}"): {
        "help_reply": "Call us",
        "inbound_url": "https://example.com/in",
    },
    ("POST", "/v1/admin/tenants/{tenant_id}/credits"): {"amount": 5, "reference": "top-up"},
    ("POST", "/v1/admin/tenants/{tenant_id}/numbers"): {"number": "+14155550111"},
    ("POST", "/v1/admin/tenants/{tenant_id}/sender-ids"): {
        "sender_id": "ACME",
        "countries": ["GB", "IN"],
        "status": "approved",
    },
    ("PUT", "/v1/admin/tenants/{tenant_id}/geo-permissions"): {
        "countries": ["US", "GB"],
        "high_risk_enabled": [],
    },
    ("PUT", "/v1/admin/tenants/{tenant_id}/suspension"): {"reason": "chargebacks"},
    ("PUT", "/v1/admin/high-risk-countries"): {"countries": ["KP"]},
    ("PUT", "/v1/admin/pumping-limits/{country}"): {"hourly_limit": 500},
    ("PATCH", "/v1/alerts"): {"low_balance_threshold": 1000},
    ("PUT", "/v1/admin/sender-rules/{country}"): {
        "alphanumeric": "registered",
        "numeric_allowed": False,
        "source": "operator",
    },
    ("POST", "/v1/admin/tenants/{tenant_id}/smpp-credentials"): {
        "system_id": "acme",
        "allowed_networks": ["10.0.0.0/8"],
    },
    ("PATCH", "/v1/admin/tenants/{tenant_id}/smpp-credentials"): {
        "max_binds": 2,
        "allowed_networks": ["10.0.0.0/8"],
    },
    ("PUT", "/v1/admin/providers/{name}"): {
        "kind": "http",
        "config": {"url": "http://127.0.0.1:9/", "dlr_secret": "s"},
    },
    ("POST", "/v1/admin/routes"): {"prefix": "+1", "provider": "agg"},
    ("PATCH", "/v1/admin/routes/{route_id}"): {"priority": 5, "enabled": True},
}
# CSV price lists (rate cards): not JSON, so out of the JSON tests.
CSV_BODIES: dict[tuple[str, str], str] = {
    ("POST", "/v1/admin/rate-cards/{card}/versions"): "prefix,country,network,price\n,,,7900\n",
    ("PUT", "/v1/admin/tenants/{tenant_id}/rates"): "prefix,country,network,price\n44,GB,,1\n",
    ("POST", "/v1/admin/providers/{name}/costs"): "prefix,country,network,price\n44,GB,,1\n",
}
PROVIDER_BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/v1/providers/{provider}/dlr"): {"id": "AGG-1", "status": "delivered"},
    ("POST", "/v1/providers/{provider}/inbound"): {
        "id": "MO-1",
        "from": "+447911123456",
        "to": two_way.OUR_NUMBER,
        "text": "hi",
    },
}
FORM = "application/x-www-form-urlencoded"


def body_endpoints() -> list[Endpoint]:
    return [e for e in endpoints() if e.reads_body]


def json_endpoints() -> list[Endpoint]:
    return [
        e
        for e in body_endpoints()
        if e.door in ("tenant", "admin") and (e.method, e.path) not in CSV_BODIES
    ]


async def post_raw(
    api: httpx.AsyncClient,
    world: World,
    endpoint: Endpoint,
    raw: bytes,
    *,
    chunked: bool = False,
    content_type: str | None = None,
) -> httpx.Response:
    """``raw`` as the body, with the door's credentials; signed for a provider. Chunked:
    streamed without a Content-Length, so only counting while reading can stop it."""
    headers = {
        **world.headers[endpoint.door],
        "Content-Type": content_type
        or (
            FORM
            if endpoint.door == "twilio"
            else "text/csv"
            if (endpoint.method, endpoint.path) in CSV_BODIES
            else "application/json"
        ),
    }
    if endpoint.door == "provider":
        headers[SIGNATURE_HEADER] = signature(two_way.SECRET, raw)
    content: bytes | AsyncIterator[bytes] = _chunks(raw) if chunked else raw
    return await api.request(
        endpoint.method, world.url(endpoint.path), content=content, headers=headers
    )


async def _chunks(raw: bytes, size: int = 256 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(raw), size):
        yield raw[start : start + size]


def assert_refused(response: httpx.Response, endpoint: Endpoint, status: int, code: str) -> None:
    """The refusal in the door's own shape: problem+json, or Twilio's error body."""
    context = (endpoint.method, endpoint.path, response.text[:300])
    assert response.status_code == status, context
    if endpoint.door == "twilio":
        body = response.json()
        assert set(body) == {"code", "message", "more_info", "status"}, context
        assert body["status"] == status, context
        assert body["message"], context
        return
    support.assert_problem(response, status, code)
