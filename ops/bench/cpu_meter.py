"""Where the machine's CPU went during a phase: our PostgreSQL server, the API, the
workers, the load generators, this harness and the rest, read from /proc."""

from __future__ import annotations

import os
import re
import resource
from pathlib import Path

from ops.bench import backend_cpu


def _cpu_times() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as stat:
        fields = [float(v) for v in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def process_table() -> dict[int, tuple[int, str, int, int]]:
    """pid -> (parent pid, command line, CPU ticks used so far, ticks of reaped children)."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                text = stat.read()
            with open(f"/proc/{entry}/cmdline", "rb") as cmd:
                cmdline = cmd.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # gone meanwhile
        rest = text[text.rindex(")") + 2 :].split()
        own = int(rest[11]) + int(rest[12])
        table[int(entry)] = (int(rest[1]), cmdline, own, int(rest[13]) + int(rest[14]))
    return table


# `smsgw api` and `smsgw worker` as the bench starts them (`python -m smsgw worker`,
# smsgw_command) or as `python -m smsgw.cli api`: the group is the subcommand's.
_ROLE = re.compile(r"-m smsgw(?:\.cli)? (api|worker) ")


class CpuMeter:
    """Where the machine's CPU went during a phase, in cores (1.0 = one core busy):
    our PostgreSQL server (backends that exited included, through the postmaster's
    reaped-children time), the API, the workers, the load generators (those that ended
    in the phase through our own reaped-children time), this harness (with its own
    queries' backends), and everything else on the machine: other sessions' tests, the
    noise."""

    GROUPS = ("postgres", "api", "workers", "load", "harness", "other")

    def __init__(self, postmaster_pid_file: Path) -> None:
        self.pid_file = postmaster_pid_file

    def _postmaster(self) -> int:
        try:
            return int(self.pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return -1

    def _group(self, pid: int, table: dict[int, tuple[int, str, int, int]]) -> str:
        ppid, cmdline = table[pid][:2]
        if self._pm in (pid, ppid):
            return "postgres"
        me, walk, seen = os.getpid(), pid, 0
        while walk not in (me, 0, 1) and walk in table and seen < 64:
            walk, seen = table[walk][0], seen + 1
        if walk != me:
            return "other"
        if pid == me or "py-spy" in cmdline:
            return "harness"
        role = _ROLE.search(cmdline + " ")
        if role is not None:
            return "api" if role.group(1) == "api" else "workers"
        if "ops.bench.trivial" in cmdline:
            return "api"
        if "ops.bench.baseline worker" in cmdline:
            return "workers"
        return "load"

    def start(self) -> None:
        self._pm = self._postmaster()
        self._machine = _cpu_times()
        self._table = process_table()
        self._reaped = _reaped_seconds()
        self._harness_db = backend_cpu.charged()

    def stop(self) -> dict[str, float]:
        machine, table = _cpu_times(), process_table()
        ticks = os.sysconf("SC_CLK_TCK")
        jiffies = machine[1] - self._machine[1]
        cores = os.cpu_count() or 1
        seconds = jiffies / cores / ticks if jiffies else 1.0
        used = dict.fromkeys(self.GROUPS, 0.0)
        self.api_processes: list[float] = []  # each API process's share, busiest first
        for pid, (_, _, now, reaped) in table.items():
            group = self._group(pid, table)
            if group == "other":
                continue
            before = self._table.get(pid, (0, "", 0, 0))
            share = (now - before[2]) / ticks / seconds
            used[group] += share
            if group == "api" and share >= 0.01:
                self.api_processes.append(share)
            if pid == self._pm:
                used[group] += (reaped - before[3]) / ticks / seconds
        self.api_processes.sort(reverse=True)
        used["load"] += (_reaped_seconds() - self._reaped) / seconds
        # The harness's own queries ran in the server's backends (backend_cpu.py).
        moved = min(used["postgres"], (backend_cpu.charged() - self._harness_db) / seconds)
        used["postgres"] -= moved
        used["harness"] += moved
        busy = (machine[0] - self._machine[0]) / jiffies * cores if jiffies else 0.0
        used["other"] = max(0.0, busy - sum(used.values()))
        used["busy"] = busy
        return used


def _reaped_seconds() -> float:
    """CPU seconds of this process's children that have ended and been waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cpu_note(used: dict[str, float], api_processes: list[float]) -> str:
    parts = []
    for group in CpuMeter.GROUPS:
        if used.get(group, 0) >= 0.005:
            parts.append(f"{group} {used[group]:.2f}")
            if group == "api" and len(api_processes) > 1:
                # Keep-alive connections stay with the process that accepted them.
                parts[-1] += " [" + "+".join(f"{v:.2f}" for v in api_processes) + "]"
    return f"cores busy {used.get('busy', 0):.2f} ({', '.join(parts)})"
