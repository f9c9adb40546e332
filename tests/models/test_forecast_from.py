"""forecast_from: a fitted model forecasts from new history without refitting, and pickles.

For every member: on its own training frame it equals ``predict()``; after a planted week of
tripled demand it forecasts higher, from the day after the new last date; what ``fit``
learnt is untouched; a pickle round trip changes nothing; segments unseen in ``fit`` (or
unusable) fall back to the weekday mean of their aggregate, flagged, never raising.
"""
from __future__ import annotations

import copy
import logging
import pickle
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from models.baselines import CrostonTSB, MovingAverage, SeasonalNaive, WeekdayProfile
from models.lstm import LSTMForecaster
from models.protocol import ModelConfig, check_forecast
from models.statistical import ArimaAggregate, ProphetAggregate, _SarimaxFit
from models.xgb import XGBForecaster
from tests.models.test_xgb import FAST as XGB_FAST
from tests.models.test_xgb import feature_table

START = pd.Timestamp("2025-01-06")  # a Monday
WEEK = np.array([1.0, 0.7, 0.7, 0.8, 1.1, 1.6, 1.3])
DAYS, H = 84, 7
CFG = ModelConfig(seed=5)
KEYS = ["store_id", "sku_id"]
FESTIVALS = pd.DataFrame({"holiday": ["holi"], "ds": ["2025-03-14"]})
#: About a second a fit on one thread (see tests/models/test_lstm.py).
LSTM_FAST = dict(epochs=8, max_windows=800, batch_size=128, learning_rate=1e-2,
                 num_threads=1, hidden=16)


def demand(days: int = DAYS + H, shift: float = 3.0, seed: int = 0) -> pd.DataFrame:
    """Eight Poisson series around level x weekday profile in two segments, with a promotion
    flag; demand is ``shift`` times higher from day ``DAYS`` on (the week after the fit)."""
    rng = np.random.default_rng(seed)
    dates = START + pd.to_timedelta(np.arange(days), unit="D")
    boost = np.where(np.arange(days) >= DAYS, shift, 1.0)
    parts = []
    for i in range(8):
        mu = rng.uniform(5, 25) * np.resize(WEEK, days) * boost
        parts.append(pd.DataFrame({"store_id": i // 4, "sku_id": i % 4, "date": dates,
                                   "segment": "dairy" if i % 4 < 2 else "snacks",
                                   "on_promotion": False, "y": rng.poisson(mu)}))
    out = pd.concat(parts, ignore_index=True)
    out["y"] = out["y"].astype("float64")
    return out


def upto(df: pd.DataFrame, days: int) -> pd.DataFrame:
    return df[df["date"] < START + pd.Timedelta(days=days)].reset_index(drop=True)


TRAIN = upto(demand(), DAYS)
SHIFTED = demand()  # TRAIN and a week of tripled demand
NEW_LAST = SHIFTED["date"].max()


def assert_starts_after(fc: pd.DataFrame, last: pd.Timestamp, n_series: int) -> None:
    check_forecast(fc, H)
    assert len(fc) == n_series * H
    assert (fc["target_date"] == last + pd.to_timedelta(fc["horizon"], unit="D")).all()


def roundtrip(model):
    return pickle.loads(pickle.dumps(model))


# ------------------------------------------------------------------------------ baselines
@pytest.mark.parametrize("model", [SeasonalNaive, MovingAverage, CrostonTSB, WeekdayProfile])
def test_baselines(model):
    fitted = model().fit(TRAIN, replace(CFG, window=14))
    before = fitted.predict(H)
    pd.testing.assert_frame_equal(fitted.forecast_from(TRAIN, H), before)
    shifted = fitted.forecast_from(SHIFTED, H)
    assert_starts_after(shifted, NEW_LAST, 8)
    assert shifted["mean"].sum() > 1.5 * before["mean"].sum()
    pd.testing.assert_frame_equal(fitted.predict(H), before)  # self untouched
    assert fitted.cutoff == TRAIN["date"].max()
    again = roundtrip(fitted)
    pd.testing.assert_frame_equal(again.predict(H), before)
    pd.testing.assert_frame_equal(again.forecast_from(SHIFTED, H), shifted)
    # a series unseen in fit is just forecast: the baselines learn no per-series state
    extra = SHIFTED.assign(store_id=SHIFTED["store_id"] + 10)
    both = fitted.forecast_from(pd.concat([SHIFTED, extra]), H)
    assert_starts_after(both, NEW_LAST, 16)


