"""The asymmetric objective: exact derivatives, and it moves XGBoost's forecasts the right way."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from scipy import integrate
from scipy.special import expit

from models.objective import asymmetric_grad_hess, asymmetric_objective, costs_for_rows, unit_costs


def _rho(e, loss, delta=1.0):
    if loss == "squared":
        return e ** 2 / 2
    return delta ** 2 * (np.sqrt(1 + (e / delta) ** 2) - 1)


def _loss(y, f, under, over, loss, smooth, delta=1.0):
    """L(e) = integral_0^e w(t) rho'(t) dt, by quadrature (or w(e) rho(e) when smooth = 0)."""
    e = y - f
    if smooth == 0:
        return (under if e > 0 else over) * _rho(e, loss, delta)

    def integrand(t):
        w = over + (under - over) * expit(t / smooth)
        drho = t if loss == "squared" else t / np.sqrt(1 + (t / delta) ** 2)
        return w * drho

    return integrate.quad(integrand, 0.0, e)[0]


@pytest.mark.parametrize("loss", ["squared", "pseudo_huber"])
@pytest.mark.parametrize("smooth", [0.0, 0.7])
def test_gradient_is_the_derivative_of_the_loss(loss, smooth):
    y = np.array([5.0, 5.0, 0.0, 12.0, 3.0])
    f = np.array([2.0, 7.5, 1.0, 4.0, 3.3])
    under = np.array([9.0, 9.0, 2.0, 1.0, 4.0])
    over = np.array([1.0, 1.0, 3.0, 6.0, 0.5])
    grad, hess = asymmetric_grad_hess(y, f, under, over, smooth=smooth, loss=loss, delta=2.0)
    step = 1e-4
    for i in range(len(y)):
        up = _loss(y[i], f[i] + step, under[i], over[i], loss, smooth, 2.0)
        down = _loss(y[i], f[i] - step, under[i], over[i], loss, smooth, 2.0)
        assert grad[i] == pytest.approx((up - down) / (2 * step), rel=1e-5, abs=1e-6)
    assert (hess > 0).all()
    if smooth == 0:  # exact second derivative away from e = 0
        g_up, _ = asymmetric_grad_hess(y, f + step, under, over, 0.0, loss, 2.0)
        g_down, _ = asymmetric_grad_hess(y, f - step, under, over, 0.0, loss, 2.0)
        np.testing.assert_allclose(hess, (g_up - g_down) / (2 * step), rtol=1e-5)


def test_under_forecast_costs_more_when_margin_dominates():
    grad, hess = asymmetric_grad_hess([10.0, 10.0], [8.0, 12.0], 9.0, 1.0)
    assert grad.tolist() == [-18.0, 2.0] and hess.tolist() == [9.0, 1.0]
    _, hess0 = asymmetric_grad_hess([1.0], [1.0], 9.0, 1.0)
    assert hess0.tolist() == [5.0], "at e = 0 the curvature is the mean of both sides"


def _expectile(y: np.ndarray, tau: float) -> float:
    lo, hi = float(y.min()), float(y.max())
    for _ in range(200):
        m = (lo + hi) / 2
        g = tau * np.clip(y - m, 0, None).sum() - (1 - tau) * np.clip(m - y, 0, None).sum()
        lo, hi = (m, hi) if g > 0 else (lo, m)
    return (lo + hi) / 2


def _fit(x, y, obj=None, rounds=60, **params):
    dtrain = xgb.DMatrix(x, label=y)
    base = {"max_depth": 3, "eta": 0.3, "base_score": float(np.mean(y)), "seed": 0,
            "nthread": 1, **params}
    if obj is None:
        base["objective"] = "reg:squarederror"
    booster = xgb.train(base, dtrain, num_boost_round=rounds, obj=obj)
    return booster.predict(dtrain)


def test_xgboost_forecasts_move_up_or_down_with_the_costs():
    rng = np.random.default_rng(0)
    weekday = np.tile(np.arange(7), 60)
    y = rng.poisson(np.where(weekday == 5, 12.0, 5.0)).astype(float)
    x = weekday[:, None].astype(float)
    n = len(y)
    plain = _fit(x, y)
    up = _fit(x, y, asymmetric_objective(np.full(n, 9.0), np.full(n, 1.0)))
    down = _fit(x, y, asymmetric_objective(np.full(n, 1.0), np.full(n, 9.0)))
    for d in range(7):
        rows = weekday == d
        assert plain[rows].mean() == pytest.approx(y[rows].mean(), abs=0.05)
        assert up[rows].mean() > plain[rows].mean() + 0.5
        assert down[rows].mean() < plain[rows].mean() - 0.5
        # each weekday's leaf lands on that weekday's expectile at u / (u + o)
        assert up[rows].mean() == pytest.approx(_expectile(y[rows], 0.9), abs=0.05)
        assert down[rows].mean() == pytest.approx(_expectile(y[rows], 0.1), abs=0.05)
    # per-row costs: only Saturdays (weekday 5) have a costly lost sale
    mixed = _fit(x, y, asymmetric_objective(np.where(weekday == 5, 9.0, 1.0), np.ones(n)))
    assert mixed[weekday == 5].mean() > plain[weekday == 5].mean() + 0.5
    assert mixed[weekday == 0].mean() == pytest.approx(plain[weekday == 0].mean(), abs=0.05)


