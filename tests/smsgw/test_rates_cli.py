"""`smsgw rates import|export` as an operator types it: the admin API's rules, from a
file, against DATABASE_URL."""

from __future__ import annotations

import json

import psycopg
import pytest
from psycopg.rows import dict_row

from smsgw import cli
from tests.app.rate_cards import WORLD


@pytest.fixture
def database(db_url, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("SMSGW_ADMIN_TOKEN", "x")
    return db_url


def test_import_dry_run_then_export_a_card(database, tmp_path, capsys):
    card = tmp_path / "world.csv"
    card.write_text(WORLD)
    assert cli.main(["rates", "import", "world", str(card), "--dry-run"]) == 0
    diff = json.loads(capsys.readouterr().out)
    assert (diff["against"], len(diff["added"])) == (None, 3)
    assert cli.main(["rates", "export", "world"]) == 1  # the dry run wrote nothing
    assert "No rate card" in capsys.readouterr().err

    assert cli.main(["rates", "import", "world", str(card)]) == 0
    assert json.loads(capsys.readouterr().out)["version"] == 1
    later = "2099-01-01T00:00:00+00:00"
    card.write_text(WORLD + "33,FR,,20000\n")
    assert cli.main(["rates", "import", "world", str(card), "--effective-at", later]) == 0
    imported = json.loads(capsys.readouterr().out)
    assert (imported["version"], imported["rates"]) == (2, 4)
    assert cli.main(["rates", "export", "world"]) == 0
    assert capsys.readouterr().out == WORLD  # version 1 is in effect until 2099
    assert cli.main(["rates", "export", "world", "2"]) == 0
    exported = capsys.readouterr().out.splitlines()
    assert exported == [  # by prefix
        "prefix,country,network,price",
        "1,US,,1000",
        "33,FR,,20000",
        "44,GB,,30000",
        "447,GB,UK mobile,35000",
    ]


def test_a_malformed_file_lists_its_problems_by_line_and_imports_nothing(
    database, tmp_path, capsys
):
    card = tmp_path / "bad.csv"
    card.write_text("prefix,country,network,price\n44,GB,,x\n44,GB,,1\n")
    assert cli.main(["rates", "import", "bad", str(card)]) == 1
    err = capsys.readouterr().err
    assert "line 2: price must be a whole number" in err
    assert "line 3: prefix '44' is also on line 2" in err
    assert cli.main(["rates", "export", "bad"]) == 1


def test_an_import_is_in_the_audit_trail_as_the_tool(database, tmp_path, capsys):
    card = tmp_path / "world.csv"
    card.write_text(WORLD)
    assert cli.main(["rates", "import", "world", str(card), "--dry-run"]) == 0
    assert cli.main(["rates", "import", "world", str(card)]) == 0
    with psycopg.connect(database, row_factory=dict_row) as conn:
        rows = conn.execute("SELECT * FROM audit_events").fetchall()
    # The dry run wrote nothing, the import one row naming the tool.
    [row] = rows
    assert (row["action"], row["target"]) == ("rate_card.version_imported", "rate_card:world")
    assert (row["actor_kind"], row["actor_id"], row["address"]) == (
        "system",
        "smsgw rates import",
        None,
    )
    assert row["after"]["version"] == 1
    assert row["after"]["rates"] == 3
