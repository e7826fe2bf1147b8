"""core.phone_numbers.valid_region gives phonenumbers.is_valid_number's answer and, for a
valid number, region_code_for_number's, always: a recipient it let through would be sent
to a number the gateway calls invalid, one it refused would be a valid send answered 422,
and a wrong region would judge the sender by another country's rules."""

from __future__ import annotations

import random

import phonenumbers
from phonenumbers import PhoneNumberType

from core import phone_numbers, submission

TYPES = [
    PhoneNumberType.FIXED_LINE,
    PhoneNumberType.MOBILE,
    PhoneNumberType.TOLL_FREE,
    PhoneNumberType.PREMIUM_RATE,
    PhoneNumberType.VOIP,
    PhoneNumberType.PERSONAL_NUMBER,
    PhoneNumberType.PAGER,
    PhoneNumberType.UAN,
    PhoneNumberType.VOICEMAIL,
]


def _agrees(e164: str) -> bool:
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return True
    expected = (
        phonenumbers.region_code_for_number(number)
        if phonenumbers.is_valid_number(number)
        else None
    )
    return phone_numbers.valid_region(number) == expected


def test_every_regions_example_numbers_get_the_same_answer() -> None:
    examples = [
        phonenumbers.format_number(n, phonenumbers.PhoneNumberFormat.E164)
        for region in phonenumbers.SUPPORTED_REGIONS
        for kind in TYPES
        if (n := phonenumbers.example_number_for_type(region, kind)) is not None
    ]
    assert len(examples) > 1_000
    # Valid ones, and one digit off (often invalid, often another region's).
    nudged = [e[:-1] + str((int(e[-1]) + 1) % 10) for e in examples]
    shorter = [e[:-1] for e in examples]
    disagree = [e for e in examples + nudged + shorter if not _agrees(e)]
    assert disagree == []
    assert any(phone_numbers.is_valid(phonenumbers.parse(e, None)) for e in examples)


def test_random_numbers_of_every_calling_code_get_the_same_answer() -> None:
    # Half of them to calling codes that several regions share (+1, +44...), where the
    # region is searched; half to any code (one region, or none: +800...).
    shared = [
        cc for cc, regions in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items() if len(regions) > 1
    ]
    every = list(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
    assert {1, 44} <= set(shared)
    rng = random.Random(20261126)
    tried = valid = 0
    disagree = []
    for i in range(40_000):
        cc = rng.choice(shared if i % 2 else every)
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(6, 12)))
        e164 = f"+{cc}{digits}"
        tried += 1
        if not _agrees(e164):
            disagree.append(e164)
        elif phone_numbers.is_valid(phonenumbers.parse(e164, None)):
            valid += 1
    assert disagree == []
    assert 0 < valid < tried  # both answers were exercised


def _parsed(parse, text: str) -> object:
    """The number parsed, or the kind of error raised."""
    try:
        return parse(text)
    except phonenumbers.NumberParseException as exc:
        return ("error", exc.error_type)


def _e164_texts() -> list[str]:
    """Every region's example numbers, one digit off, one digit short, with a national
    prefix written after the calling code (+44 0...), and random digits."""
    examples = [
        phonenumbers.format_number(n, phonenumbers.PhoneNumberFormat.E164)
        for region in phonenumbers.SUPPORTED_REGIONS
        for kind in TYPES
        if (n := phonenumbers.example_number_for_type(region, kind)) is not None
    ]
    texts = list(examples)
    texts += [e[:-1] + str((int(e[-1]) + 1) % 10) for e in examples]
    texts += [e[:-1] for e in examples]
    for number in map(lambda e: phonenumbers.parse(e, None), examples):
        national = phonenumbers.national_significant_number(number)
        texts.append(f"+{number.country_code}0{national}")
    rng = random.Random(20261127)
    for _ in range(20_000):
        texts.append(
            "+"
            + rng.choice("123456789")
            + "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 14)))
        )
    return [t for t in texts if submission.E164.match(t)]


def test_parse_e164_gives_phonenumbers_parse_answer() -> None:
    texts = _e164_texts()
    assert len(texts) > 20_000
    disagree = [
        t
        for t in texts
        if _parsed(phone_numbers.parse_e164, t) != _parsed(lambda x: phonenumbers.parse(x, None), t)
    ]
    assert disagree == []
    # Both outcomes, and a stripped national prefix, were exercised.
    outcomes = [_parsed(phone_numbers.parse_e164, t) for t in texts]
    assert any(isinstance(o, tuple) for o in outcomes)
    assert phone_numbers.parse_e164("+4407400123456") == phonenumbers.parse("+447400123456", None)
