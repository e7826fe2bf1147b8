"""The release: the wheel builds, holds the product and nothing else, and what it
installs runs (`smsgw --version`, the schema and queries it ships)."""

from __future__ import annotations

import email.parser
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import smsgw

ROOT = Path(__file__).resolve().parents[2]
PIP = [sys.executable, "-m", "pip", "-q"]
PRODUCT = {"app", "core", "db", "jobs", "providers", "smpp_server", "smsgw"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # From a copy of what a build reads: a build in the checkout would leave build/ there,
    # and the next one would package modules deleted since.
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in PRODUCT:
        shutil.copytree(
            ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [*PIP, "wheel", "--no-deps", "--no-build-isolation", "-w", str(out), str(source)],
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("smsgw-*.whl")
    return built


def test_the_wheel_is_the_product_at_the_release_version(wheel: Path):
    assert wheel.name.startswith(f"smsgw-{smsgw.__version__}-")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = email.parser.Parser().parsestr(archive.read(info).decode())
        entry_points = archive.read(info.replace("METADATA", "entry_points.txt")).decode()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == PRODUCT
    assert metadata["Version"] == smsgw.__version__ == "1.0.0"
    assert "smsgw = smsgw.cli:main" in entry_points
    # What the processes read at run time ships with them.
    assert "db/schema.sql" in names
    assert any(n.startswith("db/migrations/0001_") for n in names)
    assert "db/queries/messages.sql" in names
    assert "app/static/dashboard.html" in names
    # The consoles: their templates, sheet and vendored htmx.
    assert "app/console/templates/base.html" in names
    assert "app/static/console/console.css" in names
    assert "app/static/vendor/htmx.min.js" in names


def test_what_the_wheel_installs_runs_without_the_checkout(wheel: Path, tmp_path: Path):
    target = tmp_path / "site"
    subprocess.run(
        [*PIP, "install", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    # The installed copy first on the path, run from outside the checkout; its
    # dependencies come from this environment.
    env = {**os.environ, "PYTHONPATH": str(target)}
    probe = (
        "import importlib.util, smsgw, db.migrate;"
        "print(smsgw.__file__);"
        "print(len(db.migrate.migrations()));"
        "print(importlib.util.find_spec('ops'), importlib.util.find_spec('tests'))"
    )
    shown = subprocess.run(
        [sys.executable, "-c", probe], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert shown.returncode == 0, shown.stderr
    where, migrations, tools = shown.stdout.splitlines()
    assert where.startswith(str(target))
    assert int(migrations) >= 1
    assert tools == "None None"  # the tools and tests are not installed
    version = subprocess.run(
        [sys.executable, "-m", "smsgw", "--version"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert version.stdout.strip() == f"smsgw {smsgw.__version__}"