@pytest.mark.parametrize(("under", "over"), [(9.0, 1.0), (1.0, 4.0), (30.0, 0.5)])
def test_xgboost_constant_model_converges_to_the_expectile(under, over):
    y = np.array([0.0, 1.0, 1.0, 2.0, 3.0, 3.0, 4.0, 8.0, 9.0, 15.0])
    n = len(y)
    pred = _fit(np.zeros((n, 1)), y, asymmetric_objective(np.full(n, under), np.full(n, over)),
                rounds=30, eta=1.0, reg_lambda=0.0, min_child_weight=0.0)
    np.testing.assert_allclose(pred, _expectile(y, under / (under + over)), atol=1e-3)


class _FakeDMatrix:
    def __init__(self, label, weight=()):
        self.label, self.weight = np.asarray(label, float), np.asarray(weight, float)

    def get_label(self):
        return self.label

    def get_weight(self):
        return self.weight


def test_objective_normalises_costs_and_applies_sample_weights():
    obj = asymmetric_objective([30.0, 30.0], [10.0, 10.0])
    grad, hess = obj(np.array([2.0, 6.0]), _FakeDMatrix([4.0, 4.0]))
    assert hess.tolist() == [1.5, 0.5], "costs divided by their mean, 20"
    assert grad.tolist() == [-3.0, 1.0]
    raw = asymmetric_objective([30.0, 30.0], [10.0, 10.0], normalize=False)
    assert raw(np.array([2.0, 6.0]), _FakeDMatrix([4.0, 4.0]))[1].tolist() == [30.0, 10.0]
    weighted = obj(np.array([[2.0], [6.0]]), _FakeDMatrix([4.0, 4.0], [2.0, 0.0]))
    assert weighted[0].tolist() == [-6.0, 0.0] and weighted[1].tolist() == [3.0, 0.0]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"under_cost": [1.0, 2.0], "over_cost": [1.0]}, "rows"),
    ({"under_cost": [], "over_cost": []}, "no rows"),
    ({"under_cost": [1.0, -2.0], "over_cost": [1.0, 1.0]}, "negative"),
    ({"under_cost": [1.0, np.nan], "over_cost": [1.0, 1.0]}, "null"),
    ({"under_cost": [1.0, 0.0], "over_cost": [1.0, 0.0]}, "has no loss"),
    ({"under_cost": [1.0], "over_cost": [1.0], "loss": "huber"}, "loss must be"),
    ({"under_cost": [1.0], "over_cost": [1.0], "smooth": -1.0}, "smooth"),
])
def test_objective_rejects_bad_costs(kwargs, message):
    with pytest.raises(ValueError, match=message):
        asymmetric_objective(**kwargs)


def test_objective_rejects_a_dmatrix_of_another_size():
    obj = asymmetric_objective([1.0, 2.0, 3.0], [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="costs were given for 3 rows"):
        obj(np.zeros(2), _FakeDMatrix([1.0, 2.0]))


SKUS = pd.DataFrame({
    "sku_id": [1, 2, 3],
    "price": [100.0, 40.0, 20.0],
    "unit_cost": [80.0, 30.0, 25.0],  # sku 3 sells below cost
    "is_perishable": [False, True, True],
    "shelf_life_days": [365, 2, 7],
})


def test_unit_costs_by_hand():
    costs = unit_costs(SKUS, holding_rate_per_day=0.001, cover_days=1.0, salvage_rate=0.2)
    assert costs["under_cost"].tolist() == [20.0, 10.0, 0.0]
    want_over = [80 * 0.001, 30 * 0.001 + 0.8 * 30 * 0.5, 25 * 0.001 + 0.8 * 25 / 7]
    np.testing.assert_allclose(costs["over_cost"], want_over)
    np.testing.assert_allclose(costs["critical_ratio"],
                               np.array([20.0, 10.0, 0.0]) / (np.array([20.0, 10.0, 0.0])
                                                              + want_over))
    long = unit_costs(SKUS, holding_rate_per_day=0.001, cover_days=3.0)
    assert long["over_cost"].iloc[1] == pytest.approx(30 * 0.003 + 30 * 1.0), "capped at 1"
    assert list(costs.index) == list(SKUS.index)


@pytest.mark.parametrize(("skus", "kwargs", "message"), [
    (SKUS.drop(columns="price"), {}, "lacks column"),
    (SKUS.assign(unit_cost=[1.0, -1.0, 2.0]), {}, "null or negative"),
    (SKUS.assign(shelf_life_days=[365, 0, 7]), {}, "shelf_life_days"),
    (SKUS, {"holding_rate_per_day": -0.1}, "holding_rate_per_day"),
    (SKUS, {"salvage_rate": 1.5}, "salvage_rate"),
])
def test_unit_costs_rejects(skus, kwargs, message):
    with pytest.raises(ValueError, match=message):
        unit_costs(skus, **{"holding_rate_per_day": 0.001, **kwargs})


def test_costs_for_rows_aligns_by_sku():
    costs = unit_costs(SKUS, holding_rate_per_day=0.001)
    rows = pd.DataFrame({"sku_id": [3, 1, 1, 2]})
    under, over = costs_for_rows(rows, costs)
    assert under.tolist() == [0.0, 20.0, 20.0, 10.0]
    assert over[1] == pytest.approx(0.08)
    with pytest.raises(ValueError, match="sku_id has no cost"):
        costs_for_rows(pd.DataFrame({"sku_id": [1, 9]}), costs)
    with pytest.raises(ValueError, match="one row per sku_id"):
        costs_for_rows(rows, pd.concat([costs, costs]))
