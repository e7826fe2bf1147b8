"""The product's processes: the `smsgw` command (`cli.py`), the ASGI entry point
(`asgi.py`), the one-command run with its embedded PostgreSQL (`run.py`, `embedded.py`)
and the operator's health check (`doctor.py`). The gateway itself lives in `app/`,
`smpp_server/`, `jobs/`, `core/`, `providers/` and `db/`; this package only wires them
into processes. Benchmarks, load scripts and drills are tools under `ops/`, outside the
installed package."""

# The one place the release is named: pyproject.toml reads it, `smsgw --version` prints it.
__version__ = "1.0.0"
