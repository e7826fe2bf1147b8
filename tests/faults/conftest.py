"""Fixtures of the fault suite: one PostgreSQL server for the module (its own: the suite
restarts it), and the fault table, printed in pytest's summary."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.faults import scenarios
from tests.faults.audit import Outcome
from tests.faults.gateway import Cluster

OUTCOMES = pytest.StashKey[list[Outcome]]()


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    # Under /tmp, reachable by `postgres` (the server's account when we are root).
    root = Path(tempfile.mkdtemp(prefix="smsgw-faults-", dir="/tmp"))
    root.chmod(0o755)
    (root / "logs").mkdir()
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
async def cluster(workdir: Path) -> AsyncIterator[Cluster]:
    cluster = Cluster(workdir)
    await cluster.start()
    try:
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def outcomes(request: pytest.FixtureRequest) -> list[Outcome]:
    return request.config.stash.setdefault(OUTCOMES, [])


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    found = terminalreporter.config.stash.get(OUTCOMES, [])
    if found:
        terminalreporter.write_sep("=", "fault table (tests/faults)")
        terminalreporter.write_line(scenarios.table(found))
