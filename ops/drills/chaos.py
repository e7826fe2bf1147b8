"""The fault suite as a command: every scenario of tests/faults against real processes
(an embedded PostgreSQL, `smsgw api`, `smsgw worker`), then the fault table.

    .venv/bin/python -m ops.drills.chaos                    # all faults, then all together
    .venv/bin/python -m ops.drills.chaos --only workers,api

Exits 1 when any scenario lost a message, billed one twice, let a request hang, answered
uncleanly or left a message stranded; the logs of the processes are then kept.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from tests.faults import scenarios
from tests.faults.audit import Outcome
from tests.faults.gateway import Cluster


async def _run(keys: Sequence[str], root: Path, logs: Path) -> list[Outcome]:
    cluster = Cluster(root)
    await cluster.start()
    outcomes: list[Outcome] = []
    try:
        for key in keys:
            print(f"… {scenarios.SCENARIOS[key][0]}", file=sys.stderr, flush=True)
            outcomes.append(await scenarios.run(cluster, key, logs))
    finally:
        if len(outcomes) < len(keys) or any(o.problems() for o in outcomes):
            cluster.save_logs(logs)
        cluster.destroy()
    return outcomes


def _interrupt(signum: int, frame: object) -> None:
    # SIGTERM (a CI timeout, say) unwinds like Ctrl-C, so every process the suite
    # started is stopped on the way out.
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.drills.chaos", description=__doc__)
    parser.add_argument(
        "--only",
        default=",".join(scenarios.SCENARIOS),
        help=f"comma-separated scenarios of: {', '.join(scenarios.SCENARIOS)}",
    )
    args = parser.parse_args(argv)
    keys = [k.strip() for k in args.only.split(",") if k.strip()]
    unknown = sorted(set(keys) - set(scenarios.SCENARIOS))
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}")
    # Not under $TMPDIR's private folders: as root, the server runs as `postgres`.
    root = Path(tempfile.mkdtemp(prefix="smsgw-chaos-", dir="/tmp"))
    root.chmod(0o755)
    logs = root / "logs"
    logs.mkdir()
    signal.signal(signal.SIGTERM, _interrupt)
    outcomes = asyncio.run(_run(keys, root, logs))
    print(scenarios.table(outcomes))
    failed = False
    for outcome in outcomes:
        for note in outcome.notes:
            print(f"  {outcome.fault}: {note}")
        for problem in outcome.problems():
            failed = True
            print(f"  FAIL {outcome.fault}: {problem}")
    if failed:
        print(f"logs: {logs}")
        return 1
    shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
