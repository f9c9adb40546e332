"""XGBForecaster learns planted patterns, weighs costs, forecasts quantiles, never leaks."""
from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from models.objective import unit_costs
from models.protocol import QUANTILES, Forecaster, ModelConfig, check_forecast
from models.xgb import HORIZON_FEATURE, XGBConfig, XGBForecaster

START = pd.Timestamp("2025-01-06")  # a Monday
CFG = ModelConfig(seed=42)
#: Small and single-threaded so the suite stays fast on a busy machine.
FAST = XGBConfig(n_estimators=200, learning_rate=0.1, max_depth=4, nthread=1)


def feature_table(days: int = 120, stores: int = 3, skus: int = 4, noise: float = 0.5,
                  seed: int = 0) -> pd.DataFrame:
    """A feature table in the catalog's shape: demand = 3 + 2 * is_weekend + 4 * promotion
    + noise, with lags and a rolling mean computed from the demand as build_features does.
    SKUs 1-2: ambient, high margin; SKUs 3-4: perishable (2 days), thin margin."""
    rng = np.random.default_rng(seed)
    dates = START + pd.to_timedelta(np.arange(days), unit="D")
    dow = dates.dayofweek.to_numpy()
    parts = []
    for store in range(1, stores + 1):
        for sku in range(1, skus + 1):
            promo = rng.random(days) < 0.15
            demand = 3 + 2 * (dow >= 5) + 4 * promo + rng.normal(0, noise, days)
            fresh = sku > 2
            parts.append(pd.DataFrame({
                "date": dates, "store_id": store, "sku_id": sku,
                "demand": np.clip(demand, 0, None), "units_sold": 0, "censored": False,
                "day_of_week": dow, "is_weekend": dow >= 5, "on_promotion": promo,
                "discount_pct": np.where(promo, 0.2, 0.0),
                "price": 11.0 if fresh else 30.0, "unit_cost": 10.0,
                "is_perishable": fresh, "shelf_life_days": 2 if fresh else 180}))
    df = pd.concat(parts, ignore_index=True)
    by_pair = df.groupby(["store_id", "sku_id"])["demand"]
    for lag in (1, 7):
        df[f"lag_{lag}"] = by_pair.shift(lag)
    df["roll_mean_7"] = by_pair.transform(lambda s: s.shift(1).rolling(7, min_periods=1).mean())
    return df


def split(df: pd.DataFrame, days: int = 7) -> tuple[pd.DataFrame, pd.DataFrame, pd.Timestamp]:
    cutoff = df["date"].max() - pd.Timedelta(days=days)
    return df[df["date"] <= cutoff], df[df["date"] > cutoff], cutoff


def costs(under: float, over: float, skus: int = 4) -> pd.DataFrame:
    return pd.DataFrame({"sku_id": range(1, skus + 1), "under_cost": under, "over_cost": over})


def with_actuals(fc: pd.DataFrame, future: pd.DataFrame) -> pd.DataFrame:
    actual = future[["store_id", "sku_id", "date", "demand"]].rename(
        columns={"date": "target_date"})
    return fc.merge(actual, on=["store_id", "sku_id", "target_date"], validate="1:1")


def wape(f: pd.Series, a: pd.Series) -> float:
    return float((f - a).abs().sum() / a.sum())


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return feature_table()


@pytest.fixture(scope="module")
def balanced(data) -> XGBForecaster:
    """Asymmetric objective with equal costs: the conditional mean."""
    train, _, _ = split(data)
    return XGBForecaster(FAST, costs=costs(1.0, 1.0)).fit(train, CFG)


