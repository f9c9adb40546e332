"""Indian festivals and holidays by region, with the run-up shape that moves demand.

Festival dates follow the published calendars for 2022-2028 (lunar festivals move every
year). Outside those years the nearest known year's day-of-year is used, which is an
approximation and says so in ``festival_dates``.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

__all__ = ["FESTIVALS", "Festival", "festival_dates", "RUN_UP", "NATIONAL_HOLIDAYS",
           "REGIONS", "festival_intensity"]

REGIONS = ("north", "south", "east", "west")

#: Intensity of a festival's effect by day offset from its main day: shopping peaks the
#: day before; the day after dips below normal.
RUN_UP: dict[int, float] = {-4: 0.2, -3: 0.4, -2: 0.7, -1: 1.0, 0: 0.8, 1: -0.15}

#: Fixed-date national holidays (month, day).
NATIONAL_HOLIDAYS = ((1, 26), (8, 15), (10, 2))


@dataclass(frozen=True)
class Festival:
    name: str
    #: year -> main day (month, day)
    dates: dict[int, tuple[int, int]]
    #: how strongly each region celebrates, 0..1
    regions: dict[str, float]
    #: peak demand multiplier per category at full intensity (others get ``default``)
    peaks: dict[str, float]
    default: float = 1.15


_ALL = {r: 1.0 for r in REGIONS}

FESTIVALS: tuple[Festival, ...] = (
    Festival("Diwali", {2022: (10, 24), 2023: (11, 12), 2024: (11, 1), 2025: (10, 20),
                        2026: (11, 8), 2027: (10, 29), 2028: (10, 17)},
             {"north": 1.0, "west": 1.0, "south": 0.7, "east": 0.75},
             {"sweets": 3.0, "puja_festive": 3.0, "snacks": 2.4, "beverages": 1.9,
              "dairy": 1.8, "household": 1.6}, 1.25),
    Festival("Holi", {2022: (3, 18), 2023: (3, 8), 2024: (3, 25), 2025: (3, 14),
                      2026: (3, 4), 2027: (3, 22), 2028: (3, 11)},
             {"north": 1.0, "west": 0.8, "east": 0.7, "south": 0.3},
             {"beverages": 2.5, "sweets": 2.6, "snacks": 2.2, "puja_festive": 2.8,
              "dairy": 1.6}),
    Festival("Eid al-Fitr", {2022: (5, 3), 2023: (4, 22), 2024: (4, 11), 2025: (3, 31),
                             2026: (3, 20), 2027: (3, 10), 2028: (2, 27)},
             {"north": 1.0, "west": 0.8, "east": 0.8, "south": 0.7},
             {"meat_fish": 3.0, "dairy": 2.0, "sweets": 2.3, "staples": 1.5,
              "fruits_vegetables": 1.5}),
    Festival("Raksha Bandhan", {2022: (8, 11), 2023: (8, 30), 2024: (8, 19), 2025: (8, 9),
                                2026: (8, 28), 2027: (8, 17), 2028: (8, 5)},
             {"north": 1.0, "west": 0.8, "east": 0.5, "south": 0.4},
             {"sweets": 3.0, "puja_festive": 2.0, "snacks": 1.5}),
    Festival("Ganesh Chaturthi", {2022: (8, 31), 2023: (9, 19), 2024: (9, 7),
                                  2025: (8, 27), 2026: (9, 14), 2027: (9, 4), 2028: (8, 23)},
             {"west": 1.0, "south": 0.6, "north": 0.2, "east": 0.2},
             {"sweets": 2.8, "puja_festive": 3.0, "fruits_vegetables": 1.8, "dairy": 1.5}),
    Festival("Onam", {2022: (9, 8), 2023: (8, 29), 2024: (9, 15), 2025: (9, 5),
                      2026: (8, 26), 2027: (9, 12), 2028: (8, 31)},
             {"south": 0.8, "west": 0.1, "north": 0.05, "east": 0.05},
             {"fruits_vegetables": 2.5, "staples": 1.8, "dairy": 1.6, "sweets": 1.8}),
    Festival("Durga Puja", {2022: (10, 3), 2023: (10, 22), 2024: (10, 11), 2025: (9, 30),
                            2026: (10, 19), 2027: (10, 8), 2028: (9, 26)},
             {"east": 1.0, "north": 0.35, "west": 0.2, "south": 0.2},
             {"sweets": 2.6, "snacks": 2.0, "meat_fish": 2.2, "puja_festive": 2.5,
              "beverages": 1.6}),
    Festival("Pongal", {y: (1, 14) for y in range(2022, 2029)},
             {"south": 1.0, "west": 0.3, "north": 0.3, "east": 0.2},
             {"staples": 2.0, "dairy": 1.8, "sweets": 2.0, "fruits_vegetables": 1.6}),
    Festival("Christmas", {y: (12, 25) for y in range(2022, 2029)},
             {"south": 0.9, "west": 0.8, "north": 0.7, "east": 0.8},
             {"bakery": 2.8, "sweets": 1.8, "beverages": 1.8, "meat_fish": 1.6}),
    Festival("New Year", {y: (12, 31) for y in range(2022, 2029)}, dict(_ALL),
             {"beverages": 3.0, "snacks": 2.8, "frozen": 2.0, "meat_fish": 1.8}),
)


def festival_dates(fest: Festival, year: int) -> dt.date:
    """Main day of ``fest`` in ``year``; outside the known years, the nearest year's date."""
    if year in fest.dates:
        month, day = fest.dates[year]
    else:
        nearest = min(fest.dates, key=lambda y: abs(y - year))
        month, day = fest.dates[nearest]
    return dt.date(year, month, day)


def festival_intensity(day: dt.date) -> list[tuple[Festival, float, int]]:
    """Festivals whose run-up covers ``day``: (festival, intensity, offset from main day)."""
    out = []
    for fest in FESTIVALS:
        for year in (day.year - 1, day.year, day.year + 1):
            offset = (day - festival_dates(fest, year)).days
            if offset in RUN_UP:
                out.append((fest, RUN_UP[offset], offset))
    return out
