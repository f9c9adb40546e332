"""The lines contract and the configuration fail loudly and say what is wrong."""
from __future__ import annotations

import pandas as pd
import pytest

from optimize import LINE_COLUMNS, PlanConfig, StoreInputs, join_forecast
from optimize.inputs import FORECAST_COLUMNS, SKU_COLUMNS, validate_lines
from tests.optimize.helpers import frame, sku


def test_valid_lines_pass():
    validate_lines(frame(sku(1), sku(2, 3.0, is_perishable=True, exp={"exp_2d": 4})))


@pytest.mark.parametrize(("change", "message"), [
    (lambda df: df.drop(columns="exp_later"), "missing columns ['exp_later']"),
    (lambda df: df.assign(store_id=[1] * 7 + [2] * 7), "one store per call"),
    (lambda df: df.assign(zone="attic"), "zone must be one of"),
    (lambda df: df.assign(case_pack=0), "case_pack out of range"),
    (lambda df: df.assign(on_hand=df.on_hand + 1), "must sum to on_hand"),
    (lambda df: df.assign(unit_cost=range(len(df))), "differ between horizon rows"),
    (lambda df: df.assign(horizon=1), "duplicate (sku_id, horizon)"),
    (lambda df: df.assign(q99=-1.0), "must be >= 0"),
])
def test_broken_lines_are_named(change, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]")):
        validate_lines(change(frame(sku(1), sku(2))))


def test_join_forecast_builds_the_long_frame():
    long = frame(sku(1), sku(2))
    skus = long.drop_duplicates("sku_id")[list(SKU_COLUMNS)]
    fc = long[["sku_id", *FORECAST_COLUMNS]]
    joined = join_forecast(skus, fc.sample(frac=1.0, random_state=0))
    assert list(joined.columns) == list(LINE_COLUMNS) and len(joined) == 14
    pd.testing.assert_frame_equal(joined, long[list(LINE_COLUMNS)], check_dtype=False)
    # A SKU without forecast keeps a row, with nulls.
    only = join_forecast(skus, fc[fc.sku_id == 1])
    assert only[only.sku_id == 2]["mean"].isna().all()


@pytest.mark.parametrize("kw", [{"solver": "gurobi"}, {"review_days": 0},
                                {"pwl": "spline"}, {"epigraph": "both"},
                                {"pwl": "tangent", "epigraph": "combined"},
                                {"n_breakpoints": 2}, {"max_fill_quantile": 1.0}])
def test_config_rejects_nonsense(kw):
    with pytest.raises(ValueError, match="PlanConfig"):
        PlanConfig(**kw)


def test_config_and_store_basics():
    cfg = PlanConfig()
    assert cfg.service_target("dairy") == 0.98 and cfg.service_target("snacks") == 0.95
    st = StoreInputs.from_row({"store_id": 4, "capacity_ambient_l": 10.0,
                               "capacity_chilled_l": 20.0, "capacity_frozen_l": 30.0,
                               "daily_budget": 99.0}, {3: 50.0})
    assert st.capacity("chilled") == 20.0 and st.supplier_min_order_value == {3: 50.0}
