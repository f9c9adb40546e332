"""The replay engine on hand-made 1-2 SKU cases: conservation, FIFO and expiry, lead times,
lost sales, perfect foresight, suppliers, the metrics, and the oracle's quantiles."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from optimize.inputs import QUANTILE_COLUMNS, QUANTILE_LEVELS, PlanConfig, StoreInputs
from optimize.simulate import (
    ConservationError,
    CostModel,
    Night,
    PlanPolicy,
    Supply,
    _conserve,
    nb_quantiles,
    simulate,
)

START = dt.date(2025, 5, 1)


def pairs(n: int = 1, **attrs) -> pd.DataFrame:
    """``n`` SKUs of store 1; ``attrs`` override a column (a scalar or one value per SKU)."""
    base = {"store_id": 1, "sku_id": np.arange(1, n + 1), "supplier_id": 1,
            "is_perishable": False, "shelf_life_days": 120, "lead_time_days": 1,
            "unit_cost": 10.0, "price": 15.0, "volume_l": 0.5, "zone": "ambient",
            "category": "snacks", "case_pack": 1, "moq_cases": 1}
    base.update(attrs)
    return pd.DataFrame({k: np.broadcast_to(v, n) if np.ndim(v) == 0 else v
                         for k, v in base.items()})


def stock(n: int = 1, **buckets: int | list[int]) -> np.ndarray:
    """Closing stock (n, 8) from ``exp_1d=..``, ``exp_later=..``."""
    out = np.zeros((n, 8), np.int64)
    names = [f"exp_{d}d" for d in range(1, 8)] + ["exp_later"]
    for k, v in buckets.items():
        out[:, names.index(k)] = v
    return out


class Schedule:
    """Orders ``plan[t]`` (units per pair) on night t; records what it saw."""

    name = "schedule"

    def __init__(self, plan: dict[int, list[int]], n: int) -> None:
        self.plan, self.n, self.nights = plan, n, []

    def order(self, night: Night) -> np.ndarray:
        self.nights.append(night)
        return np.asarray(self.plan.get(night.t, [0] * self.n))


def run(p, buckets, demand, policy, pipeline=None, **kw):
    demand = np.asarray(demand, np.int64).reshape(len(demand), len(p))
    pipeline = np.zeros((len(p), 1), np.int64) if pipeline is None else pipeline
    return simulate(p, buckets, pipeline, demand, np.ones(demand.shape, bool), policy, START,
                    **kw)


def test_conservation_per_pair_and_in_total():
    rng = np.random.default_rng(3)
    p = pairs(2, is_perishable=[True, False], shelf_life_days=[3, 90], lead_time_days=[1, 2])
    demand = rng.poisson([4, 6], (12, 2))
    plan = {t: rng.integers(0, 12, 2).tolist() for t in range(12)}
    res = run(p, stock(2, exp_2d=5, exp_later=[0, 20]), demand, Schedule(plan, 2),
              pipeline=np.array([[3], [4]]))
    b = res.by_pair
    assert (b.received == b.sold + b.wasted + b.end_on_hand - b.start_on_hand).all()
    assert (b.sold + b.lost == b.demand).all()
    assert res.metrics["received"] == res.metrics["sold"] + res.metrics["wasted"] + \
        b.end_on_hand.sum() - b.start_on_hand.sum()
    d = res.by_day
    assert (d.sold <= d.demand).all() and d.demand.sum() == demand.sum()
    # the pipeline's opening 3 + 4 units arrive on day 1; nothing ordered is lost
    assert d.received.iloc[0] == 7
    assert res.metrics["ordered"] >= res.metrics["received"] - 7


def test_conservation_check_names_the_pairs():
    p = pairs(2)
    with pytest.raises(ConservationError, match="broken \\(test\\) for 1 pair"):
        _conserve("test", np.array([1, 2]), np.array([1, 3]), p)


def test_fifo_sells_oldest_first_and_expires_on_the_right_day():
    # 4 units sellable on day 1 only, 5 sellable on days 1-3.
    p = pairs(is_perishable=True, shelf_life_days=3)
    res = run(p, stock(exp_1d=4, exp_3d=5), [[3], [0], [2], [0]], Schedule({}, 1))
    # FIFO: day 1 sells 3 of the oldest 4, the 4th expires that night; the 5 newer units
    # sell 2 on day 3 and 3 expire that night. (LIFO would waste 4 on day 1.)
    assert res.by_day.wasted.tolist() == [1, 0, 3, 0]
    assert res.by_day.sold.tolist() == [3, 0, 2, 0]
    assert res.by_day.on_hand.tolist() == [5, 5, 0, 0]


def test_a_delivery_lives_its_shelf_life_then_is_wasted():
    p = pairs(is_perishable=True, shelf_life_days=2, lead_time_days=1)
    pol = Schedule({0: [6]}, 1)
    res = run(p, stock(), [[0], [1], [1], [0]], pol)
    # ordered night 0, received morning of day 1 (t=1), sellable t=1..2, wasted end of t=2
    assert res.by_day.received.tolist() == [0, 6, 0, 0]
    assert res.by_day.wasted.tolist() == [0, 0, 4, 0]
    # the policy saw it by days to expiry: after day 1 it has one more day
    assert pol.nights[1].buckets[0].tolist() == [5, 0, 0, 0, 0, 0, 0, 0]


@pytest.mark.parametrize("lead", [0, 1, 3])
def test_lead_time_is_respected(lead):
    p = pairs(lead_time_days=lead)
    pol = Schedule({0: [10], 1: [2]}, 1)
    res = run(p, stock(), [[0]] * 6, pol)
    arrive = max(lead, 1)  # an order tonight arrives on the morning of day t + L (L >= 1)
    expected = [0] * 6
    expected[arrive] += 10
    expected[1 + arrive] += 2
    assert res.by_day.received.tolist() == expected
    # the policy sees what is still on its way
    assert pol.nights[1].on_order.tolist() == [10 if arrive > 1 else 0]


def test_lost_sales_when_the_shelf_is_empty():
    p = pairs(2)
    res = run(p, stock(2, exp_later=[0, 3]), [[5, 5], [2, 0]], Schedule({}, 2))
    b = res.by_pair
    assert b.lost.tolist() == [7, 2] and b.sold.tolist() == [0, 3]
    m = res.metrics
    assert m["fill_rate"] == pytest.approx(3 / 12)
    # pair 1 empty both days; pair 2 lost on day 1, empty at opening on day 2
    assert m["stockout_freq"] == pytest.approx(1.0)
    assert m["lost_margin"] == pytest.approx(9 * 5.0)


class PerfectForesight:
    """Knows tomorrow's demand: orders on night t exactly the demand of day t + L."""

    name = "perfect"

    def __init__(self, demand: np.ndarray, lead: np.ndarray) -> None:
        self.demand, self.lead = demand, np.maximum(lead, 1)

    def order(self, night: Night) -> np.ndarray:
        day = night.t + self.lead
        ok = day < len(self.demand)
        out = np.zeros(len(self.lead), np.int64)
        out[ok] = self.demand[day[ok], np.nonzero(ok)[0]]
        return out


