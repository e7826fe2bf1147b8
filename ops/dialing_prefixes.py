"""Generates the rows of ``dialing_prefixes`` (the INSERT in db/schema.sql and in the
baseline migration, db/migrations/0001_baseline.sql) from the `phonenumbers` metadata:
the E.164 prefix that names a destination's country, for reports that group by country
in SQL. New rows after 1.0.0 (a newer phonenumbers) go in a migration of their own and
in schema.sql; the baseline stays as released.

Every country calling code maps to its main region; where several regions share a code,
the finer prefixes that phonenumbers knows are added: the `leading_digits` of a region
(Jamaica is +1658 and +1876, Kazakhstan +77), and for the North American plan the area
codes that are not the United States' (Canada's among them), found by asking
phonenumbers for the region of a sample number in each area code. Regions that share a
code and have neither (Guernsey and Jersey in +44, for one) count as the main region.

    python -m ops.dialing_prefixes > /tmp/prefixes.sql
"""

from __future__ import annotations

import itertools
import re

import phonenumbers
from phonenumbers.phonemetadata import PhoneMetadata


def _expand(pattern: str, max_len: int = 5) -> set[str]:
    """The shortest digit strings that ``pattern`` matches in full (leading digits)."""
    compiled = re.compile(pattern)
    found: set[str] = set()
    for length in range(1, max_len + 1):
        for digits in itertools.product("0123456789", repeat=length):
            s = "".join(digits)
            if any(s.startswith(p) for p in found):
                continue
            if compiled.fullmatch(s):
                found.add(s)
    return found


def prefixes() -> dict[str, str]:
    table: dict[str, str] = {}
    for code, regions in sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items()):
        main = next(
            (
                r
                for r in regions
                if (md := PhoneMetadata.metadata_for_region(r)) and md.main_country_for_code
            ),
            regions[0],
        )
        if main == "001":  # non-geographic (satellite, UIFN): no country
            continue
        table[f"+{code}"] = main
        for region in regions:
            md = PhoneMetadata.metadata_for_region(region)
            if region == main or md is None or not md.leading_digits:
                continue
            for head in _expand(md.leading_digits):
                table[f"+{code}{head}"] = region
    # North America: one calling code, countries told apart by area code.
    for area in range(200, 1000):
        for sample in ("2345678", "5550123", "7654321", "4561234"):
            number = phonenumbers.parse(f"+1{area}{sample}")
            found: str | None = phonenumbers.region_code_for_number(number)
            if found:
                if found != "US":
                    table.setdefault(f"+1{area}", found)
                break
    return table


def main() -> None:
    rows = sorted(prefixes().items())
    print("INSERT INTO dialing_prefixes (prefix, country) VALUES")
    print(",\n".join(f"    ('{prefix}', '{country}')" for prefix, country in rows) + ";")


if __name__ == "__main__":
    main()
