"""The listener will not run on a database whose schema is older than its code, or of the
pre-release history: there, its accept call may not be the one this code expects (one
that drops a submit's receipt request without a word, say)."""

from __future__ import annotations

import pytest

from jobs.scheduler import ProcrastinateScheduler
from smpp_server.server import SchemaBehind, serve
from tests import support


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


async def test_the_listener_refuses_to_start_on_a_database_of_the_pre_release_history(
    settings, conn
):
    await conn.execute("DELETE FROM smsgw_migrations")
    async with conn.cursor() as cursor:
        await cursor.executemany(
            "INSERT INTO smsgw_migrations (version, name) VALUES (%s, %s)",
            support.PRE_RELEASE_HISTORY,
        )
    with pytest.raises(SchemaBehind, match="pre-release smsgw"):
        await serve(
            settings,
            host="127.0.0.1",
            port=0,
            scheduler=ProcrastinateScheduler(),
            install_signal_handlers=False,
        )
