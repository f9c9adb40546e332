"""The feature catalog: complete, consistent, and in step with the world it encodes."""
from __future__ import annotations

import pytest

from features.catalog import (
    CATEGORY_CODES,
    FEATURES,
    KEYS,
    LABELS,
    REGION_CODES,
    ZONE_CODES,
    catalog_markdown,
    feature,
    feature_names,
)

COVARIATES = {"calendar", "weather", "promotion", "store", "sku"}


def test_enough_unique_features():
    names = feature_names()
    assert len(names) >= 60
    assert len(set(names)) == len(names)
    assert not set(names) & (set(KEYS) | set(LABELS))


def test_every_feature_is_documented():
    for f in FEATURES:
        assert f.meaning and f.family and f.dtype in {"double", "int", "boolean"}
        assert f.window_days >= 0 and 0 <= f.history_needed <= max(f.window_days, 0) + 30
        if f.family in COVARIATES:
            assert f.window_days == 0, f.name  # known in advance: no history needed
    md = catalog_markdown()
    assert all(f"`{n}`" in md for n in feature_names())


def test_null_rule():
    lag7 = feature("lag_7")
    assert lag7.may_be_null(6) and not lag7.may_be_null(7)
    assert not feature("roll_mean_30").may_be_null(1)
    assert feature("promo_lift_30").may_be_null(30)        # nullable by meaning
    assert not feature("days_since_last_sale").may_be_null(0)
    assert not feature("day_of_week").may_be_null(0)
    with pytest.raises(KeyError):
        feature("no_such_feature")


def test_codes_cover_the_synthetic_world():
    from jobs.calendar_india import REGIONS
    from jobs.schema import ZONES
    from jobs.world import CATEGORIES

    assert set(CATEGORY_CODES) == set(CATEGORIES)
    assert set(ZONE_CODES) == set(ZONES)
    assert set(REGION_CODES) == set(REGIONS)
    for codes in (CATEGORY_CODES, ZONE_CODES, REGION_CODES):
        assert sorted(codes.values()) == list(range(1, len(codes) + 1))  # 0 = unknown
