"""Inbound text in the data codings handsets use, decoded once a long message's octets
are joined (core/inbound.py)."""

from __future__ import annotations

import pytest

from providers.sms_text import decode_text


@pytest.mark.parametrize(
    ("data_coding", "octets", "text"),
    [
        (0, b"Hi {there} 5\x1be", "Hi äthereñ 5€"),  # GSM 03.38, with an escape
        (1, b"plain", "plain"),
        (3, "café".encode("latin-1"), "café"),
        (8, "Привет 📦".encode("utf-16-be"), "Привет 📦"),
    ],
)
def test_the_codings_handsets_use(data_coding: int, octets: bytes, text: str) -> None:
    assert decode_text(data_coding, octets) == text


def test_binary_and_unknown_codings_have_no_text() -> None:
    assert decode_text(4, b"\x00\x01") is None
    assert decode_text(0xF5, b"\x00\x01") is None


def test_a_character_split_between_parts_decodes_from_the_joined_octets() -> None:
    emoji = "📦".encode("utf-16-be")
    assert decode_text(8, emoji[:2] + emoji[2:]) == "📦"
    assert decode_text(8, emoji[:2]) != "📦"  # a part alone cannot say it
    assert decode_text(0, b"5\x1b" + b"e") == "5€"
