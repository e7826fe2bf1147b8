# Sourced by ops/run and ops/test: a virtual environment in .venv with the locked
# dependencies and the project installed, and PostgreSQL's server binaries on the
# machine. Re-runs are quick: the install is redone only when a lock file or
# pyproject.toml changes.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SMSGW_VENV:-$ROOT/.venv}"
EXTRAS="${1:-}"
PYTHON="${PYTHON:-python3}"

ensure_postgres() {
    if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then
        return
    fi
    if compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
        return
    fi
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "smsgw: installing PostgreSQL server binaries with apt-get" >&2
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
        # Debian starts a default cluster; smsgw runs its own, so stop that one.
        if command -v pg_ctlcluster >/dev/null 2>&1; then
            for conf in /etc/postgresql/*/main; do
                [ -d "$conf" ] || continue
                version="$(basename "$(dirname "$conf")")"
                pg_ctlcluster "$version" main stop >/dev/null 2>&1 || true
            done
        fi
    else
        echo "smsgw: PostgreSQL server binaries (initdb) are missing." >&2
        echo "       Install them (Debian/Ubuntu: sudo apt-get install postgresql) and retry." >&2
        exit 1
    fi
}

# The dashboard's browser test drives Debian's chromium (Playwright with
# executable_path; Playwright never downloads a browser of its own here).
ensure_chromium() {
    if command -v chromium >/dev/null 2>&1; then
        return
    fi
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "smsgw: installing chromium (for the dashboard's browser test) with apt-get" >&2
        if ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
               DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }; then
            echo "smsgw: chromium could not be installed; the browser test will be skipped" >&2
        fi
    else
        echo "smsgw: chromium is missing, so the dashboard's browser test will be skipped" >&2
        echo "       (Debian/Ubuntu: sudo apt-get install chromium)." >&2
    fi
}

# The PgBouncer test (tests/db/test_pgbouncer.py) runs Debian's pgbouncer in
# transaction mode in front of the tests' server.
ensure_pgbouncer() {
    if [ -x /usr/sbin/pgbouncer ] || command -v pgbouncer >/dev/null 2>&1; then
        return
    fi
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "smsgw: installing pgbouncer (for the PgBouncer test) with apt-get" >&2
        if ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
               DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null; }; then
            echo "smsgw: pgbouncer could not be installed; the PgBouncer test will be skipped" >&2
        fi
    else
        echo "smsgw: pgbouncer is missing, so the PgBouncer test will be skipped" >&2
        echo "       (Debian/Ubuntu: sudo apt-get install pgbouncer)." >&2
    fi
}

# The environment is exactly what the lock file says: requirements.txt for running,
# requirements-dev.txt (a superset at the same versions) for the tests and tools. When
# the lock or pyproject.toml changes, the environment is made again from nothing, so no
# package the lock no longer names stays behind.
ensure_venv() {
    local lock="$ROOT/requirements.txt" want have
    if [ "$EXTRAS" = "dev" ]; then
        lock="$ROOT/requirements-dev.txt"
    fi
    want="$(basename "$lock") $(cat "$lock" "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
    have="$(cat "$VENV/.smsgw-lock" 2>/dev/null || true)"
    if [ "$have" = "$want" ]; then
        return
    fi
    if [ -z "$EXTRAS" ] && [ "${have%% *}" = "requirements-dev.txt" ]; then
        # A test environment serves `ops/run` too, if it is current.
        local dev
        dev="$(cat "$ROOT/requirements-dev.txt" "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
        if [ "$have" = "requirements-dev.txt $dev" ]; then
            return
        fi
    fi
    echo "smsgw: installing $(basename "$lock") into $VENV" >&2
    if [ -f "$VENV/pyvenv.cfg" ]; then
        rm -rf "$VENV"
    fi
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --require-hashes -r "$lock"
    # Editable, so the CLI and the tests run this checkout's code; the build backend
    # comes from the lock too, hence no build isolation.
    "$VENV/bin/python" -m pip install -q --no-deps --no-build-isolation -e "$ROOT"
    echo "$want" > "$VENV/.smsgw-lock"
}

ensure_postgres
if [ "$EXTRAS" = "dev" ]; then
    ensure_chromium
    ensure_pgbouncer
fi
ensure_venv
