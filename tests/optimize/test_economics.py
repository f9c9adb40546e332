"""Windows, usable stock and the piecewise view of the convex functions."""
from __future__ import annotations

import numpy as np
import pytest

from optimize import PlanConfig
from optimize.economics import FUNCTIONS, build_economics
from tests.optimize.helpers import frame, sku, store, synthetic_store


@pytest.mark.parametrize(("lead", "review", "before", "perishable", "days"), [
    (1, 1, True, False, 1), (3, 2, True, False, 4), (1, 1, False, False, 2),
    (1, 3, True, True, 2), (1, 1, True, True, 1)])
def test_coverage_days(lead, review, before, perishable, days):
    lines = frame(sku(1, 10.0, lead_time_days=lead, is_perishable=perishable,
                      shelf_life_days=2 if perishable else 90))
    e = build_economics(lines, store(), PlanConfig(review_days=review,
                                                   deliveries_before_sales=before))
    assert e.coverage_days[0] == days
    assert e.mu_cover[0] == pytest.approx(10.0 * days)


def test_stock_that_expires_unsold_is_not_usable():
    # 30 units expire after tomorrow, demand 10 a day, two-day window: 20 rot first.
    lines = frame(sku(1, 10.0, exp={"exp_1d": 30}, is_perishable=True, shelf_life_days=3))
    e = build_economics(lines, store(), PlanConfig(review_days=2))
    assert e.old_waste_cover[0] == pytest.approx(20.0)
    assert e.usable_cover[0] == pytest.approx(10.0)


def test_forecast_shorter_than_window_repeats_last_day():
    lines = frame(sku(1, 4.0, horizon=1, lead_time_days=3))
    e = build_economics(lines, store(), PlanConfig())
    assert e.coverage_days[0] == 3 and e.mu_cover[0] == pytest.approx(12.0)


def test_functions_have_the_expected_shape():
    lines = frame(sku(1, 20.0, case_pack=1, is_perishable=True, shelf_life_days=2),
                  sku(2, 20.0, case_pack=1))
    e = build_economics(lines, store(), PlanConfig())
    x = np.arange(0, 80)
    v = {f: np.array([e.exact(np.array([c, c]))[f] for c in x]) for f in FUNCTIONS}
    assert v["lost"][0, 0] == pytest.approx(20.0)  # nothing on the shelf: all of it lost
    for f in FUNCTIONS:  # convex in the order
        assert (np.diff(v[f], 2, axis=0) >= -1e-9).all(), f
    assert (np.diff(v["lost"], axis=0) <= 1e-12).all()
    assert (v["waste"][:, 1] == 0).all() and (v["waste"][:, 0] <= x + 1e-9).all()
    assert v["waste"][-1, 0] > 30  # 79 units for two days of 20: most of the rest rots


@pytest.mark.parametrize("pwl", ["secant", "tangent"])
def test_piecewise_view_exact_at_breakpoints_and_on_the_right_side(pwl):
    lines, st = synthetic_store(150, seed=4)
    e = build_economics(lines, st, PlanConfig(pwl=pwl, epigraph="separate"))
    rows = np.nonzero(e.max_cases_need > 0)[0]
    for i in rows:
        xs = np.arange(0, e.max_cases_need[i] + 1)
        idx = np.full(len(xs), i)
        exact = e.curves.take(idx).values(xs * e.case[i])
        approx = e.pwl(xs, idx)
        bp = np.isin(xs, e.points[i])
        for f in FUNCTIONS:
            np.testing.assert_allclose(approx[f][bp], exact[f][bp], rtol=1e-7, atol=1e-7)
            inner = xs >= e.moq1[i]
            if pwl == "secant":
                assert (approx[f][inner] >= exact[f][inner] - 1e-7).all()
            else:
                assert (approx[f][inner] <= exact[f][inner] + 1e-7).all()
    # Lines whose case range fits in the breakpoints are exact at every case count.
    small = rows[e.max_cases_need[rows] - e.moq1[rows] + 2 <= 8]
    assert len(small) > 50
    assert set(e.points[small[0]]) >= {0, *range(e.moq1[small[0]], e.max_cases_need[small[0]] + 1)}


def test_bounds_follow_budget_and_room():
    lines = frame(sku(1, 50.0, case_pack=1, unit_cost=10.0, volume_l=1.0))
    e = build_economics(lines, store(budget=95.0, ambient=7.0), PlanConfig())
    assert e.max_cases_need[0] > 9 and e.max_cases[0] == 7
    e = build_economics(lines, store(budget=35.0), PlanConfig())
    assert e.max_cases[0] == 3
    e = build_economics(frame(sku(1, 50.0, case_pack=1, moq_cases=5, unit_cost=10.0)),
                        store(budget=35.0), PlanConfig())
    assert e.max_cases[0] == 0  # the MOQ does not fit: the line is left out


