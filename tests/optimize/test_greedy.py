"""The greedy fallback: sound under every hard constraint, close to the MILP."""
from __future__ import annotations

import numpy as np
import pytest

from optimize import PlanConfig, solve_store
from optimize.economics import build_economics
from optimize.greedy import greedy_cases
from optimize.inputs import ZONES
from tests.optimize.helpers import frame, sku, store, synthetic_store


@pytest.mark.parametrize("budget_share", [0.2, 0.6, 2.0])
def test_greedy_respects_limits_and_is_close_to_the_milp(budget_share):
    lines, st = synthetic_store(300, seed=11)
    st = store(budget=budget_share * st.daily_budget, ambient=st.capacity_ambient_l,
               chilled=0.3 * st.capacity_chilled_l, frozen=st.capacity_frozen_l,
               supplier_min={2: 3000.0, 3: 1e7})
    cfg = PlanConfig()
    e = build_economics(lines, st, cfg)
    x = greedy_cases(e)
    value = x * e.case_value
    assert value.sum() <= st.daily_budget + 1e-6
    for z in ZONES:
        assert (x * e.case_volume)[e.zone == z].sum() <= max(e.room(z), 0) + 1e-6
    assert ((x == 0) | (x >= e.moq1)).all() and (x <= e.max_cases).all()
    assert value[e.supplier_id == 3].sum() == 0  # its minimum is out of reach
    assert value[e.supplier_id == 2].sum() == 0 or value[e.supplier_id == 2].sum() >= 3000
    milp = solve_store(lines, st, cfg)
    assert milp.method == "milp"
    assert e.total_cost(x) >= milp.objective - 1e-6
    assert e.total_cost(x) <= 1.03 * milp.objective


def test_greedy_orders_nothing_without_budget():
    e = build_economics(frame(sku(1, 10.0), sku(2, 5.0, volume_l=0.0)), store(budget=0.0),
                        PlanConfig())
    assert (greedy_cases(e) == 0).all()


def test_greedy_shrinks_a_first_order_to_what_fits():
    # Wants many cases; the budget pays for 3.
    e = build_economics(frame(sku(1, 40.0, case_pack=1, unit_cost=10.0)), store(budget=30.0),
                        PlanConfig())
    assert greedy_cases(e).tolist() == [3]
    assert np.all(e.max_cases == 3)