def test_perfect_foresight_never_loses_sales_nor_wastes():
    rng = np.random.default_rng(11)
    lead = np.array([1, 2])
    p = pairs(2, is_perishable=[True, False], shelf_life_days=[2, 90], lead_time_days=lead)
    demand = rng.poisson([8, 3], (15, 2))
    # the first L days are covered by the opening pipeline, as a perfect planner would have
    pipeline = np.zeros((2, 2), np.int64)
    pipeline[0, 0] = demand[0, 0]
    pipeline[1, 0], pipeline[1, 1] = demand[0, 1], demand[1, 1]
    res = run(p, stock(2), demand, PerfectForesight(demand, lead), pipeline=pipeline)
    assert res.metrics["lost"] == 0 and res.metrics["fill_rate"] == 1.0
    assert res.metrics["wasted"] == 0 and res.by_pair.end_on_hand.tolist() == [0, 0]


def test_orders_for_inactive_pairs_are_dropped_and_bad_orders_refused():
    p = pairs(2)
    demand = np.zeros((3, 2), np.int64)
    active = np.array([[True, False]] * 3)
    res = simulate(p, stock(2), np.zeros((2, 1)), demand, active, Schedule(
        {0: [4, 4]}, 2), START)
    assert res.by_pair.ordered.tolist() == [4, 0]
    assert res.metrics["pair_days"] == 3
    with pytest.raises(ValueError, match="whole units >= 0"):
        run(p, stock(2), [[0, 0]], Schedule({0: [-1, 0]}, 2))
    with pytest.raises(ValueError, match="inactive pair-day has demand"):
        simulate(p, stock(2), np.zeros((2, 1)), np.ones((1, 2)), np.zeros((1, 2), bool),
                 Schedule({}, 2), START)