def test_follows_the_protocol(data, balanced):
    train, future, cutoff = split(data)
    assert isinstance(balanced, Forecaster)
    assert balanced.cutoff == cutoff
    assert set(balanced.features) == {"day_of_week", "is_weekend", "on_promotion",
                                      "discount_pct", "price", "unit_cost", "is_perishable",
                                      "shelf_life_days", "lag_1", "lag_7", "roll_mean_7"}
    assert set(balanced.history_features) == {"lag_1", "lag_7", "roll_mean_7"}
    fc = balanced.predict(7, future=future)
    check_forecast(fc, 7)
    assert len(fc) == 12 * 7
    assert (fc["target_date"] == cutoff + pd.to_timedelta(fc["horizon"], unit="D")).all()
    sub = balanced.predict(3, quantiles=(0.5, 0.9), future=future)
    check_forecast(sub, 3, (0.5, 0.9))
    assert list(sub.columns) == ["store_id", "sku_id", "target_date", "horizon", "mean",
                                 "q50", "q90"]
    pd.testing.assert_series_equal(sub["q90"], fc.loc[fc["horizon"] <= 3, "q90"]
                                   .reset_index(drop=True), check_names=False)


def test_learns_the_planted_pattern(data, balanced):
    train, future, _ = split(data)
    got = with_actuals(balanced.predict(7, future=future), future)
    level = train.groupby(["store_id", "sku_id"], as_index=False)["demand"].mean()
    flat = future.merge(level, on=["store_id", "sku_id"], suffixes=("", "_mean"))
    model_wape = wape(got["mean"], got["demand"])
    mean_wape = wape(flat["demand_mean"], flat["demand"])
    assert model_wape < 0.5 * mean_wape, (model_wape, mean_wape)
    assert model_wape < 0.15
    assert abs(got["mean"].sum() / got["demand"].sum() - 1) < 0.05  # unbiased
    top = balanced.feature_importance().head(4)["feature"].tolist()
    assert {"is_weekend"} <= set(top) and {"on_promotion", "discount_pct"} & set(top)


def test_asymmetric_objective_moves_the_mean_with_the_costs():
    df = feature_table(noise=1.0, seed=1)
    train, future, _ = split(df, days=1)
    one = replace(FAST, horizons=1)
    sym = XGBForecaster(one, costs=costs(1.0, 1.0)).fit(train, CFG).predict(1, future=future)
    up = XGBForecaster(one, costs=costs(9.0, 1.0)).fit(train, CFG).predict(1, future=future)
    down = XGBForecaster(one, costs=costs(1.0, 9.0)).fit(train, CFG).predict(1, future=future)
    assert (up["mean"] - sym["mean"]).mean() > 0.4  # the 0.9 expectile of N(0, 1): +0.86
    assert (down["mean"] - sym["mean"]).mean() < -0.4
    # costs from each SKU's own price, cost and shelf life: margin-rich ambient SKUs 1-2 go
    # up, thin-margin 2-day perishables 3-4 (waste half a unit's cost) go down
    derived = XGBForecaster(one).fit(train, CFG)
    expected = unit_costs(train.drop_duplicates("sku_id"), 0.0008)
    pd.testing.assert_frame_equal(
        derived.costs.sort_values("sku_id").reset_index(drop=True),
        expected[["sku_id", "under_cost", "over_cost", "critical_ratio"]]
        .sort_values("sku_id").reset_index(drop=True))
    shift = derived.predict(1, future=future)["mean"] - sym["mean"]
    rich = (sym["sku_id"] <= 2).to_numpy()
    assert shift[rich].mean() > 0.5 and shift[~rich].mean() < -0.3
    squared = XGBForecaster(replace(one, objective="squared"))
    plain = squared.fit(train, CFG).predict(1, future=future)
    assert squared.costs is None
    assert (plain["mean"] - sym["mean"]).abs().max() < 0.05  # equal costs = squared error


