"""Prophet and ARIMA on aggregates: protocol, planted patterns, shares, fallbacks."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from models.metrics import evaluate
from models.protocol import Forecaster, ModelConfig, check_forecast, quantile_columns
from models.statistical import ArimaAggregate, ProphetAggregate

START = pd.Timestamp("2025-01-06")  # a Monday
WEEK = np.array([1.0, 0.7, 0.7, 0.8, 1.1, 1.6, 1.3])
DAYS, H = 112, 7
CFG = ModelConfig(seed=3)
KEYS = ["store_id", "sku_id"]
FESTIVALS = pd.DataFrame({"holiday": ["diwali", "holi"], "ds": ["2025-10-20", "2025-03-14"],
                          "lower_window": [-2, 0], "upper_window": [1, 0]})


def frame(seed: int = 0, days: int = DAYS + H) -> pd.DataFrame:
    """Two segments of Poisson series around level x weekday profile, one of intermittent
    series (p = 0.15); a ``segment`` and a ``category`` column."""
    rng = np.random.default_rng(seed)
    profile = np.resize(WEEK, days)
    parts = []
    for store in range(3):
        for sku in range(4):
            segment = "c1-dairy" if sku < 2 else "c1-snacks"
            parts.append(pd.DataFrame({"store_id": store, "sku_id": sku, "segment": segment,
                                       "y": rng.poisson(rng.uniform(4, 25) * profile)}))
    for sku in range(3):
        y = rng.binomial(1, 0.15, days) * rng.poisson(2, days)
        parts.append(pd.DataFrame({"store_id": 7, "sku_id": sku, "segment": "c2-rare", "y": y}))
    for p in parts:
        p["date"] = START + pd.to_timedelta(np.arange(days), unit="D")
    out = pd.concat(parts, ignore_index=True)
    out["y"] = out["y"].astype("float64")
    out["category"] = np.where(out["segment"] == "c1-snacks", "snacks", "dairy")
    return out


def split(df: pd.DataFrame, days: int = DAYS) -> tuple[pd.DataFrame, pd.DataFrame]:
    cutoff = START + pd.Timedelta(days=days - 1)
    test = df[df["date"] > cutoff][[*KEYS, "date", "y"]]
    return df[df["date"] <= cutoff].copy(), test


def flat_mean(train: pd.DataFrame, fc: pd.DataFrame) -> pd.DataFrame:
    recent = train[train["date"] > train["date"].max() - pd.Timedelta(days=28)]
    level = recent.groupby(KEYS)["y"].mean().rename("level").reset_index()
    return fc.drop(columns="mean").merge(level, on=KEYS).rename(columns={"level": "mean"})


MODELS = {"arima": lambda **kw: ArimaAggregate(**kw),
          "prophet": lambda **kw: ProphetAggregate(festivals=FESTIVALS, **kw)}


@pytest.fixture(scope="module", params=list(MODELS))
def fitted(request):
    train, test = split(frame())
    model = MODELS[request.param]().fit(train, CFG)
    return model, train, test, model.predict(H)


def test_follows_the_protocol(fitted):
    model, train, _, fc = fitted
    assert isinstance(model, Forecaster)
    check_forecast(fc, H)
    assert len(fc) == train.groupby(KEYS).ngroups * H
    assert (fc["target_date"] == train["date"].max()
            + pd.to_timedelta(fc["horizon"], unit="D")).all()
    other = model.predict(10, quantiles=(0.1, 0.5, 0.9))
    check_forecast(other, 10, (0.1, 0.5, 0.9))
    report = model.report_.set_index("segment")
    assert sorted(report.index) == ["c1-dairy", "c1-snacks", "c2-rare"]
    assert not report["fallback"].any(), report
    assert (report["method"] == {"arima": "sarimax", "prophet": "prophet"}[model.name]).all()
    assert (report["fit_seconds"] > 0).all() and model.fit_seconds_ >= report["fit_seconds"].sum()


def test_learns_a_weekly_pattern(fitted):
    _, train, test, fc = fitted
    dense = fc[fc["store_id"] < 7]
    actual = test[test["store_id"] < 7]
    wape = evaluate(actual, dense, train)["wape"].iloc[0]
    flat = evaluate(actual, flat_mean(train, dense), train)["wape"].iloc[0]
    assert wape < 0.75 * flat, (wape, flat)
    dow = dense["target_date"].dt.dayofweek
    assert dense.loc[dow == 5, "mean"].sum() > 1.8 * dense.loc[dow == 1, "mean"].sum()
    metrics = evaluate(actual, dense, train)
    assert 0.6 <= metrics["coverage_q80"].iloc[0] and metrics["coverage_q99"].iloc[0] >= 0.85


def test_intermittent_series_are_handled(fitted):
    _, train, _, fc = fitted
    rare = fc[fc["store_id"] == 7]
    level = train.loc[train["store_id"] == 7, "y"].mean()
    assert len(rare) == 3 * H
    assert rare["mean"].between(0, 3 * level + 0.5).all()
    assert (np.diff(rare[quantile_columns()].to_numpy(), axis=1) >= 0).all()


def test_shares_sum_to_one_and_disaggregation_adds_up(fitted):
    model, train, _, fc = fitted
    shares = model.shares_
    assert np.allclose(shares.groupby("segment")["share"].sum(), 1.0)
    # share = the series' part of its segment's last 28 days
    recent = train[train["date"] > train["date"].max() - pd.Timedelta(days=28)]
    one = recent[(recent["store_id"] == 0) & (recent["sku_id"] == 0)]["y"].sum()
    seg = recent[recent["segment"] == "c1-dairy"]["y"].sum()
    got = shares[(shares["store_id"] == 0) & (shares["sku_id"] == 0)]["share"].iloc[0]
    assert got == pytest.approx(one / seg)
    agg = model.aggregate_forecast(H)
    summed = (fc.merge(shares[[*KEYS, "segment"]], on=KEYS)
              .groupby(["segment", "horizon"])["mean"].sum().reset_index())
    both = agg.merge(summed, on=["segment", "horizon"], suffixes=("", "_series"))
    assert len(both) == 3 * H
    assert np.allclose(both["mean"], both["mean_series"])


def test_deterministic(fitted):
    model, train, _, fc = fitted
    again = MODELS[model.name]().fit(train, CFG).predict(H)
    pd.testing.assert_frame_equal(fc, again)


def test_segments_default_to_category_then_one_aggregate():
    train, _ = split(frame(seed=1))
    by_category = ArimaAggregate().fit(train.drop(columns="segment"), CFG)
    assert sorted(by_category.report_["segment"]) == ["dairy", "snacks"]
    single = ArimaAggregate().fit(train.drop(columns=["segment", "category"]), CFG)
    assert single.report_["segment"].tolist() == ["all"]
    assert single.shares_["share"].sum() == pytest.approx(1.0)


def test_arima_falls_back_to_the_weekday_mean_on_degenerate_series():
    train, _ = split(frame(seed=2))
    constant = pd.DataFrame({"store_id": 8, "sku_id": 0, "segment": "flat",
                             "date": START + pd.to_timedelta(np.arange(DAYS), unit="D"),
                             "y": 5.0})
    short = pd.DataFrame({"store_id": 8, "sku_id": 1, "segment": "new",
                          "date": START + pd.to_timedelta(np.arange(DAYS - 10, DAYS), unit="D"),
                          "y": [3.0, 4, 2, 5, 3, 4, 6, 2, 3, 4]})
    model = ArimaAggregate().fit(pd.concat([train, constant, short]), CFG)
    report = model.report_.set_index("segment")
    assert report.loc["flat", "fallback"] and "constant" in report.loc["flat", "reason"]
    assert report.loc["new", "fallback"] and "too short" in report.loc["new", "reason"]
    assert (report.loc[["flat", "new"], "method"] == "weekday_mean").all()
    assert not report.loc[["c1-dairy", "c1-snacks"], "fallback"].any()
    fc = model.predict(H)
    check_forecast(fc, H)
    flat = fc[(fc["store_id"] == 8) & (fc["sku_id"] == 0)]
    assert np.allclose(flat[["mean", *quantile_columns()]], 5.0)  # exact: no spread at all
    new = fc[(fc["store_id"] == 8) & (fc["sku_id"] == 1)].set_index("horizon")["mean"]
    # the same weekday's mean over the weeks observed: one week for the first four target
    # days (3 4 2 | 5 3 4 6 | 2 3 4 are the ten days), two for the last three
    assert new.tolist() == [5.0, 3, 4, 6, (2 + 3) / 2, (3 + 4) / 2, (4 + 2) / 2]


def test_arima_flags_non_convergence_and_the_aggregate_cap():
    train, _ = split(frame(seed=3))
    stalled = ArimaAggregate(maxiter=1).fit(train, CFG)
    assert stalled.report_["fallback"].all()
    assert stalled.report_["reason"].str.contains("did not converge").all()
    check_forecast(stalled.predict(H), H)
    capped = ArimaAggregate(max_aggregates=1).fit(train, CFG)
    report = capped.report_.set_index("segment")
    assert not report.loc["c1-dairy", "fallback"] or not report.loc["c1-snacks", "fallback"]
    assert report["reason"].str.contains("max_aggregates").sum() == 2
    searched = ArimaAggregate(order_search=True).fit(train[train["segment"] == "c1-dairy"], CFG)
    assert "aic=" in searched.report_["detail"].iloc[0]


def reference_quantile(mean: float, var: float, level: float) -> float:
    """Negative binomial with this mean and variance if var > mean, else normal."""
    if mean <= 0:
        return 0.0
    if var > mean:
        return float(stats.nbinom.ppf(level, mean ** 2 / (var - mean), mean / var))
    return max(mean + float(stats.norm.ppf(level)) * var ** 0.5, 0.0)


def smooth_frame(seed: int = 8) -> pd.DataFrame:
    """High-volume series, each its own segment, with little noise: forecast tightly."""
    rng = np.random.default_rng(seed)
    dates = START + pd.to_timedelta(np.arange(DAYS), unit="D")
    level = 500 * np.resize(WEEK, DAYS)
    return pd.concat([pd.DataFrame({"store_id": 1, "sku_id": k, "segment": f"s{k}",
                                    "date": dates, "y": level + rng.normal(0, 3, DAYS)})
                      for k in range(2)], ignore_index=True)


@pytest.mark.parametrize("case", ["counts", "smooth"])
def test_quantiles_against_a_row_by_row_reference(case):
    """Share x aggregate sd plus the series' dispersion x mean, one row at a time."""
    if case == "counts":
        train, _ = split(frame(seed=4))
        train = train[train["store_id"] < 7]
    else:
        train = smooth_frame()
    model = ArimaAggregate().fit(train, CFG)
    agg = model.aggregate_forecast(H).set_index(["segment", "horizon"])
    shares = model.shares_.set_index(KEYS)
    fc = model.predict(H)
    for row in fc.itertuples():
        series = shares.loc[(row.store_id, row.sku_id)]
        a = agg.loc[(series["segment"], row.horizon)]
        mean = series["share"] * a["mean"]
        var = (series["share"] * a["sd"]) ** 2 + series["dispersion"] * mean
        assert row.mean == pytest.approx(mean)
        for col, level in (("q50", 0.5), ("q80", 0.8), ("q99", 0.99)):
            assert getattr(row, col) == pytest.approx(reference_quantile(mean, var, level)), col
    if case == "smooth":  # variance below the mean: the normal branch, median = mean
        assert np.allclose(fc["q50"], fc["mean"])
        assert ((fc["q99"] - fc["mean"]) < 0.1 * fc["mean"]).all()