def test_baselines_keep_their_settings():
    fitted = MovingAverage(window=7).fit(TRAIN, CFG)
    last_week = SHIFTED[SHIFTED["date"] > NEW_LAST - pd.Timedelta(days=7)]
    level = last_week.groupby(KEYS)["y"].mean().to_numpy()
    fc = fitted.forecast_from(SHIFTED, H)
    assert np.allclose(fc.groupby(KEYS)["mean"].first().to_numpy(), level)
    with pytest.raises(RuntimeError, match="before predict"):
        MovingAverage().forecast_from(TRAIN, H)


# ----------------------------------------------------------------------------------- lstm
@pytest.fixture(scope="module")
def lstm():
    model = LSTMForecaster(**LSTM_FAST).fit(TRAIN, CFG)
    return model, model.predict(H)


def test_lstm(lstm):
    model, before = lstm
    state = copy.deepcopy(model._net.state_dict())
    pd.testing.assert_frame_equal(model.forecast_from(TRAIN, H), before)
    shifted = model.forecast_from(SHIFTED, H)
    assert_starts_after(shifted, NEW_LAST, 8)
    assert shifted["mean"].sum() > 1.5 * before["mean"].sum()
    after = model._net.state_dict()
    assert all(torch.equal(state[k], after[k]) for k in state)
    pd.testing.assert_frame_equal(model.predict(H), before)
    assert model.cutoff == TRAIN["date"].max()
    again = roundtrip(model)
    pd.testing.assert_frame_equal(again.predict(H), before)
    pd.testing.assert_frame_equal(again.forecast_from(SHIFTED, H), shifted)


def test_lstm_reads_future_covariates_and_unseen_series(lstm):
    model, _ = lstm
    assert model.covariates_ == ("on_promotion",)
    future = SHIFTED[SHIFTED["date"] > TRAIN["date"].max()][[*KEYS, "date", "on_promotion"]]
    pd.testing.assert_frame_equal(model.forecast_from(TRAIN, H, future=future),
                                  model.predict(H, future=future))
    extra = SHIFTED.assign(store_id=SHIFTED["store_id"] + 10)
    fc = model.forecast_from(pd.concat([SHIFTED, extra]), H, quantiles=(0.1, 0.5, 0.9))
    check_forecast(fc, H, (0.1, 0.5, 0.9))
    assert fc["store_id"].nunique() == 4
    with pytest.raises(ValueError, match="on_promotion"):
        model.forecast_from(SHIFTED.drop(columns="on_promotion"), H)
    with pytest.raises(ValueError, match="exceeds"):
        model.forecast_from(SHIFTED, H + 1)


def test_lstm_warns_on_a_stale_or_earlier_cutoff(lstm, caplog):
    model, _ = lstm
    later = SHIFTED.assign(date=SHIFTED["date"] + pd.Timedelta(days=60))
    with caplog.at_level(logging.WARNING, logger="models.lstm"):
        check_forecast(model.forecast_from(later, H), H)
        check_forecast(model.forecast_from(upto(TRAIN, DAYS - 14), H), H)
    assert "may be stale" in caplog.text and "before the fit's cutoff" in caplog.text


# ---------------------------------------------------------------------------- statistical
MODELS = {"arima": lambda **kw: ArimaAggregate(**kw),
          "prophet": lambda **kw: ProphetAggregate(festivals=FESTIVALS,
                                                   uncertainty_samples=50, **kw)}

RISE = {"arima": 1.05, "prophet": 1.5}


def learnt(model) -> list:
    """What fit learnt per segment: SARIMAX parameters, Prophet's parameter arrays."""
    out = []
    for a in model._aggregates:
        if isinstance(a.model, _SarimaxFit):
            out.append(a.model.params.copy())
        else:
            out.append({k: np.array(v) for k, v in a.model.model.params.items()})
    return out


@pytest.fixture(scope="module", params=list(MODELS))
def aggregate(request):
    model = MODELS[request.param]().fit(TRAIN, CFG)
    assert not model.report_["fallback"].any(), model.report_
    return model, model.predict(H)


def test_statistical(aggregate):
    model, before = aggregate
    params, report = learnt(model), model.report_.copy()
    pd.testing.assert_frame_equal(model.forecast_from(TRAIN, H), before)
    assert not model.forecast_report_["fallback"].any()
    shifted = model.forecast_from(SHIFTED, H)
    assert_starts_after(shifted, NEW_LAST, 8)
    # Prophet's level correction takes the new level at once; the fitted SARIMAX is close
    # to a seasonal exponential smoother (seasonal AR ~ 1, MA ~ -0.7..-0.97): a week moves
    # it a little, in the right direction
    assert shifted["mean"].sum() > RISE[model.name] * before["mean"].sum()
    assert (model.forecast_report_["method"] == model._method).all()
    for old, new in zip(params, learnt(model), strict=True):
        if isinstance(old, dict):
            assert all(np.array_equal(old[k], new[k]) for k in old)
        else:
            assert np.array_equal(old, new)
    pd.testing.assert_frame_equal(model.report_, report)
    pd.testing.assert_frame_equal(model.predict(H), before)
    again = roundtrip(model)
    pd.testing.assert_frame_equal(again.predict(H), before)
    pd.testing.assert_frame_equal(again.forecast_from(SHIFTED, H), shifted)


