"""plan_store: one store's joined rows -> one explained plans row per pair, whatever breaks."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

import optimize.runner as runner
from optimize import PlanConfig, StoreInputs, check_plan, solve_store
from optimize.runner import PLAN_TABLE_COLUMNS, STORE_COLUMNS, plan_store
from tests.optimize.helpers import frame, sku

D = dt.date(2025, 3, 10)
CFG = PlanConfig()


def rows(*skus: pd.DataFrame, budget: float = 1e5, ambient: float = 1e4,
         chilled: float = 1e4, frozen: float = 1e4) -> pd.DataFrame:
    """Joined input rows: the lines of ``skus`` plus the store's limits and forecast info."""
    r = frame(*skus)
    r[list(STORE_COLUMNS)] = [ambient, chilled, frozen, budget]
    r["forecast_model"] = "ensemble"
    r["forecast_flags"] = None
    return r


def no_forecast(sku_frame: pd.DataFrame) -> pd.DataFrame:
    """The one row a left join leaves for a pair without a forecast."""
    one = sku_frame.iloc[:1].copy()
    one[["horizon", "mean", "q50", "q80", "q90", "q95", "q99"]] = np.nan
    one["forecast_model"] = None
    return one


def test_ordinary_store_matches_solve_store():
    r = rows(sku(1, 20.0), sku(2, 5.0, zone="chilled", category="dairy", is_perishable=True,
                               shelf_life_days=3, exp={"exp_2d": 3}, lead_time_days=2))
    out = plan_store(r, CFG, D)
    assert list(out.columns) == list(PLAN_TABLE_COLUMNS)
    assert out.sku_id.tolist() == [1, 2]
    ref = solve_store(r.drop(columns=[*STORE_COLUMNS, "forecast_model", "forecast_flags"]),
                      StoreInputs(1, 1e4, 1e4, 1e4, 1e5), CFG)
    assert out.order_cases.tolist() == ref.lines.order_cases.tolist()
    assert (out.solver_status == "optimal").all() and out.fallback_reason.isna().all()
    assert out.delivery_date.tolist() == [D + dt.timedelta(days=1), D + dt.timedelta(days=2)]
    assert (out.on_hand.tolist(), out.case_pack.tolist()) == ([0, 3], [6, 6])
    assert out.binding_constraint.isin([None, "shelf_life"]).all()
    assert out.forecast_model.eq("ensemble").all()


def test_negative_budget_is_a_greedy_fallback_with_the_reason():
    out = plan_store(rows(sku(1, 20.0), sku(2, 3.0), budget=-10.0), CFG, D)
    assert (out.solver_status == "heuristic").all() and (out.solver_result == "infeasible").all()
    assert (out.order_units == 0).all()
    assert out.fallback_reason.str.contains("budget").all()


def test_bad_lines_are_skipped_with_a_reason_and_the_rest_planned():
    unknown = sku(7, 5.0)
    attrs = ["category", "zone", "volume_l", "unit_cost", "price", "case_pack", "moq_cases",
             "supplier_id", "lead_time_days", "shelf_life_days", "is_perishable"]
    unknown[attrs] = None
    broken_stock = sku(8, 5.0, exp={"exp_later": 4})
    broken_stock["on_hand"] = 9
    negative = sku(9, 5.0)
    negative.loc[2, "q90"] = -1.0
    bulky = sku(5, 1.0, volume_l=10.0, exp={"exp_later": 50})
    bulky["case_pack"] = 0
    out = plan_store(rows(sku(1, 20.0), unknown, broken_stock, negative, bulky), CFG, D)
    assert len(out) == 5
    why = dict(zip(out.sku_id, out.fallback_reason, strict=True))
    assert "not in the skus snapshot" in why[7]
    assert "do not sum to on_hand" in why[8]
    assert "negative forecast" in why[9]
    assert "case_pack < 1" in why[5]
    skipped = out[out.sku_id != 1]
    assert (skipped.solver_status == "skipped").all() and (skipped.order_units == 0).all()
    assert (out.loc[out.sku_id == 7, "supplier_id"] == -1).all()
    ok = out[out.sku_id == 1].iloc[0]
    assert ok.solver_status == "optimal" and ok.order_units > 0 and pd.isna(ok.fallback_reason)


