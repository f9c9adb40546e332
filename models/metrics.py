"""Forecast accuracy metrics, vectorised, overall or per group (model, horizon, segment, ...).

``evaluate`` joins a forecast frame to the actual demand of its target days and returns one
row per group. Definitions (a = actual, f = point forecast, sums over a group's rows; all
ratios are fractions, not percents; NaN where the denominator is 0 or empty):

* ``wape``  = sum |f - a| / sum a
* ``wape_q50`` = sum |q50 - a| / sum a, the WAPE of the median forecast, when the forecasts
  carry ``q50``: WAPE is an L1 loss, minimised by the median, not the mean, so on skewed
  low-count demand a model's q50 is its WAPE-optimal point forecast
* ``bias``  = sum (f - a) / sum a  (> 0: over-forecast)
* ``mape``  = mean of |f - a| / a over the rows with a > 0 (zero-demand days are left out)
* ``rmsse`` = mean over series of sqrt( mean over the series' rows of (f - a)^2 / scale ),
  ``scale`` = the series' in-sample mean of (y_t - y_{t-m})^2 over the training frame, m =
  ``season_length`` days by calendar (7: seasonal naive; 1: naive-1). Series whose scale is
  0 or undefined (constant or too-short history, or absent from ``train``) are left out;
  ``rmsse_series`` counts the series used.
* ``pinball_q<p>`` = mean of tau * (a - q)^+ + (1 - tau) * (q - a)^+ for each quantile
  column ``q<p>`` of the forecasts, tau = p / 100.
* ``coverage_q<p>`` = share of rows with a <= q<p>: one-sided coverage, the measure for the
  default upper quantiles (q80 should cover about 80%). The issue's "80% and 95% interval
  coverage" are ``coverage_q80`` and ``coverage_q95``: the interval [0, q].
* ``coverage_<w>`` = share of rows with q<lo> <= a <= q<hi>, for every pair of quantile
  columns with lo + hi = 100 and lo < 50 (w = hi - lo): two-sided central intervals, only
  when the forecasts carry the lower quantile (q10 with q90 gives ``coverage_80``; a 95%
  central interval would need q2.5, which has no whole-percent column, so it is never
  reported).
* ``business_cost`` (with ``costs``) = ``business_cost`` of the group's rows.

Alignment is strict: every forecast row needs exactly one actual (same store_id, sku_id and
``date == target_date``) and every actual row at least one forecast; anything else is an
error, so a model that silently skips series cannot look better.
"""
from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

from models.protocol import KEY, check_train

__all__ = ["evaluate", "business_cost", "rmsse_scale", "quantile_levels"]

_QCOL = re.compile(r"^q(\d{1,2})$")
_SAMPLE_ROWS = 5
_GROUP = "_group"
_RESERVED = {"n", "actual", "abs_err", "abs_err_q50", "err", "nonzero", "ape", "wape",
             "wape_q50", "rmsse", "rmsse_series", "mape", "bias", "business_cost", "y", _GROUP}


def quantile_levels(columns: Sequence[str]) -> dict[str, float]:
    """The quantile columns among ``columns`` (``q80 -> 0.8``), ordered by level."""
    found = {c: int(m.group(1)) / 100 for c in columns if (m := _QCOL.match(str(c)))}
    return {c: found[c] for c in sorted(found, key=found.__getitem__) if 0 < found[c] < 1}


def rmsse_scale(train: pd.DataFrame, season_length: int = 7) -> pd.DataFrame:
    """Per series: ``scale`` = mean of (y_t - y_{t-m})^2 over the days where both are in
    ``train`` (m by calendar); NaN when there is no such pair. Columns store_id, sku_id,
    scale."""
    if season_length < 1:
        raise ValueError(f"season_length must be >= 1, got {season_length}")
    df = check_train(train, "train")[[*KEY, "date", "y"]]
    lagged = df.assign(date=df["date"] + pd.Timedelta(days=season_length))
    pairs = df.merge(lagged, on=[*KEY, "date"], suffixes=("", "_lag"))
    pairs["sq"] = (pairs["y"] - pairs["y_lag"]) ** 2
    scale = pairs.groupby(list(KEY), sort=False)["sq"].mean().rename("scale")
    series = df[list(KEY)].drop_duplicates()
    return series.merge(scale.reset_index(), on=list(KEY), how="left")


