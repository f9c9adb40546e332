"""Store clustering: k-means++ on what makes dark stores sell alike.

Six features per store (``store_features``), from its daily demand and its attributes:

* ``avg_daily_sales``: mean over the store's days of its total demand (all SKUs). Rows with
  unknown demand (a censored day without any sale, ``demand`` null) are left out of the sum.
* ``seasonality_strength``: weekly seasonality strength of the store's daily total, the
  classical-decomposition form of Hyndman's measure: trend = centred 7-day moving average,
  seasonal = the mean detrended value of each weekday, remainder = detrended - seasonal,
  ``max(0, 1 - var(remainder) / var(detrended))``: 0 without a weekly pattern, near 1 when
  the weekday explains almost everything. Needs 14 days of history, else NaN.
* ``trend_volatility``: standard deviation of the trend's day-over-day change divided by
  the store's mean daily total (scale-free: how restless the level is). NaN below 14 days.
* ``customer_density``, ``competitor_proximity_km``, ``demographic_index``: from ``stores``.

``store_features`` reads ``demand`` rows keyed by (date, store_id): one per SKU, or already
summed per store and day (what ``replenish run cluster`` passes; the sums are the same).
Days a store has no row at all are interpolated linearly in its daily total (the store was
closed or the data is missing, not zero).

``cluster_stores`` fills any NaN with the column's median over stores (a store without
history lands with the typical store), standardises every column (z-scores; a constant
column becomes 0), then runs k-means++ (``n_init=10``, seeded) for every k in ``k_range``
clipped to ``[2, n_distinct - 1]`` and keeps the k with the highest silhouette (the smallest
on a tie), with the inertia (elbow) curve alongside for the plot. Cluster numbers are
ordered by the centres' ``avg_daily_sales``, 0 = the smallest stores, so a number means the
same kind of store from run to run. With fewer than three stores (or fewer than three
distinct feature rows) a silhouette is undefined: every store gets cluster 0 and ``k = 1``.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import silhouette_score

__all__ = ["STORE_FEATURES", "ClusterResult", "store_features", "cluster_stores",
           "elbow_plot", "cluster_plot"]

#: The columns ``store_features`` returns besides ``store_id``, and ``cluster_stores`` uses.
STORE_FEATURES: tuple[str, ...] = ("avg_daily_sales", "seasonality_strength",
                                   "trend_volatility", "customer_density",
                                   "competitor_proximity_km", "demographic_index")
_STORE_ATTRS = ("customer_density", "competitor_proximity_km", "demographic_index")
_DEMAND_COLUMNS = ("date", "store_id", "demand")
_SEASON = 7
_MIN_DAYS = 2 * _SEASON
_N_INIT = 10


@dataclass(frozen=True, eq=False)
class ClusterResult:
    """Outcome of ``cluster_stores``.

    ``labels``: store_id, cluster (0..k-1). ``silhouette_by_k`` / ``inertia_by_k``: one value
    per k tried (index k; empty when a single cluster was forced). ``centers``: cluster,
    size and the feature columns in their original units (the mean of the cluster's stores
    after median imputation).
    """

    labels: pd.DataFrame
    k: int
    silhouette_by_k: pd.Series
    inertia_by_k: pd.Series
    centers: pd.DataFrame
    columns: tuple[str, ...] = STORE_FEATURES


def _missing(df: pd.DataFrame, cols: Sequence[str], what: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {missing}; need {list(cols)} "
                         f"(has {list(df.columns)})")


def _store_totals(demand_daily: pd.DataFrame) -> pd.DataFrame:
    """Stores x days matrix of total demand on a full daily calendar, gaps interpolated."""
    df = demand_daily[["date", "store_id", "demand"]].copy()
    df["date"] = pd.to_datetime(df["date"]).dt.normalize()
    df["demand"] = pd.to_numeric(df["demand"], errors="coerce")
    known = df.dropna(subset=["demand"])
    totals = known.pivot_table(index="store_id", columns="date", values="demand",
                               aggfunc="sum")
    if totals.shape[1] == 0:
        return totals
    calendar = pd.date_range(totals.columns.min(), totals.columns.max(), freq="D")
    totals = totals.reindex(columns=calendar)
    # interpolate along days, only inside each store's own observed span
    return totals.T.interpolate(method="linear", limit_area="inside").T


def _seasonality_and_volatility(totals: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    with warnings.catch_warnings():  # all-NaN rows (short stores) are expected; NaN out
        warnings.simplefilter("ignore", RuntimeWarning)
        return _seasonality_and_volatility_impl(totals)


def _seasonality_and_volatility_impl(totals: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    values = totals.to_numpy(dtype="float64")
    n = values.shape[0]
    if values.shape[1] == 0:
        return np.full(n, np.nan), np.full(n, np.nan)
    trend = totals.T.rolling(_SEASON, center=True, min_periods=_SEASON).mean().T.to_numpy()
    detrended = values - trend
    weekday = totals.columns.dayofweek.to_numpy()
    seasonal = np.full_like(values, np.nan)
    for d in range(_SEASON):
        cols = weekday == d
        block = detrended[:, cols]
        count = np.isfinite(block).sum(axis=1)
        mean = np.divide(np.nansum(block, axis=1), count, out=np.full(n, np.nan),
                         where=count > 0)
        seasonal[:, cols] = mean[:, None]
    seasonal -= np.nanmean(seasonal, axis=1, keepdims=True)
    remainder = detrended - seasonal
    days = np.isfinite(values).sum(axis=1)
    enough = (days >= _MIN_DAYS) & (np.isfinite(detrended).sum(axis=1) >= 2)
    strength = np.full(n, np.nan)
    volatility = np.full(n, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        var_d = np.nanvar(np.where(enough[:, None], detrended, 0.0), axis=1)
        var_r = np.nanvar(np.where(enough[:, None], remainder, 0.0), axis=1)
        s = np.where(var_d > 0, np.clip(1.0 - var_r / np.where(var_d > 0, var_d, 1.0), 0, 1),
                     0.0)
        strength[enough] = s[enough]
        level = np.nanmean(np.where(enough[:, None], values, 0.0), axis=1)
        step = np.nanstd(np.where(enough[:, None], np.diff(trend, axis=1, prepend=np.nan),
                                  0.0), axis=1)
        vol = np.where(level > 0, step / np.where(level > 0, level, 1.0), 0.0)
        volatility[enough] = vol[enough]
    return strength, volatility


def store_features(demand_daily: pd.DataFrame, stores: pd.DataFrame) -> pd.DataFrame:
    """One row per store of ``stores``: store_id and ``STORE_FEATURES`` (see the module
    docstring). Demand-based features are NaN for a store with no (or too little) demand."""
    _missing(demand_daily, _DEMAND_COLUMNS, "demand_daily")
    _missing(stores, ("store_id", *_STORE_ATTRS), "stores")
    if stores["store_id"].duplicated().any():
        dups = pd.unique(stores.loc[stores["store_id"].duplicated(), "store_id"])[:5]
        raise ValueError(f"stores: store_id must be unique, repeated e.g. {list(dups)}")
    totals = _store_totals(demand_daily)
    strength, volatility = _seasonality_and_volatility(totals)
    per_store = pd.DataFrame({
        "store_id": totals.index.to_numpy(),
        "avg_daily_sales": totals.mean(axis=1, skipna=True).to_numpy(),
        "seasonality_strength": strength,
        "trend_volatility": volatility,
    })
    attrs = stores[["store_id", *_STORE_ATTRS]].copy()
    for c in _STORE_ATTRS:
        attrs[c] = pd.to_numeric(attrs[c], errors="coerce").astype("float64")
    out = attrs.merge(per_store, on="store_id", how="left")
    return out[["store_id", *STORE_FEATURES]].reset_index(drop=True)


def _standardise(features: pd.DataFrame,
                 columns: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(z-scores, imputed original values, column std); NaN filled with column medians."""
    _missing(features, ("store_id", *columns), "features")
    if features["store_id"].duplicated().any():
        raise ValueError("features: store_id must be unique")
    raw = features[list(columns)].apply(pd.to_numeric, errors="coerce").to_numpy("float64")
    raw[~np.isfinite(raw)] = np.nan
    empty = [c for c, col in zip(columns, raw.T, strict=True) if not np.isfinite(col).any()]
    if empty and len(raw):
        raise ValueError(f"features: column(s) {empty} have no finite value for any store")
    if len(raw):
        median = np.nanmedian(raw, axis=0)
        raw = np.where(np.isfinite(raw), raw, median[None, :])
    mean = raw.mean(axis=0) if len(raw) else np.zeros(len(columns))
    std = raw.std(axis=0) if len(raw) else np.ones(len(columns))
    safe = np.where(std > 0, std, 1.0)
    return (raw - mean) / safe, raw, safe


