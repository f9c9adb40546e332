"""features.kernel on small hand-made arrays: values, nulls, and start independence."""
from __future__ import annotations

import numpy as np
import pytest

from features.kernel import HISTORY_FEATURES, Days, history_features

LOOKBACK = 30


def _days(n_days: int, n_pairs: int) -> Days:
    shape = (n_days, n_pairs)
    return Days(np.ones(shape, dtype=bool), np.zeros(shape), np.zeros(shape, dtype=np.int32),
                np.zeros(shape, dtype=np.int32), np.zeros(shape), np.zeros(shape, dtype=bool),
                np.zeros(shape, dtype=bool))


def _random(n_days: int, n_pairs: int, seed: int) -> Days:
    rng = np.random.default_rng(seed)
    shape = (n_days, n_pairs)
    units = rng.integers(0, 6, shape).astype(np.int32)
    stockout = rng.random(shape) < 0.15
    demand = np.where(stockout, units * rng.uniform(1.0, 3.0, shape), units.astype(float))
    demand[stockout & (units == 0)] = np.nan
    return Days(rng.random(shape) < 0.9, demand, units,
                np.minimum(units, rng.integers(0, 4, shape)).astype(np.int32),
                units * rng.uniform(10, 60, shape), stockout, rng.random(shape) < 0.1)


def test_a_steady_series():
    d = _days(32, 1)
    d.demand[:, 0] = np.arange(32, dtype=float)
    d.units[:, 0] = np.arange(32)
    d.revenue[:, 0] = 2.0 * np.arange(32)
    d.evening[:, 0] = np.arange(32) // 2
    out = {k: v[:, 0] for k, v in history_features(d, 30, 32).items()}
    assert list(out) == list(HISTORY_FEATURES)
    assert out["history_days"][0] == 30 and out["lag_1"][0] == 29 and out["lag_30"][0] == 0
    assert out["roll_mean_3"][0] == 28 and out["roll_mean_30"][1] == pytest.approx(15.5)
    assert out["roll_std_3"][0] == pytest.approx(np.std([27, 28, 29]))
    assert out["roll_max_7"][0] == 29 and out["roll_min_7"][0] == 23
    assert out["days_since_last_sale"][0] == 1
    assert out["zero_sale_share_30"][0] == pytest.approx(1 / 30)  # day 0 sold nothing
    assert out["avg_price_30"][0] == 2.0 and out["stockout_share_7"][0] == 0.0
    assert out["promo_share_30"][0] == 0.0 and np.isnan(out["promo_lift_30"][0])
    assert out["same_weekday_mean_4"][0] == pytest.approx((23 + 16 + 9 + 2) / 4)


def test_missing_and_unknown_days():
    d = _days(31, 1)
    d.demand[:, 0] = 4.0
    d.units[:, 0] = 4
    d.present[29, 0] = False           # D-1: not active
    d.demand[28, 0] = np.nan           # D-2: a stock-out without sales
    d.units[28, 0] = 0
    d.stockout[28, 0] = True
    d.stockout[27, 0] = True           # D-3: a stock-out with sales (demand known)
    d.demand[27, 0] = 10.0
    out = {k: v[0, 0] for k, v in history_features(d, 30, 31).items()}
    assert np.isnan(out["lag_1"]) and np.isnan(out["units_lag_1"])
    assert out["lag_2"] == 4.0                          # mean of the 27 clean days
    assert out["lag_3"] == 10.0 and out["history_days"] == 29
    assert out["roll_mean_3"] == pytest.approx((4.0 + 10.0) / 2)
    assert out["stockout_share_7"] == pytest.approx(2 / 6)
    assert out["zero_sale_share_7"] == pytest.approx(1 / 6)
    assert out["days_since_last_sale"] == 3


def test_no_sale_within_the_lookback_is_capped():
    d = _days(40, 2)
    d.units[:, 1] = 1
    d.units[2, 0] = 5                  # pair 0 sold only long ago
    out = history_features(d, 35, 40, lookback=35)
    assert (out["days_since_last_sale"][:, 0] == [33, 34, 35, 36, 36]).all()
    assert (out["days_since_last_sale"][:, 1] == 1).all()
    assert (out["history_days"] == 35).all()
    assert np.isnan(out["evening_share_7"][:, 0]).all()  # nothing sold: null, not 0


def test_the_result_does_not_depend_on_where_the_arrays_start():
    """Bit for bit: what keeps a nightly run equal to a backfill."""
    d = _random(75, 9, seed=3)
    whole = history_features(d, 30, 75)
    later = Days(*(a[12:] for a in (d.present, d.demand, d.units, d.evening, d.revenue,
                                    d.stockout, d.promo)))
    part = history_features(later, 30, 63)
    blocks = [history_features(d, 30, 41), history_features(d, 41, 75)]
    for name in HISTORY_FEATURES:
        np.testing.assert_array_equal(part[name], whole[name][12:], err_msg=name)
        np.testing.assert_array_equal(np.concatenate([b[name] for b in blocks]), whole[name],
                                      err_msg=name)


def test_rolling_mean_matches_a_plain_loop():
    d = _random(45, 6, seed=8)
    out = history_features(d, 30, 45)
    for i, t in enumerate(range(30, 45)):
        for p in range(6):
            days = [t - j for j in range(1, 31) if d.present[t - j, p]]
            clean = [d.demand[s, p] for s in days if not d.stockout[s, p]]
            known = [d.demand[s, p] for s in days if not np.isnan(d.demand[s, p])]
            fill = np.mean(clean) if clean else (np.mean(known) if known else 0.0)
            values = [fill if np.isnan(d.demand[s, p]) else d.demand[s, p] for s in days]
            assert out["roll_mean_30"][i, p] == pytest.approx(np.mean(values), rel=1e-12)
            assert out["roll_std_30"][i, p] == pytest.approx(np.std(values), rel=1e-9,
                                                             abs=1e-9)


def test_too_little_history_is_refused():
    with pytest.raises(ValueError, match="need 30 days"):
        history_features(_days(40, 1), 20, 40)
    with pytest.raises(ValueError, match="lookback"):
        history_features(_days(40, 1), 30, 40, lookback=7)
