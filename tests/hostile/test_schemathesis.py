"""Schemathesis against the OpenAPI document a real `smsgw api` process serves: every
operation, called as a tenant, as the operator and as a stranger, with data the document
allows and data it forbids. No answer may be a 5xx, and every answer must match what the
document says of it (status, content type, body schema); operations that declare a
security scheme must refuse requests without it.

Bounded for CI: a few examples per operation and caller (the coverage phase adds its
boundary and negative cases on top), no shrinking, no stateful phase."""

from __future__ import annotations

import base64
import itertools
import json
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.factory import create_app
from core.settings import Settings
from tests.hostile.conftest import ADMIN, Gateway
from tests.support import VALID_TO

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    ignored_auth,
]
STRANGER_KEY = "smsgw_000000000000_" + "x" * 43
TWILIO = "/2010-04-01/"


@pytest.fixture(scope="module")
def twilio_credentials(gateway: Gateway) -> tuple[str, str]:
    issued = httpx.post(
        f"{gateway.base}/v1/admin/tenants/{gateway.tenant_id}/twilio-credentials", headers=ADMIN
    )
    assert issued.status_code == 201, issued.text
    body = issued.json()
    return body["account_sid"], body["auth_token"]


def _document() -> dict[str, Any]:
    """The document as the app builds it. Tests are generated at collection, before any
    server runs; test_the_served_document_is_the_one_tested proves it is what is served."""
    settings = Settings.from_env({"DATABASE_URL": "postgresql://unused/", "SMSGW_ADMIN_TOKEN": "x"})
    document: dict[str, Any] = create_app(settings).openapi_schema.to_schema()
    return document


DOCUMENT = _document()
schema = schemathesis.openapi.from_dict(
    DOCUMENT,
    config=schemathesis.Config.from_dict(
        {
            "generation": {"max-examples": 6, "mode": "all"},
            "phases": {"stateful": {"enabled": False}},
        }
    ),
)


def test_the_served_document_is_the_one_tested(gateway: Gateway) -> None:
    served = httpx.get(f"{gateway.base}/schema/openapi.json")
    assert served.status_code == 200
    assert served.json() == json.loads(json.dumps(DOCUMENT))


def _basic(sid: str, token: str) -> str:
    return "Basic " + base64.b64encode(f"{sid}:{token}".encode()).decode()


_turn = itertools.count()
# Fields the document types as plain strings that the gateway checks further (a valid
# phone number): filled with one that passes on every other case, so that accepted sends,
# and the Message bodies they answer with, are judged too.
NUMBERS = ("to", "recipient", "number")


def _realistic(case: schemathesis.Case, gateway: Gateway, twilio_sid: str) -> None:
    """On every other case the document allows, real ids in the path and a real number
    in the body: otherwise nearly every call would stop at 404 or at the number check."""
    if case.meta is not None and case.meta.generation.mode != GenerationMode.POSITIVE:
        return
    if next(_turn) % 2:
        return
    params = case.path_parameters
    real = {
        "tenant_id": gateway.managed_tenant_id,
        "message_id": gateway.message_ids[len(str(params.get("message_id", ""))) % 3],
        "account_sid": twilio_sid,
    }
    for name in params.keys() & real.keys():
        params[name] = real[name]
    items = case.body.get("messages") if isinstance(case.body, dict) else None
    for item in [case.body, *(items if isinstance(items, list) else [])]:
        if not isinstance(item, dict):
            continue
        for name in item.keys() & set(NUMBERS):
            item[name] = VALID_TO
        if {"to", "body"} <= item.keys():
            # A send: the generated text (cut to fit in 10 segments) and reference kept,
            # the fields the document cannot constrain enough (from, send_at...) dropped.
            for name in item.keys() - {"to", "body", "client_reference"}:
                del item[name]
            if isinstance(item["body"], str):
                item["body"] = item["body"][:600] or "x"


def _credentials(
    caller: str, case: schemathesis.Case, gateway: Gateway, twilio: tuple[str, str]
) -> dict[str, str]:
    twilio_path = case.path.startswith(TWILIO)
    if caller == "stranger":
        return (
            {"Authorization": _basic("AC" + "0" * 32, "0" * 32)}
            if twilio_path
            else {"Authorization": f"Bearer {STRANGER_KEY}"}
        )
    if caller == "admin":
        return dict(ADMIN)
    return {"Authorization": _basic(*twilio)} if twilio_path else dict(gateway.tenant_headers)


def _as(caller: str):  # type: ignore[no-untyped-def]
    @schema.parametrize()
    @hypothesis.settings(
        deadline=None,
        derandomize=True,
        database=None,
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    def test(
        case: schemathesis.Case, gateway: Gateway, twilio_credentials: tuple[str, str]
    ) -> None:
        if caller != "stranger":
            _realistic(case, gateway, twilio_credentials[0])
        headers = _credentials(caller, case, gateway, twilio_credentials)
        try:
            case.call_and_validate(
                base_url=gateway.base, headers=headers, checks=CHECKS, timeout=30
            )
        except Exception:
            print(gateway.log_tail())
            raise

    return test


test_as_a_tenant = _as("tenant")
test_as_the_operator = _as("admin")
test_as_a_stranger = _as("stranger")
