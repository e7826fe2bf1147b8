"""`phonenumbers.is_valid_number` without its second look at the number's patterns.

For a calling code that several regions share (+1: the US, Canada and the Caribbean; +44:
the UK and the Crown dependencies; +7...), `is_valid_number` first finds the region by
matching the number against each region's patterns, then checks the number against the
found region's patterns again. The second pass cannot change the answer when the first
found the region by its patterns, and it was ~3 µs of every US recipient's ~15 µs of
validation (ops/bench timeit), on the path of every send. tests/core/test_phone_numbers.py
holds this equal to `is_valid_number` over every region's example numbers and random ones.
"""

from __future__ import annotations

import re

import phonenumbers
from phonenumbers import PhoneMetadata


def is_valid(number: phonenumbers.PhoneNumber) -> bool:
    code = number.country_code
    regions = () if code is None else phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(code, ())
    if len(regions) <= 1:
        return bool(phonenumbers.is_valid_number(number))
    national = phonenumbers.national_significant_number(number)
    # phonenumbers' region_code_for_number, in its order.
    for region in regions:
        metadata = PhoneMetadata.metadata_for_region(region.upper(), None)
        if metadata is None:
            continue
        if metadata.leading_digits is not None:
            # A region told apart by its leading digits, not by its patterns: the number
            # is this region's, valid or not.
            if re.match(metadata.leading_digits, national):
                return bool(phonenumbers.is_valid_number_for_region(number, region))
        elif phonenumbers.is_valid_number_for_region(number, region):
            return True
    return False
