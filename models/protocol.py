"""The one protocol every forecaster follows, and the checks that hold it to it.

Like statsforecast's models: ``fit(train, cfg)`` on a long frame of daily demand, then
``predict(horizon, quantiles)`` returns a long frame with a point forecast and quantiles.

Training frame (``check_train``): one row per series x day with columns ``store_id``,
``sku_id``, ``date`` (datetime64 or ``datetime.date``) and ``y`` (corrected demand, a finite
number >= 0); any other column is a feature a model may use. The series key is
``(store_id, sku_id)``. A day without a row is a day without an observation.

Forecast frame (``check_forecast``): one row per series x horizon day with ``store_id``,
``sku_id``, ``target_date``, ``horizon`` (1..H), ``mean`` and one column per quantile level
``q`` named ``"q" + str(round(100 * q))`` (``q50 q80 q90 q95 q99`` for ``QUANTILES``).
Values are finite, non-negative and non-decreasing across quantile levels. Every series is
forecast from one common cutoff, the training frame's last date (a backtest's origin or the
nightly run date): ``target_date = cutoff + horizon`` days, whatever the series' own last day.

Quantiles of the simple models (``residual_quantiles``):

* with at least ``cfg.min_residuals`` in-sample residuals (actual minus the model's own
  forecast of that day from data before it), ``quantile_q = mean + empirical quantile q of the
  series' residuals`` (linear interpolation), times a per-horizon spread factor a model may
  set (seasonal naive: ``sqrt(ceil(h / m))`` beyond one season);
* with fewer (short history), a count distribution around the forecast mean: negative binomial
  with the series' index of dispersion ``phi = var(y) / mean(y)`` (so variance
  ``phi * mean_h`` follows each day's mean), or Poisson when ``phi <= 1`` or undefined
  (fewer than two observations);
* then every value is clipped at 0 and made non-decreasing across levels (a running max).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["QUANTILES", "KEY", "TRAIN_COLUMNS", "FORECAST_COLUMNS", "ModelConfig", "Forecaster",
           "quantile_column", "quantile_columns", "forecast_columns", "check_train",
           "check_forecast", "forecast_frame", "residual_quantiles", "row_quantiles",
           "nb_quantiles"]

#: Quantile levels every forecaster returns by default (the MILP reads q80..q99).
QUANTILES: tuple[float, ...] = (0.5, 0.8, 0.9, 0.95, 0.99)
#: The series key.
KEY: tuple[str, str] = ("store_id", "sku_id")
TRAIN_COLUMNS: tuple[str, ...] = ("store_id", "sku_id", "date", "y")
#: Columns of a forecast frame before the quantile columns.
FORECAST_COLUMNS: tuple[str, ...] = ("store_id", "sku_id", "target_date", "horizon", "mean")

_SAMPLE_ROWS = 5


@dataclass(frozen=True)
class ModelConfig:
    """Hyperparameters shared by the forecasters; one frozen value per training run.

    A model's constructor argument, when given, wins over the field here.

    ``season_length``: days of the weekly cycle (seasonal naive, RMSSE scale).
    ``window``: days averaged by ``MovingAverage``.
    ``croston_alpha``: smoothing of the demand size (TSB, Croston) and, for classic
    Croston/SBA, of the inter-demand interval. ``croston_beta``: smoothing of the demand
    probability (TSB only). ``croston_method``: ``"tsb"``, ``"croston"`` or ``"sba"``.
    ``min_residuals``: in-sample residuals a series needs for empirical quantiles; below it
    the negative-binomial/Poisson fallback is used.
    """

    seed: int = 42
    season_length: int = 7
    window: int = 28
    croston_alpha: float = 0.1
    croston_beta: float = 0.1
    croston_method: str = "tsb"
    min_residuals: int = 28

    def __post_init__(self) -> None:
        if self.season_length < 1:
            raise ValueError(f"ModelConfig.season_length must be >= 1, got {self.season_length}")
        if self.window < 1:
            raise ValueError(f"ModelConfig.window must be >= 1, got {self.window}")
        for name in ("croston_alpha", "croston_beta"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise ValueError(f"ModelConfig.{name} must be in (0, 1], got {value}")
        if self.croston_method not in ("tsb", "croston", "sba"):
            raise ValueError("ModelConfig.croston_method must be 'tsb', 'croston' or 'sba', "
                             f"got {self.croston_method!r}")
        if self.min_residuals < 2:
            raise ValueError(f"ModelConfig.min_residuals must be >= 2, got {self.min_residuals}")


@runtime_checkable
class Forecaster(Protocol):
    """What every model offers. ``fit`` returns the fitted model itself."""

    name: str

    def fit(self, train: pd.DataFrame, cfg: ModelConfig) -> Forecaster:
        """Learn from a training frame (see ``check_train``)."""
        ...

    def predict(self, horizon: int, quantiles: Sequence[float] = QUANTILES,
                future: pd.DataFrame | None = None) -> pd.DataFrame:
        """Forecast days 1..``horizon`` after the cutoff for every series seen in ``fit``.

        ``future``: known covariates for the target days (store_id, sku_id, date, ...), for
        models that use them; models without covariates ignore it.
        """
        ...


def quantile_column(q: float) -> str:
    """``0.95 -> "q95"``. Levels must be in (0, 1) with at most two decimals (names are
    whole percents, so 0.975 would collide with 0.97)."""
    pct = round(100 * float(q))
    if not 0.0 < q < 1.0 or not math.isclose(100 * float(q), pct, abs_tol=1e-9):
        raise ValueError(f"quantile level {q!r} must be in (0, 1) and a whole percent "
                         "(e.g. 0.8, 0.95), so that its column name q<percent> is exact")
    return f"q{pct}"


def quantile_columns(quantiles: Sequence[float] = QUANTILES) -> list[str]:
    """Column names for ``quantiles``, which must be strictly increasing."""
    qs = [float(q) for q in quantiles]
    if not qs:
        raise ValueError("at least one quantile level is needed")
    if any(b <= a for a, b in zip(qs, qs[1:], strict=False)):
        raise ValueError(f"quantile levels must be strictly increasing, got {list(quantiles)}")
    return [quantile_column(q) for q in qs]


def forecast_columns(quantiles: Sequence[float] = QUANTILES) -> list[str]:
    """All columns of a forecast frame, in order."""
    return [*FORECAST_COLUMNS, *quantile_columns(quantiles)]


def _sample(df: pd.DataFrame, mask: np.ndarray | pd.Series, cols: Sequence[str]) -> str:
    rows = df.loc[np.asarray(mask), [c for c in cols if c in df.columns]].head(_SAMPLE_ROWS)
    return rows.to_string(index=False)


def check_train(train: pd.DataFrame, what: str = "training frame") -> pd.DataFrame:
    """Validate a demand frame (training data, or actuals for metrics) and return a copy with
    ``date`` as normalised datetime64[ns] and ``y`` as float64.

    Raises ValueError naming the rule and showing offending rows: missing columns, empty
    frame, null keys or dates, non-finite or negative ``y``, duplicate series x date rows.
    """
    missing = [c for c in TRAIN_COLUMNS if c not in train.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {missing}; need {list(TRAIN_COLUMNS)} "
                         f"(has {list(train.columns)})")
    if len(train) == 0:
        raise ValueError(f"{what}: is empty; need at least one row per series")
    out = train.copy()
    nulls = out[["store_id", "sku_id", "date"]].isna().any(axis=1).to_numpy()
    if nulls.any():
        raise ValueError(f"{what}: {int(nulls.sum())} row(s) with a null store_id, sku_id or "
                         f"date, e.g.\n{_sample(out, nulls, TRAIN_COLUMNS)}")
    try:
        out["date"] = pd.to_datetime(out["date"]).dt.normalize().astype("datetime64[ns]")
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what}: column date is not a date: {exc}") from exc
    try:
        y = pd.to_numeric(out["y"], errors="raise").astype("float64")
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what}: column y is not numeric: {exc}") from exc
    bad = ~np.isfinite(y.to_numpy()) | (y.to_numpy() < 0)
    if bad.any():
        raise ValueError(f"{what}: {int(bad.sum())} row(s) where y is null, infinite or "
                         "negative (demand must be a finite number >= 0; impute unknown "
                         f"demand before modelling), e.g.\n{_sample(out, bad, TRAIN_COLUMNS)}")
    out["y"] = y
    dup = out.duplicated(["store_id", "sku_id", "date"], keep=False).to_numpy()
    if dup.any():
        raise ValueError(f"{what}: {int(dup.sum())} row(s) share a (store_id, sku_id, date); "
                         f"need one row per series and day, e.g.\n"
                         f"{_sample(out, dup, TRAIN_COLUMNS)}")
    return out


def check_forecast(df: pd.DataFrame, horizon: int,
                   quantiles: Sequence[float] = QUANTILES) -> None:
    """Raise ValueError unless ``df`` is a valid forecast frame for ``horizon`` days.

    Checks: columns, not empty, no nulls, horizons exactly 1..H once per series, one
    cutoff per series (``target_date - horizon``), finite non-negative values, quantiles
    non-decreasing across levels.
    """
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    qcols = quantile_columns(quantiles)
    cols = [*FORECAST_COLUMNS, *qcols]
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"forecast: missing column(s) {missing}; need {cols} "
                         f"(has {list(df.columns)})")
    if len(df) == 0:
        raise ValueError("forecast: is empty")
    nulls = df[cols].isna().any(axis=1).to_numpy()
    if nulls.any():
        raise ValueError(f"forecast: {int(nulls.sum())} row(s) with a null value, e.g.\n"
                         f"{_sample(df, nulls, cols)}")
    h = df["horizon"].to_numpy()
    off = (h < 1) | (h > horizon) | (h != np.round(h))
    if off.any():
        raise ValueError(f"forecast: {int(off.sum())} row(s) with horizon outside 1..{horizon},"
                         f" e.g.\n{_sample(df, off, cols)}")
    dup = df.duplicated([*KEY, "horizon"], keep=False).to_numpy()
    if dup.any():
        raise ValueError(f"forecast: {int(dup.sum())} row(s) repeat a (store_id, sku_id, "
                         f"horizon), e.g.\n{_sample(df, dup, cols)}")
    per_series = df.groupby(list(KEY), sort=False, dropna=False)["horizon"].transform("size")
    short = (per_series != horizon).to_numpy()
    if short.any():
        raise ValueError(f"forecast: {int(short.sum())} row(s) belong to series without "
                         f"exactly {horizon} horizon days, e.g.\n{_sample(df, short, cols)}")
    target = pd.to_datetime(df["target_date"])
    origin = target - pd.to_timedelta(df["horizon"].astype("int64"), unit="D")
    n_origins = origin.groupby([df[k] for k in KEY], sort=False).transform("nunique")
    mixed = (n_origins != 1).to_numpy()
    if mixed.any():
        raise ValueError(f"forecast: {int(mixed.sum())} row(s) whose target_date - horizon "
                         "is not one cutoff per series, e.g.\n"
                         f"{_sample(df, mixed, cols)}")
    values = df[["mean", *qcols]].to_numpy(dtype="float64")
    bad = ~np.isfinite(values).all(axis=1) | (values < 0).any(axis=1)
    if bad.any():
        raise ValueError(f"forecast: {int(bad.sum())} row(s) with a negative or infinite mean "
                         f"or quantile, e.g.\n{_sample(df, bad, cols)}")
    if len(qcols) > 1:
        q = values[:, 1:]
        crossing = (np.diff(q, axis=1) < 0).any(axis=1)
        if crossing.any():
            raise ValueError(f"forecast: {int(crossing.sum())} row(s) whose quantiles decrease "
                             f"across {qcols}, e.g.\n{_sample(df, crossing, cols)}")


def forecast_frame(keys: pd.DataFrame, cutoff: pd.Timestamp, mean: np.ndarray,
                   qvalues: np.ndarray, quantiles: Sequence[float]) -> pd.DataFrame:
    """Assemble a forecast frame from arrays: ``keys`` (n series, columns store_id, sku_id),
    ``mean`` (n, H) and ``qvalues`` (n, H, Q), rows ordered by series then horizon."""
    n, horizon = mean.shape
    qcols = quantile_columns(quantiles)
    if qvalues.shape != (n, horizon, len(qcols)) or len(keys) != n:
        raise ValueError(f"forecast_frame: shapes disagree: keys {len(keys)}, mean {mean.shape}"
                         f", quantiles {qvalues.shape}")
    steps = np.arange(1, horizon + 1)
    out = pd.DataFrame({k: np.repeat(keys[k].to_numpy(), horizon) for k in KEY})
    out["target_date"] = (pd.Timestamp(cutoff)
                          + pd.to_timedelta(np.tile(steps, n), unit="D")).astype("datetime64[ns]")
    out["horizon"] = np.tile(steps, n).astype("int64")
    out["mean"] = mean.reshape(-1)
    flat = qvalues.reshape(n * horizon, len(qcols))
    for j, col in enumerate(qcols):
        out[col] = flat[:, j]
    return out


def row_quantiles(values: np.ndarray, quantiles: Sequence[float]) -> tuple[np.ndarray,
                                                                          np.ndarray]:
    """Per-row quantiles of a 2-D array ignoring NaN (numpy's default linear interpolation),
    vectorised; ``np.nanquantile(axis=1)`` loops in Python when NaNs are present.

    Returns (quantiles (n, Q), count of non-NaN values per row (n,)); rows without any value
    get NaN.
    """
    qs = np.asarray(quantiles, dtype="float64")
    srt = np.sort(values, axis=1)  # NaN sort last
    count = np.isfinite(srt).sum(axis=1)
    pos = qs[None, :] * np.maximum(count - 1, 0)[:, None]
    lo = np.floor(pos).astype("int64")
    hi = np.minimum(lo + 1, np.maximum(count - 1, 0)[:, None])
    frac = pos - lo
    if srt.shape[1] == 0:
        return np.full((len(srt), len(qs)), np.nan), count
    lo_v = np.take_along_axis(srt, lo, axis=1)
    hi_v = np.take_along_axis(srt, hi, axis=1)
    out = lo_v + (hi_v - lo_v) * frac
    out[count == 0] = np.nan
    return out, count


def _count_quantiles(mean: np.ndarray, history: np.ndarray, qs: np.ndarray) -> np.ndarray:
    """Negative-binomial (or Poisson) quantiles (n, H, Q) around ``mean``, with the index of
    dispersion of each row's observed ``history``."""
    n = len(mean)
    seen = np.isfinite(history)
    n_obs = seen.sum(axis=1)
    mu_y = np.divide(np.where(seen, history, 0.0).sum(axis=1), n_obs,
                     out=np.zeros(n), where=n_obs > 0)
    sq_dev = np.where(seen, (history - mu_y[:, None]) ** 2, 0.0).sum(axis=1)
    var_y = np.divide(sq_dev, n_obs - 1, out=np.full(n, np.nan), where=n_obs >= 2)
    phi = np.divide(var_y, mu_y, out=np.full(n, np.nan), where=(mu_y > 0) & (n_obs >= 2))
    mu = np.clip(mean, 0.0, None)[:, :, None] * np.ones(len(qs))[None, None, :]
    level = np.broadcast_to(qs[None, None, :], mu.shape)
    phi3 = np.broadcast_to(phi[:, None, None], mu.shape)
    overdispersed = np.isfinite(phi3) & (phi3 > 1.0) & (mu > 0)
    out = np.zeros(mu.shape)
    pois = (~overdispersed) & (mu > 0)
    if pois.any():
        out[pois] = stats.poisson.ppf(level[pois], mu[pois])
    if overdispersed.any():
        p = 1.0 / phi3[overdispersed]
        r = mu[overdispersed] / (phi3[overdispersed] - 1.0)
        out[overdispersed] = stats.nbinom.ppf(level[overdispersed], r, p)
    return out


def residual_quantiles(mean: np.ndarray, residuals: np.ndarray, history: np.ndarray,
                       quantiles: Sequence[float], min_residuals: int,
                       spread: np.ndarray | None = None) -> np.ndarray:
    """Quantiles (n, H, Q) around point forecasts ``mean`` (n, H); see the module docstring.

    ``residuals`` (n, R) and ``history`` (n, T) hold NaN where there is nothing.
    ``spread`` (H,) multiplies the empirical residual quantiles per horizon (default 1).
    """
    horizon = mean.shape[1]
    qs = np.asarray(quantiles, dtype="float64")
    scale = np.ones(horizon) if spread is None else np.asarray(spread, dtype="float64")
    res_q, n_res = row_quantiles(residuals, quantiles)
    out = mean[:, :, None] + res_q[:, None, :] * scale[None, :, None]
    short = n_res < min_residuals
    if short.any():
        out[short] = _count_quantiles(mean[short], history[short], qs)
    out = np.clip(np.nan_to_num(out, nan=0.0), 0.0, None)
    return np.maximum.accumulate(out, axis=2)


def nb_quantiles(mean: np.ndarray, size: np.ndarray,
                 quantiles: Sequence[float] = QUANTILES) -> np.ndarray:
    """(n, len(quantiles)) quantiles of a negative binomial with mean ``mean`` and size
    ``size`` (variance mean + mean^2 / size); 0 where the mean is 0, Poisson where the size
    is not finite or not positive."""
    mean = np.asarray(mean, dtype="float64")
    size = np.broadcast_to(np.asarray(size, dtype="float64"), mean.shape)
    out = np.zeros((len(mean), len(quantiles)))
    levels = np.asarray(quantiles, dtype="float64")[None, :]
    pos = mean > 0
    nb = pos & np.isfinite(size) & (size > 0)
    po = pos & ~nb
    if nb.any():
        k = size[nb][:, None]
        out[nb] = stats.nbinom.ppf(levels, k, k / (k + mean[nb][:, None]))
    if po.any():
        out[po] = stats.poisson.ppf(levels, mean[po][:, None])
    return out
