"""Quiet hours: a tenant's window of the recipient's local night (21:00 to 08:00, say) in
which its messages do not leave. A message that would leave inside it waits as
`scheduled` until the window's end, its hold kept; one marked ``quiet_hours: false``
(a one-time code) leaves at once. Validity still counts from when the message was meant
to leave: one whose window ends after it expires is expired (and released) by the
dispatcher instead of sent.

The recipient's time zone comes from its number (phonenumbers' time zone data). A number
that several zones share (a country's mobile range: Australia's, Russia's) is judged by
the zone whose clock is latest, the westernmost: the morning there comes last, so no
recipient of the range is woken. A number of no known zone is not held back.

Pure: the time is an argument, so tests choose it rather than wait for it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as number_zones

CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def parse_clock(text: str) -> time:
    """'HH:MM' (24 h) as a time; ValueError otherwise."""
    if not CLOCK.match(text):
        raise ValueError(text)
    return time(int(text[:2]), int(text[3:]))


@lru_cache(maxsize=4096)
def _zones(key: tuple[int, int]) -> tuple[ZoneInfo, ...]:
    number = phonenumbers.PhoneNumber(country_code=key[0], national_number=key[1])
    found = []
    for name in number_zones.time_zones_for_number(number):
        try:
            found.append(ZoneInfo(name))
        except (ZoneInfoNotFoundError, ValueError):
            continue  # 'Etc/Unknown': no zone known for the number
    return tuple(found)


def zone(number: phonenumbers.PhoneNumber, at: datetime) -> ZoneInfo | None:
    """The recipient's zone at ``at``: the westernmost of the number's zones."""
    zones = _zones((number.country_code or 0, number.national_number or 0))
    if not zones:
        return None
    return min(zones, key=lambda z: at.astimezone(z).utcoffset() or timedelta(0))


def opens_at(
    number: phonenumbers.PhoneNumber, start: time, end: time, at: datetime
) -> datetime | None:
    """When a message to ``number`` may leave if it would leave at ``at``: the end of the
    quiet window in the recipient's zone (UTC), or None when ``at`` is outside it."""
    where = zone(number, at)
    if where is None:
        return None
    local = at.astimezone(where)
    clock = local.time().replace(tzinfo=None)
    # A window with its end before its start runs across midnight.
    quiet = start <= clock < end if start < end else clock >= start or clock < end
    if not quiet:
        return None
    day = local.date() if clock < end else local.date() + timedelta(days=1)
    return datetime.combine(day, end, tzinfo=where).astimezone(UTC)
