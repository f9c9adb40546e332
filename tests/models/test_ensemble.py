"""Ensemble weights: on the simplex, exact against brute force, better than the members."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.ensemble import (
    GLOBAL_SEGMENT,
    PRIOR,
    EnsembleWeights,
    combine,
    rolling_origin_cutoffs,
)
from models.metrics import evaluate
from models.protocol import check_forecast, quantile_columns

START = pd.Timestamp("2025-02-03")
KEYS = ["store_id", "sku_id"]
QCOLS = quantile_columns()


def actuals(days: int, n_series: int = 8, seed: int = 0, start: pd.Timestamp = START
            ) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [(s % 2, s, start + pd.Timedelta(days=d), float(rng.poisson(rng.uniform(5, 30))))
            for s in range(n_series) for d in range(days)]
    out = pd.DataFrame(rows, columns=["store_id", "sku_id", "date", "y"])
    out["segment"] = np.where(out["store_id"] == 0, "north", "south")
    return out


def member(act: pd.DataFrame, bias: float, noise: float, seed: int,
           cutoff: pd.Timestamp | None = None) -> pd.DataFrame:
    """A forecast of ``act``: (1 + bias) x actual plus noise, quantiles mean + z x spread.
    Horizons count from ``cutoff`` (default: the day before the first date), 1..7 cycled for
    stacked weekly backtests."""
    rng = np.random.default_rng(seed)
    origin = cutoff if cutoff is not None else act["date"].min() - pd.Timedelta(days=1)
    fc = act[[*KEYS, "date"]].rename(columns={"date": "target_date"})
    fc["horizon"] = ((fc["target_date"] - origin).dt.days - 1) % 7 + 1
    fc["mean"] = np.clip(act["y"].to_numpy() * (1 + bias)
                         + rng.normal(0, noise, len(act)), 0, None)
    for col, z in zip(QCOLS, (0.0, 0.84, 1.28, 1.64, 2.33), strict=True):
        fc[col] = fc["mean"] + z * (2.0 + noise)
    return fc


def members(act: pd.DataFrame, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Two members with opposite biases and a noisy unbiased one (the worst)."""
    return {"xgboost": member(act, +0.3, 1.0, seed),
            "lstm": member(act, -0.3, 1.0, seed + 1),
            "prophet": member(act, 0.0, 9.0, seed + 2)}


def wape(act: pd.DataFrame, fc: pd.DataFrame) -> float:
    return float(np.abs(fc["mean"].to_numpy() - act["y"].to_numpy()).sum() / act["y"].sum())


def test_weights_are_on_the_simplex_per_segment_and_logged():
    act = actuals(21)
    weights = EnsembleWeights().fit(members(act), act)
    frame = weights.weights_frame()
    assert list(frame.columns) == ["segment", "column", "model", "weight", "prior", "n_rows",
                                   "method"]
    assert sorted(frame["segment"].unique()) == sorted([GLOBAL_SEGMENT, "north", "south"])
    assert frame["column"].unique().tolist() == ["mean", *QCOLS]
    assert (frame["weight"] >= 0).all()
    assert np.allclose(frame.groupby(["segment", "column"])["weight"].sum(), 1.0)
    assert np.allclose(frame.groupby(["segment", "column"])["prior"].sum(), 1.0)
    assert (frame["method"] == "optimised").all()
    assert frame.loc[frame["segment"] == GLOBAL_SEGMENT, "n_rows"].iloc[0] == len(act)
    for seg in ("north", "south", None, "never-seen"):
        w = weights.weights_for(seg)
        assert set(w) == {"xgboost", "lstm", "prophet"} and sum(w.values()) == pytest.approx(1)


def test_beats_every_member_where_two_have_opposite_biases():
    validation = actuals(21, seed=1)
    test = actuals(7, seed=2, start=START + pd.Timedelta(days=21))
    weights = EnsembleWeights().fit(members(validation, seed=10), validation)
    w = weights.weights_for()
    assert w["xgboost"] > 0.3 and w["lstm"] > 0.3 and w["prophet"] < 0.15, w
    ahead = members(test, seed=20)
    blend = weights.combine(ahead)
    check_forecast(blend, 7)
    got = evaluate(test[[*KEYS, "date", "y"]], blend, validation)["wape"].iloc[0]
    single = {n: evaluate(test[[*KEYS, "date", "y"]], fc, validation)["wape"].iloc[0]
              for n, fc in ahead.items()}
    assert got < max(single.values())
    assert got <= min(single.values()), (got, single)
    assert got < 0.6 * min(single.values())  # opposite biases cancel
    scores = weights.scores_.set_index(["segment", "model"])[["wape"]]
    assert scores.loc[(GLOBAL_SEGMENT, "ensemble"), "wape"] <= scores.loc[GLOBAL_SEGMENT].min()[
        "wape"] + 1e-12


