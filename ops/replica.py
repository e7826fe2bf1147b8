"""A physical streaming replica of an embedded PostgreSQL, for reports (and for tests
that show reports really read a standby).

`pg_basebackup` copies the primary's cluster over a replication connection and writes
`standby.signal` and `primary_conninfo` (``-R``); the copy then starts on a port of its
own as a hot standby that streams WAL from the primary. The primary needs `wal_level`
replica (PostgreSQL's default) and a `host replication` line in pg_hba.conf, which
initdb writes for loopback and this module adds when it is missing. As root, every
server command runs as the ``postgres`` account, like the primary's.

    python -m ops.replica DATA_DIR REPLICA_DIR   # prints REPORTING_DATABASE_URL

DATA_DIR is `smsgw run`'s data folder (``./data`` unless SMSGW_DATA_DIR says otherwise);
the primary is started if it is not running. The replica keeps running after the
command; stop it with ``pg_ctl -D <REPLICA_DIR>/cluster stop`` (as ``postgres`` if root).
"""

from __future__ import annotations

import argparse
import os
import pwd
import subprocess
from collections.abc import Sequence
from pathlib import Path

import psycopg

from smsgw.embedded import DATABASE, SUPERUSER, EmbeddedError, EmbeddedPostgres
from smsgw.processes import free_port

APPLICATION_NAME = "smsgw-replica"
_HBA_LINE = f"host replication {SUPERUSER} 127.0.0.1/32 scram-sha-256"


def _as_server_owner(
    args: Sequence[str], *, env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    kwargs: dict[str, object] = {}
    base = {"PATH": "/usr/bin:/bin", "LC_ALL": "C", "HOME": str(cwd)}
    if os.geteuid() == 0:
        account = pwd.getpwnam("postgres")
        kwargs = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
    return subprocess.run(  # type: ignore[call-overload,no-any-return]
        list(args),
        capture_output=True,
        text=True,
        check=False,
        cwd=str(cwd),
        env={**base, **env},
        **kwargs,
    )


def allow_replication(primary: EmbeddedPostgres) -> bool:
    """Make sure the primary accepts replication connections from loopback; True when
    its configuration had to change (it is then reloaded)."""
    assert primary.port is not None, "start the primary first"
    with psycopg.connect(primary.url("postgres"), autocommit=True) as conn:
        row = conn.execute("SHOW wal_level").fetchone()
        if row is None or row[0] == "minimal":
            raise EmbeddedError("the primary runs with wal_level=minimal; replicas need replica")
    hba = primary.cluster / "pg_hba.conf"
    lines = [line.split() for line in hba.read_text().splitlines()]
    if any(
        len(f) >= 4 and f[0] == "host" and f[1] == "replication" and f[3] == "127.0.0.1/32"
        for f in lines
    ):
        return False
    with hba.open("a") as out:
        out.write(f"\n# smsgw: streaming replicas (ops/replica.py)\n{_HBA_LINE}\n")
    reload = _as_server_owner(
        [str(primary.bindir / "pg_ctl"), "-D", str(primary.cluster), "reload"],
        env={},
        cwd=primary.root,
    )
    if reload.returncode != 0:
        raise EmbeddedError(f"could not reload the primary: {reload.stderr.strip()}")
    return True


def create_replica(
    primary: EmbeddedPostgres,
    root: Path,
    *,
    settings: dict[str, str] | None = None,
    application_name: str = APPLICATION_NAME,
) -> EmbeddedPostgres:
    """Clone ``primary`` into ``root`` (unless already done) and start the standby.
    Returns it running; ``.url(database)`` connects to it (read-only)."""
    assert primary.port is not None, "start the primary first"
    allow_replication(primary)
    replica = EmbeddedPostgres(root, port=None, settings=dict(settings or primary.settings))
    replica.root.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        account = pwd.getpwnam("postgres")
        os.chown(replica.root, account.pw_uid, account.pw_gid)
    password = primary.password_file.read_text().strip()
    replica.password_file.write_text(password)
    replica.password_file.chmod(0o600)
    if not (replica.cluster / "PG_VERSION").exists():
        conninfo = (
            f"host=127.0.0.1 port={primary.port} user={SUPERUSER} "
            f"application_name={application_name}"
        )
        result = _as_server_owner(
            [
                str(primary.bindir / "pg_basebackup"),
                "-d",
                conninfo,
                "-D",
                str(replica.cluster),
                "-R",  # standby.signal + primary_conninfo (with application_name)
                "-X",
                "stream",
                "-c",
                "fast",
            ],
            env={"PGPASSWORD": password},
            cwd=replica.root,
        )
        if result.returncode != 0:
            raise EmbeddedError(f"pg_basebackup failed: {result.stderr.strip()}")
        # The primary's log and pid came along in the copy; the standby writes its own.
        (replica.cluster / "server.log").unlink(missing_ok=True)
    replica.port = None
    if replica.port_file.exists():
        replica.port_file.unlink()
    replica.port = free_port(primary.port + 1)
    replica.start()
    return replica


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dir", type=Path, help="`smsgw run`'s data folder (./data)")
    parser.add_argument("replica_dir", type=Path, help="where the replica's cluster goes")
    args = parser.parse_args(argv)
    primary = EmbeddedPostgres(args.data_dir / "postgres")
    primary.start()
    replica = create_replica(primary, args.replica_dir)
    print(replica.url(DATABASE))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