def test_a_series_that_is_its_whole_segment_has_no_own_noise():
    train, _ = split(frame(seed=4))
    one = train[(train["store_id"] == 0) & (train["sku_id"] == 0)]
    model = ArimaAggregate().fit(one, CFG)
    assert model.shares_["share"].iloc[0] == 1.0
    assert model.shares_["dispersion"].iloc[0] == pytest.approx(0.0, abs=1e-9)


def test_prophet_learns_a_festival_from_the_holidays_frame():
    rng = np.random.default_rng(6)
    days = 140
    dates = START + pd.to_timedelta(np.arange(days + H), unit="D")
    fest_days = dates[[20, 45, 73, 99, 124, days + 3]]  # on different weekdays
    festivals = pd.DataFrame({"holiday": "sale", "ds": fest_days})
    boost = np.where(dates.isin(fest_days), 3.0, 1.0)
    df = pd.DataFrame({"store_id": 1, "sku_id": np.repeat([1, 2], days + H),
                       "date": np.tile(dates, 2),
                       "y": rng.poisson(np.tile(20 * np.resize(WEEK, days + H) * boost, 2))})
    df["y"] = df["y"].astype("float64")
    train, _ = split(df, days)
    fc = ProphetAggregate(festivals=festivals).fit(train, CFG).predict(H)
    totals = fc.groupby("horizon")["mean"].sum()
    plain = ProphetAggregate().fit(train, CFG).predict(H).groupby("horizon")["mean"].sum()
    assert totals[4] > 1.8 * plain[4]  # the festival day (cutoff + 4)
    assert np.allclose(totals.drop(4), plain.drop(4), rtol=0.25)


