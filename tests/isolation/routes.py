"""The API's endpoints as the app's own route table lists them, with the door each goes
through (the guard it runs). Tests that must cover every endpoint of a kind compare
their cases with this list, so an endpoint added without a test fails them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from litestar.routes import HTTPRoute

from app.auth import admin_guard, tenant_guard, twilio_guard
from app.factory import create_app
from core.settings import Settings

Door = Literal["tenant", "admin", "twilio", "provider", "public"]
_DOORS = {tenant_guard: "tenant", admin_guard: "admin", twilio_guard: "twilio"}


@dataclass(frozen=True, order=True)
class Endpoint:
    method: str
    path: str  # the template: /v1/messages/{message_id}
    door: Door
    reads_body: bool

    def url(self, **ids: str) -> str:
        return self.path.format(**ids)


def endpoints() -> list[Endpoint]:
    settings = Settings.from_env({"DATABASE_URL": "postgresql://unused/", "SMSGW_ADMIN_TOKEN": "x"})
    found = []
    for route in create_app(settings).routes:
        # The consoles' pages are not API endpoints: a session cookie, forms and CSRF
        # tokens, tested as such in tests/app/test_consoles*.py.
        if not isinstance(route, HTTPRoute) or route.path.startswith("/console"):
            continue
        for handler in route.route_handlers:
            guards = [_DOORS[g] for g in handler.resolve_guards() if g in _DOORS]
            assert len(guards) <= 1, route.path
            door: Door
            if guards:
                door = guards[0]  # type: ignore[assignment]
            elif route.path.startswith("/v1/providers/"):
                door = "provider"
            else:
                door = "public"
            parameters = handler.parsed_fn_signature.parameters
            reads_body = "data" in parameters or "request" in parameters
            for method in sorted(handler.http_methods - {"OPTIONS", "HEAD"}):
                found.append(
                    Endpoint(
                        method=method,
                        path=route.path_format,
                        door=door,
                        reads_body=reads_body and method in ("POST", "PUT", "PATCH"),
                    )
                )
    return sorted(found)


def of(door: Door) -> list[Endpoint]:
    return [e for e in endpoints() if e.door == door]
