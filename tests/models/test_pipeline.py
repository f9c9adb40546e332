"""The ensemble as one object, and the rolling-origin backtest, on tiny hand-made panels."""
from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from models.backtest import ENSEMBLE, ORACLE, backtest, oracle_quantiles
from models.baselines import CrostonTSB, SeasonalNaive
from models.ensemble_model import (
    EnsembleConfig,
    EnsembleModel,
    bounded_costs,
    join_input,
    split_input,
    training_frame,
)
from models.protocol import ModelConfig, check_forecast

START = pd.Timestamp("2025-03-03")  # a Monday


def panel(days: int = 84, n_sku: int = 6, seed: int = 3) -> pd.DataFrame:
    """Feature-table-like rows: a weekly pattern per series, Poisson noise, two stores in two
    clusters, an ``expected`` column with the true mean."""
    rng = np.random.default_rng(seed)
    rows = []
    for store in (1, 2):
        for sku in range(1, n_sku + 1):
            level = 4.0 + 3 * sku + 5 * store
            for d in range(days):
                date = START + pd.Timedelta(days=d)
                mu = level * (1.6 if date.dayofweek >= 5 else 1.0)
                rows.append((date, store, sku, float(rng.poisson(mu)), mu, 1 + sku % 2,
                             store - 1))
    return pd.DataFrame(rows, columns=["date", "store_id", "sku_id", "demand", "expected",
                                       "category_code", "cluster"])


def cheap(**kw) -> EnsembleConfig:
    return EnsembleConfig.quick(members=("tsb", "arima"), n_cutoffs=3, train_days=56, **kw)


def test_training_frame_drops_unknown_demand_and_builds_segments():
    rows = panel(days=10, n_sku=2)
    rows.loc[3, "demand"] = np.nan
    out = training_frame(rows)
    assert len(out) == len(rows) - 1
    assert out["y"].notna().all()
    seg = out.loc[(out["store_id"] == 2) & (out["sku_id"] == 1), "segment"].iloc[0]
    assert seg == "c1-2"  # cluster 1 (store 2), category code 2 (sku 1)


def test_bounded_costs_clip_the_ratio_and_keep_the_total():
    costs = pd.DataFrame({"sku_id": [1, 2, 3], "under_cost": [30.0, 1.0, 5.0],
                          "over_cost": [0.05, 9.0, 5.0]})
    out = bounded_costs(costs, 0.7)
    ratio = out["under_cost"] / (out["under_cost"] + out["over_cost"])
    assert ratio.round(9).tolist() == [0.7, 0.3, 0.5]
    assert np.allclose(out["under_cost"] + out["over_cost"],
                       costs["under_cost"] + costs["over_cost"])


def test_input_frame_round_trip():
    rows = training_frame(panel(days=14, n_sku=2))
    future = rows.loc[rows["date"] == rows["date"].max()]
    history, fut = split_input(join_input(rows, future))
    assert len(history) == len(rows) and len(fut) == len(future)
    with pytest.raises(ValueError, match="role"):
        split_input(rows)


class Broken(CrostonTSB):
    """A member that fits but cannot forecast."""

    def forecast_from(self, *args, **kwargs):
        raise RuntimeError("planted failure")


def _model(members: dict, train: pd.DataFrame) -> EnsembleModel:
    for m in members.values():
        m.fit(train, ModelConfig())
    weights = pd.DataFrame({"segment": "*", "model": list(members),
                            "weight": 1.0 / len(members)})
    clusters = train[["store_id", "cluster"]].drop_duplicates("store_id")
    return EnsembleModel(members=members, weights=weights, clusters=clusters,
                         config=cheap(), cutoff=train["date"].max())


