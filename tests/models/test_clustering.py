"""Store clustering recovers planted groups, is deterministic and handles tiny inputs."""
from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from sklearn.metrics import adjusted_rand_score

from models.clustering import (
    STORE_FEATURES,
    ClusterResult,
    cluster_plot,
    cluster_stores,
    elbow_plot,
    store_features,
)

START = pd.Timestamp("2025-03-03")  # a Monday


def planted(n_per_group: int = 4, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Three well-separated groups of stores in the six feature columns."""
    rng = np.random.default_rng(seed)
    centres = np.array([[100.0, 0.1, 0.01, 5.0, 0.5, 0.2],
                        [400.0, 0.5, 0.05, 15.0, 2.0, 0.5],
                        [900.0, 0.9, 0.10, 30.0, 5.0, 0.9]])
    scale = np.array([5.0, 0.02, 0.002, 0.5, 0.1, 0.02])
    truth = np.repeat(np.arange(3), n_per_group)
    values = centres[truth] + rng.normal(0, 1, (len(truth), 6)) * scale
    order = rng.permutation(len(truth))  # stores not sorted by group
    df = pd.DataFrame(values[order], columns=list(STORE_FEATURES))
    df.insert(0, "store_id", np.arange(101, 101 + len(truth)))
    return df, truth[order]


def test_recovers_planted_clusters_and_picks_k_3():
    features, truth = planted()
    result = cluster_stores(features)
    assert isinstance(result, ClusterResult)
    assert result.k == 3
    assert adjusted_rand_score(truth, result.labels["cluster"]) == 1.0
    assert result.labels["store_id"].tolist() == features["store_id"].tolist()
    # k tried: 2..11 (clipped to n_stores - 1 = 11); silhouette is highest at the chosen k
    assert result.silhouette_by_k.index.tolist() == list(range(2, 12))
    assert result.silhouette_by_k.idxmax() == 3
    assert result.inertia_by_k.is_monotonic_decreasing
    # clusters numbered by ascending avg_daily_sales, centres in original units
    assert result.centers["avg_daily_sales"].is_monotonic_increasing
    assert result.centers["size"].tolist() == [4, 4, 4]
    assert result.centers.loc[0, "avg_daily_sales"] == pytest.approx(100, abs=10)
    small = features.loc[result.labels["cluster"] == 0, "avg_daily_sales"]
    assert (small < 150).all()


def test_is_deterministic_with_a_seed():
    features, _ = planted(n_per_group=5, seed=3)
    a, b = cluster_stores(features, seed=7), cluster_stores(features, seed=7)
    pd.testing.assert_frame_equal(a.labels, b.labels)
    pd.testing.assert_series_equal(a.silhouette_by_k, b.silhouette_by_k)
    pd.testing.assert_series_equal(a.inertia_by_k, b.inertia_by_k)
    pd.testing.assert_frame_equal(a.centers, b.centers)


@pytest.mark.parametrize("n", [1, 2])
def test_fewer_than_three_stores_form_one_cluster(n):
    features, _ = planted()
    result = cluster_stores(features.head(n))
    assert result.k == 1
    assert result.labels["cluster"].tolist() == [0] * n
    assert result.silhouette_by_k.empty and result.inertia_by_k.empty
    assert result.centers["size"].tolist() == [n]
    elbow_plot(result)
    cluster_plot(features.head(n), result)


def test_three_stores_clip_k_range_to_two():
    features, _ = planted()
    result = cluster_stores(features.iloc[[0, 1, 2]], k_range=range(2, 13))
    assert result.k == 2 and result.silhouette_by_k.index.tolist() == [2]


def test_identical_stores_form_one_cluster_and_nan_is_imputed():
    row = dict(zip(STORE_FEATURES, [10.0, 0.2, 0.01, 4.0, 1.0, 0.5], strict=True))
    features = pd.DataFrame([{"store_id": i, **row} for i in range(5)])
    assert cluster_stores(features).k == 1
    features, truth = planted()
    features.loc[0, "seasonality_strength"] = np.nan  # a new store: median-imputed
    result = cluster_stores(features)
    assert result.k == 3
    assert result.labels["cluster"].notna().all()


def test_bad_inputs_are_named():
    features, _ = planted()
    with pytest.raises(ValueError, match="demographic_index"):
        cluster_stores(features.drop(columns=["demographic_index"]))
    with pytest.raises(ValueError, match="k_range"):
        cluster_stores(features.head(4), k_range=range(5, 8))
    with pytest.raises(ValueError, match="empty"):
        cluster_stores(features.head(0))


def _demand(store_weekly: dict[int, list[float]], days: int = 56) -> pd.DataFrame:
    """Two SKUs per store; SKU 1 sells the weekly profile, SKU 2 a constant 1."""
    rows = []
    for store, week in store_weekly.items():
        for i in range(days):
            date = START + pd.Timedelta(days=i)
            rows.append((date, store, 1, week[i % 7]))
            rows.append((date, store, 2, 1.0))
    return pd.DataFrame(rows, columns=["date", "store_id", "sku_id", "demand"])


def test_store_features_against_plain_definitions():
    demand = _demand({1: [10.0] * 7, 2: [5.0, 5.0, 5.0, 5.0, 5.0, 20.0, 20.0]})
    demand.loc[(demand["store_id"] == 2) & (demand["sku_id"] == 2)
               & (demand["date"] == START), "demand"] = None  # unknown: left out
    stores = pd.DataFrame({"store_id": [1, 2, 3], "customer_density": [4.0, 9.0, 1.0],
                           "competitor_proximity_km": [0.5, 2.0, 3.0],
                           "demographic_index": [0.3, 0.7, 0.1]})
    out = store_features(demand, stores)
    assert out.columns.tolist() == ["store_id", *STORE_FEATURES]
    assert out["store_id"].tolist() == [1, 2, 3]
    flat, weekly, absent = (out.iloc[i] for i in range(3))
    assert flat["avg_daily_sales"] == pytest.approx(11.0)
    totals = demand[demand["store_id"] == 2].groupby("date")["demand"].sum()
    assert weekly["avg_daily_sales"] == pytest.approx(totals.mean())
    assert flat["seasonality_strength"] == 0.0 and flat["trend_volatility"] == 0.0
    assert weekly["seasonality_strength"] > 0.95
    assert weekly["customer_density"] == 9.0 and weekly["demographic_index"] == 0.7
    assert np.isnan(absent["avg_daily_sales"]) and np.isnan(absent["seasonality_strength"])
    # a trend that wanders has a higher volatility than a steady one
    rng = np.random.default_rng(1)
    walk = np.abs(50 + np.cumsum(rng.normal(0, 5, 56)))
    drift = _demand({1: [10.0] * 7, 2: [10.0] * 7})
    drift.loc[(drift["store_id"] == 2) & (drift["sku_id"] == 1), "demand"] = walk
    vol = store_features(drift, stores.head(2))["trend_volatility"].to_numpy()
    assert vol[0] == 0.0 and vol[1] > 0.01


def test_store_features_short_history_is_nan_and_bad_input_named():
    demand = _demand({1: [3.0] * 7}, days=10)
    stores = pd.DataFrame({"store_id": [1], "customer_density": [1.0],
                           "competitor_proximity_km": [1.0], "demographic_index": [0.5]})
    out = store_features(demand, stores)
    assert out.loc[0, "avg_daily_sales"] == pytest.approx(4.0)
    assert np.isnan(out.loc[0, "seasonality_strength"])
    with pytest.raises(ValueError, match="demand"):
        store_features(demand.drop(columns=["demand"]), stores)
    with pytest.raises(ValueError, match="customer_density"):
        store_features(demand, stores.drop(columns=["customer_density"]))


def test_plots_are_figures_that_save():
    features, _ = planted()
    result = cluster_stores(features)
    for fig in (elbow_plot(result), cluster_plot(features, result)):
        assert isinstance(fig, Figure)
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        assert buf.getvalue()[:4] == b"\x89PNG"
    scatter = cluster_plot(features, result).axes[0]
    assert len(scatter.collections) == 3  # one scatter per cluster
