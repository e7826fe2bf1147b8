# Sourced by ops/run and ops/test: a virtual environment in .venv with the project
# installed, and PostgreSQL's server binaries on the machine. Re-runs are quick: the
# install is redone only when pyproject.toml changes.
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

ensure_venv() {
    if [ ! -x "$VENV/bin/python" ]; then
        "$PYTHON" -m venv "$VENV"
    fi
    local stamp="$VENV/.smsgw-installed${EXTRAS:+-$EXTRAS}"
    local digest
    digest="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$digest" ]; then
        "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
        # Editable: the CLI and the tests run this checkout's code.
        "$VENV/bin/python" -m pip install -q -e "$ROOT${EXTRAS:+[$EXTRAS]}"
        echo "$digest" > "$stamp"
    fi
}

ensure_postgres
if [ "$EXTRAS" = "dev" ]; then
    ensure_chromium
fi
ensure_venv