def test_a_failing_member_is_flagged_and_the_others_carry_the_forecast():
    train = training_frame(panel(days=42))
    model = _model({"tsb": CrostonTSB(method="tsb"), "arima": Broken()}, train)
    fc, members, flags = model.forecast(train, None, 7)
    check_forecast(fc, 7)
    assert list(members) == ["tsb"]
    assert len(flags) == 1 and "arima" in flags[0] and "planted failure" in flags[0]
    # with one member left its weight is renormalised to 1: the ensemble is that member
    assert np.allclose(fc["mean"].to_numpy(), members["tsb"]["mean"].to_numpy())


def test_every_member_failing_is_an_error_not_an_empty_forecast():
    train = training_frame(panel(days=42))
    model = _model({"tsb": Broken()}, train)
    with pytest.raises(RuntimeError, match="every member failed"):
        model.forecast(train, None, 7)


def test_model_forecasts_from_new_history_after_a_pickle_round_trip(tmp_path):
    rows = training_frame(panel(days=70))
    cut = START + pd.Timedelta(days=55)
    model = _model({"tsb": CrostonTSB(method="tsb"), "snaive": SeasonalNaive()},
                   rows.loc[rows["date"] <= cut])
    again = EnsembleModel.load(model.save(tmp_path / "m.pkl"))
    later = rows.loc[rows["date"] <= cut + pd.Timedelta(days=7)]
    a, _, _ = model.forecast(later, None, 7)
    b, _, _ = again.forecast(later, None, 7)
    pd.testing.assert_frame_equal(a, b)
    assert a["target_date"].min() == cut + pd.Timedelta(days=8)
    assert pickle.loads(pickle.dumps(model)).cutoff == model.cutoff


def test_population_makes_store_chunks_forecast_like_one_call():
    """ARIMA on store-cluster x category aggregates: chunks of stores with the population's
    totals give the forecast of one chunk; a member that cannot take a chunk is flagged."""
    from models.statistical import ArimaAggregate

    rows = training_frame(panel(days=70).assign(cluster=0))
    model = _model({"tsb": CrostonTSB(method="tsb"), "arima": ArimaAggregate()}, rows)

    def chunked(chunks: list[list[int]]) -> pd.DataFrame:
        pop = model.population(rows["date"].min(), rows["date"].max())
        assert list(pop) == ["arima"]
        for stores in chunks:
            model.add_population(pop, rows.loc[rows["store_id"].isin(stores)])
        return pd.concat([model.forecast(rows.loc[rows["store_id"].isin(s)], None, 7, pop)[0]
                          for s in chunks], ignore_index=True)

    one = chunked([[1, 2]])
    pd.testing.assert_frame_equal(chunked([[1], [2]]), one, check_exact=True)
    alone = pd.concat([model.forecast(rows.loc[rows["store_id"] == s], None, 7)[0]
                       for s in (1, 2)], ignore_index=True)
    assert not np.allclose(alone["mean"], one["mean"])  # each store's own aggregates
    pop = model.population(rows["date"].min(), rows["date"].max())
    model.add_population(pop, rows.loc[rows["store_id"] == 2])
    model.add_population(pop, rows.loc[rows["store_id"] == 1])  # out of order: arima fails
    _, members, flags = model.forecast(rows.loc[rows["store_id"] == 1], None, 7, pop)
    assert list(members) == ["tsb"] and "increasing store_id" in flags[0]