def _align(actuals: pd.DataFrame, forecasts: pd.DataFrame, point: str) -> pd.DataFrame:
    act = check_train(actuals, "actuals")
    need = [*KEY, "target_date", point]
    missing = [c for c in need if c not in forecasts.columns]
    if missing:
        raise ValueError(f"forecasts: missing column(s) {missing}; need {need} "
                         f"(has {list(forecasts.columns)})")
    if len(forecasts) == 0:
        raise ValueError("forecasts: is empty")
    if "y" in forecasts.columns or "date" in forecasts.columns:
        raise ValueError("forecasts: must not carry a 'y' or 'date' column (actuals come from "
                         "the actuals frame, joined on target_date)")
    fc = forecasts.copy()
    fc["target_date"] = pd.to_datetime(fc["target_date"]).dt.normalize().astype(
        "datetime64[ns]")
    values = [point, *quantile_levels(list(fc.columns))]
    bad = ~np.isfinite(fc[values].to_numpy(dtype="float64")).all(axis=1)
    if bad.any():
        raise ValueError(f"forecasts: {int(bad.sum())} row(s) with a null or infinite "
                         f"{values} value, e.g.\n"
                         f"{fc.loc[bad, need].head(_SAMPLE_ROWS).to_string(index=False)}")
    extra = [c for c in act.columns if c not in fc.columns and c not in (*KEY, "date", "y")]
    act = act[[*KEY, "date", "y", *extra]]
    merged = fc.merge(act.rename(columns={"date": "target_date"}), on=[*KEY, "target_date"],
                      how="outer", indicator=True)
    orphan_fc = (merged["_merge"] == "left_only").to_numpy()
    if orphan_fc.any():
        raise ValueError(f"forecasts: {int(orphan_fc.sum())} row(s) have no actual for their "
                         "(store_id, sku_id, target_date), e.g.\n"
                         f"{merged.loc[orphan_fc, need].head(_SAMPLE_ROWS).to_string(index=False)}")
    orphan_act = (merged["_merge"] == "right_only").to_numpy()
    if orphan_act.any():
        sample = merged.loc[orphan_act, [*KEY, "target_date", "y"]].head(_SAMPLE_ROWS)
        raise ValueError(f"actuals: {int(orphan_act.sum())} row(s) have no forecast; pass only "
                         f"the actuals of the forecast days, e.g.\n{sample.to_string(index=False)}")
    return merged.drop(columns="_merge")


def evaluate(actuals: pd.DataFrame, forecasts: pd.DataFrame, train: pd.DataFrame,
             by: Sequence[str] | None = None, point: str = "mean", season_length: int = 7,
             costs: tuple[str, str] | None = None) -> pd.DataFrame:
    """All metrics of the module docstring, one row per group of ``by`` (one row if empty).

    ``actuals``: store_id, sku_id, date, y. ``forecasts``: a forecast frame, possibly with
    several models/cutoffs stacked and extra key columns (model, cutoff, segment, ...);
    ``by`` may name any column of either frame. ``train``: the history used for the RMSSE
    scale (for several cutoffs, the history up to the earliest). ``costs``: names of the
    per-row under/over cost columns, to add ``business_cost``.
    """
    by = list(by or [])
    clash = sorted(set(by) & _RESERVED)
    if clash:
        raise ValueError(f"evaluate: cannot group by {clash}: reserved for metric columns")
    df = _align(actuals, forecasts, point)
    missing = [c for c in [*by, *(costs or ())] if c not in df.columns]
    if missing:
        raise ValueError(f"evaluate: column(s) {missing} are in neither frame "
                         f"(have {sorted(map(str, df.columns))})")
    a = df["y"].to_numpy(dtype="float64")
    f = df[point].to_numpy(dtype="float64")
    err = f - a
    keys = by or [_GROUP]
    rows = pd.DataFrame({k: df[k] for k in by} if by else {_GROUP: np.zeros(len(df))})
    rows["n"] = 1.0
    rows["actual"] = a
    rows["abs_err"] = np.abs(err)
    rows["err"] = err
    rows["nonzero"] = (a > 0).astype("float64")
    rows["ape"] = np.divide(np.abs(err), a, out=np.zeros_like(a), where=a > 0)
    levels = quantile_levels([str(c) for c in df.columns])
    if "q50" in levels:
        rows["abs_err_q50"] = np.abs(df["q50"].to_numpy(dtype="float64") - a)
    for col, tau in levels.items():
        q = df[col].to_numpy(dtype="float64")
        rows[f"pinball_{col}"] = np.maximum(tau * (a - q), (tau - 1.0) * (a - q))
        rows[f"coverage_{col}"] = (a <= q).astype("float64")
    pct = {round(100 * t): c for c, t in levels.items()}
    intervals = {hi - lo: (pct[lo], pct[hi]) for lo in sorted(pct) if lo < 50
                 and (hi := 100 - lo) in pct}
    for width, (lo_col, hi_col) in intervals.items():
        inside = (df[lo_col].to_numpy() <= a) & (a <= df[hi_col].to_numpy())
        rows[f"coverage_{width}"] = inside.astype("float64")
    if costs is not None:
        under = df[costs[0]].to_numpy(dtype="float64")
        over = df[costs[1]].to_numpy(dtype="float64")
        _check_costs(under, over, len(a))
        rows["business_cost"] = under * np.maximum(-err, 0) + over * np.maximum(err, 0)

    sums = rows.groupby(keys, sort=True, dropna=False).sum()
    out = pd.DataFrame(index=sums.index)
    out["n"] = sums["n"].astype("int64")
    total = sums["actual"].to_numpy()
    out["wape"] = _ratio(sums["abs_err"].to_numpy(), total)
    if "q50" in levels:
        out["wape_q50"] = _ratio(sums["abs_err_q50"].to_numpy(), total)
    out["rmsse"], out["rmsse_series"] = _rmsse(df, err, keys, rows, train, season_length,
                                               out.index)
    out["mape"] = _ratio(sums["ape"].to_numpy(), sums["nonzero"].to_numpy())
    out["bias"] = _ratio(sums["err"].to_numpy(), total)
    n = sums["n"].to_numpy()
    for col in levels:
        out[f"pinball_{col}"] = sums[f"pinball_{col}"].to_numpy() / n
    for col in levels:
        out[f"coverage_{col}"] = sums[f"coverage_{col}"].to_numpy() / n
    for width in intervals:
        out[f"coverage_{width}"] = sums[f"coverage_{width}"].to_numpy() / n
    if costs is not None:
        out["business_cost"] = sums["business_cost"]
    out = out.reset_index()
    return out.drop(columns=_GROUP) if not by else out


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.full(len(num), np.nan), where=den > 0)


