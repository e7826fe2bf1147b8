"""Quiet hours in the recipient's local time, at chosen instants (no waiting)."""

from __future__ import annotations

from datetime import UTC, datetime, time

import phonenumbers

from core import quiet_hours

LOS_ANGELES = phonenumbers.parse("+14155552671")  # America/Los_Angeles
LONDON = phonenumbers.parse("+447400123456")
AUSTRALIA = phonenumbers.parse("+61412345678")  # a mobile: every Australian zone
NIGHT = (time(21, 0), time(8, 0))


def test_inside_the_window_it_waits_for_its_end_in_the_recipients_zone():
    # 23:30 in San Francisco (PST, UTC-8) is 07:30 UTC: waits for 08:00 there.
    at = datetime(2026, 12, 7, 7, 30, tzinfo=UTC)
    assert quiet_hours.opens_at(LOS_ANGELES, *NIGHT, at) == datetime(2026, 12, 7, 16, 0, tzinfo=UTC)
    # The same instant is 07:30 in London: quiet too, until 08:00 London (UTC in winter).
    assert quiet_hours.opens_at(LONDON, *NIGHT, at) == datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
    # 20:59 in London: not yet quiet; 21:00: quiet until the next morning.
    assert quiet_hours.opens_at(LONDON, *NIGHT, datetime(2026, 12, 7, 20, 59, tzinfo=UTC)) is None
    assert quiet_hours.opens_at(
        LONDON, *NIGHT, datetime(2026, 12, 7, 21, 0, tzinfo=UTC)
    ) == datetime(2026, 12, 8, 8, 0, tzinfo=UTC)
    # Summer time: 08:00 London is 07:00 UTC.
    assert quiet_hours.opens_at(LONDON, *NIGHT, datetime(2026, 7, 1, 6, 0, tzinfo=UTC)) == datetime(
        2026, 7, 1, 7, 0, tzinfo=UTC
    )


def test_a_window_within_one_day():
    lunch = (time(12, 0), time(14, 0))
    assert quiet_hours.opens_at(
        LONDON, *lunch, datetime(2026, 12, 7, 13, 0, tzinfo=UTC)
    ) == datetime(2026, 12, 7, 14, 0, tzinfo=UTC)
    assert quiet_hours.opens_at(LONDON, *lunch, datetime(2026, 12, 7, 14, 0, tzinfo=UTC)) is None


def test_a_number_of_several_zones_is_judged_by_the_westernmost():
    at = datetime(2026, 12, 7, 0, 0, tzinfo=UTC)  # 08:00 in Perth, 11:00 in Sydney
    zone = quiet_hours.zone(AUSTRALIA, at)
    assert zone is not None
    assert zone.key == "Indian/Cocos"  # UTC+6:30, the westernmost of +61's zones
    # 06:30 on the Cocos Islands: still quiet there, so it waits an hour and a half.
    assert quiet_hours.opens_at(AUSTRALIA, *NIGHT, at) == datetime(2026, 12, 7, 1, 30, tzinfo=UTC)


def test_clocks_are_parsed_strictly():
    assert quiet_hours.parse_clock("21:00") == time(21, 0)
    for bad in ("24:00", "9:00", "21:60", "21:00:00"):
        try:
            quiet_hours.parse_clock(bad)
        except ValueError:
            continue
        raise AssertionError(bad)
