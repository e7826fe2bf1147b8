"""The web consoles (operator and tenant), server-rendered by the API process."""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from litestar import Router
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template import TemplateConfig

from app.console.access import AccessController, no_such_page
from app.console.account import AccountConsole
from app.console.audit_log import OperatorAuditConsole, TenantAuditConsole
from app.console.exposure import OperatorExposureConsole
from app.console.operator import OperatorConsole
from app.console.rate_cards import CostListsConsole, RateCardsConsole
from app.console.tenant import TenantConsole
from app.console.web import EXCEPTION_HANDLERS, PREFIX, check_csrf, security_headers

HERE = Path(__file__).parent
STATIC = HERE.parent / "static"


def money(micro: int | None) -> str:
    """Integer micro-units as currency units with two to six decimals."""
    if micro is None:
        return ""
    sign = "-" if micro < 0 else ""
    units, rest = divmod(abs(micro), 1_000_000)
    fraction = f"{rest:06d}".rstrip("0").ljust(2, "0")
    return f"{sign}{units:,}.{fraction}"


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        enable_async=False,
    )
    env.filters["money"] = money
    return TemplateConfig(engine=JinjaTemplateEngine.from_environment(env))


def console_router() -> Router:
    """Every console route, behind the security headers, the CSRF check of forms, and
    errors rendered as pages."""
    return Router(
        path="/",
        route_handlers=[
            AccessController,
            no_such_page,
            OperatorConsole,
            OperatorExposureConsole,
            RateCardsConsole,
            CostListsConsole,
            TenantConsole,
            AccountConsole,
            OperatorAuditConsole,
            TenantAuditConsole,
            create_static_files_router(
                path=f"{PREFIX}/static",
                directories=[STATIC / "console", STATIC / "vendor"],
                include_in_schema=False,
            ),
        ],
        before_request=check_csrf,
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[security_headers],
        include_in_schema=False,
    )