def _slow_fresh(**attrs):
    """A fresh SKU selling 1 unit a day, sold by the case of 6, 5 days of shelf life."""
    return frame(sku(1, 1.0, case_pack=6, moq_cases=1, is_perishable=True,
                     shelf_life_days=5, category="bakery", **attrs))


def test_a_lot_bigger_than_a_day_is_planned_over_the_days_it_lasts():
    e = build_economics(_slow_fresh(), store(), PlanConfig())
    # empty shelf: the case lasts 6 days, capped at the 5 days of shelf life
    assert e.coverage_days[0] == 5 and e.mu_cover[0] == pytest.approx(5.0)
    assert e.curves.allowed_lost[0] == pytest.approx(0.02 * 5.0)
    off = build_economics(_slow_fresh(), store(), PlanConfig(lot_cycle=False))
    assert off.coverage_days[0] == 1


def test_a_line_that_can_wait_a_night_keeps_the_review_period():
    # three fresh units cover tomorrow: the lot would only age behind them
    e = build_economics(_slow_fresh(exp={"exp_3d": 3}), store(), PlanConfig())
    assert e.coverage_days[0] == 1
    # a fast mover's case lasts less than a day, a non-perishable's lot never extends
    fast = build_economics(frame(sku(1, 20.0, case_pack=6, is_perishable=True,
                                     shelf_life_days=5)), store(), PlanConfig())
    slow_dry = build_economics(frame(sku(1, 0.5, case_pack=12)), store(), PlanConfig())
    assert fast.coverage_days[0] == 1 and slow_dry.coverage_days[0] == 1


def test_the_lot_cycle_makes_a_slow_fresh_sku_worth_stocking():
    """Negative case first: weighed against one day's sales the case's waste never pays, so
    the SKU stays empty; over the 5 days it lasts, the case sells about 5 of its 6 units."""
    from optimize import solve_store

    off = solve_store(_slow_fresh(), store(), PlanConfig(lot_cycle=False))
    on = solve_store(_slow_fresh(), store(), PlanConfig())
    assert off.lines.order_cases.tolist() == [0]
    assert on.lines.order_cases.tolist() == [1]
    assert on.lines.expected_service_level.iloc[0] > 0.85  # 6 units against D ~ 5 +- 2.3


def test_a_late_next_delivery_mixes_in_a_cycle_one_day_longer():
    """late_prob p: expected lost sales = (1 - p) x the cycle's + p x those of a cycle one day
    longer (the next delivery missed a day), by hand with the gamma of 1 and 2 days' demand;
    the service target's allowance and the cycle's demand mix the same way; without the
    column (or p = 0) nothing changes; a perishable's longer cycle stops at its shelf life."""
    from optimize.demand import daily_variance, gamma_loss

    plain = frame(sku(1, 10.0, case_pack=1, on_hand=0))
    late = plain.assign(late_prob=0.2)
    cfg = PlanConfig()
    e0, e1 = build_economics(plain, store(), cfg), build_economics(late, store(), cfg)
    assert e0.curves.late[0] == 0.0 and e1.curves.late[0] == pytest.approx(0.2)
    row = late.iloc[0]
    var = daily_variance(np.array([10.0]), row[["q80", "q90", "q95", "q99"]].to_numpy(
        float)[None, :])[0]
    units = np.array([0.0, 8.0, 15.0, 30.0])
    want = 0.8 * gamma_loss(10.0, var, units) + 0.2 * gamma_loss(20.0, 2 * var, units)
    assert e1.curves.lost(units) == pytest.approx(want)
    assert e0.curves.lost(units) == pytest.approx(gamma_loss(10.0, var, units))
    assert e1.mu_cycle[0] == pytest.approx(0.8 * 10 + 0.2 * 20)
    assert e1.curves.allowed_lost[0] == pytest.approx((1 - 0.95) * 12.0)
    assert e1.exact(np.array([15]))["lost"][0] > e0.exact(np.array([15]))["lost"][0]
    # finite differences agree with the slopes used for tangents
    x = np.array([12.0])
    h = 1e-4
    fd = (e1.curves.lost(x + h) - e1.curves.lost(x - h)) / (2 * h)
    assert e1.curves.slopes(x)["lost"] == pytest.approx(fd, rel=1e-4)
    # a perishable whose cycle already ends with its shelf life cannot stretch
    fresh = frame(sku(2, 10.0, is_perishable=True, shelf_life_days=1, case_pack=1)).assign(
        late_prob=0.5)
    ef = build_economics(fresh, store(), cfg)
    assert ef.curves.mu_cover_late[0] == pytest.approx(ef.mu_cover[0])
    with pytest.raises(ValueError, match="late_prob"):
        build_economics(late.assign(late_prob=1.5), store(), cfg)
