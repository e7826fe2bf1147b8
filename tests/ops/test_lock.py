"""The lock files: every dependency pinned with hashes, production and tests on the same
versions, and the suite itself running on what the lock says."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
_PIN = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;]+)(?: ; (?P<marker>[^\\\n]+))?"
)


def pins(lock: str) -> dict[str, str]:
    """name -> version for this interpreter and platform (the locks are made for any
    platform, so some packages have an entry per Python version); fails on an entry
    without a hash."""
    text = (ROOT / lock).read_text()
    found: dict[str, str] = {}
    for entry in re.split(r"\n(?=\S)", text):
        match = _PIN.match(entry)
        if match is None:
            assert entry.startswith("#") or not entry.strip(), f"{lock}: unreadable {entry!r}"
            continue
        assert "--hash=sha256:" in entry, f"{lock}: {match['name']} has no hash"
        if match["marker"] and not Marker(match["marker"].strip()).evaluate():
            continue
        found[canonicalize_name(match["name"])] = match["version"]
    return found


@pytest.fixture(scope="module")
def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _names(requirements: list[str]) -> set[str]:
    return {canonicalize_name(Requirement(r).name) for r in requirements}


def test_every_dependency_and_the_build_backend_are_pinned(project):
    runtime, dev = pins("requirements.txt"), pins("requirements-dev.txt")
    build = _names(project["build-system"]["requires"])
    assert _names(project["project"]["dependencies"]) | build <= set(runtime)
    assert _names(project["project"]["optional-dependencies"]["dev"]) | build <= set(dev)
    for requirement in map(Requirement, project["project"]["dependencies"]):
        version = runtime[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(version, prereleases=True), requirement


def test_tests_run_on_the_versions_production_installs():
    runtime, dev = pins("requirements.txt"), pins("requirements-dev.txt")
    assert set(runtime) <= set(dev)
    moved = {name: (v, dev[name]) for name, v in runtime.items() if dev[name] != v}
    assert moved == {}


def test_this_environment_is_what_the_dev_lock_says():
    dev = pins("requirements-dev.txt")
    installed = {
        canonicalize_name(d.metadata["Name"]): d.version
        for d in metadata.distributions()
        if d.metadata["Name"] and canonicalize_name(d.metadata["Name"]) != "smsgw"
    }
    # pip comes with the virtual environment, not from the lock.
    installed.pop("pip", None)
    differs = {n: (v, dev.get(n)) for n, v in installed.items() if dev.get(n) != v}
    assert differs == {}, "installed (version, locked version); run ops/test to reinstall"