def test_quantiles_are_monotone_and_calibrated_in_sample(data, balanced):
    train, future, _ = split(data)
    fc = balanced.predict(7, future=future)
    q = fc[["q50", "q80", "q90", "q95", "q99"]].to_numpy()
    assert (np.diff(q, axis=1) >= 0).all() and (q >= 0).all()
    assert (fc["q99"] > fc["q50"]).mean() > 0.9  # a real spread, not a point
    # one-step quantiles of every training day (history from that day's own row)
    covered, rows = 0, 0
    for day in sorted(train["date"].unique())[7:]:
        rows_day = train[train["date"] == day]
        one = balanced.predict(1, future=rows_day).merge(
            rows_day[["store_id", "sku_id", "demand"]], on=["store_id", "sku_id"])
        covered += int((one["demand"] <= one["q90"]).sum())
        rows += len(one)
    assert 0.8 <= covered / rows <= 0.97, covered / rows


def test_is_deterministic_with_a_seed():
    df = feature_table(days=60, seed=2)
    train, future, _ = split(df, days=2)
    conf = replace(FAST, horizons=2, n_estimators=60)
    a = XGBForecaster(conf).fit(train, CFG).predict(2, future=future)
    b = XGBForecaster(conf).fit(train, CFG).predict(2, future=future)
    pd.testing.assert_frame_equal(a, b)
    c = XGBForecaster(conf).fit(train, ModelConfig(seed=7)).predict(2, future=future)
    assert not np.allclose(a["mean"], c["mean"])  # subsampling follows the seed
    # the protocol's label name y works the same as the feature table's demand
    d = XGBForecaster(conf).fit(train.rename(columns={"demand": "y"}), CFG)
    pd.testing.assert_frame_equal(a, d.predict(2, future=future))


def test_history_comes_from_the_cutoff_row_only(data, balanced):
    train, future, cutoff = split(data)
    base = balanced.predict(7, future=future)
    later = future.copy()
    after = later["date"] > cutoff + pd.Timedelta(days=1)
    later.loc[after, ["lag_1", "lag_7", "roll_mean_7"]] = 1000.0  # ignored: not known at T
    pd.testing.assert_frame_equal(base, balanced.predict(7, future=later))
    promo = future.copy()
    day5 = promo["date"] == cutoff + pd.Timedelta(days=5)
    promo.loc[day5, "on_promotion"], promo.loc[day5, "discount_pct"] = True, 0.2
    moved = balanced.predict(7, future=promo)
    changed = ~np.isclose(moved["mean"], base["mean"])
    assert set(moved.loc[changed, "horizon"]) == {5}  # a target-day covariate
    assert (moved.loc[changed, "mean"] > base.loc[changed, "mean"]).all()


def test_unknown_demand_is_not_a_target_but_keeps_its_history():
    df = feature_table(days=50, seed=3)
    rng = np.random.default_rng(0)
    df.loc[rng.random(len(df)) < 0.1, "demand"] = np.nan  # censored days without a sale
    train, future, _ = split(df, days=2)
    model = XGBForecaster(replace(FAST, horizons=2)).fit(train, CFG)
    labelled = int(train["demand"].notna().sum())
    # h = 2 needs the pair's row of the day before the target, labelled or not
    with_prev_row = int((train["demand"].notna() & (train["date"] > train["date"].min())).sum())
    assert model.n_examples == labelled + with_prev_row
    check_forecast(model.predict(2, future=future), 2)


