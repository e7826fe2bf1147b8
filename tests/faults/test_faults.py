"""Faults injected into real processes while sends and receipts flow: SIGKILLed workers
and API, a PostgreSQL restart, a connection outage, a failing then hanging provider, a
failing then hanging callback endpoint, and all of them together.

After each, for every message a client saw accepted (a 202): it exists, it was delivered
once the fault healed (or waits with a reason its row shows), it was captured at most
once and the tenant's balance says so, the ledger invariant holds, and every request
the clients made got an answer (a clean problem+json 5xx, a 503 with Retry-After) or a
connection error within the client timeout. Each test also checks that its fault really
hit the traffic, so none can pass by missing it. The table of all of them is printed at
the end of the module (and by `python -m ops.drills.chaos`)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from tests.faults import scenarios
from tests.faults.audit import Outcome
from tests.faults.gateway import Cluster


async def _run(cluster: Cluster, key: str, outcomes: list[Outcome], workdir: Path) -> Outcome:
    outcome = await scenarios.run(cluster, key, workdir / "logs")
    outcomes.append(outcome)
    if outcome.problems():
        # Keep the processes' logs for the report.
        kept = Path(tempfile.mkdtemp(prefix=f"smsgw-faults-{key}-", dir="/tmp"))
        shutil.copytree(workdir / "logs", kept, dirs_exist_ok=True)
        cluster.save_logs(kept)
        pytest.fail(f"{outcome.fault}: {outcome.problems()} (notes: {outcome.notes}; logs {kept})")
    assert outcome.accepted > 0
    assert outcome.sent_or_delivered == outcome.accepted
    return outcome


async def test_workers_killed_mid_batch_lose_and_double_bill_nothing(
    cluster: Cluster, outcomes: list[Outcome], workdir: Path
) -> None:
    outcome = await _run(cluster, "workers", outcomes, workdir)
    # Both kills landed while messages were claimed and being sent.
    assert all(n > 0 for n in outcome.facts["sending_at_kill"])


async def test_api_killed_mid_request_loses_no_accepted_message(
    cluster: Cluster, outcomes: list[Outcome], workdir: Path
) -> None:
    outcome = await _run(cluster, "api", outcomes, workdir)
    assert outcome.facts["in_flight_at_kill"][0] > 0
    # The clients felt it (refused or cut connections) and their retries made up for it.
    assert outcome.send_errors["conn"] > 0


async def test_postgres_restart_answers_503_or_connection_errors_then_recovers(
    cluster: Cluster, outcomes: list[Outcome], workdir: Path
) -> None:
    outcome = await _run(cluster, "pg_restart", outcomes, workdir)
    assert sum(outcome.send_errors.values()) > 0


async def test_connection_outage_answers_503_with_retry_after(
    cluster: Cluster, outcomes: list[Outcome], workdir: Path
) -> None:
    outcome = await _run(cluster, "pg_outage", outcomes, workdir)
    # Every 503 carried Retry-After (an unclean answer fails in _run).
    assert outcome.send_errors["503"] > 0


async def test_provider_errors_and_timeouts_are_retried_until_delivered(
    cluster: Cluster, outcomes: list[Outcome], workdir: Path
) -> None:
    outcome = await _run(cluster, "provider", outcomes, workdir)
    refused = outcome.facts["provider_refused"]
    assert refused[0] > 0, "the aggregator answered no 503"
    assert refused[1] > 0, "no submit hung"


async def test_failing_callback_endpoint_delays_callbacks_not_deliveries(
    cluster: Cluster, outcomes: list[Outcome], workdir: Path
) -> None:
    outcome = await _run(cluster, "callbacks", outcomes, workdir)
    refused = outcome.facts["callbacks_refused"]
    assert refused[0] > 0, "the endpoint answered no 500"
    assert refused[1] > 0, "no callback hung"
    # No sender was killed: every delivery's callback reached the tenant in the end.
    assert outcome.callbacks_pending == 0


async def test_all_faults_together(
    cluster: Cluster, outcomes: list[Outcome], workdir: Path
) -> None:
    outcome = await _run(cluster, "everything", outcomes, workdir)
    assert outcome.facts["sending_at_kill"][0] > 0
    assert outcome.send_errors["conn"] > 0
