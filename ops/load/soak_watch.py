"""What the soak (ops/load/soak.py) watches while it runs: the memory of every process
(granian's, each `smsgw worker`, PostgreSQL's, the load generator's), the queue and the
counters, read every ``--sample`` seconds; and the drain after the last request. Why
PostgreSQL's memory is read as RssAnon and PSS, not VmRSS: soak.py's docstring."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ops.load import System, children, loadavg, memory, step

PG_BACKENDS = "postgres: the gateway's backends (RssAnon, sum)"
PG_SERVER = "postgres: postmaster + background (RssAnon, sum)"
PG_PSS = "postgres: every process (PSS, sum)"
INFORMATIONAL = (PG_PSS, "load generator")
BACKGROUND = (
    "checkpointer",
    "background writer",
    "walwriter",
    "autovacuum launcher",
    "logical replication launcher",
)


def pss(pid: int) -> int:
    """Proportional set size in kB (0 when the process is gone)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass
class Sample:
    t: float
    memory_kb: dict[str, int]  # process label -> kB
    backends: int
    accepted: int
    sent: int  # messages that reached `sent` (counted when they did)
    delivered: int
    due: int
    sending: int
    load: str


COUNTERS_SQL = """
SELECT coalesce(sum(n) FILTER (WHERE kind = 'accepted'), 0)::bigint,
       coalesce(sum(n) FILTER (WHERE kind = 'changed' AND status = 'sent'), 0)::bigint,
       coalesce(sum(n) FILTER (WHERE kind = 'changed' AND status = 'delivered'), 0)::bigint
  FROM message_counters
"""
# Through the partial indexes of the queue (messages_due_idx, messages_lease_idx).
QUEUE_SQL = """
SELECT (SELECT count(*) FROM messages
         WHERE status IN ('scheduled', 'queued') AND next_attempt_at <= now()),
       (SELECT count(*) FROM messages WHERE status = 'sending')
"""
# The server's processes but this one: the gateway's pooled connections (client backends
# of its database), the long-lived background processes, and whatever comes and goes
# (autovacuum workers), which only the PSS total counts.
PROCESSES_SQL = """
SELECT pid, backend_type, datname = current_database() AS ours
  FROM pg_stat_activity
 WHERE pid <> pg_backend_pid()
"""


@dataclass
class Watch:
    system: System
    generator_pid: int
    started: float = field(default_factory=time.monotonic)

    def processes(self) -> dict[str, int]:
        """Label -> pid of every gateway process (granian's workers found as children)."""
        gateway = self.system.gateway
        assert gateway.api is not None
        found = {"granian main": gateway.api.pid}
        for n, pid in enumerate(children(gateway.api.pid)):
            found[f"granian worker {n + 1}"] = pid
        for n, proc in enumerate(gateway.workers):
            found[f"smsgw worker {n + 1}"] = proc.pid
        found["load generator"] = self.generator_pid
        return found

    def sample(self) -> Sample:
        kb = {label: memory(pid).get("VmRSS", 0) for label, pid in self.processes().items()}
        postmaster = self.system.postmaster()
        with self.system.db() as conn:
            accepted, sent, delivered = conn.execute(COUNTERS_SQL).fetchone() or (0, 0, 0)
            due, sending = conn.execute(QUEUE_SQL).fetchone() or (0, 0)
            rows = conn.execute(PROCESSES_SQL).fetchall()
            me = conn.info.backend_pid
        backends = [pid for pid, kind, ours in rows if kind == "client backend" and ours]
        background = [postmaster, *(pid for pid, kind, _ in rows if kind in BACKGROUND)]
        kb[PG_BACKENDS] = sum(memory(pid).get("RssAnon", 0) for pid in backends)
        kb[PG_SERVER] = sum(memory(pid).get("RssAnon", 0) for pid in background)
        kb[PG_PSS] = sum(pss(pid) for pid in [postmaster, *children(postmaster)] if pid != me)
        return Sample(
            t=time.monotonic() - self.started,
            memory_kb=kb,
            backends=len(backends),
            accepted=int(accepted),
            sent=int(sent),
            delivered=int(delivered),
            due=int(due),
            sending=int(sending),
            load=loadavg(),
        )


def progress(sample: Sample, previous: Sample | None) -> None:
    span = sample.t - previous.t if previous else sample.t
    rate_in = (sample.accepted - (previous.accepted if previous else 0)) / span if span else 0
    rate_out = (sample.sent - (previous.sent if previous else 0)) / span if span else 0
    api = sum(v for k, v in sample.memory_kb.items() if k.startswith("granian"))
    workers = sum(v for k, v in sample.memory_kb.items() if k.startswith("smsgw"))
    step(
        f"t={sample.t:5.0f}s accepted {rate_in:6.0f}/s sent {rate_out:6.0f}/s "
        f"due {sample.due:6d} sending {sample.sending:4d} | MB api {api / 1024:.0f} "
        f"workers {workers / 1024:.0f} pg-backends {sample.memory_kb[PG_BACKENDS] / 1024:.0f} "
        f"({sample.backends}) | load {sample.load}"
    )


def wait_drained(system: System, timeout: float, since: float) -> tuple[float, int]:
    """Seconds from ``since`` (monotonic) until nothing is due or sending (or ``timeout``
    more seconds have passed), and what is left."""
    began = time.monotonic()
    left = -1
    with system.db() as conn:
        while time.monotonic() - began < timeout:
            row = conn.execute(QUEUE_SQL).fetchone() or (0, 0)
            left = int(row[0]) + int(row[1])
            if left == 0:
                break
            time.sleep(0.2)
    return time.monotonic() - since, left
