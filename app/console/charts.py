"""Bar charts drawn on the server as SVG geometry for the templates: no script, no
build step, and the numbers are also in a table beside each chart for screen readers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

WIDTH, HEIGHT, PAD = 640, 200, 24


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    value: int


@dataclass(frozen=True)
class Chart:
    bars: list[Bar]
    peak: int
    width: int = WIDTH
    height: int = HEIGHT


def bars(points: list[tuple[str, int]]) -> Chart:
    """One bar per (label, value), scaled to the largest value."""
    peak = max((v for _, v in points), default=0)
    if not points:
        return Chart(bars=[], peak=0)
    slot = (WIDTH - 2 * PAD) / len(points)
    usable = HEIGHT - 2 * PAD
    drawn = []
    for i, (label, value) in enumerate(points):
        height = usable * value / peak if peak else 0.0
        drawn.append(
            Bar(
                x=round(PAD + i * slot + slot * 0.1, 1),
                y=round(HEIGHT - PAD - height, 1),
                width=round(max(slot * 0.8, 1.0), 1),
                height=round(height, 1),
                label=label,
                value=value,
            )
        )
    return Chart(bars=drawn, peak=peak)


def every_day(starts: datetime, ends: datetime, values: dict[str, int]) -> list[tuple[str, int]]:
    """(MM-DD, value) for each day of the window, 0 for a day without a row, so that
    bars keep their width and a quiet day shows as one."""
    first: date = starts.date()
    last: date = (ends - timedelta(microseconds=1)).date()
    days = []
    while first <= last:
        days.append((first.isoformat()[5:], values.get(first.isoformat(), 0)))
        first += timedelta(days=1)
    return days