def test_skipped_lines_still_take_their_zone_room():
    bulky = sku(5, 1.0, volume_l=10.0, exp={"exp_later": 90})
    bulky["case_pack"] = 0  # invalid: skipped, but its 900 L stay on the shelf
    out = plan_store(rows(sku(1, 20.0, volume_l=1.0), bulky, ambient=920.0), CFG, D)
    one = out[out.sku_id == 1].iloc[0]
    assert one.order_volume_l <= 20.0 + 1e-9
    assert one.binding_constraint == "capacity_ambient"


def test_store_missing_from_the_snapshot_orders_nothing_and_says_why():
    r = rows(sku(1, 20.0), sku(2, 3.0))
    r["daily_budget"] = np.nan
    out = plan_store(r, CFG, D)
    assert (out.solver_status == "skipped").all() and (out.order_units == 0).all()
    assert out.fallback_reason.str.contains("not in the stores snapshot").all()
    assert out.forecast_coverage.tolist() == [20.0, 3.0]


def test_pair_without_forecast_orders_nothing_with_a_reason():
    out = plan_store(rows(sku(1, 20.0), no_forecast(sku(2, 1.0))), CFG, D)
    two = out[out.sku_id == 2].iloc[0]
    assert two.order_units == 0 and "no forecast" in two.fallback_reason
    assert pd.isna(two.expected_service_level) and two.solver_status == "optimal"
    assert out.loc[out.sku_id == 1, "order_units"].iloc[0] > 0


def test_a_plan_that_fails_check_plan_is_replaced_by_nothing(monkeypatch):
    calls = []

    def failing_once(plan, lines, store, cfg):
        calls.append(plan)
        return ["budget: made up"] if len(calls) == 1 else check_plan(plan, lines, store, cfg)

    monkeypatch.setattr(runner, "check_plan", failing_once)
    out = plan_store(rows(sku(1, 20.0), sku(2, 3.0)), CFG, D)
    assert len(calls) == 2, "the zero plan is checked too"
    assert (out.order_units == 0).all() and (out.solver_status == "skipped").all()
    assert out.fallback_reason.str.contains("failed check_plan").all()
    assert out.solver_result.eq("optimal").all()


def test_zero_plan_failing_check_plan_fails_loudly(monkeypatch):
    monkeypatch.setattr(runner, "check_plan", lambda *a: ["capacity_ambient: made up"])
    with pytest.raises(RuntimeError, match="even ordering nothing fails check_plan"):
        plan_store(rows(sku(1, 20.0)), CFG, D)


def test_planner_error_is_a_flagged_zero_plan(monkeypatch):
    def boom(*a):
        raise ArithmeticError("solver exploded")

    monkeypatch.setattr(runner, "solve_store", boom)
    out = plan_store(rows(sku(1, 20.0)), CFG, D)
    assert out.order_units.tolist() == [0] and out.solver_result.tolist() == ["error"]
    assert "solver exploded" in out.fallback_reason.iloc[0]


def test_missing_columns_are_a_clear_error():
    with pytest.raises(ValueError, match="daily_budget"):
        plan_store(frame(sku(1, 2.0)), CFG, D)


def test_late_prob_reaches_the_planner_and_a_missing_one_is_zero():
    """The optional late_prob column is passed to solve_store (it was once dropped with the
    other non-contract columns); a null from the supplier lookup means 0."""
    plain = rows(sku(1, 20.0), sku(2, 8.0, supplier_id=2))
    late = plain.assign(late_prob=np.where(plain.sku_id == 1, 0.5, np.nan))
    out0, out1 = plan_store(plain, CFG, D), plan_store(late, CFG, D)
    ref = solve_store(late.drop(columns=[*STORE_COLUMNS, "forecast_model", "forecast_flags"])
                      .fillna({"late_prob": 0.0}), StoreInputs(1, 1e4, 1e4, 1e4, 1e5), CFG)
    assert out1.order_cases.tolist() == ref.lines.order_cases.tolist()
    assert out1.order_up_to[0] > out0.order_up_to[0]  # covers the day a late delivery misses
    assert out1.order_up_to[1] == out0.order_up_to[1]
    assert (out1.solver_status == "optimal").all()
