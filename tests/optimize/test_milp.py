"""The per-store MILP: against brute force, every constraint binding when tightened, the
fallback paths, and CBC against HiGHS."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from optimize import PLAN_COLUMNS, PlanConfig, check_plan, solve_store
from optimize import milp as milp_mod
from optimize.economics import build_economics
from optimize.inputs import ZONES
from optimize.milp import BINDING_VALUES, SolveResult
from tests.optimize.helpers import frame, sku, store, synthetic_store

EXACT = {"mip_gap": 0.0, "time_limit_s": 30.0}


def brute_force(econ):
    """Cheapest plan by enumerating every case count in {0} U [moq, demand cap] per line,
    scored with the same piecewise functions (``Economics.total_cost``)."""
    options = [[0, *range(int(lo), int(hi) + 1)] if hi >= lo else [0]
               for lo, hi in zip(econ.moq1, econ.max_cases_need, strict=True)]
    rooms = {z: max(econ.room(z), 0.0) for z in ZONES}
    best, best_x = np.inf, None
    for combo in itertools.product(*options):
        x = np.array(combo)
        value = x * econ.case_value
        if value.sum() > econ.budget + 1e-9:
            continue
        if any((x * econ.case_volume)[econ.zone == z].sum() > rooms[z] + 1e-9 for z in ZONES):
            continue
        if any(0 < value[econ.supplier_id == s].sum() < m for s, m in econ.supplier_min.items()):
            continue
        cost = econ.total_cost(x)
        if cost < best - 1e-9:
            best, best_x = cost, x
    return best, best_x


def small_instance(seed: int):
    """2-3 SKUs with small case ranges; budget, a supplier minimum, MOQs, a perishable."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 4))
    skus = []
    for i in range(n):
        perishable = bool(rng.random() < 0.4)
        skus.append(sku(
            i + 1, float(rng.uniform(2, 12)), case_pack=int(rng.choice([2, 4, 6])),
            moq_cases=int(rng.choice([1, 1, 2])), supplier_id=int(rng.integers(1, 3)),
            unit_cost=float(rng.uniform(20, 120)), price=0.0, is_perishable=perishable,
            shelf_life_days=int(rng.integers(2, 4)) if perishable else 180,
            category="dairy" if perishable else "snacks",
            zone="chilled" if perishable else "ambient", k=float(rng.uniform(3, 10)),
            exp={"exp_1d": int(rng.integers(0, 5)), "exp_later": int(rng.integers(0, 4))}))
        skus[-1]["price"] = skus[-1]["unit_cost"] * float(rng.uniform(1.2, 1.6))
    lines = frame(*skus)
    # Budget: about 60% of what a rough newsvendor would spend, so it binds.
    spend = float((lines.groupby("sku_id")[["unit_cost", "mean"]].first().prod(axis=1)
                   * 2.5).sum())
    st = store(budget=0.6 * spend, chilled=float(rng.uniform(30, 200)),
               supplier_min={1: float(rng.uniform(50, 300))})
    return lines, st


CONFIGS = {
    "secant-combined": PlanConfig(**EXACT),
    "secant-separate": PlanConfig(epigraph="separate", **EXACT),
    "tangent-separate": PlanConfig(pwl="tangent", epigraph="separate", **EXACT),
    "secant-4-breakpoints": PlanConfig(n_breakpoints=4, **EXACT),
    "highs": PlanConfig(solver="highs", **EXACT),
}


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("seed", range(4))
def test_milp_matches_brute_force(seed, name):
    cfg = CONFIGS[name]
    lines, st = small_instance(seed)
    econ = build_economics(lines, st, cfg)
    best, best_x = brute_force(econ)
    plan = solve_store(lines, st, cfg)
    assert plan.method == "milp" and plan.status == "optimal", plan.fallback_reason
    assert plan.violations == ()
    assert plan.objective == pytest.approx(best, rel=1e-7, abs=1e-6), (
        plan.lines.order_cases.tolist(), best_x.tolist())
    # The solver's own objective is the same function (lines it left out are constants).
    left_out = econ.line_cost(np.zeros(econ.n))[econ.max_cases == 0].sum()
    assert plan.solver_objective + left_out == pytest.approx(plan.objective, rel=1e-6, abs=1e-6)


def test_brute_force_instances_exercise_the_constraints():
    """The brute-force instances are not trivial: budgets bind and grids are sparse."""
    bound, sparse = 0, 0
    for seed in range(4):
        lines, st = small_instance(seed)
        plan = solve_store(lines, st, CONFIGS["secant-combined"])
        bound += int((plan.lines.binding_constraint != "none").any())
        econ = build_economics(lines, st, CONFIGS["secant-4-breakpoints"])
        sparse += int((econ.max_cases_need - econ.moq1 + 2 > 4).any())
    assert bound >= 2 and sparse >= 2