def test_backtest_scores_the_last_origins_out_of_sample():
    rows = panel()
    oracle = rows[["store_id", "sku_id", "date"]].assign(expected_demand=rows["expected"])
    res = backtest(rows.drop(columns="expected"), cheap(), oracle=oracle)
    # 3 scored origins after 2 that only validate the weights (validation_origins)
    assert len(res.cutoffs) == 5 and res.eval_cutoffs == res.cutoffs[2:]
    assert res.cutoffs[-1] == rows["date"].max() - pd.Timedelta(days=7)
    # the ensemble at an origin only learnt from origins before it
    assert sorted(res.weights["cutoff"].unique()) == res.cutoffs[2:]
    first = res.weights.loc[(res.weights["cutoff"] == res.cutoffs[2])
                            & (res.weights["segment"] == "*")]
    assert first["n_rows"].iloc[0] == 2 * 7 * 12  # two validation weeks x 12 series
    models = set(res.overall["model"])
    assert {"tsb", "arima", "seasonal_naive", "moving_average", ENSEMBLE, ORACLE} <= models
    # every scored row is in the evaluation window, horizons 1..7 each present
    fc = res.forecasts
    assert fc["cutoff"].min() == res.eval_cutoffs[0]
    assert sorted(res.by_horizon["horizon"].unique()) == list(range(1, 8))
    # the oracle (true mean) beats the naive baseline on this Poisson panel
    assert res.score(ORACLE, "wape") < res.score("seasonal_naive", "wape")
    # the WAPE of one model reproduced by hand from its scored rows
    tsb = fc.loc[fc["model"] == "tsb"].merge(
        res.actuals.rename(columns={"date": "target_date"}),
        on=["store_id", "sku_id", "target_date"])
    by_hand = np.abs(tsb["mean"] - tsb["y"]).sum() / tsb["y"].sum()
    assert res.score("tsb", "wape") == pytest.approx(by_hand)


def test_backtest_with_costs_reports_business_cost():
    rows = panel()
    costs = pd.DataFrame({"sku_id": range(1, 7), "under_cost": 10.0, "over_cost": 1.0})
    res = backtest(rows.drop(columns="expected"), cheap(), costs=costs)
    fc = res.forecasts.loc[res.forecasts["model"] == "seasonal_naive"].merge(
        res.actuals.rename(columns={"date": "target_date"}),
        on=["store_id", "sku_id", "target_date"])
    err = fc["mean"] - fc["y"]
    by_hand = (10.0 * np.maximum(-err, 0) + 1.0 * np.maximum(err, 0)).sum()
    assert res.score("seasonal_naive", "business_cost") == pytest.approx(by_hand)


def _nb_quantile(q: float, mean: float, size: float) -> int:
    """Plain reference: the smallest k with P(X <= k) >= q, X ~ NB(mean, size) by its pmf
    (Gamma-Poisson: P(k) = C(k + r - 1, k) p^r (1 - p)^k, p = r / (r + mean))."""
    import math

    if mean == 0:
        return 0
    p = size / (size + mean)
    k, cdf = 0, 0.0
    while True:
        cdf += math.exp(math.lgamma(k + size) - math.lgamma(size) - math.lgamma(k + 1)
                        + size * math.log(p) + k * math.log1p(-p))
        if cdf >= q - 1e-12:
            return k
        k += 1


def test_oracle_quantiles_are_the_negative_binomial_ones():
    mean = np.array([0.0, 0.4, 2.5, 12.0, 3.0])
    size = np.array([2.0, 1.5, 0.8, 6.0, np.inf])  # the last: Poisson
    got = oracle_quantiles(mean, size, (0.5, 0.8, 0.95))
    for i in range(4):
        assert got[i].tolist() == [_nb_quantile(q, mean[i], size[i]) for q in (0.5, 0.8, 0.95)]
    assert got[4].tolist() == [3.0, 4.0, 6.0]  # Poisson(3)
    assert got[1, 0] == 0.0 < mean[1], "a low-count median sits below the mean"
    # in a backtest with nb_dispersion the oracle gets quantiles, so its q50 (WAPE q50) too
    rows = panel()
    oracle = rows[["store_id", "sku_id", "date"]].assign(expected_demand=rows["expected"],
                                                         nb_dispersion=np.inf)
    res = backtest(rows.drop(columns="expected"), cheap(), oracle=oracle)
    row = res.overall.set_index("model").loc[ORACLE]
    assert 0.7 < row["coverage_q80"] < 0.9
    assert row["wape_q50"] <= row["wape"] + 0.01
