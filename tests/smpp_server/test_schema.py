"""The listener will not run on a database whose schema is older than its code: there,
a submit's receipt request would be dropped without a word (migration 0017)."""

from __future__ import annotations

import pytest

from jobs.scheduler import ProcrastinateScheduler
from smpp_server.server import SchemaBehind, serve


async def test_the_listener_refuses_to_start_on_an_older_schema(settings, conn):
    await conn.execute(
        "DELETE FROM smsgw_migrations WHERE version = (SELECT max(version) FROM smsgw_migrations)"
    )
    with pytest.raises(SchemaBehind, match="run `smsgw migrate`"):
        await serve(
            settings,
            host="127.0.0.1",
            port=0,
            scheduler=ProcrastinateScheduler(),
            install_signal_handlers=False,
        )
