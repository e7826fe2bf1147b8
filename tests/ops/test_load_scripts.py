"""The load scripts of issue 7, run as an operator would with tiny parameters: the real
figures come from the long runs (see ops/load/); these check that the scripts start the
whole system, that the gateway serves every connection and request they make, and that
what they print adds up (nothing lost, ledger clean)."""

from __future__ import annotations

import re
import subprocess
import sys


def run_script(module: str, *args: str) -> tuple[int, dict[str, str], str]:
    """Runs ``python -m module args``: its exit status, its report as name -> value, and
    all it printed."""
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report = {}
    for line in done.stdout.splitlines():
        match = re.match(r"(\S.*?)\s{2,}(\S.*)$", line)
        if match:
            report[match.group(1)] = match.group(2)
    assert report, f"no report printed:\n{done.stdout}\n{done.stderr[-3000:]}"
    return done.returncode, report, done.stdout


def test_connections_held_open_and_every_request_answered() -> None:
    status, report, _ = run_script(
        "ops.load.connections",
        "--connections", "150",
        "--seconds", "4",
        "--interval", "1",
        "--tenants", "3",
    )  # fmt: skip
    assert report["connections opened"].startswith("150 "), report
    assert report["refused / reset / timed out at connect"] == "0"
    assert report["kept open all through (no reconnect, no EOF)"] == "150"
    generator_most, server_most = report["most open at once: generator / server side"].split(" / ")
    assert int(generator_most) == 150
    assert int(server_most) >= 150  # the kernel saw them all established at once
    requests = int(report["requests"].split()[0])
    assert requests >= 150  # each connection carried requests
    answers = dict(item.split(": ") for item in report["answers"].split(", "))
    assert set(answers) == {"GET 200", "POST 202"}, answers
    assert sum(int(v) for v in answers.values()) == requests
    assert report["non-2xx"] == "0"
    assert report["errors"] == "0"
    assert report["verdict"] == "PASS"
    assert status == 0


def test_soak_sends_everything_and_the_ledger_adds_up() -> None:
    _, report, printed = run_script(
        "ops.load.soak",
        "--rate", "40",
        "--minutes", "0.25",
        "--singles", "0.5",
        "--batch", "10",
        "--warmup", "5",
        "--sample", "3",
        "--tenants", "4",
        "--connections", "4",
        "--dlr-delay", "1",
        "--latency-ms", "5",
    )  # fmt: skip
    # The memory verdict means nothing over 15 s, so the exit status is not checked;
    # everything that does not depend on the run's length is. 300 single sends and 30
    # batches of 10:
    assert report["messages planned / accepted"] == "600 / 600"
    assert report["requests / non-202 / errors"] == "330 / 0 / 0"
    assert report["drained, seconds after the last request"].endswith("(0 left)")
    statuses = dict(
        item.split(": ") for item in report["messages by status after drain"].split(", ")
    )
    assert set(statuses) <= {"sent", "delivered"}, statuses
    assert sum(int(v) for v in statuses.values()) == 600  # every 202 is a row, none lost
    assert report["ledger violations at end / after drain"] == "0 / 0"
    # Every gateway process was found and its memory read, at warm-up and at the end.
    measured = {}
    for line in printed.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if line.startswith("  ") and len(cells) == 6 and cells[0] != "process":
            measured[cells[0]] = (float(cells[1]), float(cells[2]))
    for process in ("granian main", "granian worker 1", "smsgw worker 1", "load generator"):
        assert measured[process][0] > 10, measured
        assert measured[process][1] > 10, measured
    assert measured["postgres: the gateway's backends (RssAnon, sum)"][1] > 1, measured