def test_clear_errors(data, balanced):
    train, future, cutoff = split(data)
    with pytest.raises(ValueError, match=r"future: missing column\(s\) \[.*\]") as err:
        balanced.predict(7, future=future.drop(columns=["lag_7", "is_weekend"]))
    assert "'lag_7'" in str(err.value) and "'is_weekend'" in str(err.value)
    gap = future[~((future["store_id"] == 2) & (future["sku_id"] == 3)
                   & (future["date"] == cutoff + pd.Timedelta(days=4)))]
    with pytest.raises(ValueError, match=r"lack a row.*\(2, 3\)"):
        balanced.predict(7, future=gap)
    with pytest.raises(ValueError, match="needs future"):
        balanced.predict(7)
    with pytest.raises(ValueError, match="horizon must be"):
        balanced.predict(8, future=future)
    with pytest.raises(ValueError, match="0.7 was not trained"):
        balanced.predict(7, quantiles=(0.5, 0.7), future=future)
    with pytest.raises(RuntimeError, match="call fit"):
        XGBForecaster().predict(1, future=future)
    with pytest.raises(ValueError, match="shelf_life_days"):
        XGBForecaster(FAST).fit(train.drop(columns=["shelf_life_days"]), CFG)
    bad = train.copy()
    bad.loc[bad.index[0], "demand"] = -1.0
    with pytest.raises(ValueError, match="negative"):
        XGBForecaster(FAST).fit(bad, CFG)
    with pytest.raises(ValueError, match="keys, labels"):
        XGBForecaster(XGBConfig(features=("lag_1", "units_sold"))).fit(train, CFG)
    assert QUANTILES == (0.5, 0.8, 0.9, 0.95, 0.99)


def test_feature_importance_and_plot(balanced):
    imp = balanced.feature_importance()
    assert list(imp.columns) == ["feature", "gain", "share"]
    assert set(imp["feature"]) == {*balanced.features, HORIZON_FEATURE}
    assert imp["share"].sum() == pytest.approx(1.0)
    assert imp["gain"].is_monotonic_decreasing
    fig = balanced.importance_plot(top=5)
    assert isinstance(fig, Figure) and len(fig.axes[0].patches) == 5
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    assert buf.getvalue()[:4] == b"\x89PNG"


def test_early_stopped_boosters_are_continued_on_every_example_not_refit(data):
    """The boosters stop early on the tail, then grow ``tail_rounds`` x more rounds on
    all examples on top of the early-stopped trees (no refit from scratch); the point
    booster is refit unless ``point_tail_rounds`` is set."""
    import xgboost as xgb

    train, future, _ = split(data)
    conf = replace(FAST, n_estimators=400, valid_days=7, early_stopping_rounds=10)
    stopped = XGBForecaster(replace(conf, tail_rounds=0.0, point_tail_rounds=0.0)).fit(
        train, CFG)
    kept = XGBForecaster(replace(conf, tail_rounds=0.5, point_tail_rounds=0.5)).fit(train, CFG)
    (p0, q0), (p1, q1) = stopped.rounds, kept.rounds
    assert 1 <= p0 < 400 and 1 <= q0 < 400  # early stopping stopped
    assert (p1, q1) == (p0 + -(-p0 // 2), q0 + -(-q0 // 2))
    x = xgb.DMatrix(np.random.default_rng(0).normal(size=(50, len(kept._inputs))),
                    feature_names=kept._inputs)
    for a, b, r in ((stopped._point, kept._point, p0), (stopped._quantile, kept._quantile, q0)):
        assert np.array_equal(a.predict(x), b.predict(x, iteration_range=(0, r)))
        assert not np.allclose(a.predict(x), b.predict(x))  # the added rounds learnt more
    # by default the point booster is refit from scratch on every example, same rounds
    refit = XGBForecaster(replace(conf, tail_rounds=0.0)).fit(train, CFG)
    assert refit.rounds == (p0, q0)
    assert not np.allclose(refit._point.predict(x), stopped._point.predict(x))
    assert np.array_equal(refit._quantile.predict(x), stopped._quantile.predict(x))
    # the quantile booster learns at its own rate
    assert replace(conf, quantile_learning_rate=None).quantile_learning_rate is None
    with pytest.raises(ValueError, match="tail_rounds"):
        XGBConfig(tail_rounds=1.5)
    with pytest.raises(ValueError, match="point_tail_rounds"):
        XGBConfig(point_tail_rounds=-0.1)
    with pytest.raises(ValueError, match="quantile_learning_rate"):
        XGBConfig(quantile_learning_rate=0.0)
