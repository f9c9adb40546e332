"""Baselines follow the protocol and learn planted patterns on tiny data."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.baselines import CrostonTSB, MovingAverage, SeasonalNaive
from models.protocol import Forecaster, ModelConfig, check_forecast, quantile_columns

START = pd.Timestamp("2025-03-03")  # a Monday
CFG = ModelConfig()
ALL = (SeasonalNaive, MovingAverage, CrostonTSB)


def frame(series: dict[tuple[int, int], list[float | None]],
          start: pd.Timestamp = START) -> pd.DataFrame:
    """Long frame from {(store, sku): daily values}; None = no row that day."""
    rows = [(s, k, start + pd.Timedelta(days=i), float(v))
            for (s, k), values in series.items() for i, v in enumerate(values) if v is not None]
    return pd.DataFrame(rows, columns=["store_id", "sku_id", "date", "y"])


WEEK = [5.0, 3.0, 3.0, 4.0, 6.0, 12.0, 9.0]


@pytest.mark.parametrize("model", ALL)
@pytest.mark.parametrize("horizon", [1, 7, 10])
def test_follows_the_protocol(model, horizon):
    rng = np.random.default_rng(3)
    train = frame({(1, 1): list(rng.poisson(4, 40).astype(float)),
                   (1, 2): [0.0] * 35 + [2.0],  # short, intermittent
                   (2, 1): list(rng.poisson(20, 12).astype(float))})
    train["price"] = 10.0  # extra feature columns are ignored
    fitted = model().fit(train, CFG)
    assert isinstance(fitted, model) and isinstance(fitted, Forecaster)
    fc = fitted.predict(horizon)
    check_forecast(fc, horizon)
    assert len(fc) == 3 * horizon
    assert (fc["target_date"] == train["date"].max()
            + pd.to_timedelta(fc["horizon"], unit="D")).all(), "one common cutoff"
    qs = (0.1, 0.5, 0.9)
    other = fitted.predict(horizon, quantiles=qs, future=train)
    check_forecast(other, horizon, qs)
    assert list(other.columns)[-3:] == quantile_columns(qs)


@pytest.mark.parametrize("model", ALL)
def test_predict_before_fit_and_bad_horizon(model):
    with pytest.raises(RuntimeError, match="before predict"):
        model().predict(7)
    fitted = model().fit(frame({(1, 1): [1.0, 2.0, 3.0]}), CFG)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="horizon"):
            fitted.predict(bad)
    with pytest.raises(ValueError, match="whole percent"):
        fitted.predict(3, quantiles=(0.5, 0.975))


def test_seasonal_naive_reproduces_a_weekly_pattern():
    train = frame({(1, 1): WEEK * 6, (1, 2): [2 * v for v in WEEK] * 6})
    fc = SeasonalNaive().fit(train, CFG).predict(14)
    for sku, scale in ((1, 1), (2, 2)):
        got = fc.loc[fc["sku_id"] == sku].sort_values("horizon")
        assert got["mean"].tolist() == [scale * v for v in WEEK] * 2
        # no noise: every residual is 0, so the quantiles collapse onto the mean
        for col in quantile_columns():
            assert np.allclose(got[col], got["mean"])
    assert (fc["target_date"].dt.dayofweek == (fc["horizon"] - 1) % 7).all()


def test_seasonal_naive_steps_back_over_a_missing_week_and_short_history():
    values: list[float | None] = WEEK + [v + 100 for v in WEEK]
    values[7 + 2] = None  # last Wednesday unobserved: fall back to the one before
    fc = SeasonalNaive().fit(frame({(1, 1): values, (1, 2): [4.0, 6.0]}), CFG).predict(7)
    one = fc.loc[fc["sku_id"] == 1, "mean"].tolist()
    assert one == [v + 100 for v in WEEK[:2]] + [WEEK[2]] + [v + 100 for v in WEEK[3:]]
    two = fc.loc[fc["sku_id"] == 2].set_index("horizon")["mean"]
    # series 2 exists on the Monday and Tuesday only; other weekdays use its mean
    assert two.tolist() == [4.0, 6.0, 5.0, 5.0, 5.0, 5.0, 5.0]


def test_seasonal_naive_season_length_from_config_or_constructor():
    train = frame({(1, 1): [1.0, 2.0, 3.0] * 4})
    assert SeasonalNaive().fit(train, ModelConfig(season_length=3)).predict(3)["mean"].tolist() \
        == [1.0, 2.0, 3.0]
    assert SeasonalNaive(season_length=1).fit(train, CFG).predict(2)["mean"].tolist() \
        == [3.0, 3.0]


def test_moving_average_is_the_mean_of_the_last_window_days():
    values: list[float | None] = [100.0, 1.0, 2.0, None, 6.0]
    fc = MovingAverage(window=4).fit(frame({(1, 1): values}), CFG).predict(3)
    assert fc["mean"].tolist() == [3.0, 3.0, 3.0]  # (1 + 2 + 6) / 3, the gap ignored
    cfg_window = MovingAverage().fit(frame({(1, 1): values}), ModelConfig(window=2)).predict(1)
    assert cfg_window["mean"].tolist() == [6.0]
    # series 2 stopped long before the cutoff: nothing in its window, whole-history mean
    stale = frame({(1, 1): [1.0] * 10, (1, 2): [4.0, 8.0]})
    fc = MovingAverage(window=3).fit(stale, CFG).predict(1)
    assert fc.set_index("sku_id")["mean"].to_dict() == {1: 1.0, 2: 6.0}


def _tsb_reference(y: list[float], alpha: float, beta: float) -> float:
    nonzero = [v for v in y if v > 0]
    z = sum(nonzero) / len(nonzero) if nonzero else 0.0
    p = len(nonzero) / len(y)
    for v in y:
        if v > 0:
            p += beta * (1 - p)
            z += alpha * (v - z)
        else:
            p += beta * (0 - p)
    return p * z


def _croston_reference(y: list[float], alpha: float, sba: bool) -> float:
    nonzero = [v for v in y if v > 0]
    if not nonzero:
        return 0.0
    z, q, since = sum(nonzero) / len(nonzero), len(y) / len(nonzero), 0
    for v in y:
        since += 1
        if v > 0:
            z += alpha * (v - z)
            q += alpha * (since - q)
            since = 0
    return (1 - alpha / 2 if sba else 1.0) * z / q


def test_croston_variants_match_plain_recursions():
    rng = np.random.default_rng(5)
    series = {(1, k): list((rng.uniform(size=30) < 0.3) * rng.integers(1, 6, 30) * 1.0)
              for k in range(4)}
    series[(1, 4)] = [0.0] * 30
    train = frame(series)
    for method in ("tsb", "croston", "sba"):
        model = CrostonTSB(alpha=0.2, beta=0.15, method=method)
        assert model.name == method
        got = model.fit(train, CFG).predict(2)
        for (_, sku), y in series.items():
            want = (_tsb_reference(y, 0.2, 0.15) if method == "tsb"
                    else _croston_reference(y, 0.2, method == "sba"))
            assert got.loc[got["sku_id"] == sku, "mean"].tolist() == pytest.approx([want] * 2)
    assert CrostonTSB().fit(train, ModelConfig(croston_method="croston")).name == "croston"


def test_tsb_learns_the_rate_of_an_intermittent_series():
    rng = np.random.default_rng(11)
    occurs, size = 0.2, 3.0  # true mean demand 0.6 a day
    series = {(1, k): list((rng.uniform(size=200) < occurs) * size) for k in range(20)}
    fc = CrostonTSB(alpha=0.05, beta=0.05).fit(frame(series), CFG).predict(7)
    assert fc["mean"].mean() == pytest.approx(occurs * size, rel=0.15)
    check_forecast(fc, 7)
    # 80% of days see no demand: true median 0, true q90..q99 = size
    assert (fc["q50"] < 0.25).all()
    assert fc["q95"].between(0.85 * size, 1.2 * size).all()


def test_tsb_decays_after_the_series_goes_quiet_while_croston_does_not():
    y = [4.0, 0.0] * 10 + [0.0] * 20
    train = frame({(1, 1): y})
    tsb = CrostonTSB(alpha=0.2, beta=0.2).fit(train, CFG).predict(1)["mean"].item()
    croston = CrostonTSB(alpha=0.2, method="croston").fit(train, CFG).predict(1)["mean"].item()
    assert tsb < 0.1 < croston


@pytest.mark.parametrize("model", ALL)
def test_quantiles_are_monotone_non_negative_and_cover_noise(model):
    rng = np.random.default_rng(2)
    series = {(1, k): list(rng.poisson(lam, 84).astype(float))
              for k, lam in enumerate((0.3, 2.0, 15.0, 60.0))}
    fc = model().fit(frame(series), CFG).predict(7)
    qs = fc[quantile_columns()].to_numpy()
    assert (np.diff(qs, axis=1) >= 0).all() and (qs >= 0).all()
    big = fc[fc["sku_id"] == 3]
    assert (big["q95"] > big["mean"] + 5).all(), "noise must widen the upper quantiles"


def test_short_history_uses_count_distribution():
    fc = MovingAverage(window=3).fit(frame({(1, 1): [2.0, 2.0, 2.0]}), CFG).predict(1)
    # three days give no residuals; var 0 <= mean: Poisson(2)
    assert fc[quantile_columns()].iloc[0].tolist() == [2.0, 3.0, 4.0, 5.0, 6.0]


@pytest.mark.parametrize(("build", "message"), [
    (lambda: MovingAverage(window=0), "window"),
    (lambda: SeasonalNaive(season_length=0), "season_length"),
    (lambda: CrostonTSB(alpha=0.0), "alpha"),
    (lambda: CrostonTSB(beta=2.0), "beta"),
    (lambda: CrostonTSB(method="ses"), "method"),
])
def test_bad_hyperparameters(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_bad_training_frame_is_rejected():
    with pytest.raises(ValueError, match="missing column"):
        SeasonalNaive().fit(pd.DataFrame({"store_id": [1], "sku_id": [1]}), CFG)
    with pytest.raises(ValueError, match="negative"):
        MovingAverage().fit(frame({(1, 1): [1.0, -2.0]}), CFG)
