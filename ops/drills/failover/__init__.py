"""Primary failover on a real HA engine, with sends flowing.

pg_auto_failover (Debian's ``postgresql-15-auto-failover``) runs a monitor, a primary and
a synchronous standby, all on loopback, data folders under /tmp (mode 0700, owned by the
``postgres`` account when we are root). smsgw's schema is migrated through the
formation's multi-host URL (``target_session_attrs=read-write``), then ``smsgw api`` and
``smsgw worker`` run on that URL. Client tasks send with an ``Idempotency-Key`` each,
retrying a failed send with the same key, while the primary's keeper and postgres are
killed with SIGKILL. It prints what the clients saw and what the new primary holds.

    .venv/bin/python -m ops.drills.failover            # pg_auto_failover's default timeouts
    .venv/bin/python -m ops.drills.failover --fast     # shorter detection and demote timeout
    (--senders 4 --rate 100 --before 5 --after 10 --client-timeout 30 --keep)

Not a test (it takes a minute): its figures go in docs/backup-and-failover.md.

The package, by what each part is in the drill:

- ``formation.py``: the pg_auto_failover monitor and two data nodes (building, asking,
  tearing down);
- ``nodes.py``: one node (data folder, port, keeper) and the fault, a power cut;
- ``gateway.py``: ``smsgw migrate``, ``smsgw api`` and ``smsgw worker`` on the formation,
  and the tenant the clients send as;
- ``senders.py``: the clients, each send with its own ``Idempotency-Key``;
- ``drill.py``: the run (sends, the kill, the promotion, recovery);
- ``report.py``: what the new primary holds and the table printed at the end;
- ``__main__.py``: the command line.
"""
