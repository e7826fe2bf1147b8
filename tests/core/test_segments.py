"""Encoding and segment counts of tricky bodies (DESIGN.md, "Segments")."""

from __future__ import annotations

import pytest

from core import segments

EXTENSION = ["^", "{", "}", "\\", "[", "~", "]", "|", "€", "\f"]
CYRILLIC = "ж"  # outside GSM 03.38: forces UCS-2, one UTF-16 unit
EMOJI = "😀"  # outside the BMP: two UTF-16 units


@pytest.mark.parametrize(
    ("body", "encoding", "parts"),
    [
        pytest.param("a", "GSM-7", 1, id="one-char"),
        pytest.param("a" * 160, "GSM-7", 1, id="gsm-160-single"),
        pytest.param("a" * 161, "GSM-7", 2, id="gsm-161-two-parts"),
        pytest.param("a" * 306, "GSM-7", 2, id="gsm-306-two-full-parts"),
        pytest.param("a" * 307, "GSM-7", 3, id="gsm-307-three-parts"),
        pytest.param("a" * 1530, "GSM-7", 10, id="gsm-ten-full-parts"),
        pytest.param("a" * 1531, "GSM-7", 11, id="gsm-eleven-parts"),
        pytest.param("€" * 80, "GSM-7", 1, id="80-escapes-fill-160-septets"),
        pytest.param("€" * 81, "GSM-7", 2, id="81-escapes-overflow"),
        pytest.param("@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¡ÄÖÑÜ§¿äöñüà", "GSM-7", 1, id="gsm-basic"),
        pytest.param("Bon appétit ç", "UCS-2", 1, id="lowercase-c-cedilla-is-not-gsm"),
        pytest.param("á", "UCS-2", 1, id="a-acute-is-not-gsm"),
        pytest.param(CYRILLIC * 70, "UCS-2", 1, id="ucs2-70-single"),
        pytest.param(CYRILLIC * 71, "UCS-2", 2, id="ucs2-71-two-parts"),
        pytest.param(CYRILLIC * 134, "UCS-2", 2, id="ucs2-134-two-full-parts"),
        pytest.param(CYRILLIC * 135, "UCS-2", 3, id="ucs2-135-three-parts"),
        pytest.param(CYRILLIC * 670, "UCS-2", 10, id="ucs2-ten-full-parts"),
        pytest.param(EMOJI * 35, "UCS-2", 1, id="35-emoji-are-70-units"),
        pytest.param(EMOJI * 35 + "a", "UCS-2", 2, id="35-emoji-and-a-letter"),
        pytest.param("Hello " + EMOJI, "UCS-2", 1, id="mixed-ascii-emoji"),
        pytest.param("Total: 5€ {ok}", "GSM-7", 1, id="mixed-basic-extension"),
        pytest.param("Total: 5€ " + CYRILLIC, "UCS-2", 1, id="mixed-extension-and-ucs2"),
    ],
)
def test_encoding_and_parts(body: str, encoding: str, parts: int) -> None:
    counted = segments.count(body)
    assert (counted.encoding, counted.segments) == (encoding, parts)
    assert len(segments.split(body)) == parts
    assert "".join(segments.split(body)) == body


@pytest.mark.parametrize("char", EXTENSION, ids=repr)
def test_extension_characters_count_double(char: str) -> None:
    assert segments.count(char).encoding == "GSM-7"
    assert segments.count(char).units == 2
    assert segments.count("a" * 158 + char).segments == 1  # 160 septets
    assert segments.count("a" * 159 + char).segments == 2  # 161 septets


@pytest.mark.parametrize("char", EXTENSION, ids=repr)
def test_escape_pair_is_never_split_across_parts(char: str) -> None:
    # 306 septets divide into two full parts of 153, but the escape pair would straddle
    # the boundary, so it moves whole to the second part and a third part is needed.
    body = "a" * 152 + char + "a" * 152
    assert segments.count(body).units == 306
    assert segments.count(body).segments == 3
    parts = segments.split(body)
    assert parts[0] == "a" * 152
    assert parts[1].startswith(char)
    assert all(sum(2 if c in EXTENSION else 1 for c in part) <= 153 for part in parts)


def test_surrogate_pair_is_never_split_across_parts() -> None:
    body = CYRILLIC * 66 + EMOJI + CYRILLIC * 66  # 134 units, a pair at the boundary
    assert segments.count(body).units == 134
    assert segments.count(body).segments == 3
    parts = segments.split(body)
    assert parts[0] == CYRILLIC * 66
    assert parts[1].startswith(EMOJI)


def test_emoji_counts_two_utf16_units() -> None:
    assert segments.count(EMOJI).units == 2
    assert segments.count(EMOJI * 10 + "abc").units == 23
