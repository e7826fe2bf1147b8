"""A tenant's messages of a window as CSV or JSON lines, streamed from the reporting
database (GET /v1/messages/export)."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import QueryParameter
from litestar.response import Stream

from app.auth import provide_tenant, tenant_guard
from app.controllers.reports import From, To
from app.deps import services
from app.openapi import MEDIA_TYPES
from core import exports
from core.tenants import Tenant


class ExportsController(Controller):
    path = "/v1/messages/export"
    tags = ["messages"]
    guards = [tenant_guard]
    dependencies = {"tenant": Provide(provide_tenant, sync_to_thread=False)}

    @get("/", opt={MEDIA_TYPES: tuple(exports.FORMATS.values())})
    async def export(
        self,
        state: State,
        tenant: NamedDependency[Tenant],
        from_: From = None,
        to: To = None,
        format_: Annotated[
            str | None, QueryParameter(name="format", description="csv (default) or jsonl")
        ] = None,
    ) -> Stream:
        """The tenant's messages created in the window, oldest first, as CSV (a header
        row first) or JSON lines; streamed with constant memory. The window is exact
        (not widened to hours) and raw messages are kept SMSGW_RETENTION_DAYS."""
        export = await exports.messages(
            services(state).reporting, tenant_id=tenant.id, from_=from_, to=to, format_=format_
        )
        return Stream(
            export.body,
            media_type=export.media_type,
            headers={"Content-Disposition": f'attachment; filename="{export.filename}"'},
        )
