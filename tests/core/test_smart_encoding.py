"""Smart encoding against bodies as word processors paste them: each keeps GSM-7, and a
body with a character that has no GSM-7 look-alike is left as written."""

from __future__ import annotations

import pytest

from core import segments, smart_encoding

# (where it came from, as pasted, what is sent)
PASTED = [
    (
        "Word autocorrect: curly quotes, apostrophe, em dash, ellipsis",
        "\u201cYour order\u201d is ready \u2014 we\u2019ll hold it until 6pm\u2026",
        '"Your order" is ready - we\'ll hold it until 6pm...',
    ),
    (
        "Google Docs: no-break spaces around a price, en dash range",
        "Sale:\u00a0\u20ac20\u00a0off, 10\u201312 May",
        "Sale: \u20ac20 off, 10-12 May",
    ),
    (
        "Apple Pages: single curly quotes and a narrow no-break space",
        "It\u2019s \u2018on\u2019 at 9\u202fam",
        "It's 'on' at 9 am",
    ),
    (
        "Outlook list: bullets and a tab",
        "\u2022\tMilk\n\u2022\tBread",
        "-\tMilk\n-\tBread".replace("\t", " "),
    ),
    (
        "French guillemets with thin spaces",
        "\u00ab\u2009Bonjour\u2009\u00bb",
        '" Bonjour "',
    ),
    (
        "a zero-width space and a soft hyphen from a web page",
        "Code\u200b: 12\u00ad34",
        "Code: 1234",
    ),
    (
        "German low-9 quotes",
        "\u201eDanke\u201c f\u00fcr Ihre Bestellung",
        '"Danke" f\u00fcr Ihre Bestellung',
    ),
]


@pytest.mark.parametrize(("source", "pasted", "sent"), PASTED, ids=[p[0] for p in PASTED])
def test_pasted_bodies_stay_gsm7(source, pasted, sent):
    assert segments.encoding_of(pasted) == "UCS-2"
    assert smart_encoding.encode(pasted) == sent
    assert segments.encoding_of(sent) == "GSM-7"


def test_a_pasted_paragraph_stays_one_segment():
    paragraph = (
        "Hi Anna \u2014 your table for 4 is booked for Friday at 7:30\u202fpm. "
        "We\u2019ll text you if anything changes\u2026 \u201cSee you soon!\u201d"
    )
    assert segments.count(paragraph).segments == 2  # UCS-2: 130 units over 70
    sent = smart_encoding.encode(paragraph)
    assert (segments.count(sent).encoding, segments.count(sent).segments) == ("GSM-7", 1)


def test_a_character_without_a_look_alike_keeps_the_body_as_written():
    body = "\u201cThanks\u201d \U0001f600"
    assert smart_encoding.encode(body) == body
    assert smart_encoding.encode("\u041f\u0440\u0438\u0432\u0435\u0442 \u2014 ok") == (
        "\u041f\u0440\u0438\u0432\u0435\u0442 \u2014 ok"
    )


def test_gsm7_bodies_and_accented_letters_are_untouched():
    assert smart_encoding.encode("Plain text {with} [extension] chars \u20ac") == (
        "Plain text {with} [extension] chars \u20ac"
    )
    # An accent is part of a word, not a look-alike: the body stays UCS-2 as written.
    assert smart_encoding.encode("S\u00e3o Paulo \u2014 ok") == "S\u00e3o Paulo \u2014 ok"


def test_every_replacement_is_gsm7():
    for char, replacement in smart_encoding.LOOKALIKES.items():
        assert char not in segments.GSM7, char
        assert segments.GSM7.issuperset(replacement), (char, replacement)