def test_linear_program_matches_brute_force_on_two_members():
    """No shrinkage: the LP's weight is the grid's best within the grid step."""
    act = actuals(10, n_series=3, seed=3)
    pair = {"a": member(act, 0.25, 2.0, 1), "b": member(act, -0.1, 4.0, 2)}
    weights = EnsembleWeights(shrinkage=0.0).fit(pair, act.drop(columns="segment"))
    w = weights.weights_for()
    grid = np.linspace(0, 1, 2001)
    fa, fb = pair["a"]["mean"].to_numpy(), pair["b"]["mean"].to_numpy()
    losses = [np.abs(g * fa + (1 - g) * fb - act["y"].to_numpy()).sum() for g in grid]
    best = min(losses)
    lp = np.abs(w["a"] * fa + w["b"] * fb - act["y"].to_numpy()).sum()
    assert lp <= best + 1e-6
    assert weights.weights_frame()["segment"].unique().tolist() == [GLOBAL_SEGMENT]


def test_business_cost_moves_weight_to_the_over_forecaster():
    act = actuals(21, seed=4)
    pair = {"xgboost": member(act, +0.2, 1.0, 1), "lstm": member(act, -0.2, 1.0, 2)}
    costly_shortage = act.assign(under_cost=10.0, over_cost=1.0)
    costly_stock = act.assign(under_cost=1.0, over_cost=10.0)
    up = EnsembleWeights(objective="business_cost", shrinkage=0).fit(pair, costly_shortage)
    down = EnsembleWeights(objective="business_cost", shrinkage=0).fit(pair, costly_stock)
    plain = EnsembleWeights(shrinkage=0).fit(pair, act)
    assert up.weights_for()["xgboost"] > plain.weights_for()["xgboost"] + 0.05
    assert down.weights_for()["xgboost"] < plain.weights_for()["xgboost"] - 0.05
    assert "business_cost" in up.scores_.columns
    with pytest.raises(ValueError, match="under_cost"):
        EnsembleWeights(objective="business_cost").fit(pair, act)


def test_tiny_data_falls_back_to_the_prior_and_shrinkage_pulls_towards_it():
    act = actuals(2, n_series=4, seed=5)  # 8 rows, 4 per segment
    weights = EnsembleWeights(min_rows=28).fit(members(act), act)
    frame = weights.weights_frame()
    assert (frame["method"] == "prior").all()
    expected = {n: PRIOR[n] / (PRIOR["xgboost"] + PRIOR["lstm"] + PRIOR["prophet"])
                for n in ("xgboost", "lstm", "prophet")}
    for seg in (GLOBAL_SEGMENT, "north", "south"):
        assert weights.weights_for(seg) == pytest.approx(expected)
    # an unknown member gets 1 / (number of members) before renormalising
    other = {"xgboost": members(act)["xgboost"], "croston": members(act)["lstm"]}
    prior = EnsembleWeights().fit(other, act).weights_for()
    assert prior == pytest.approx({"xgboost": 0.4 / 0.9, "croston": 0.5 / 0.9})
    # enough rows, but a strong shrinkage keeps the weights near the prior
    big = actuals(21, seed=6)
    free = EnsembleWeights(shrinkage=0).fit(members(big), big).weights_for()
    held = EnsembleWeights(shrinkage=1e6).fit(members(big), big).weights_for()
    assert held == pytest.approx(expected, abs=1e-3)
    assert abs(free["prophet"] - expected["prophet"]) > 0.1


def test_a_small_segment_borrows_the_weights_of_all_rows_not_the_prior():
    big = actuals(21, n_series=8, seed=9)
    small = big["store_id"] == 1
    big.loc[small.to_numpy() & (big["date"] > START + pd.Timedelta(days=2)).to_numpy(), "y"] = \
        np.nan  # the south segment keeps 3 days x 4 series = 12 rows < min_rows
    act = big.dropna(subset=["y"]).reset_index(drop=True)
    weights = EnsembleWeights(min_rows=28).fit(members(act, seed=3), act)
    frame = weights.weights_frame().set_index(["segment", "column", "model"])
    assert (frame.loc["south", "method"] == "prior").all()
    assert weights.weights_for("south") == pytest.approx(weights.weights_for())
    assert weights.weights_for("south") != pytest.approx(
        {n: PRIOR[n] / 0.9 for n in ("xgboost", "lstm", "prophet")}, abs=0.05)
    # with rows enough, a segment is shrunk towards the global weights by n / (n + shrinkage)
    w = EnsembleWeights(shrinkage=1e6).fit(members(big.dropna(), seed=3), big.dropna())
    assert w.weights_for("north") == pytest.approx(w.weights_for(), abs=1e-3)