def cluster_stores(features: pd.DataFrame, k_range: Sequence[int] = range(2, 13),
                   seed: int = 42, columns: Sequence[str] = STORE_FEATURES) -> ClusterResult:
    """Cluster stores by k-means++ on standardised ``columns`` of ``features`` (one row per
    store, e.g. from ``store_features``), k by silhouette; see the module docstring."""
    z, raw, _ = _standardise(features, columns)
    store_ids = features["store_id"].to_numpy()
    n = len(z)
    if n == 0:
        raise ValueError("features: is empty; need at least one store")
    distinct = len(np.unique(np.round(z, 12), axis=0))
    upper = min(n - 1, distinct)
    ks = sorted({int(k) for k in k_range if 2 <= int(k) <= upper})
    if upper < 2:
        labels = np.zeros(n, dtype="int64")
        return _result(store_ids, labels, raw, columns, 1, {}, {})
    if not ks:
        raise ValueError(f"k_range {list(k_range)} has no k in [2, {upper}] (k must be at "
                         f"least 2 and below the {n} stores / {distinct} distinct rows)")
    silhouettes: dict[int, float] = {}
    inertias: dict[int, float] = {}
    fitted: dict[int, np.ndarray] = {}
    for k in ks:
        km = KMeans(n_clusters=k, init="k-means++", n_init=_N_INIT, random_state=seed)
        labels = km.fit_predict(z)
        inertias[k] = float(km.inertia_)
        found = len(np.unique(labels))
        silhouettes[k] = float(silhouette_score(z, labels)) if 2 <= found < n else -1.0
        fitted[k] = labels
    best = max(ks, key=lambda k: (silhouettes[k], -k))
    return _result(store_ids, fitted[best], raw, columns, best, silhouettes, inertias)


