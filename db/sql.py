"""Loads the named statements of ``db/queries/*.sql`` once, and runs them."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any, LiteralString

import msgspec

from db import Conn, Row

_NAME = re.compile(r"^--\s*name:\s*(?P<name>[a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


@functools.cache
def queries(resource: str) -> dict[str, LiteralString]:
    """The statements of ``db/queries/<resource>.sql`` by name."""
    text = resources.files("db").joinpath("queries", f"{resource}.sql").read_text("utf-8")
    found: dict[str, LiteralString] = {}
    matches = list(_NAME.finditer(text))
    for match, following in zip(matches, [*matches[1:], None], strict=True):
        end = following.start() if following else len(text)
        statement = text[match.end() : end].strip()
        if not statement:
            raise ValueError(f"{resource}.sql: query {match['name']} is empty")
        if match["name"] in found:
            raise ValueError(f"{resource}.sql: query {match['name']} is defined twice")
        # The files ship with the package and are never built from input.
        found[match["name"]] = statement
    return found


def json_rows(rows: Sequence[Mapping[str, Any]]) -> str:
    """Many rows as one JSON parameter, unpacked in SQL with json_to_recordset.

    Cheaper than one array parameter per column: msgspec encodes the whole batch in C,
    where psycopg dumps arrays element by element in Python (measured: array dumping was
    a sixth of a worker's CPU; ops/bench/e2e.py --spy)."""
    return msgspec.json.encode(rows).decode()


class Queries:
    """The statements of one resource file, bound to the helpers below."""

    def __init__(self, resource: str) -> None:
        self._resource = resource

    def __getitem__(self, name: str) -> LiteralString:
        return queries(self._resource)[name]

    # `prepare`: psycopg's choice (None: prepared once run often), or False for a
    # statement whose best plan depends on its parameters' size (a batch of keys).
    async def one(
        self, conn: Conn, name: str, /, *, prepare: bool | None = None, **params: Any
    ) -> Row | None:
        cursor = await conn.execute(self[name], params, prepare=prepare)
        return await cursor.fetchone()

    async def all(
        self, conn: Conn, name: str, /, *, prepare: bool | None = None, **params: Any
    ) -> list[Row]:
        cursor = await conn.execute(self[name], params, prepare=prepare)
        return await cursor.fetchall()

    async def run(
        self, conn: Conn, name: str, /, *, prepare: bool | None = None, **params: Any
    ) -> int:
        cursor = await conn.execute(self[name], params, prepare=prepare)
        return cursor.rowcount