def _rmsse(df: pd.DataFrame, err: np.ndarray, keys: list[str], rows: pd.DataFrame,
           train: pd.DataFrame, season_length: int,
           index: pd.Index) -> tuple[np.ndarray, np.ndarray]:
    scale = rmsse_scale(train, season_length)
    per = pd.DataFrame({k: rows[k] for k in keys})
    for k in KEY:
        per[f"_{k}"] = df[k].to_numpy()
    per["sq"] = err ** 2
    skeys = [f"_{k}" for k in KEY]
    mse = per.groupby([*keys, *skeys], sort=False, dropna=False)["sq"].mean().reset_index()
    mse = mse.merge(scale.rename(columns={k: f"_{k}" for k in KEY}), on=skeys, how="left")
    ok = (mse["scale"] > 0).to_numpy()
    mse = mse.loc[ok]
    mse["rmsse"] = np.sqrt(mse["sq"] / mse["scale"])
    agg = mse.groupby(keys, sort=True, dropna=False)["rmsse"].agg(["mean", "size"])
    agg = agg.reindex(index)
    return agg["mean"].to_numpy(), agg["size"].fillna(0).astype("int64").to_numpy()


def _check_costs(under: np.ndarray, over: np.ndarray, n: int) -> None:
    for label, c in (("under_cost", under), ("over_cost", over)):
        if c.shape != (n,):
            raise ValueError(f"business_cost: {label} has shape {c.shape}, need ({n},) "
                             "(one cost per row) or a scalar")
        bad = ~np.isfinite(c) | (c < 0)
        if bad.any():
            raise ValueError(f"business_cost: {int(bad.sum())} {label} value(s) are negative, "
                             f"null or infinite (first at row {int(np.argmax(bad))})")


def business_cost(actual: npt.ArrayLike, forecast: npt.ArrayLike, under_cost: npt.ArrayLike,
                  over_cost: npt.ArrayLike) -> float:
    """sum(under_cost * (a - f)^+ + over_cost * (f - a)^+), costs per row (or scalars).

    The cost of acting on the forecast: lost margin on demand above it, holding and waste
    on stock above demand. The promotion gate compares models with it.
    """
    a = np.asarray(actual, dtype="float64").reshape(-1)
    f = np.asarray(forecast, dtype="float64").reshape(-1)
    if a.shape != f.shape:
        raise ValueError(f"business_cost: actual has {a.size} values, forecast {f.size}; "
                         "they must be aligned row by row")
    if a.size == 0:
        raise ValueError("business_cost: no rows to cost")
    bad = ~np.isfinite(a) | ~np.isfinite(f)
    if bad.any():
        raise ValueError(f"business_cost: {int(bad.sum())} null or infinite actual/forecast "
                         f"value(s) (first at row {int(np.argmax(bad))})")
    under = np.broadcast_to(np.asarray(under_cost, dtype="float64"), a.shape) if np.ndim(
        under_cost) == 0 else np.asarray(under_cost, dtype="float64").reshape(-1)
    over = np.broadcast_to(np.asarray(over_cost, dtype="float64"), a.shape) if np.ndim(
        over_cost) == 0 else np.asarray(over_cost, dtype="float64").reshape(-1)
    _check_costs(under, over, a.size)
    return float(np.sum(under * np.maximum(a - f, 0) + over * np.maximum(f - a, 0)))