def _result(store_ids: np.ndarray, labels: np.ndarray, raw: np.ndarray,
            columns: Sequence[str], k: int, silhouettes: dict[int, float],
            inertias: dict[int, float]) -> ClusterResult:
    """Relabel clusters by ascending centre of the first column and package the result."""
    found = np.unique(labels)
    centres = np.array([raw[labels == c].mean(axis=0) for c in found])
    order = found[np.lexsort(centres.T[::-1])]  # first column, then the next, ...
    relabel = {int(old): new for new, old in enumerate(order)}
    new = np.array([relabel[int(c)] for c in labels], dtype="int64")
    centers = pd.DataFrame(np.array([raw[new == c].mean(axis=0) for c in range(len(found))]),
                           columns=list(columns))
    centers.insert(0, "size", np.bincount(new, minlength=len(found)).astype("int64"))
    centers.insert(0, "cluster", np.arange(len(found), dtype="int64"))
    return ClusterResult(
        labels=pd.DataFrame({"store_id": store_ids, "cluster": new}),
        k=k,
        silhouette_by_k=pd.Series(silhouettes, name="silhouette", dtype="float64")
        .rename_axis("k"),
        inertia_by_k=pd.Series(inertias, name="inertia", dtype="float64").rename_axis("k"),
        centers=centers,
        columns=tuple(columns),
    )


def elbow_plot(result: ClusterResult) -> Figure:
    """Inertia (elbow) and silhouette against k, the chosen k marked."""
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.add_subplot()
    ks = result.inertia_by_k.index.to_numpy()
    ax.plot(ks, result.inertia_by_k.to_numpy(), "o-", color="tab:blue")
    ax.set_xlabel("k (clusters)")
    ax.set_ylabel("inertia (within-cluster sum of squares)", color="tab:blue")
    twin = ax.twinx()
    twin.plot(ks, result.silhouette_by_k.to_numpy(), "s--", color="tab:orange")
    twin.set_ylabel("silhouette", color="tab:orange")
    if len(ks):
        ax.axvline(result.k, color="grey", linestyle=":")
        ax.set_xticks(ks)
    ax.set_title(f"Store clustering: k = {result.k} chosen by silhouette")
    return fig


def cluster_plot(features: pd.DataFrame, result: ClusterResult) -> Figure:
    """Stores on the first two principal components of the standardised features,
    coloured by cluster."""
    z, _, _ = _standardise(features, result.columns)
    labels = features[["store_id"]].merge(result.labels, on="store_id", how="left")["cluster"]
    if labels.isna().any():
        raise ValueError("cluster_plot: features has stores without a cluster in result")
    n_comp = min(2, z.shape[0], z.shape[1])
    if n_comp >= 1 and z.shape[0] >= 2:
        pca = PCA(n_components=n_comp, svd_solver="full")
        xy = pca.fit_transform(z)
        explained = pca.explained_variance_ratio_
    else:
        xy, explained = np.zeros((z.shape[0], n_comp or 1)), np.zeros(2)
    if xy.shape[1] < 2:
        xy = np.hstack([xy, np.zeros((len(xy), 2 - xy.shape[1]))])
        explained = np.append(explained, np.zeros(2 - len(explained)))
    fig = Figure(figsize=(6, 5), layout="constrained")
    ax = fig.add_subplot()
    codes = labels.to_numpy(dtype="int64")
    for c in range(result.k):
        sel = codes == c
        ax.scatter(xy[sel, 0], xy[sel, 1], label=f"cluster {c} ({int(sel.sum())})", s=30)
    ax.set_xlabel(f"PC1 ({100 * explained[0]:.0f}% of variance)")
    ax.set_ylabel(f"PC2 ({100 * explained[1]:.0f}% of variance)")
    ax.set_title(f"Stores by cluster (k = {result.k})")
    ax.legend(loc="best", fontsize="small")
    return fig
