"""The cost of the status-change trigger on messages (smsgw_messages_changed_v2) against
the pair it replaced before 1.0.0: an events-and-callbacks trigger and a counter trigger,
each joining the statement's old and new rows on its own (their last pre-release
definitions are in triggers_replaced.sql, beside this file).

One embedded server and database; both versions installed, one enabled at a time,
alternating rounds; each round flips the status of ``--messages`` messages in UPDATEs of
1,000 rows (the size of a dispatch claim or settle), each in its own transaction, and
times them. Prints the median per UPDATE of each version and their ratio, and the status
changes each counted in its last round (both: one per message).

    .venv/bin/python -m ops.bench.triggers [--rounds 12] [--messages 20000]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import psycopg

from ops.bench.system import Cluster

BATCH = 1_000


REPLACED = Path(__file__).with_name("triggers_replaced.sql")


def _install_old_pair(conn: psycopg.Connection) -> None:
    conn.execute(REPLACED.read_text("utf-8"))
    for trigger, function in (
        ("old_changed", "old_smsgw_messages_changed_v1"),
        ("old_counted", "old_smsgw_count_changed_v1"),
    ):
        conn.execute(
            f"CREATE TRIGGER {trigger} AFTER UPDATE ON messages"
            " REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"
            f" FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
        )


def _use(conn: psycopg.Connection, new: bool) -> None:
    on, off = ("ENABLE", "DISABLE") if new else ("DISABLE", "ENABLE")
    conn.execute(f"ALTER TABLE messages {on} TRIGGER messages_changed")
    conn.execute(f"ALTER TABLE messages {off} TRIGGER old_changed")
    conn.execute(f"ALTER TABLE messages {off} TRIGGER old_counted")


def _messages(conn: psycopg.Connection, count: int) -> list[list[object]]:
    row = conn.execute(
        "INSERT INTO tenants (id, name, price_per_segment, webhook_secret)"
        " VALUES (gen_random_uuid(), 'bench', 7900, 'secret') RETURNING id"
    ).fetchone()
    assert row is not None
    conn.execute(
        "INSERT INTO messages (id, created_at, tenant_id, status, to_number, body, encoding,"
        "  segments, price, next_attempt_at, updated_at, expires_at)"
        " SELECT gen_random_uuid(), now() - g * interval '1 ms', %s, 'queued',"
        "  '+14155552671', 'bench message', 'GSM-7', 1, 7900, now(), now(),"
        "  now() + interval '1 day'"
        " FROM generate_series(1, %s) g",
        (row[0], count),
    )
    conn.execute("VACUUM ANALYZE messages")
    ids = [r[0] for r in conn.execute("SELECT id FROM messages ORDER BY created_at")]
    return [ids[i : i + BATCH] for i in range(0, len(ids), BATCH)]


def _counters(conn: psycopg.Connection) -> dict[str, int]:
    return {
        str(status): int(n)
        for status, n in conn.execute(
            "SELECT status, sum(n) FROM message_counters WHERE kind = 'changed' GROUP BY 1"
        )
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--messages", type=int, default=20_000)
    args = parser.parse_args()
    # The server runs as `postgres` when root: its folder must be reachable by it.
    root = Path(tempfile.mkdtemp(prefix="smsgw-triggers-", dir="/var/tmp"))
    root.chmod(0o755)
    cluster = Cluster(root, logs=root / "logs", profile_sql=False)
    cluster.start()
    try:
        with psycopg.connect(cluster.fresh("triggers"), autocommit=True) as conn:
            _install_old_pair(conn)
            batches = _messages(conn, args.messages)
            times: dict[bool, list[float]] = {True: [], False: []}
            counted: dict[bool, int] = {}
            for _ in range(args.rounds):
                for new in (True, False):
                    _use(conn, new)
                    before = _counters(conn)
                    for ids in batches:
                        started = time.perf_counter()
                        conn.execute(
                            "UPDATE messages SET status = CASE status WHEN 'queued'"
                            " THEN 'sending' ELSE 'queued' END, provider = 'simulator',"
                            " updated_at = clock_timestamp() WHERE id = ANY (%s)",
                            (ids,),
                        )
                        times[new].append(time.perf_counter() - started)
                    after = _counters(conn)
                    counted[new] = sum(after.values()) - sum(before.values())
                conn.execute("VACUUM messages, message_events")
        new_ms, old_ms = (statistics.median(times[v]) * 1000 for v in (True, False))
        print(f"UPDATE of {BATCH:,} messages, median of {len(times[True])} each:")
        print(f"  one trigger (today's):       {new_ms:6.2f} ms")
        print(f"  two triggers (replaced):     {old_ms:6.2f} ms")
        print(f"  ratio new / old:             {new_ms / old_ms:6.2f}")
        # Each round flips every message once per version (to `sending`, then back).
        print(f"  changes counted in a round:  {counted[True]:,} / {counted[False]:,}")
    finally:
        cluster.destroy()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
