"""The sessions the pools hand out: what every statement of the product runs under."""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool

from core.settings import Settings
from db import Conn
from db.pool import open_reporting_pool


async def test_hot_path_sessions_autocommit_without_jit(pool: AsyncConnectionPool[Conn]) -> None:
    # With JIT on, the receipts' batch statement was compiled on every call: 15% of the
    # server's CPU in the e2e benchmark (issue 22).
    async with pool.connection() as conn:
        assert conn.autocommit
        row = await (await conn.execute("SELECT current_setting('jit') AS jit")).fetchone()
        assert row == {"jit": "off"}


async def test_reporting_sessions_read_only_without_jit(settings: Settings) -> None:
    reporting = await open_reporting_pool(settings.database_url)
    try:
        async with reporting.connection() as conn:
            row = await (
                await conn.execute(
                    "SELECT current_setting('jit') AS jit,"
                    " current_setting('default_transaction_read_only') AS read_only"
                )
            ).fetchone()
        assert row == {"jit": "off", "read_only": "on"}
    finally:
        await reporting.close()
