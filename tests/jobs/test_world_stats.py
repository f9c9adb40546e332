"""The generated world's calibration: the min-max rule ("before") lands near the case study
(fill 89.2%, perishable waste 9.8%, turnover 18.2x) while keeping within its capacities."""
from __future__ import annotations

import datetime as dt

import pytest

from jobs import generate, world_stats
from jobs.config import Config

#: The case study's "before" and how far a 120-day `small` world may sit from it (the
#: README's calibration table: small 365 days 90.4% / 9.3% / 19.5x, medium 200 days
#: 88.9% / 12.9% / 17.1x).
BEFORE = {"fill_rate": (0.892, 0.03), "perishable_waste_pct": (9.8, 3.5),
          "turnover": (18.2, 4.0)}


@pytest.fixture(scope="module")
def stats(tmp_path_factory) -> world_stats.WorldStats:
    cfg = Config(home=tmp_path_factory.mktemp("small-world"))
    generate.run(cfg, "small", dt.date(2025, 1, 1), 120, seed=42, progress=False)
    return world_stats.measure(cfg, warmup_days=28)


@pytest.mark.parametrize("name", sorted(BEFORE))
def test_the_min_max_rule_lands_near_the_case_studys_before(stats, name):
    target, tol = BEFORE[name]
    value = getattr(stats, name)
    assert abs(value - target) <= tol, f"{name} {value} vs the case study's {target}"


def test_the_world_has_the_case_studys_demand_shape(stats):
    assert stats.days == 92 and 1900 < stats.pairs <= 2000  # a few SKUs launch later
    assert 0.55 <= stats.evening_share <= 0.70
    assert stats.weekend_ratio > 1.1
    assert 0.0 < stats.stockout_pair_day_share < 0.2