def test_suppliers_late_and_short_with_common_random_numbers():
    p = pairs(2, lead_time_days=1)
    late = Supply(np.array([1.0, 0.0]), np.array([0.0, 1.0]), seed=5)
    res = run(p, stock(2), [[0, 0]] * 4, Schedule({0: [10, 10]}, 2), supply=late)
    b = res.by_pair
    assert b.received.tolist()[0] == 0  # always a day late: still in the pipeline
    assert 3 <= b.received.tolist()[1] <= 9 and b.shorted.tolist()[1] == 10 - b.received[1]
    # the same day's luck for every policy
    r1, *_ = late.deliver(2, np.array([0, 7]))
    r2, *_ = late.deliver(2, np.array([0, 7]))
    assert r1.tolist() == r2.tolist()


def test_metrics_by_hand():
    p = pairs(1, unit_cost=10.0, price=15.0, volume_l=0.5)
    costs = CostModel(holding_rate_per_day=0.001, storage_cost_per_litre_day={"ambient": 0.02},
                      disposal_cost_per_unit=1.0, fixed_cost_per_line=5.0,
                      fixed_cost_per_supplier=50.0)
    res = run(p, stock(exp_later=10), [[2], [2]], Schedule({0: [3]}, 1), costs=costs)
    m = res.metrics
    # closing stock 8 then 9 (3 received on day 2): average 85 INR; COGS 40 INR over 2 days
    assert m["working_capital"] == pytest.approx((80 + 90) / 2)
    assert m["turnover"] == pytest.approx(40 / 85 * 365 / 2)
    assert m["holding_cost"] == pytest.approx((8 + 9) * (0.001 * 10 + 0.02 * 0.5))
    assert m["ordering_cost"] == pytest.approx(5 + 50)
    assert m["purchases"] == pytest.approx(30.0)
    assert m["total_cost"] == pytest.approx(m["holding_cost"] + 55)
    assert m["waste_pct"] == 0.0 and m["fill_rate"] == 1.0


def test_nb_quantiles_match_the_generators_mixture():
    """The oracle's quantiles: a negative binomial with the truth's size k matches the
    generator's Poisson x three gamma shocks (jobs/world.py) in mean and variance; its
    quantiles are within a unit (or 5%) of the mixture's, simulated."""
    rng = np.random.default_rng(0)
    n = 200_000
    for mu, vol, k in ((0.4, 0.08, 6.0), (3.0, 0.12, 4.0), (25.0, 0.06, 12.0)):
        draws = rng.poisson(mu * rng.gamma(1 / vol ** 2, vol ** 2, n)
                            * rng.gamma(1 / 0.07 ** 2, 0.07 ** 2, n) * rng.gamma(k, 1 / k, n))
        size = 1 / ((1 + vol ** 2) * (1 + 0.07 ** 2) * (1 + 1 / k) - 1)
        q = nb_quantiles(np.array(mu), np.array(size))
        emp = np.quantile(draws, QUANTILE_LEVELS, method="inverted_cdf")
        assert np.all(np.abs(q - emp) <= np.maximum(1.0, 0.05 * emp)), (mu, q, emp)
    assert nb_quantiles(np.array([0.0]), np.array([5.0])).tolist() == [[0.0] * 5]
    # no finite size: Poisson
    assert nb_quantiles(np.array([4.0]), np.array([np.inf]))[0, 0] == 4.0


def _flat_forecast(mean: float):
    def provider(night: Night) -> pd.DataFrame:
        rows = []
        for sku in (1, 2):
            q = nb_quantiles(np.array(mean), np.array(20.0))
            for h in range(1, 8):
                rows.append({"store_id": 1, "sku_id": sku, "horizon": h, "mean": mean,
                             **dict(zip(QUANTILE_COLUMNS, q, strict=True))})
        return pd.DataFrame(rows)
    return provider


def test_plan_policy_replans_every_night_in_whole_cases():
    p = pairs(2, is_perishable=[True, False], shelf_life_days=[3, 90], case_pack=[6, 4],
              category=["dairy", "snacks"], zone=["chilled", "ambient"])
    store = StoreInputs(1, 1e6, 1e6, 1e6, 1e6)
    cfg = PlanConfig(threads=1, time_limit_s=5.0)
    pol = PlanPolicy("plan", p, {1: store}, _flat_forecast(10.0), cfg)
    demand = np.full((6, 2), 10)
    res = run(p, stock(2, exp_2d=[10, 0], exp_later=[0, 30]), demand, pol,
              costs=CostModel.from_plan_config(cfg))
    assert pol.notes["store_nights"] == 6 and pol.notes["violations"] == 0
    assert (res.by_pair.ordered % np.array([6, 4]) == 0).all()
    assert res.metrics["fill_rate"] >= 0.9


