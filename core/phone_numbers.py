"""`phonenumbers.parse` and `is_valid_number` for the recipient of every send, without
the work that cannot change their answer.

`parse_e164`: for text already known to be `+` and digits, `parse` still runs its general
machinery (punctuation, extensions, letters, the viability pattern): ~6 µs of a US
number's 8 µs (ops/bench timeit). This takes the calling code as `parse` does (the first
of 1 to 3 digits that names one), then the same library functions for the national
prefix and the number's length; anything unusual goes to `parse` itself, whose errors
are then its own. (Those functions are private to phonenumbers: the tests below hold
the result equal to `parse`'s, so a release that changes them fails there first.)

`is_valid`: for a calling code that several regions share (+1: the US, Canada and the
Caribbean; +44: the UK and the Crown dependencies; +7...), `is_valid_number` first finds
the region by matching the number against each region's patterns, then checks the number
against the found region's patterns again. The second pass cannot change the answer when
the first found the region by its patterns, and it was ~3 µs of every US recipient's
validation (ops/bench timeit).

Validity itself: `is_valid_number_for_region` asks `_number_type_helper` for the number's
type and compares it with UNKNOWN; that helper tries the rare types first (premium
rate, toll free, shared cost, VoIP, personal, pager, UAN, voicemail) and fixed line and
mobile last, so a common number runs eight patterns that cannot match before its own.
A number is valid exactly when it fits its region's general pattern and any one type's,
so `_fits` tries fixed line and mobile first: ~60% of the validation of a US number
(ops/bench timeit).

tests/core/test_phone_numbers.py holds all three equal to the library's functions over every
region's example numbers, numbers one digit off or short, and random ones.
"""

from __future__ import annotations

import re

import phonenumbers
from phonenumbers import PhoneMetadata, PhoneNumber
from phonenumbers import phonenumberutil as util

# Lengths after which `parse` keeps the national number as written, not stripped of what
# looked like a national prefix.
_KEEP_AS_WRITTEN = (
    util.ValidationResult.TOO_SHORT,
    util.ValidationResult.IS_POSSIBLE_LOCAL_ONLY,
    util.ValidationResult.INVALID_LENGTH,
)


def parse_e164(text: str) -> PhoneNumber:
    """`phonenumbers.parse(text, None)` for ``text`` that is `+` and 2 to 15 digits, the
    first not 0; raises its NumberParseException."""
    digits = text[1:]
    for size in (1, 2, 3):
        code = int(digits[:size])
        if code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            break
    else:
        return phonenumbers.parse(text, None)
    national = digits[size:]
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(
        code, util.region_code_for_country_code(code)
    )
    if metadata is None:
        return phonenumbers.parse(text, None)
    _, stripped, _ = util._maybe_strip_national_prefix_carrier_code(national, metadata)
    if util._test_number_length(stripped, metadata) not in _KEEP_AS_WRITTEN:
        national = stripped
    if not util._MIN_LENGTH_FOR_NSN <= len(national) <= util._MAX_LENGTH_FOR_NSN:
        # Too short (stripping only shortens) or too long: `parse`'s error.
        return phonenumbers.parse(text, None)
    number = PhoneNumber(country_code=code)
    util._set_italian_leading_zeros_for_phone_number(national, number)
    number.national_number = int(national)
    return number


# Every type's description, the common ones first (see the module's docstring).
_TYPES = (
    "fixed_line",
    "mobile",
    "toll_free",
    "premium_rate",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
)


def _fits(national: str, metadata: PhoneMetadata) -> bool:
    """`_number_type_helper(national, metadata) != UNKNOWN`, common types first."""
    if not util._is_number_matching_desc(national, metadata.general_desc):
        return False
    return any(util._is_number_matching_desc(national, getattr(metadata, t)) for t in _TYPES)


def _valid_for_region(number: PhoneNumber, region: str, national: str) -> bool:
    """`phonenumbers.is_valid_number_for_region`, by `_fits`."""
    code = number.country_code
    if code is None:
        return False
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(code, region.upper())
    if metadata is None or (
        region != _NON_GEOGRAPHIC and code != util.country_code_for_valid_region(region)
    ):
        return False
    return _fits(national, metadata)


def valid_region(number: phonenumbers.PhoneNumber) -> str | None:
    """The region of a valid number (`region_code_for_number`'s answer: "001" for a
    calling code of no country); None when the number is not valid. For a shared calling
    code one search of its regions answers both questions, where `is_valid_number` and
    then `region_code_for_number` each searched them (~40 us of a US number's send, and
    ~170 us of a UK mobile's, on this machine: every send needs its country since the
    sender rules)."""
    code = number.country_code
    regions = () if code is None else phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(code, ())
    if not regions:
        return None
    national = phonenumbers.national_significant_number(number)
    if len(regions) == 1:
        return str(regions[0]) if _valid_for_region(number, regions[0], national) else None
    # phonenumbers' region_code_for_number, in its order.
    for region in regions:
        metadata = PhoneMetadata.metadata_for_region(region.upper(), None)
        if metadata is None:
            continue
        if metadata.leading_digits is not None:
            # A region told apart by its leading digits, not by its patterns: the number
            # is this region's, valid or not.
            if re.match(metadata.leading_digits, national):
                valid = _valid_for_region(number, region, national)
                return str(region) if valid else None
        elif _valid_for_region(number, region, national):
            return str(region)
    return None


def is_valid(number: phonenumbers.PhoneNumber) -> bool:
    return valid_region(number) is not None


# The region code phonenumbers gives calling codes of no country.
_NON_GEOGRAPHIC = "001"


def country_of(region: str) -> str | None:
    """The ISO 3166 alpha-2 country of a valid number's region (its sender rules'
    country); None for a calling code of no country (+800, +882...)."""
    return None if region == _NON_GEOGRAPHIC else region