def test_each_quantile_gets_the_weights_of_its_pinball_loss():
    """Poisson demand. Member a: the exact mean, quantiles all at the mean (far too narrow);
    member b: a noisy mean, the true Poisson quantiles. The mean weights favour a, the q95
    weights b, and the LP's q95 weight is the grid's best pinball loss (brute force)."""
    from scipy import stats

    rng = np.random.default_rng(11)
    keys = pd.DataFrame([(s % 2, s, START + pd.Timedelta(days=d)) for s in range(6)
                         for d in range(21)], columns=["store_id", "sku_id", "target_date"])
    lam = rng.uniform(5, 30, 6)[keys["sku_id"].to_numpy()]
    y = rng.poisson(lam).astype(float)
    act = keys.rename(columns={"target_date": "date"}).assign(y=y)
    keys["horizon"] = (keys["target_date"] - START).dt.days % 7 + 1
    narrow = keys.assign(mean=lam, **{c: lam for c in QCOLS})
    levels = {"q50": 0.5, "q80": 0.8, "q90": 0.9, "q95": 0.95, "q99": 0.99}
    wide = keys.assign(mean=np.clip(lam + rng.normal(0, 6.0, len(y)), 0, None),
                       **{c: stats.poisson.ppf(t, lam) for c, t in levels.items()})
    weights = EnsembleWeights(shrinkage=0).fit({"a": narrow, "b": wide}, act)
    assert weights.weights_for(column="mean")["a"] > 0.8
    w95 = weights.weights_for(column="q95")
    assert w95["b"] > 0.8
    grid = np.linspace(0, 1, 1001)

    def pinball(q: np.ndarray, tau: float) -> float:
        return float(np.sum(np.maximum(tau * (y - q), (tau - 1) * (y - q))))

    qa, qb = narrow["q95"].to_numpy(), wide["q95"].to_numpy()
    best = min(pinball(g * qa + (1 - g) * qb, 0.95) for g in grid)
    assert pinball(w95["a"] * qa + w95["b"] * qb, 0.95) <= best + 1e-6
    blend = weights.combine({"a": narrow, "b": wide}).merge(
        act.rename(columns={"date": "target_date"}), on=[*KEYS, "target_date"])
    assert (blend["y"] <= blend["q95"]).mean() > 0.9  # the narrow member alone: ~50%
    assert (act["y"] <= narrow["q95"]).mean() < 0.6
    # per_quantile=False: every column uses the point forecast's weights (the old combiner)
    same = EnsembleWeights(shrinkage=0, per_quantile=False).fit({"a": narrow, "b": wide}, act)
    assert same.weights_frame()["column"].unique().tolist() == ["mean"]
    assert same.weights_for(column="q95") == pytest.approx(same.weights_for())


def test_combine_is_the_weighted_mean_with_monotone_quantiles():
    keys = pd.DataFrame({"store_id": [1, 1], "sku_id": [1, 1],
                         "target_date": pd.to_datetime(["2025-01-02", "2025-01-03"]),
                         "horizon": [1, 2]})
    a = keys.assign(mean=[10.0, 4.0], q50=[10.0, 4.0], q80=[12.0, 5.0], q90=[13.0, 9.0],
                    q95=[14.0, 9.5], q99=[20.0, 10.0])
    b = keys.assign(mean=[20.0, 8.0], q50=[19.0, 8.0], q80=[22.0, 8.5], q90=[30.0, 9.0],
                    q95=[31.0, 12.0], q99=[40.0, 16.0])
    out = combine({"a": a, "b": b}, {"a": 0.25, "b": 0.75})
    check_forecast(out, 2)
    assert out["mean"].tolist() == [17.5, 7.0]
    assert out["q90"].tolist() == pytest.approx([0.25 * 13 + 0.75 * 30, 9.0])
    assert (np.diff(out[QCOLS].to_numpy(), axis=1) >= 0).all()
    # a member without a row: the others' weights are renormalised
    out = combine({"a": a, "b": b.iloc[:1]}, {"a": 0.25, "b": 0.75})
    assert out["mean"].tolist() == [17.5, 4.0]
    # weights all 0 on the present members: equal weights
    out = combine({"a": a, "b": b}, {"a": 0.0, "b": 0.0})
    assert out["mean"].tolist() == [15.0, 6.0]
    # only the quantile columns every member has
    out = combine({"a": a, "b": b.drop(columns="q99")}, {"a": 0.5, "b": 0.5})
    assert "q99" not in out.columns and "q95" in out.columns
    # a weights frame by column: each column its own weights, a column it lacks those of mean
    frame = pd.DataFrame({"segment": "*", "column": ["mean", "mean", "q90", "q90"],
                          "model": ["a", "b", "a", "b"], "weight": [0.25, 0.75, 0.0, 1.0]})
    out = combine({"a": a, "b": b}, frame)
    assert out["mean"].tolist() == [17.5, 7.0]
    assert out["q90"].tolist() == pytest.approx([30.0, 9.0])
    assert out["q80"].tolist() == pytest.approx([0.25 * 12 + 0.75 * 22, 0.25 * 5 + 0.75 * 8.5])
    with pytest.raises(ValueError, match="'mean' rows"):
        combine({"a": a, "b": b}, frame.loc[frame["column"] == "q90"])


