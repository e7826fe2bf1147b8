"""Keys of many messages handed to one statement, in the form that lets PostgreSQL find
them whatever its statistics say (see db/queries/dispatch.sql, mark_sending)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any


def targets(keys: Sequence[tuple[datetime, uuid.UUID]]) -> dict[str, Any]:
    """The range of created_at and the ids the statement touches, so that PostgreSQL
    prunes the other daily partitions and finds the rows by primary key. No keys: the
    statement touches nothing."""
    if not keys:
        return {"oldest": None, "newest": None, "ids": "{}"}
    created = [key[0] for key in keys]
    # A text array literal: psycopg dumps a list of UUIDs element by element.
    ids = "{" + ",".join(str(key[1]) for key in keys) + "}"
    return {"oldest": min(created), "newest": max(created), "ids": ids}