def three_skus():
    return frame(sku(1, 30.0), sku(2, 20.0, unit_cost=40.0, price=60.0),
                 sku(3, 10.0, unit_cost=150.0, price=200.0))


def test_budget_binds_when_tight():
    lines = three_skus()
    loose = solve_store(lines, store(), PlanConfig())
    assert (loose.lines.binding_constraint == "none").all()
    budget = 0.5 * loose.order_value
    tight = solve_store(lines, store(budget=budget), PlanConfig())
    assert tight.order_value <= budget + 1e-6
    assert (tight.lines.order_cases <= loose.lines.order_cases).all()
    assert tight.lines.order_cases.sum() < loose.lines.order_cases.sum()
    assert (tight.lines.binding_constraint == "budget").any()
    assert tight.violations == ()


def test_capacity_binds_when_tight():
    lines = frame(sku(1, 30.0, zone="chilled", category="dairy", volume_l=1.0,
                      exp={"exp_later": 10}),
                  sku(2, 20.0, zone="ambient"))
    loose = solve_store(lines, store(), PlanConfig())
    chilled = float(loose.lines.loc[loose.lines.zone == "chilled", "order_volume_l"].sum())
    cap = 10.0 + 0.5 * chilled  # 10 L already on the shelf
    tight = solve_store(lines, store(chilled=cap), PlanConfig())
    row = tight.lines.set_index("sku_id")
    assert row.loc[1, "order_volume_l"] <= cap - 10.0 + 1e-9
    assert row.loc[1, "binding_constraint"] == "capacity_chilled"
    assert row.loc[2, "order_cases"] == loose.lines.set_index("sku_id").loc[2, "order_cases"]
    assert tight.violations == ()


def test_zone_already_over_capacity_orders_nothing_there_and_says_so():
    lines = frame(sku(1, 30.0, zone="frozen", volume_l=2.0, exp={"exp_later": 100}),
                  sku(2, 20.0))
    plan = solve_store(lines, store(frozen=150.0), PlanConfig())
    row = plan.lines.set_index("sku_id")
    assert plan.method == "milp" and row.loc[1, "order_cases"] == 0
    assert row.loc[2, "order_cases"] > 0
    assert any(w.startswith("capacity_frozen") for w in plan.warnings)
    assert plan.violations == ()


def test_moq_forces_zero_or_at_least_moq():
    # Needs about two cases; MOQ 4 cases: orders exactly the MOQ, and says so.
    plan = solve_store(frame(sku(1, 3.0, case_pack=6, moq_cases=4)), store(), PlanConfig())
    line = plan.lines.iloc[0]
    assert line.order_cases == 4 and line.binding_constraint == "moq"
    # A perishable where the MOQ would mostly rot: orders nothing, and says so.
    plan = solve_store(frame(sku(1, 2.0, case_pack=4, moq_cases=5, is_perishable=True,
                                 shelf_life_days=2, category="bakery")), store(), PlanConfig())
    line = plan.lines.iloc[0]
    assert line.order_cases == 0 and line.binding_constraint == "moq"
    assert plan.note  # an empty plan always says why
    # Without the MOQ it would order a case or two.
    free = solve_store(frame(sku(1, 2.0, case_pack=4, moq_cases=1, is_perishable=True,
                                 shelf_life_days=2, category="bakery")), store(), PlanConfig())
    assert 1 <= free.lines.order_cases.iloc[0] < 5


@pytest.mark.parametrize("review", [1, 3])
def test_short_shelf_life_orders_less_than_equal_demand_non_perishable(review):
    lines = frame(sku(1, 20.0, case_pack=1, is_perishable=True, shelf_life_days=2,
                      category="snacks"),
                  sku(2, 20.0, case_pack=1, category="snacks"))
    plan = solve_store(lines, store(), PlanConfig(review_days=review))
    row = plan.lines.set_index("sku_id")
    assert row.loc[1, "order_units"] < row.loc[2, "order_units"]
    assert row.loc[1, "expected_waste_units"] > 0 and row.loc[2, "expected_waste_units"] == 0
    assert row.loc[1, "binding_constraint"] == "shelf_life"
    if review == 3:  # an order cannot cover the days after it expired
        assert row.loc[1, "coverage_days"] == 2 and row.loc[2, "coverage_days"] == 3


def test_supplier_minimum_all_or_nothing():
    lines = frame(sku(1, 2.0, supplier_id=7, case_pack=2), sku(2, 20.0, supplier_id=8))
    big = solve_store(lines, store(supplier_min={7: 5000.0}), PlanConfig())
    row = big.lines.set_index("sku_id")
    assert row.loc[1, "order_cases"] == 0 and row.loc[1, "binding_constraint"] == "supplier_min"
    assert row.loc[2, "order_cases"] > 0
    small = solve_store(lines, store(supplier_min={7: 100.0}), PlanConfig())
    value = small.lines.set_index("sku_id").loc[1, "order_value"]
    assert value >= 100.0
    assert big.violations == () and small.violations == ()