def test_errors_speak():
    with pytest.raises(RuntimeError, match="before predict"):
        ArimaAggregate().predict(H)
    with pytest.raises(ValueError, match="festivals lacks"):
        ProphetAggregate(festivals=pd.DataFrame({"name": ["x"], "ds": ["2025-01-01"]}))
    with pytest.raises(ValueError, match="lower_window"):
        ProphetAggregate(festivals=pd.DataFrame({"holiday": ["x"], "ds": ["2025-01-01"],
                                                 "lower_window": [2]}))
    with pytest.raises(ValueError, match="min_days"):
        ArimaAggregate(min_days=3)
    train, _ = split(frame(seed=5))
    with pytest.raises(ValueError, match="horizon"):
        ArimaAggregate().fit(train, CFG).predict(0)


def _chunked(model, history: pd.DataFrame, chunks: list[list[int]], totals) -> pd.DataFrame:
    for stores in chunks:
        model.add_totals(totals, history[history["store_id"].isin(stores)])
    parts = [model.forecast_from(history[history["store_id"].isin(stores)], H, totals=totals)
             for stores in chunks]
    return pd.concat(parts, ignore_index=True).sort_values(
        [*KEYS, "horizon"], ignore_index=True)


def test_forecast_from_chunks_of_stores_with_totals_equals_one_chunk(fitted):
    model, train, _, _ = fitted
    history = train[train["date"] > train["date"].max() - pd.Timedelta(days=55)]
    start, end = history["date"].min(), history["date"].max()
    one = _chunked(model, history, [[0, 1, 2, 7]], model.new_totals(start, end))
    split_up = _chunked(model, history, [[0], [1, 2], [7]], model.new_totals(start, end))
    pd.testing.assert_frame_equal(split_up, one, check_exact=True)
    # the same forecasts as one call without totals (up to the order of the sums)
    plain = model.forecast_from(history, H).sort_values([*KEYS, "horizon"], ignore_index=True)
    pd.testing.assert_frame_equal(one, plain, rtol=1e-9)
    # negative case: each chunk on its own aggregates gives other shares, other forecasts
    alone = pd.concat([model.forecast_from(history[history["store_id"].isin(s)], H)
                       for s in ([0], [1, 2], [7])], ignore_index=True).sort_values(
        [*KEYS, "horizon"], ignore_index=True)
    assert not np.allclose(alone["mean"], one["mean"])


def test_totals_need_whole_stores_in_order_and_every_segment(fitted):
    model, train, _, _ = fitted
    start, end = train["date"].min(), train["date"].max()
    totals = model.add_totals(model.new_totals(start, end), train[train["store_id"] == 2])
    with pytest.raises(ValueError, match=r"store 1 comes after store 2.*increasing store_id"):
        model.add_totals(totals, train[train["store_id"] == 1])
    with pytest.raises(ValueError, match=r"segment\(s\) \['c2-rare'\].*add_totals"):
        model.forecast_from(train[train["store_id"] == 7], H, totals=totals)
    late = model.new_totals(start + pd.Timedelta(days=7), end)
    with pytest.raises(ValueError, match="outside the totals' days"):
        model.add_totals(late, train[train["store_id"] == 0])
