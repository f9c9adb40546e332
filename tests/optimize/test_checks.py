"""check_plan: a valid plan passes; every broken constraint is caught and named."""
from __future__ import annotations

import dataclasses

import pytest

from optimize import PlanConfig, check_plan, solve_store
from tests.optimize.helpers import frame, sku, store

CFG = PlanConfig()


@pytest.fixture(scope="module")
def case():
    lines = frame(sku(1, 20.0, case_pack=6, moq_cases=2, volume_l=1.0, supplier_id=3),
                  sku(2, 10.0, zone="chilled", category="dairy", volume_l=0.5,
                      exp={"exp_later": 4}),
                  sku(3, 5.0, unit_cost=200.0, price=300.0))
    st = store(budget=20_000.0, chilled=100.0, supplier_min={3: 100.0})
    plan = solve_store(lines, st, CFG)
    assert plan.violations == () and plan.n_ordered == 3
    return lines, st, plan


def broken(plan, sku_id, **values):
    ln = plan.lines.copy()
    for col, v in values.items():
        ln.loc[ln.sku_id == sku_id, col] = v
    return dataclasses.replace(plan, lines=ln)


def test_valid_plan_passes(case):
    lines, st, plan = case
    assert check_plan(plan, lines, st, CFG) == []


def test_negative_cases_are_caught(case):
    lines, st, plan = case
    out = check_plan(broken(plan, 1, order_cases=-2, order_units=-12), lines, st, CFG)
    assert any(m.startswith("non_negative") and "[1]" in m for m in out)


@pytest.mark.parametrize(("values", "rule"), [
    ({"order_cases": 2.5, "order_units": 15}, "non_negative"),
    ({"order_units": 13}, "case_pack"),
    ({"order_cases": 1, "order_units": 6}, "moq"),
    ({"order_cases": 1000, "order_units": 6000}, "budget"),
])
def test_each_rule_is_named(case, values, rule):
    lines, st, plan = case
    out = check_plan(broken(plan, 1, **values), lines, st, CFG)
    assert any(m.startswith(rule) for m in out), out


def test_capacity_counts_stock_already_there(case):
    lines, st, plan = case
    # 2 L on the shelf of a 100 L zone: 98 L free; 200 units of 0.5 L do not fit.
    out = check_plan(broken(plan, 2, order_cases=200, order_units=200), lines, st, CFG)
    assert any(m.startswith("capacity_chilled") and "98.00 L" in m for m in out)


def test_supplier_minimum(case):
    lines, st, plan = case
    tight = dataclasses.replace(st, supplier_min_order_value={3: 1e9})
    assert any(m.startswith("supplier_min: supplier 3") for m in
               check_plan(plan, lines, tight, CFG))


def test_missing_and_extra_lines(case):
    lines, st, plan = case
    out = check_plan(dataclasses.replace(plan, lines=plan.lines[plan.lines.sku_id != 3]),
                     lines, st, CFG)
    assert any("have no plan line" in m for m in out)
    out = check_plan(plan, lines[lines.sku_id != 3], st, CFG)
    assert any("are not in the input" in m for m in out)


def test_empty_plan_needs_a_reason(case):
    lines, st, plan = case
    empty = plan.lines.assign(order_cases=0, order_units=0)
    assert check_plan(dataclasses.replace(plan, lines=empty, note=""), lines, st, CFG) == [
        "empty plan without a reason (StorePlan.note is blank)"]
    assert check_plan(dataclasses.replace(plan, lines=empty, note="stocked"), lines, st,
                      CFG) == []