def test_infeasible_goes_to_greedy_with_a_reason():
    plan = solve_store(three_skus(), store(budget=-100.0), PlanConfig())
    assert plan.status == "infeasible" and plan.method == "greedy"
    assert "budget" in plan.fallback_reason
    assert (plan.lines.order_cases == 0).all() and plan.note
    assert (plan.lines.fallback_reason == plan.fallback_reason).all()
    assert plan.violations == ()


def test_timeout_without_solution_falls_back_to_greedy_within_limits(monkeypatch):
    monkeypatch.setattr(milp_mod, "_run_solver", lambda *a, **k: SolveResult(
        "not_solved", None, None, None, 8.0, "Not Solved"))
    lines, st = synthetic_store(200, seed=3)
    st = store(budget=0.3 * st.daily_budget, ambient=st.capacity_ambient_l,
               chilled=0.5 * st.capacity_chilled_l, frozen=st.capacity_frozen_l)
    plan = solve_store(lines, st, PlanConfig())
    assert plan.method == "greedy" and plan.status == "not_solved"
    assert "time limit" in plan.fallback_reason
    assert plan.n_ordered > 0 and plan.order_value <= st.daily_budget + 1e-6
    assert (plan.lines.binding_constraint == "budget").any()
    assert check_plan(plan, lines, st, PlanConfig()) == [] and plan.violations == ()


def test_poor_time_limited_incumbent_loses_to_greedy(monkeypatch):
    lines = three_skus()
    monkeypatch.setattr(milp_mod, "_run_solver", lambda prob, x, econ, cfg: SolveResult(
        "feasible", np.zeros(econ.n, int), 0.0, None, 8.0))
    plan = solve_store(lines, store(), PlanConfig())
    assert plan.method == "greedy" and plan.status == "feasible"
    assert "beat the MILP incumbent" in plan.fallback_reason and plan.n_ordered == 3


def test_cbc_and_highs_agree():
    lines, st = synthetic_store(40, seed=5)
    st = store(budget=0.5 * st.daily_budget, ambient=st.capacity_ambient_l,
               chilled=st.capacity_chilled_l, frozen=st.capacity_frozen_l)
    cbc = solve_store(lines, st, PlanConfig(solver="cbc", **EXACT))
    highs = solve_store(lines, st, PlanConfig(solver="highs", **EXACT))
    assert cbc.status == highs.status == "optimal"
    assert cbc.objective == pytest.approx(highs.objective, rel=1e-7)


def test_plan_shape_and_explanations():
    lines, st = synthetic_store(60, seed=2)
    plan = solve_store(lines, st, PlanConfig())
    ln = plan.lines
    assert tuple(ln.columns) == PLAN_COLUMNS and len(ln) == 60
    assert ln.binding_constraint.isin(BINDING_VALUES).all()
    assert (ln.order_units == ln.order_cases * lines.groupby("sku_id").case_pack.first()
            .loc[ln.sku_id].to_numpy()).all()
    assert np.allclose(ln.safety_stock, ln.order_up_to - ln.forecast_coverage)
    assert ln.expected_service_level.between(0, 1).all()
    assert (ln.solver_status == plan.status).all()
    totals = plan.totals()
    assert len(totals) == 1 and totals.loc[0, "order_value"] == pytest.approx(plan.order_value)


def test_lines_without_forecast_are_not_ordered():
    lines = three_skus()
    lines.loc[lines.sku_id == 2, ["mean", "q50", "q80", "q90", "q95", "q99"]] = np.nan
    lines = lines[(lines.sku_id != 2) | (lines.horizon == 1)]
    lines.loc[lines.sku_id == 2, "horizon"] = np.nan
    plan = solve_store(lines, store(), PlanConfig())
    row = plan.lines.set_index("sku_id")
    assert row.loc[2, "order_cases"] == 0 and row.loc[1, "order_cases"] > 0
    assert any("without a forecast" in w for w in plan.warnings)


def test_real_time_limit_keeps_a_checked_plan():
    lines, st = synthetic_store(1500, seed=6)
    plan = solve_store(lines, st, PlanConfig(solver="highs", time_limit_s=0.01))
    assert plan.status in ("feasible", "optimal") and plan.violations == ()
    assert plan.n_ordered > 0


def test_no_lines_is_an_explained_empty_plan():
    plan = solve_store(sku(1).iloc[:0], store(), PlanConfig())
    assert len(plan.lines) == 0 and plan.note and plan.violations == ()
