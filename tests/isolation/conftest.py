"""The hostile-input tests' fixtures serve here too: a world of one of everything."""

from tests.hostile.conftest import world

__all__ = ["world"]
