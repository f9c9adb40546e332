"""Festivals land on their dates, build up before the main day, and differ by region."""
from __future__ import annotations

import datetime as dt

from jobs.calendar_india import FESTIVALS, festival_dates, festival_intensity
from jobs.world import calendar_rows


def _by_region(day: dt.date) -> dict[str, tuple]:
    rows = calendar_rows(day)
    return {r.region: (r.festival, r.festival_intensity, r.is_holiday) for r in
            rows.itertuples()}


def test_diwali_2025_peaks_the_day_before_and_is_a_holiday():
    diwali = next(f for f in FESTIVALS if f.name == "Diwali")
    assert festival_dates(diwali, 2025) == dt.date(2025, 10, 20)
    eve = _by_region(dt.date(2025, 10, 19))["north"]
    main = _by_region(dt.date(2025, 10, 20))["north"]
    week_before = _by_region(dt.date(2025, 10, 13))["north"]
    assert eve[0] == "Diwali" and eve[1] > main[1] > 0
    assert bool(main[2]), "Diwali is a holiday in the north"
    assert week_before[1] == 0 and week_before[0] is None


def test_regional_festivals_are_regional():
    ganesh = _by_region(dt.date(2025, 8, 26))
    assert ganesh["west"][0] == "Ganesh Chaturthi"
    assert ganesh["west"][1] > 3 * ganesh["north"][1]
    puja = _by_region(dt.date(2025, 9, 29))
    assert puja["east"][0] == "Durga Puja" and puja["east"][1] > 2 * puja["south"][1]
    pongal = _by_region(dt.date(2026, 1, 13))
    assert pongal["south"][0] == "Pongal" and pongal["south"][1] > pongal["east"][1]


def test_unknown_years_fall_back_to_the_nearest_known_date():
    holi = next(f for f in FESTIVALS if f.name == "Holi")
    assert festival_dates(holi, 2031).year == 2031
    assert festival_intensity(dt.date(2031, 6, 15)) == [] or all(
        f.name != "Holi" for f, _, _ in festival_intensity(dt.date(2031, 6, 15)))
