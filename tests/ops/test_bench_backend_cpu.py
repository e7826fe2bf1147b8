"""The bench's CPU meter counts the harness's own queries as the harness's: a phase's
PostgreSQL figure a message is the product's alone, however long the harness polls."""

from __future__ import annotations

import time

from ops.bench import backend_cpu
from ops.bench.cpu_meter import CpuMeter
from tests.conftest import Server


def test_a_harness_querys_cpu_is_the_harnesss_not_postgresqls(
    db_url: str, pg_server: Server
) -> None:
    meter = CpuMeter(pg_server.embedded.cluster / "postmaster.pid")
    started = time.monotonic()
    meter.start()
    with backend_cpu.connection(db_url) as conn:
        pid = conn.info.backend_pid
        while backend_cpu.backend_seconds(pid) < 1.0:
            conn.execute("SELECT count(*) FROM generate_series(1, 1000000)")
        burned = backend_cpu.backend_seconds(pid)
    # Once the backend is gone, only the postmaster's reaped time holds its CPU.
    deadline = time.monotonic() + 10
    while backend_cpu.backend_seconds(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    used = meter.stop()
    seconds = time.monotonic() - started

    assert used["harness"] * seconds >= 0.9 * burned
    # Taken out of PostgreSQL's share, not counted twice (a template being cloned for the
    # next test may run meanwhile).
    assert used["postgres"] * seconds < 0.8 * burned
