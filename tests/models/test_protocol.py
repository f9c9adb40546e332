"""The forecaster contract: config, column names, train/forecast checks, quantile helpers."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from models.protocol import (
    QUANTILES,
    ModelConfig,
    check_forecast,
    check_train,
    forecast_columns,
    forecast_frame,
    quantile_column,
    quantile_columns,
    residual_quantiles,
    row_quantiles,
)


def _train(n_days: int = 3) -> pd.DataFrame:
    dates = pd.date_range("2025-01-01", periods=n_days)
    return pd.DataFrame({"store_id": 1, "sku_id": 7, "date": dates,
                         "y": np.arange(n_days, dtype=float)})


def _forecast(horizon: int = 2) -> pd.DataFrame:
    keys = pd.DataFrame({"store_id": [1, 2], "sku_id": [7, 7]})
    mean = np.array([[1.0, 2.0], [0.0, 3.0]])[:, :horizon]
    q = np.sort(np.random.default_rng(0).uniform(0, 5, (2, horizon, len(QUANTILES))), axis=2)
    return forecast_frame(keys, pd.Timestamp("2025-01-10"), mean, q, QUANTILES)


def test_quantile_names():
    assert quantile_columns() == ["q50", "q80", "q90", "q95", "q99"]
    assert quantile_column(0.1) == "q10" and quantile_column(0.29) == "q29"
    assert forecast_columns((0.5,)) == ["store_id", "sku_id", "target_date", "horizon", "mean",
                                        "q50"]
    for bad in (0.0, 1.0, 0.975, -0.2):
        with pytest.raises(ValueError, match="whole percent"):
            quantile_column(bad)
    with pytest.raises(ValueError, match="strictly increasing"):
        quantile_columns((0.9, 0.8))
    with pytest.raises(ValueError, match="at least one"):
        quantile_columns(())


def test_model_config_is_frozen_and_validated():
    cfg = ModelConfig()
    assert (cfg.season_length, cfg.window, cfg.croston_method) == (7, 28, "tsb")
    with pytest.raises(AttributeError):
        cfg.window = 3  # type: ignore[misc]
    for kwargs in ({"season_length": 0}, {"window": 0}, {"croston_alpha": 0.0},
                   {"croston_beta": 1.5}, {"croston_method": "ets"}, {"min_residuals": 1}):
        with pytest.raises(ValueError, match="ModelConfig"):
            ModelConfig(**kwargs)


def test_check_train_normalises_dates_and_types():
    df = _train().assign(date=[dt.date(2025, 1, d) for d in (1, 2, 3)], y=[1, 2, 3],
                         promo=True)
    out = check_train(df)
    assert out["date"].dtype == "datetime64[ns]" and out["y"].dtype == "float64"
    assert "promo" in out.columns, "extra feature columns are kept"


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d.drop(columns="y"), "missing column"),
    (lambda d: d.iloc[:0], "is empty"),
    (lambda d: d.assign(y=[1.0, np.nan, 2.0]), "null, infinite or negative"),
    (lambda d: d.assign(y=[1.0, -1.0, 2.0]), "null, infinite or negative"),
    (lambda d: d.assign(sku_id=[7, None, 7]), "null store_id, sku_id or date"),
    (lambda d: pd.concat([d, d.iloc[:1]]), "share a"),
    (lambda d: d.assign(y=["a", "b", "c"]), "not numeric"),
])
def test_check_train_rejects(change, message):
    with pytest.raises(ValueError, match=message):
        check_train(change(_train()))


def test_check_forecast_accepts_a_valid_frame():
    fc = _forecast()
    check_forecast(fc, 2)
    assert list(fc.columns) == forecast_columns()
    assert fc["target_date"].tolist() == [pd.Timestamp("2025-01-11"), pd.Timestamp("2025-01-12")] * 2


def _set(df: pd.DataFrame, row: int, col: str, value) -> pd.DataFrame:
    out = df.copy()
    out.loc[row, col] = value
    return out


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d.drop(columns="q95"), "missing column"),
    (lambda d: d.iloc[:0], "is empty"),
    (lambda d: _set(d, 0, "mean", np.nan), "null value"),
    (lambda d: _set(d, 0, "horizon", 3), "outside 1..2"),
    (lambda d: _set(d, 1, "horizon", 1), "repeat a"),
    (lambda d: d.iloc[:3], "exactly 2 horizon days"),
    (lambda d: _set(d, 1, "target_date", pd.Timestamp("2025-01-20")), "one cutoff"),
    (lambda d: _set(d, 0, "q50", -1.0), "negative or infinite"),
    (lambda d: _set(d, 0, "q99", 0.0), "decrease"),
])
def test_check_forecast_rejects(change, message):
    with pytest.raises(ValueError, match=message):
        check_forecast(change(_forecast()), 2)


def test_check_forecast_rejects_bad_horizon():
    with pytest.raises(ValueError, match="horizon must be"):
        check_forecast(_forecast(), 0)


def test_row_quantiles_match_numpy_with_nans():
    rng = np.random.default_rng(1)
    values = rng.normal(size=(6, 9))
    values[rng.uniform(size=values.shape) < 0.3] = np.nan
    values[0] = np.nan
    values[1, 1:] = np.nan
    qs = (0.1, 0.5, 0.8, 0.99)
    got, count = row_quantiles(values, qs)
    assert count.tolist() == np.isfinite(values).sum(axis=1).tolist()
    assert np.isnan(got[0]).all()
    for i in range(1, len(values)):
        np.testing.assert_allclose(got[i], np.nanquantile(values[i], qs))


def test_residual_quantiles_empirical_and_fallbacks():
    qs = QUANTILES
    mean = np.array([[10.0, 12.0], [2.0, 4.0], [3.0, 3.0], [0.0, 0.0]])
    residuals = np.full((4, 30), np.nan)
    residuals[0] = np.linspace(-3, 3, 30)  # enough residuals: empirical
    residuals[1, :5] = 1.0  # too few: count distribution
    history = np.full((4, 5), np.nan)
    history[1] = [0, 0, 10, 0, 0]  # over-dispersed: negative binomial
    history[2] = [3, 3, 3, 3, 3]  # var 0 <= mean: Poisson
    history[3, 0] = 0.0
    out = residual_quantiles(mean, residuals, history, qs, min_residuals=28,
                             spread=np.array([1.0, 2.0]))
    emp = np.quantile(residuals[0], qs)
    np.testing.assert_allclose(out[0, 0], np.maximum.accumulate(np.clip(10 + emp, 0, None)))
    np.testing.assert_allclose(out[0, 1], np.clip(12 + 2 * emp, 0, None))
    phi = np.var(history[1], ddof=1) / np.mean(history[1])
    for h, mu in enumerate(mean[1]):
        nb = stats.nbinom.ppf(qs, mu / (phi - 1), 1 / phi)
        np.testing.assert_allclose(out[1, h], nb)
    np.testing.assert_allclose(out[2, 0], stats.poisson.ppf(qs, 3.0))
    assert (out[3] == 0).all()
    assert (np.diff(out, axis=2) >= 0).all() and (out >= 0).all()
