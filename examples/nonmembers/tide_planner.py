"""Plan ferry crossings around the tide.

Written for the miascan examples in 2026. The crossing is only safe when the water over the
bar is deep enough for the loaded ferry, so the planner works out, for each day, the windows
in which the ferry may leave and still arrive before the water falls too far.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
import math

# Depth over the bar at chart datum, in metres, measured by the harbour survey.
BAR_DEPTH_AT_DATUM = 0.8
# The loaded ferry draws this much water, and the crew want this much under the keel.
DRAUGHT = 1.4
CLEARANCE = 0.5
CROSSING_MINUTES = 25


@dataclass
class Tide:
    """One high or low water from the published tables."""

    time: datetime
    height: float  # metres above chart datum
    high: bool


def height_between(before: Tide, after: Tide, when: datetime) -> float:
    """Height of the tide at `when`, by the rule of twelfths' smooth cousin, the cosine.

    Between a low and the next high the water rises slowly, then quickly, then slowly again;
    a half cosine has the same shape and is what most harbour offices use.
    """
    span = (after.time - before.time).total_seconds()
    if span <= 0:
        raise ValueError(f"tides out of order: {before.time} then {after.time}")
    fraction = (when - before.time).total_seconds() / span
    fraction = min(max(fraction, 0.0), 1.0)
    weight = (1 - math.cos(math.pi * fraction)) / 2
    return before.height + (after.height - before.height) * weight


def safe(height: float) -> bool:
    """Whether the ferry can pass over the bar at this height of tide."""
    return BAR_DEPTH_AT_DATUM + height >= DRAUGHT + CLEARANCE


def departure_windows(tides: list[Tide], step_minutes: int = 5) -> list[tuple[datetime, datetime]]:
    """Times at which the ferry may leave and find enough water for the whole crossing.

    The tides must be in time order. Returns (first, last) departure times of each window.
    """
    windows = []
    start = None
    step = timedelta(minutes=step_minutes)
    crossing = timedelta(minutes=CROSSING_MINUTES)
    for before, after in zip(tides, tides[1:]):
        when = before.time
        while when < after.time:
            arrive = when + crossing
            ok = safe(height_between(before, after, when)) and safe(
                height_at(tides, arrive)
            )
            if ok and start is None:
                start = when
            if not ok and start is not None:
                windows.append((start, when - step))
                start = None
            when += step
    if start is not None:
        windows.append((start, tides[-1].time))
    return windows


def height_at(tides: list[Tide], when: datetime) -> float:
    """Height at any time covered by the tables; outside them, an error, never a guess."""
    for before, after in zip(tides, tides[1:]):
        if before.time <= when <= after.time:
            return height_between(before, after, when)
    raise ValueError(f"{when} is outside the tide tables ({tides[0].time} to {tides[-1].time})")


def describe(windows: list[tuple[datetime, datetime]]) -> str:
    """The windows as the notice board shows them: one line each, earliest first."""
    if not windows:
        return "No crossings today: the water over the bar is too shallow at every hour."
    lines = []
    for first, last in windows:
        lines.append(f"Departures between {first:%H:%M} and {last:%H:%M}")
    return "\n".join(lines)


if __name__ == "__main__":
    day = datetime(2026, 3, 14)
    tables = [
        Tide(day.replace(hour=2, minute=10), 0.6, False),
        Tide(day.replace(hour=8, minute=25), 4.1, True),
        Tide(day.replace(hour=14, minute=40), 0.9, False),
        Tide(day.replace(hour=20, minute=55), 3.8, True),
    ]
    print(describe(departure_windows(tables)))