def test_combine_uses_segment_weights_and_the_global_ones_elsewhere():
    act = actuals(14, seed=7)
    north = act["segment"] == "north"
    # in the north the xgboost member is exact, in the south the lstm member is
    xgb = member(act, 0.0, 0.0, 1)
    xgb.loc[~north.to_numpy(), "mean"] *= 1.5
    lstm = member(act, 0.0, 0.0, 2)
    lstm.loc[north.to_numpy(), "mean"] *= 1.5
    weights = EnsembleWeights(shrinkage=0).fit({"xgboost": xgb, "lstm": lstm}, act)
    assert weights.weights_for("north")["xgboost"] == pytest.approx(1.0)
    assert weights.weights_for("south")["lstm"] == pytest.approx(1.0)
    blend = weights.combine({"xgboost": xgb, "lstm": lstm})
    assert np.allclose(blend.sort_values(["store_id", "sku_id", "target_date"])["mean"],
                       act.sort_values(["store_id", "sku_id", "date"])["y"])
    other = act[[*KEYS]].drop_duplicates().assign(segment="east")  # unknown: global weights
    g = weights.weights_for()
    blend = weights.combine({"xgboost": xgb, "lstm": lstm}, segments=other)
    expected = g["xgboost"] * xgb["mean"].to_numpy() + g["lstm"] * lstm["mean"].to_numpy()
    got = blend.merge(xgb[[*KEYS, "target_date", "horizon"]].assign(expected=expected),
                      on=[*KEYS, "target_date", "horizon"])
    assert np.allclose(got["mean"], got["expected"])


def test_stacked_backtest_cutoffs_align_on_target_date_and_horizon():
    act = actuals(28, n_series=4, seed=8)
    cutoffs = rolling_origin_cutoffs(act["date"], n_cutoffs=3, horizon=7, min_train_days=7)
    stacked: dict[str, list[pd.DataFrame]] = {"xgboost": [], "lstm": []}
    for i, cut in enumerate(cutoffs):
        window = act[(act["date"] > cut) & (act["date"] <= cut + pd.Timedelta(days=7))]
        stacked["xgboost"].append(member(window, 0.2, 0.5, i, cut))
        stacked["lstm"].append(member(window, -0.2, 0.5, 10 + i, cut))
    fcs = {n: pd.concat(parts, ignore_index=True) for n, parts in stacked.items()}
    weights = EnsembleWeights().fit(fcs, act)
    assert weights.weights_frame()["n_rows"].iloc[0] == 3 * 7 * 4
    assert weights.weights_for()["xgboost"] == pytest.approx(0.5, abs=0.1)


def test_rolling_origin_cutoffs():
    dates = pd.date_range("2025-01-01", "2025-03-31")
    got = rolling_origin_cutoffs(dates, n_cutoffs=3, horizon=7)
    assert got == [pd.Timestamp("2025-03-10"), pd.Timestamp("2025-03-17"),
                   pd.Timestamp("2025-03-24")]
    assert rolling_origin_cutoffs(list(dates), 2, horizon=7, step=1) == [
        pd.Timestamp("2025-03-23"), pd.Timestamp("2025-03-24")]
    with pytest.raises(ValueError, match="min_train_days"):
        rolling_origin_cutoffs(pd.date_range("2025-01-01", periods=30), n_cutoffs=3)
    with pytest.raises(ValueError, match="no dates"):
        rolling_origin_cutoffs([])


def test_errors_speak():
    act = actuals(7, n_series=2)
    good = member(act, 0.0, 1.0, 1)
    with pytest.raises(ValueError, match="no member"):
        EnsembleWeights().fit({}, act)
    with pytest.raises(ValueError, match="lacks column"):
        EnsembleWeights().fit({"a": good.drop(columns="horizon")}, act)
    with pytest.raises(ValueError, match="repeating"):
        EnsembleWeights().fit({"a": pd.concat([good, good])}, act)
    with pytest.raises(ValueError, match="objective"):
        EnsembleWeights(objective="mape")
    with pytest.raises(ValueError, match="reserved"):
        EnsembleWeights().fit({"a": good}, act.assign(segment=GLOBAL_SEGMENT))
    later = actuals(7, n_series=2, start=START + pd.Timedelta(days=100))
    with pytest.raises(ValueError, match="no validation row"):
        EnsembleWeights().fit({"a": good}, later)
    with pytest.raises(RuntimeError, match="fit"):
        EnsembleWeights().weights_frame()
