"""The features suite is built from the catalog: names, windows, nullability, ranges."""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from expectations.features import default_range, feature_rules, feature_specs


@dataclass(frozen=True)
class _F:
    name: str
    window_days: int
    nullable: bool = False
    dtype: str = "double"
    min_history: int | None = None


STUB = (_F("history_days", 30, dtype="int", min_history=0), _F("lag_7", 7),
        _F("roll_mean_7", 7, min_history=1), _F("promo_share_30", 30, min_history=1),
        _F("day_of_week", 0, dtype="int"), _F("is_weekend", 0, dtype="boolean"),
        _F("avg_price_30", 30, nullable=True))


def _by_name(rules):
    return {r.name: r for r in rules}


def test_rules_follow_the_catalog() -> None:
    rules = _by_name(feature_rules(STUB, ["store_id", "sku_id"], history_max=30))
    assert rules["keys_unique"].columns == ("store_id", "sku_id")
    assert {"store_id_not_null", "sku_id_not_null", "history_days_not_null"} <= set(rules)
    assert rules["history_days_range"].max_value == 30
    # Null allowed only while history is short: lag_7 needs 7 days, roll_mean_7 one.
    assert rules["lag_7_null_with_history"].when_min == 7
    assert rules["roll_mean_7_null_with_history"].when_min == 1
    assert "day_of_week_not_null" in rules and "is_weekend_not_null" in rules
    assert not any(n.startswith("avg_price_30_null") for n in rules), "nullable feature"
    assert (rules["day_of_week_range"].min_value, rules["day_of_week_range"].max_value) == (0, 6)
    assert (rules["promo_share_30_range"].min_value,
            rules["promo_share_30_range"].max_value) == (0, 1)
    assert rules["lag_7_range"].min_value == 0 and rules["lag_7_range"].max_value is None
    # NaN/inf only for floating features; ranges only for numbers.
    assert "lag_7_finite" in rules and "day_of_week_finite" not in rules
    assert "is_weekend_finite" not in rules and "is_weekend_range" not in rules
    # history_days is a catalog feature too, but is checked once.
    assert [r.name for r in rules.values()].count("history_days_not_null") == 1


def test_explicit_bounds_and_mappings_win_over_names() -> None:
    specs = feature_specs([{"name": "day_of_week", "window_days": 0, "min_value": 1,
                            "max_value": 7}, "lag_1"])
    assert (specs[0].min_value, specs[0].max_value) == (1, 7)
    assert specs[1].min_value == 0
    assert default_range("something_else") == (None, None)
    with pytest.raises(ValueError, match="without a name"):
        feature_specs([{"window_days": 1}])


def test_the_real_catalog_builds_a_suite() -> None:
    catalog = pytest.importorskip("features.catalog")
    rules = feature_rules(catalog.FEATURES, [k for k in catalog.KEYS if k != "date"],
                          history_max=getattr(catalog, "MAX_WINDOW", None))
    names = [r.name for r in rules]
    assert len(names) == len(set(names))
    by = _by_name(rules)
    for f in catalog.FEATURES:
        if f.name == "history_days":
            continue
        null_rule = by.get(f"{f.name}_null_with_history") or by.get(f"{f.name}_not_null")
        assert (null_rule is None) == f.nullable, f.name
        if null_rule is not None and null_rule.when_min is not None:
            assert f.may_be_null(int(null_rule.when_min) - 1)
            assert not f.may_be_null(int(null_rule.when_min))