def test_prophet_level_correction_is_the_new_days_mean_residual():
    model = MODELS["prophet"](level_days=0).fit(TRAIN, CFG)
    plain = model.forecast_from(SHIFTED, H)
    # without the correction Prophet ignores the new week (its trend is the fit's)
    assert plain["mean"].sum() < 1.3 * model.predict(H)["mean"].sum()
    for a in model._aggregates:
        a.model.level_days = 7
    corrected = model.forecast_from(SHIFTED, H)
    assert corrected["mean"].sum() > 1.5 * plain["mean"].sum()


def test_statistical_unseen_and_unusable_segments_fall_back(aggregate):
    model, _ = aggregate
    new = SHIFTED[SHIFTED["store_id"] == 0].assign(store_id=5, segment="frozen")
    fc = model.forecast_from(pd.concat([SHIFTED, new]), H)
    assert_starts_after(fc, NEW_LAST, 12)
    report = model.forecast_report_.set_index("segment")
    assert report.loc["frozen", "fallback"] and report.loc["frozen", "method"] == (
        "weekday_mean")
    assert "not seen in fit" in report.loc["frozen", "reason"]
    assert not report.loc[["dairy", "snacks"], "fallback"].any()
    # the fallback is the mean of the same weekday over the new aggregate's last 4 weeks
    agg = new.groupby("date")["y"].sum()
    want = [np.mean([agg[NEW_LAST + pd.Timedelta(days=h - 7 * k)] for k in range(1, 5)])
            for h in range(1, 8)]
    assert np.allclose(fc[fc["store_id"] == 5].groupby("horizon")["mean"].sum(), want)
    # too little new history: every segment on the fallback, no exception
    short = model.forecast_from(SHIFTED[SHIFTED["date"] > NEW_LAST - pd.Timedelta(days=10)], H)
    assert_starts_after(short, NEW_LAST, 8)
    assert model.forecast_report_["reason"].str.contains("too short").all()


def test_arima_fallbacks_of_fit_and_failures_are_flagged(monkeypatch, caplog):
    capped = ArimaAggregate(max_aggregates=1).fit(TRAIN, CFG)
    check_forecast(capped.forecast_from(SHIFTED, H), H)
    report = capped.forecast_report_
    assert report["reason"].str.contains("fallback in fit: beyond max_aggregates").sum() == 1

    def broken(*args, **kwargs):
        raise np.linalg.LinAlgError("singular")

    monkeypatch.setattr(_SarimaxFit, "forecast", broken)
    with caplog.at_level(logging.WARNING, logger="models.statistical"):
        check_forecast(capped.forecast_from(SHIFTED, H), H)
    assert capped.forecast_report_["fallback"].all()
    assert capped.forecast_report_["reason"].str.contains("forecast failed: LinAlgError").sum() == 1
    assert "weekday-mean fallback" in caplog.text


def test_statistical_warns_on_a_stale_or_earlier_cutoff(aggregate, caplog):
    model, _ = aggregate
    later = SHIFTED.assign(date=SHIFTED["date"] + pd.Timedelta(days=60))
    with caplog.at_level(logging.WARNING, logger="models.statistical"):
        check_forecast(model.forecast_from(later, H), H)
        check_forecast(model.forecast_from(upto(TRAIN, DAYS - 14), H), H)
    assert "may be stale" in caplog.text and "before the fit's cutoff" in caplog.text


# ------------------------------------------------------------------------------------ xgb
def test_xgb_forecasts_from_the_cutoff_and_pickles():
    data = feature_table(days=50, stores=2, skus=2)
    cutoff = data["date"].max() - pd.Timedelta(days=H)
    train, future = data[data["date"] <= cutoff], data[data["date"] > cutoff]
    model = XGBForecaster(replace(XGB_FAST, n_estimators=30)).fit(train, CFG)
    before = model.predict(H, future=future)
    pd.testing.assert_frame_equal(model.forecast_from(train, H, future=data), before)
    again = roundtrip(model)
    pd.testing.assert_frame_equal(again.predict(H, future=future), before)
    earlier = train[train["date"] <= cutoff - pd.Timedelta(days=H)]
    fc = again.forecast_from(earlier, H, future=data)
    assert (fc["target_date"] - pd.to_timedelta(fc["horizon"], unit="D")
            == earlier["date"].max()).all()
    with pytest.raises(ValueError, match="no feature row"):
        model.forecast_from(data, H, future=future)
