"""The registry of provider kinds: what the admin API accepts is what a worker builds."""

from __future__ import annotations

import pytest

from providers import kinds


def test_every_secret_is_a_setting_of_its_kind():
    for kind in kinds.KINDS.values():
        assert kind.secrets <= set(kind.settings), kind.name


@pytest.mark.parametrize(
    ("kind", "config"),
    [
        ("simulator", {"seed": 1}),
        ("http", {"url": "http://127.0.0.1:9/", "dlr_secret": "s"}),
        ("smpp", {"host": "127.0.0.1", "port": 9, "system_id": "id", "password": "pw"}),
    ],
)
async def test_each_kind_builds_an_adapter_from_a_config_it_accepts(kind, config):
    async def no_receipts(receipts):
        return None

    entry = kinds.get(kind)
    adapter = entry.build("p", entry.config(config), kinds.Sinks(no_receipts))
    assert adapter.name == "p"
    await adapter.close()


def test_unknown_settings_and_kinds_are_refused():
    with pytest.raises(kinds.UnknownSettings) as refused:
        kinds.HTTP.config({"url": "http://127.0.0.1:9/", "token": "x", "apikey": "y"})
    assert refused.value.names == ["apikey", "token"]
    with pytest.raises(ValueError, match="unknown provider kind"):
        kinds.get("carrier-pigeon")