def test_plan_policy_respects_zone_capacity():
    p = pairs(2, volume_l=1.0)
    store = StoreInputs(1, 25.0, 1e6, 1e6, 1e6)  # 25 litres of ambient room
    pol = PlanPolicy("plan", p, {1: store}, _flat_forecast(20.0), PlanConfig(threads=1))
    res = run(p, stock(2), np.full((3, 2), 20), pol)
    first_night = res.by_day.ordered.iloc[0]
    assert 0 < first_night <= 25
    with pytest.raises(ValueError, match="no StoreInputs"):
        PlanPolicy("plan", p, {}, _flat_forecast(1.0), PlanConfig())


def test_a_warm_up_is_replayed_but_not_measured():
    p = pairs(2, is_perishable=[True, False], shelf_life_days=[2, 90])
    demand = [[3, 1], [5, 2], [0, 4], [2, 2], [4, 0]]
    plan = {0: [6, 5], 1: [2, 0], 2: [4, 3], 3: [1, 1]}
    full = run(p, stock(2, exp_2d=[4, 0], exp_later=[0, 6]), demand, Schedule(plan, 2))
    warm = run(p, stock(2, exp_2d=[4, 0], exp_later=[0, 6]), demand, Schedule(plan, 2),
               measure_from=2)
    # the same replay: the measured days are the last three days of the full one
    assert warm.start == START + dt.timedelta(days=2) and warm.days == 3
    assert warm.by_day.to_dict("records") == full.by_day.iloc[2:].to_dict("records")
    b = warm.by_pair
    assert b.demand.tolist() == [6, 6]  # days 2..4 only
    # closing stock of day 1: pair 1 sold 3 of its 4, got 6, sold 1 old + 4 new -> 2;
    # pair 2 had 6, sold 1, got 5, sold 2 -> 8
    assert b.start_on_hand.tolist() == [2, 8]
    assert (b.received == b.sold + b.wasted + b.end_on_hand - b.start_on_hand).all()
    assert warm.metrics["demand"] == 12 and full.metrics["demand"] == 23
    assert warm.metrics["fill_rate"] == pytest.approx(b.sold.sum() / 12)
    # the orders of the warm-up nights are not in the measured ordering cost
    assert warm.metrics["order_lines"] == 4 and full.metrics["order_lines"] == 7
    with pytest.raises(ValueError, match="measure_from must be in 0..4"):
        run(p, stock(2), demand, Schedule({}, 2), measure_from=5)


def test_plan_policy_learns_each_suppliers_late_deliveries(monkeypatch):
    """Supplier 1 is always a day late, supplier 2 never: after a few nights the policy's
    estimate is high for the first and 0 for the second (a prior of 10 on-time deliveries
    keeps it below 1), and the planner is told so through ``late_prob``; with
    ``learn_late=False`` it is told nothing."""
    import optimize.simulate as osim

    p = pairs(2, supplier_id=[1, 2])
    stores = {1: StoreInputs(1, 1e6, 1e6, 1e6, 1e6)}
    seen: list[pd.DataFrame] = []
    solve = osim.solve_store

    def spy(lines, store, cfg):
        seen.append(lines)
        return solve(lines, store, cfg)

    monkeypatch.setattr(osim, "solve_store", spy)
    supply = Supply(np.array([1.0, 0.0]), np.array([0.0, 0.0]), seed=1)
    pol = PlanPolicy("plan", p, stores, _flat_forecast(5.0), PlanConfig(threads=1))
    run(p, stock(2, exp_later=[5, 5]), np.full((8, 2), 5), pol, supply=supply)
    prob = pol.late_prob()
    assert prob[1] == 0.0 and 0.2 < prob[0] < 1.0
    assert pol._n_late[0] == pol._n_due[0] > 0  # every due delivery of supplier 1 was late
    last = seen[-1].drop_duplicates("sku_id").set_index("sku_id")["late_prob"]
    assert last[1] == pytest.approx(prob[0]) and last[2] == 0.0
    seen.clear()
    off = PlanPolicy("plan", p, stores, _flat_forecast(5.0), PlanConfig(threads=1),
                     learn_late=False)
    run(p, stock(2, exp_later=[5, 5]), np.full((3, 2), 5), off, supply=supply)
    assert seen and all("late_prob" not in lines.columns for lines in seen)
