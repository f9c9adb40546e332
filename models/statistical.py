"""Prophet and ARIMA where they are affordable: on aggregates, disaggregated by recent shares.

Per-series Prophet or SARIMAX on every store x SKU is days of CPU, so both models here fit one
time series per *segment* and hand its forecast down to the series in it:

* segment of a series: the ``segment`` column of the training frame (e.g. store cluster x
  category; the value on the series' last row), else its ``category``, else one segment
  ``"all"``; values are used as strings;
* aggregate: the daily sum of the observed demand of the segment's series (NaN on a day
  without any row; a day on which only some series have a row sums those);
* share of a series: its demand over the last ``share_days`` days (28) divided by its
  segment's over the same days (the whole history when that is 0, equal shares when that is
  0 too), so the shares of a segment sum to 1 and so do the disaggregated means: series mean
  ``mu_i,h = share_i * A_h`` with ``A_h`` the aggregate's forecast.

Quantiles of a series combine two sources of error, assumed independent:

* the aggregate's forecast error, scaled by the share: ``(share_i * sd_h)^2``, with ``sd_h``
  the aggregate's predictive standard deviation (SARIMAX: its standard error; Prophet: the
  width of its ``interval_width`` interval over 2 z; the weekday-mean fallback: the root mean
  square of its own errors on the history times sqrt(ceil(h / 7)));
* the series' own noise around its share of the aggregate, ``phi_i * mu_i,h``, with the
  dispersion ``phi_i = sum (y_it - share_i * a_t)^2 / sum y_it`` over the last ``noise_days``
  days (56) of observed actual aggregates ``a_t`` (Poisson noise gives phi = 1, overdispersed
  demand more; a series that is its whole segment has phi = 0).

Total variance ``V = (share_i sd_h)^2 + phi_i mu``: where ``V > mu`` the quantiles are those of
a negative binomial with that mean and variance (a count distribution; it tends to the
Poisson as ``V -> mu``), else of a normal ``mu + z sqrt(V)`` (large aggregates forecast
tightly, where a count distribution would be too wide); then clipped at 0 and made monotone.
The aggregate's own noise contains the series' noise, so for a series with a large share the
two terms overlap a little: the quantiles err wide rather than narrow.

Affordability: at most ``max_aggregates`` segments (by volume) get the model; the rest, and
any segment whose aggregate is too short (``min_days`` observed days), constant, or whose fit
fails, does not converge or forecasts non-finite or runaway values, use the weekday mean of
the aggregate (``FALLBACK``: the same weekday's mean over its last ``FALLBACK_WEEKS`` = 4
observed weeks; steadier than a seasonal naive, which repeats one day's noise). ``report_``
has one row per segment with the method used, the fallback flag and its reason, and the fit
time; ``fit_seconds_`` the total, also logged.

ARIMA: statsmodels SARIMAX on the standardised aggregate (mean 0, sd 1: the optimiser
converges in a few dozen iterations instead of hundreds), order (1,0,1)x(1,0,1,7) or, with
``order_search``, the lowest-AIC converged order of a small set. Prophet: weekly seasonality,
yearly only with two years of history, the ``festivals`` frame as holidays (columns
``holiday``, ``ds`` and optional ``lower_window``/``upper_window``; the caller passes the
Indian festival calendar), cmdstanpy logging silenced; its interval simulation is seeded.
BLAS runs on one thread during fits (several pipelines share the machine).

``forecast_from(history, horizon, quantiles, future)``: days 1..horizon after ``history``'s
last date for every series in ``history`` (a training frame), with the models fitted by
``fit`` and never refitted (the nightly run reuses the weekly fit). Segments, aggregates,
shares and dispersion are recomputed from ``history`` by the same code as ``fit``; then per
segment:

* ARIMA: the fitted parameters run through the new aggregate, standardised with the fit's
  mean and sd (a Kalman filter, no estimation), and forecast from its end; ``predict`` takes
  the same path on the fit's own aggregate, so ``forecast_from(train)`` equals ``predict()``.
* Prophet: the fitted model's forecast of the target dates (trend extrapolated from the fit,
  weekly/yearly seasonality, festivals), plus a level correction: the mean residual (actual
  minus Prophet's fitted value) of the aggregate's observed days after the fit's cutoff
  among its last ``level_days`` (7; 0 turns it off). Prophet never sees those days
  otherwise, and a week is enough to move the level (a promotion, a new store, a stock-out)
  without chasing one day's noise; the fit's own days give no correction, so
  ``forecast_from(train)`` equals ``predict()``.
* The weekday mean of the new aggregate, flagged, for a segment not seen in ``fit``, one on
  the fallback there, one whose new aggregate is too short or constant (the checks of
  ``fit``), and one whose forecast fails or is non-finite or runaway: never an exception for
  a data reason. ``forecast_report_`` has one row per segment of the last call (segment,
  n_series, volume, method, fallback, reason); fallbacks are also logged.

A cutoff before the fit's (parameters learnt on later data: a leak in a backtest) or more
than ``max_gap_days`` (28) after it (stale parameters) is allowed, with a warning in the
log. Models pickle with the standard ``pickle`` module: fitted segments keep parameters, not
closures (SARIMAX: its parameter vector; Prophet: the model, as Prophet's JSON).
"""
from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Self

import numpy as np
import pandas as pd
from scipy import stats

from models.protocol import (
    KEY,
    QUANTILES,
    ModelConfig,
    check_train,
    forecast_frame,
    quantile_columns,
)

__all__ = ["ProphetAggregate", "ArimaAggregate", "ARIMA_ORDERS", "SegmentTotals"]

log = logging.getLogger(__name__)

#: (order, seasonal_order) candidates of ``ArimaAggregate(order_search=True)``.
ARIMA_ORDERS: tuple[tuple[tuple[int, int, int], tuple[int, int, int, int]], ...] = (
    ((1, 0, 1), (1, 0, 1, 7)),
    ((1, 0, 0), (1, 0, 0, 7)),
    ((2, 0, 1), (1, 0, 1, 7)),
    ((0, 1, 1), (0, 1, 1, 7)),
)
_SEASON = 7
#: The fallback of a segment without its model: the mean of the same weekday over the last
#: ``FALLBACK_WEEKS`` weeks (``_weekday_mean``). A seasonal naive (last week's same day)
#: carries one day's noise into the forecast at full weight; on small's quick profile, 14 of
#: 26 segments are on the fallback, so that noise reached the ensemble's ARIMA and Prophet.
FALLBACK = "weekday_mean"
FALLBACK_WEEKS = 4
_RUNAWAY = 10.0  # a forecast above this many times the aggregate's maximum is not believed
_CHECK_DAYS = 28  # horizon of the forecast checked at fit time


@contextmanager
def _one_blas_thread() -> Iterator[None]:
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        yield
        return
    with threadpool_limits(limits=1):
        yield


@contextmanager
def _numpy_seed(seed: int) -> Iterator[None]:
    """Seed numpy's global RNG (Prophet samples from it) and restore it afterwards."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


class _AggregateModel:
    """A model fitted on one aggregate: picklable parameters (no closures) that forecast from
    the end of any aggregate of the segment without being refitted."""

    def forecast(self, values: np.ndarray, start: pd.Timestamp,
                 horizon: int) -> tuple[np.ndarray, np.ndarray]:
        """Mean and sd (h,) of days 1..``horizon`` after the last day of ``values``, the
        daily aggregate from ``start`` (NaN where unobserved)."""
        raise NotImplementedError


@dataclass
class _Aggregate:
    """One segment's aggregate series and how it is forecast."""

    segment: str
    start: pd.Timestamp
    values: np.ndarray  # (T,), NaN where no series of the segment has a row
    method: str = FALLBACK
    fallback: bool = False
    reason: str = ""
    fit_seconds: float = 0.0
    detail: str = ""
    #: The fitted model; None on the weekday-mean fallback.
    model: _AggregateModel | None = field(default=None, repr=False)

    def forecast(self, horizon: int) -> tuple[np.ndarray, np.ndarray]:
        if self.model is None:
            return _weekday_mean(self.values, horizon)
        return self.model.forecast(self.values, self.start, horizon)


@dataclass(frozen=True)
class _Layout:
    """A training frame by segment: what ``fit`` and ``forecast_from`` both compute."""

    keys: pd.DataFrame  # n series: store_id, sku_id (sorted)
    start: pd.Timestamp
    names: np.ndarray  # (G,) segment labels, sorted strings
    segment_of: np.ndarray  # (n,) series -> index into names
    agg: np.ndarray  # (G, T) daily aggregates, NaN where no series of the segment has a row
    share: np.ndarray  # (n,)
    phi: np.ndarray  # (n,) dispersion
    volume: np.ndarray  # (G,) total demand

    @property
    def cutoff(self) -> pd.Timestamp:
        return self.start + pd.Timedelta(days=self.agg.shape[1] - 1)

    @property
    def n_series(self) -> np.ndarray:
        return np.bincount(self.segment_of, minlength=len(self.names))


@dataclass
class SegmentTotals:
    """Per-segment sums over a population of series on a fixed day grid, added store by
    store (``_AggregateForecaster.add_totals``), so that ``forecast_from(chunk, totals=)``
    forecasts a chunk of the series exactly as it would the whole population: the same
    aggregates, share denominators and segment forecasts whatever the chunks.

    The sums are accumulated one store at a time in increasing store id, each store's partial
    summed over its series in sku order, so the floating-point result does not depend on how
    the stores are grouped into chunks (chunks must come in increasing store order and never
    split a store). The segments' own forecasts are computed once per horizon and cached.
    """

    start: pd.Timestamp
    days: int
    sums: dict[str, np.ndarray] = field(default_factory=dict)  # (days,) observed demand
    seen: dict[str, np.ndarray] = field(default_factory=dict)  # (days,) any series observed
    recent: dict[str, float] = field(default_factory=dict)  # demand of the last share_days
    whole: dict[str, float] = field(default_factory=dict)  # demand of every day
    size: dict[str, int] = field(default_factory=dict)  # series
    last_store: int | None = None
    #: horizon -> segment -> (mean, sd, reason); reason "" when the segment's model was used
    cache: dict[int, dict[str, tuple[np.ndarray, np.ndarray, str]]] = field(
        default_factory=dict, repr=False)

    @property
    def cutoff(self) -> pd.Timestamp:
        return self.start + pd.Timedelta(days=self.days - 1)

    def aggregate(self, label: str) -> np.ndarray:
        """The segment's daily aggregate, NaN on days without any observed series."""
        return np.where(self.seen[label], self.sums[label], np.nan)


def _weekday_mean(values: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean of the same weekday over the last ``FALLBACK_WEEKS`` weeks it was observed (fewer
    in a shorter aggregate; the mean of every observed day for a weekday never observed). sd:
    the root mean square of the same forecast's errors on the history (each observed day
    against the mean of its weekday's earlier weeks), times sqrt(ceil(h / 7))."""
    days = len(values)
    seen = np.isfinite(values)
    overall = float(np.nanmean(values)) if seen.any() else 0.0

    def before(t: int) -> list[int]:
        """Observed days of t's weekday before t, most recent first, at most FALLBACK_WEEKS."""
        return [i for i in range(t - _SEASON, -1, -_SEASON) if seen[i]][:FALLBACK_WEEKS]

    mean = np.empty(horizon)
    for h in range(1, horizon + 1):
        hit = before(days + (h - 1) % _SEASON)
        mean[h - 1] = float(np.mean(values[hit])) if hit else overall
    errors = [values[t] - np.mean(values[hit]) for t in range(_SEASON, days)
              if seen[t] and (hit := before(t))]
    sd1 = float(np.sqrt(np.mean(np.square(errors)))) if len(errors) >= 2 else 0.0
    sd = sd1 * np.sqrt(np.ceil(np.arange(1, horizon + 1) / _SEASON))
    return np.clip(mean, 0.0, None), sd


def _forecast_problem(mean: np.ndarray, sd: np.ndarray, values: np.ndarray) -> str:
    """Why an aggregate's forecast is not believed, or "" when it is."""
    if not (np.isfinite(mean).all() and np.isfinite(sd).all()):
        return "non-finite forecast"
    ceiling = _RUNAWAY * float(np.nanmax(values))
    if float(mean.max()) > ceiling:
        return (f"runaway forecast ({float(mean.max()):.3g} > {_RUNAWAY:g} x the aggregate's "
                "maximum)")
    return ""


def _clean(mean: np.ndarray, sd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.clip(np.asarray(mean, "float64"), 0.0, None), np.clip(
        np.nan_to_num(np.asarray(sd, "float64")), 0.0, None)


class _AggregateForecaster:
    """Fit per segment aggregate, disaggregate by shares; subclasses fill ``_fit_aggregate``."""

    name = "aggregate"
    _method = "aggregate"

    def __init__(self, segment_col: str = "segment", category_col: str = "category",
                 share_days: int = 28, noise_days: int = 56, max_aggregates: int = 50,
                 min_days: int = 28, seed: int | None = None, max_gap_days: int = 28) -> None:
        if share_days < 1 or noise_days < 1 or max_aggregates < 0 or max_gap_days < 0:
            raise ValueError(f"{type(self).__name__}: need share_days >= 1, noise_days >= 1, "
                             "max_aggregates >= 0 and max_gap_days >= 0")
        if min_days < 2 * _SEASON:
            raise ValueError(f"{type(self).__name__}: min_days must be >= {2 * _SEASON}, "
                             f"got {min_days}")
        self.segment_col, self.category_col = segment_col, category_col
        self.share_days, self.noise_days = share_days, noise_days
        self.max_aggregates, self.min_days, self.seed = max_aggregates, min_days, seed
        self.max_gap_days = max_gap_days
        self._seed = ModelConfig().seed
        self._layout: _Layout | None = None
        self._aggregates: list[_Aggregate] = []
        #: One row per segment: segment, n_series, volume, method, fallback, reason,
        #: fit_seconds, detail.
        self.report_ = pd.DataFrame()
        #: store_id, sku_id, segment, share, dispersion.
        self.shares_ = pd.DataFrame()
        self.fit_seconds_ = math.nan
        #: The last ``forecast_from`` call's segments: segment, n_series, volume, method,
        #: fallback, reason.
        self.forecast_report_ = pd.DataFrame()

    @property
    def cutoff(self) -> pd.Timestamp:
        """The last date of the training frame; forecasts start the day after."""
        return self._fitted().cutoff

    def _fitted(self) -> _Layout:
        if self._layout is None:
            raise RuntimeError(f"{type(self).__name__}: call fit(train, cfg) before predict")
        return self._layout

    # ----------------------------------------------------------------------------- fit
    def fit(self, train: pd.DataFrame, cfg: ModelConfig | None = None) -> Self:
        """Learn from ``train`` (see ``protocol.check_train``; optional ``segment`` or
        ``category`` column); returns self."""
        began = time.perf_counter()
        cfg = cfg if cfg is not None else ModelConfig()
        self._seed = self.seed if self.seed is not None else cfg.seed
        lay = self._lay_out(check_train(train))
        fitted = set(np.argsort(-lay.volume, kind="stable")[:self.max_aggregates].tolist())
        self._aggregates = []
        for g, label in enumerate(lay.names):
            a = _Aggregate(segment=str(label), start=lay.start, values=lay.agg[g])
            if g not in fitted:
                a.fallback, a.reason = True, f"beyond max_aggregates={self.max_aggregates}"
            else:
                self._fit_checked(a)
            self._aggregates.append(a)
        self._layout = lay
        self.shares_ = lay.keys.assign(segment=lay.names[lay.segment_of].astype(str),
                                       share=lay.share, dispersion=lay.phi)
        self.report_ = pd.DataFrame({
            "segment": [a.segment for a in self._aggregates],
            "n_series": lay.n_series,
            "volume": lay.volume,
            "method": [a.method for a in self._aggregates],
            "fallback": [a.fallback for a in self._aggregates],
            "reason": [a.reason for a in self._aggregates],
            "fit_seconds": [a.fit_seconds for a in self._aggregates],
            "detail": [a.detail for a in self._aggregates]})
        self.fit_seconds_ = time.perf_counter() - began
        n_seg, n_fb = len(lay.names), int(self.report_["fallback"].sum())
        log.info("%s: %d series in %d segment(s), %d fitted, %d on the weekday-mean "
                 "fallback, in %.1f s", self.name, len(lay.keys), n_seg, n_seg - n_fb, n_fb,
                 self.fit_seconds_)
        if n_fb:
            log.warning("%s: fallback segments: %s", self.name, "; ".join(
                f"{a.segment} ({a.reason})" for a in self._aggregates if a.fallback)[:2000])
        return self

    def _lay_out(self, df: pd.DataFrame) -> _Layout:
        """Series, segments, aggregates, shares and dispersion of a checked frame."""
        groups = df.groupby(list(KEY), sort=True)
        sid = groups.ngroup().to_numpy()
        keys = groups.size().index.to_frame(index=False)[list(KEY)]
        start = pd.Timestamp(df["date"].min())
        day = ((df["date"] - start) // pd.Timedelta(days=1)).to_numpy(dtype="int64")
        values = np.full((len(keys), int(day.max()) + 1), np.nan)
        values[sid, day] = df["y"].to_numpy(dtype="float64")
        labels = self._segments(df, sid, len(keys))
        names, seg = np.unique(labels, return_inverse=True)
        n_seg, days = len(names), values.shape[1]

        seen = np.isfinite(values)
        filled = np.where(seen, values, 0.0)
        agg = np.zeros((n_seg, days))
        np.add.at(agg, seg, filled)
        any_seen = np.zeros((n_seg, days), dtype=bool)
        np.logical_or.at(any_seen, seg, seen)
        agg[~any_seen] = np.nan
        share = self._shares(filled, seg, n_seg)
        return _Layout(keys=keys, start=start, names=names, segment_of=seg, agg=agg,
                       share=share, phi=self._dispersion(values, agg[seg], share),
                       volume=np.nansum(agg, axis=1))

    # ------------------------------------------------------------ population totals
    def new_totals(self, start: pd.Timestamp, end: pd.Timestamp) -> SegmentTotals:
        """Empty ``SegmentTotals`` on the day grid ``start..end`` (the forecasts' cutoff)."""
        start, end = pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize()
        if end < start:
            raise ValueError(f"{type(self).__name__}.new_totals: end {end.date()} is before "
                             f"start {start.date()}")
        return SegmentTotals(start=start, days=(end - start).days + 1)

    def _grid(self, df: pd.DataFrame, totals: SegmentTotals, what: str
              ) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
        """(keys, values (n, days) on the totals' grid, segment label per series)."""
        groups = df.groupby(list(KEY), sort=True)
        sid = groups.ngroup().to_numpy()
        keys = groups.size().index.to_frame(index=False)[list(KEY)]
        day = ((pd.to_datetime(df["date"]) - totals.start) // pd.Timedelta(days=1)
               ).to_numpy(dtype="int64")
        outside = (day < 0) | (day >= totals.days)
        if outside.any():
            bad = df.loc[outside, "date"]
            raise ValueError(f"{type(self).__name__}: {what} has {int(outside.sum())} row(s) "
                             f"dated {pd.Timestamp(bad.min()).date()}..{pd.Timestamp(bad.max()).date()}, "
                             f"outside the totals' days {totals.start.date()}.."
                             f"{totals.cutoff.date()}")
        values = np.full((len(keys), totals.days), np.nan)
        values[sid, day] = df["y"].to_numpy(dtype="float64")
        return keys, values, self._segments(df, sid, len(keys))

    def add_totals(self, totals: SegmentTotals, history: pd.DataFrame) -> SegmentTotals:
        """Add the series of ``history`` (a training frame of whole stores, every store
        after those already added) to ``totals``; returns ``totals``."""
        df = check_train(history, "history")
        keys, values, labels = self._grid(df, totals, "history")
        stores = keys["store_id"].to_numpy()
        if totals.last_store is not None and len(stores) and stores.min() <= totals.last_store:
            raise ValueError(f"{type(self).__name__}.add_totals: store {int(stores.min())} "
                             f"comes after store {totals.last_store}: add whole stores in "
                             "increasing store_id order")
        seen = np.isfinite(values)
        filled = np.where(seen, values, 0.0)
        recent = filled[:, -self.share_days:].sum(axis=1)
        whole = filled.sum(axis=1)
        pair = pd.MultiIndex.from_arrays([stores, labels])
        cell, order = pd.factorize(pair, sort=True)  # (store, segment), store-major
        n_cell = len(order)
        sums = np.zeros((n_cell, totals.days))
        np.add.at(sums, cell, filled)
        any_seen = np.zeros((n_cell, totals.days), dtype=bool)
        np.logical_or.at(any_seen, cell, seen)
        rec = np.zeros(n_cell)
        np.add.at(rec, cell, recent)
        who = np.zeros(n_cell)
        np.add.at(who, cell, whole)
        size = np.bincount(cell, minlength=n_cell)
        for c, (_, label) in enumerate(order):
            label = str(label)
            if label in totals.sums:
                totals.sums[label] = totals.sums[label] + sums[c]
                totals.seen[label] = totals.seen[label] | any_seen[c]
                totals.recent[label] += float(rec[c])
                totals.whole[label] += float(who[c])
                totals.size[label] += int(size[c])
            else:
                totals.sums[label], totals.seen[label] = sums[c], any_seen[c]
                totals.recent[label], totals.whole[label] = float(rec[c]), float(who[c])
                totals.size[label] = int(size[c])
        if len(stores):
            totals.last_store = int(stores.max())
        totals.cache.clear()
        return totals

    def _lay_out_in(self, df: pd.DataFrame, totals: SegmentTotals) -> _Layout:
        """The layout of ``df``'s series with the population's aggregates and share
        denominators from ``totals`` (see ``_lay_out`` and ``_shares``)."""
        keys, values, labels = self._grid(df, totals, "history")
        missing = sorted(set(labels.tolist()) - set(totals.sums))
        if missing:
            raise ValueError(f"{type(self).__name__}.forecast_from: segment(s) {missing[:5]} "
                             "of history are not in the totals; add every chunk with "
                             "add_totals first")
        names, seg = np.unique(labels, return_inverse=True)
        agg = np.stack([totals.aggregate(str(n)) for n in names]) if len(names) else \
            np.empty((0, totals.days))
        filled = np.where(np.isfinite(values), values, 0.0)
        recent = filled[:, -self.share_days:].sum(axis=1)
        whole = filled.sum(axis=1)
        seg_recent = np.array([totals.recent[str(n)] for n in names])[seg]
        seg_whole = np.array([totals.whole[str(n)] for n in names])[seg]
        size = np.array([totals.size[str(n)] for n in names], dtype="float64")[seg]
        share = np.where(seg_recent > 0, np.divide(recent, seg_recent,
                                                   out=np.zeros_like(recent),
                                                   where=seg_recent > 0),
                         np.where(seg_whole > 0, np.divide(whole, seg_whole,
                                                           out=np.zeros_like(whole),
                                                           where=seg_whole > 0), 1.0 / size))
        return _Layout(keys=keys, start=totals.start, names=names, segment_of=seg, agg=agg,
                       share=share, phi=self._dispersion(values, agg[seg], share),
                       volume=np.nansum(agg, axis=1))

    def _segments(self, df: pd.DataFrame, sid: np.ndarray, n: int) -> np.ndarray:
        for col in (self.segment_col, self.category_col):
            if col in df.columns:
                last = df.assign(_sid=sid).sort_values("date").groupby("_sid")[col].last()
                return last.reindex(range(n)).fillna("unknown").astype(str).to_numpy()
        return np.full(n, "all")

    def _shares(self, filled: np.ndarray, seg: np.ndarray, n_seg: int) -> np.ndarray:
        recent = filled[:, -self.share_days:].sum(axis=1)
        whole = filled.sum(axis=1)
        seg_recent = np.bincount(seg, weights=recent, minlength=n_seg)[seg]
        seg_whole = np.bincount(seg, weights=whole, minlength=n_seg)[seg]
        size = np.bincount(seg, minlength=n_seg)[seg].astype("float64")
        return np.where(seg_recent > 0, np.divide(recent, seg_recent, out=np.zeros_like(recent),
                                                  where=seg_recent > 0),
                        np.where(seg_whole > 0, np.divide(whole, seg_whole,
                                                          out=np.zeros_like(whole),
                                                          where=seg_whole > 0), 1.0 / size))

    def _dispersion(self, values: np.ndarray, agg: np.ndarray, share: np.ndarray) -> np.ndarray:
        y, a = values[:, -self.noise_days:], agg[:, -self.noise_days:]
        ok = np.isfinite(y) & np.isfinite(a)
        sq = np.where(ok, (y - share[:, None] * np.where(ok, a, 0.0)) ** 2, 0.0).sum(axis=1)
        total = np.where(ok, y, 0.0).sum(axis=1)
        return np.divide(sq, total, out=np.zeros(len(y)), where=total > 0)

    def _data_problem(self, values: np.ndarray) -> str:
        """Why an aggregate is unfit for the model (too short, constant), or ""."""
        observed = values[np.isfinite(values)]
        if len(observed) < self.min_days:
            return f"too short: {len(observed)} observed day(s) < min_days={self.min_days}"
        if np.ptp(observed) == 0:
            return f"constant series ({observed[0]:g} every day)"
        return ""

    def _fit_checked(self, a: _Aggregate) -> None:
        """Fit the model on one aggregate, or flag the weekday-mean fallback and why."""
        problem = self._data_problem(a.values)
        if problem:
            a.fallback, a.reason = True, problem
            return
        began = time.perf_counter()
        self._import()  # before catch_warnings: statsmodels adds "always" filters on import
        try:
            with self._quietly():
                model, detail = self._fit_aggregate(a.values, a.start)
                mean, sd = model.forecast(a.values, a.start, _CHECK_DAYS)
        except _NotConverged as exc:
            a.fallback, a.reason = True, f"did not converge: {exc}"
        except Exception as exc:  # any failure of the library means the fallback
            a.fallback, a.reason = True, f"fit failed: {type(exc).__name__}: {exc}"[:300]
        else:
            problem = _forecast_problem(mean, sd, a.values)
            if problem:
                a.fallback, a.reason = True, problem
            else:
                a.method, a.model, a.detail = self._method, model, detail
        a.fit_seconds = time.perf_counter() - began

    @contextmanager
    def _quietly(self) -> Iterator[None]:
        """One BLAS thread, no library warnings, numpy's global RNG seeded and restored."""
        with _one_blas_thread(), warnings.catch_warnings(), _numpy_seed(self._seed):
            warnings.simplefilter("ignore")
            yield

    def _import(self) -> None:
        """Import the model's library (lazily: heavy, and not needed by the fallbacks)."""

    def _fit_aggregate(self, values: np.ndarray, start: pd.Timestamp
                       ) -> tuple[_AggregateModel, str]:
        """Fit one aggregate; return the fitted model and a detail for the report."""
        raise NotImplementedError

    # ------------------------------------------------------------------------- predict
    def aggregate_forecast(self, horizon: int) -> pd.DataFrame:
        """The segments' own forecasts: segment, target_date, horizon, mean, sd, method."""
        cutoff = self._fitted().cutoff
        steps = np.arange(1, horizon + 1)
        frames = []
        for a in self._aggregates:
            mean, sd = self._run(a, horizon)
            frames.append(pd.DataFrame({
                "segment": a.segment, "target_date": cutoff + pd.to_timedelta(steps, "D"),
                "horizon": steps, "mean": mean, "sd": sd, "method": a.method}))
        return pd.concat(frames, ignore_index=True)

    def _run(self, a: _Aggregate, horizon: int) -> tuple[np.ndarray, np.ndarray]:
        with self._quietly():
            return _clean(*a.forecast(horizon))

    def _check_horizon(self, horizon: int, caller: str) -> int:
        if isinstance(horizon, bool) or not isinstance(horizon, int | np.integer) or horizon < 1:
            raise ValueError(f"{type(self).__name__}.{caller}: horizon must be an int >= 1, "
                             f"got {horizon!r}")
        return int(horizon)

    def predict(self, horizon: int, quantiles: Sequence[float] = QUANTILES,
                future: pd.DataFrame | None = None) -> pd.DataFrame:
        """Forecast days 1..``horizon`` after the cutoff for every series; ``future`` is
        ignored (holidays are known by date)."""
        lay = self._fitted()
        horizon = self._check_horizon(horizon, "predict")
        quantile_columns(quantiles)
        agg_mean = np.empty((len(self._aggregates), horizon))
        agg_sd = np.empty_like(agg_mean)
        for g, a in enumerate(self._aggregates):
            agg_mean[g], agg_sd[g] = self._run(a, horizon)
        return _disaggregate(lay, agg_mean, agg_sd, quantiles)

    def forecast_from(self, history: pd.DataFrame, horizon: int,
                      quantiles: Sequence[float] = QUANTILES,
                      future: pd.DataFrame | None = None,
                      totals: SegmentTotals | None = None) -> pd.DataFrame:
        """Forecast days 1..``horizon`` after ``history``'s last date for every series in
        ``history`` (a training frame) with the fitted segment models, never refitted;
        ``future`` is ignored. With ``totals`` (``new_totals`` + ``add_totals`` over every
        chunk of a population), ``history`` is one chunk of it: the aggregates, shares and
        cutoff are the population's, so the result does not depend on the chunking. Sets
        ``forecast_report_``; see the module docstring."""
        lay_fit = self._fitted()
        horizon = self._check_horizon(horizon, "forecast_from")
        quantile_columns(quantiles)
        if totals is None:
            lay = self._lay_out(check_train(history, "history"))
        else:
            lay = self._lay_out_in(check_train(history, "history"), totals)
        _warn_gap(self.name, lay_fit.cutoff, lay.cutoff, self.max_gap_days)
        cache = totals.cache.setdefault(horizon, {}) if totals is not None else {}
        agg_mean = np.empty((len(lay.names), horizon))
        agg_sd = np.empty_like(agg_mean)
        methods, reasons = [], []
        for g, label in enumerate(lay.names):
            key = str(label)
            if key not in cache:
                cache[key] = self._segment_forecast(key, lay.agg[g], lay.start, horizon)
            agg_mean[g], agg_sd[g], reason = cache[key]
            methods.append(self._method if not reason else FALLBACK)
            reasons.append(reason)
        self.forecast_report_ = pd.DataFrame({
            "segment": lay.names.astype(str), "n_series": lay.n_series, "volume": lay.volume,
            "method": methods, "fallback": [bool(r) for r in reasons], "reason": reasons})
        fallbacks = [f"{s} ({r})" for s, r in zip(lay.names, reasons, strict=True) if r]
        if fallbacks:
            log.warning("%s: forecast_from %s: %d of %d segment(s) on the weekday-mean "
                        "fallback: %s", self.name, lay.cutoff.date(), len(fallbacks),
                        len(lay.names), "; ".join(fallbacks)[:2000])
        return _disaggregate(lay, agg_mean, agg_sd, quantiles)

    def _segment_forecast(self, label: str, values: np.ndarray, start: pd.Timestamp,
                          horizon: int) -> tuple[np.ndarray, np.ndarray, str]:
        """(mean, sd, reason) of one segment's aggregate; reason "" when its fitted model
        was used, else why the weekday mean was."""
        fitted = next((a for a in self._aggregates if a.segment == label), None)
        mean_sd, reason = None, "segment not seen in fit"
        if fitted is not None and fitted.model is not None:
            mean_sd, reason = self._apply(fitted.model, values, start, horizon)
        elif fitted is not None:
            reason = f"fallback in fit: {fitted.reason}"
        if mean_sd is None:
            with self._quietly():
                mean_sd = _clean(*_weekday_mean(values, horizon))
        return mean_sd[0], mean_sd[1], reason

    def _apply(self, model: _AggregateModel, values: np.ndarray, start: pd.Timestamp,
               horizon: int) -> tuple[tuple[np.ndarray, np.ndarray] | None, str]:
        """A fitted model's forecast from a new aggregate, or None and why it is not used."""
        problem = self._data_problem(values)
        if problem:
            return None, problem
        self._import()
        try:
            with self._quietly():
                mean, sd = model.forecast(values, start, horizon)
        except Exception as exc:  # any failure of the library means the fallback
            return None, f"forecast failed: {type(exc).__name__}: {exc}"[:300]
        problem = _forecast_problem(np.asarray(mean, "float64"), np.asarray(sd, "float64"),
                                    values)
        return (None, problem) if problem else (_clean(mean, sd), "")


def _disaggregate(lay: _Layout, agg_mean: np.ndarray, agg_sd: np.ndarray,
                  quantiles: Sequence[float]) -> pd.DataFrame:
    """The series' forecast frame from their segments' forecasts (G, H), by shares."""
    share = lay.share[:, None]
    mean = share * agg_mean[lay.segment_of]
    var = (share * agg_sd[lay.segment_of]) ** 2 + lay.phi[:, None] * mean
    qvalues = _count_or_normal_quantiles(mean, var, np.asarray(quantiles, "float64"))
    return forecast_frame(lay.keys, lay.cutoff, mean, qvalues, quantiles)


def _warn_gap(name: str, fit_cutoff: pd.Timestamp, cutoff: pd.Timestamp,
              max_gap_days: int) -> None:
    """Log a warning when forecasting from ``cutoff`` with models fitted up to ``fit_cutoff``
    leaks (earlier) or is stale (more than ``max_gap_days`` later)."""
    gap = (cutoff - fit_cutoff) // pd.Timedelta(days=1)
    if gap < 0:
        log.warning("%s: forecasting from %s, %d day(s) before the fit's cutoff %s: the "
                    "parameters were learnt on later data (a leak in a backtest; fit at that "
                    "cutoff instead)", name, cutoff.date(), -gap, fit_cutoff.date())
    elif gap > max_gap_days:
        log.warning("%s: forecasting from %s, %d days after the fit's cutoff %s (more than "
                    "max_gap_days=%d): the parameters may be stale; retrain", name,
                    cutoff.date(), gap, fit_cutoff.date(), max_gap_days)


def _count_or_normal_quantiles(mean: np.ndarray, var: np.ndarray,
                               qs: np.ndarray) -> np.ndarray:
    """(n, H, Q): negative binomial with ``mean``/``var`` where var > mean, else normal."""
    mu = np.broadcast_to(mean[:, :, None], (*mean.shape, len(qs)))
    v = np.broadcast_to(var[:, :, None], mu.shape)
    level = np.broadcast_to(qs[None, None, :], mu.shape)
    out = mu + stats.norm.ppf(level) * np.sqrt(np.clip(v, 0.0, None))
    nb = (mu > 0) & (v > mu * (1.0 + 1e-9))
    if nb.any():
        p = mu[nb] / v[nb]
        r = mu[nb] ** 2 / (v[nb] - mu[nb])
        out[nb] = stats.nbinom.ppf(level[nb], r, p)
    out[mu <= 0] = 0.0
    out = np.clip(np.nan_to_num(out, nan=0.0), 0.0, None)
    return np.maximum.accumulate(out, axis=2)


class _NotConverged(RuntimeError):
    pass


@dataclass
class _SarimaxFit(_AggregateModel):
    """SARIMAX parameters on the aggregate standardised with the fit's mean and sd."""

    order: tuple[int, int, int]
    seasonal_order: tuple[int, int, int, int]
    params: np.ndarray
    center: float
    spread: float

    def forecast(self, values: np.ndarray, start: pd.Timestamp,
                 horizon: int) -> tuple[np.ndarray, np.ndarray]:
        from statsmodels.tsa.statespace.sarimax import SARIMAX

        z = (values - self.center) / self.spread
        result = SARIMAX(z, order=self.order, seasonal_order=self.seasonal_order).filter(
            self.params)  # the fitted parameters, run through the given aggregate
        fc = result.get_forecast(horizon)
        mean = np.asarray(fc.predicted_mean, "float64") * self.spread + self.center
        return mean, np.asarray(fc.se_mean, "float64") * self.spread


class ArimaAggregate(_AggregateForecaster):
    """SARIMAX per segment aggregate; see the module docstring."""

    name = "arima"
    _method = "sarimax"

    def __init__(self, order: tuple[int, int, int] = (1, 0, 1),
                 seasonal_order: tuple[int, int, int, int] = (1, 0, 1, 7),
                 order_search: bool = False, maxiter: int = 200, **common: Any) -> None:
        super().__init__(**common)
        self.order, self.seasonal_order = tuple(order), tuple(seasonal_order)
        self.order_search, self.maxiter = order_search, maxiter

    def _import(self) -> None:
        import statsmodels.tsa.statespace.sarimax  # noqa: F401

    def _fit_aggregate(self, values: np.ndarray, start: pd.Timestamp
                       ) -> tuple[_AggregateModel, str]:
        from statsmodels.tsa.statespace.sarimax import SARIMAX

        center = float(np.nanmean(values))
        spread = float(np.nanstd(values))
        z = (values - center) / spread
        candidates = ARIMA_ORDERS if self.order_search else ((self.order, self.seasonal_order),)
        best: Any = None
        best_label, problems = "", []
        for order, seasonal in candidates:
            try:
                res = SARIMAX(z, order=order, seasonal_order=seasonal).fit(
                    disp=False, maxiter=self.maxiter)
            except Exception as exc:  # try the next order
                problems.append(f"{order}x{seasonal}: {type(exc).__name__}")
                continue
            if not res.mle_retvals.get("converged", False):
                problems.append(f"{order}x{seasonal}: not converged in {self.maxiter} "
                                "iterations")
                continue
            if best is None or res.aic < best[0].aic:
                best, best_label = (res, order, seasonal), f"{order}x{seasonal} aic={res.aic:.1f}"
        if best is None:
            raise _NotConverged("; ".join(problems))
        result, order, seasonal = best
        params = np.array(result.params, dtype="float64")
        return _SarimaxFit(tuple(order), tuple(seasonal), params, center, spread), best_label


class _ProphetFit(_AggregateModel):
    """A fitted Prophet model; pickled through ``prophet.serialize`` (JSON), which Prophet
    recommends over pickling its Stan backend (a path to a compiled binary)."""

    def __init__(self, model: Any, cutoff: pd.Timestamp, interval_width: float,
                 level_days: int) -> None:
        self.model, self.cutoff = model, pd.Timestamp(cutoff)
        self.z = float(stats.norm.ppf(0.5 + interval_width / 2))
        self.level_days = level_days

    def __getstate__(self) -> dict[str, Any]:
        from prophet.serialize import model_to_json

        return {**self.__dict__, "model": model_to_json(self.model)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        _import_prophet()
        from prophet.serialize import model_from_json

        self.__dict__.update({**state, "model": model_from_json(state["model"])})

    def forecast(self, values: np.ndarray, start: pd.Timestamp,
                 horizon: int) -> tuple[np.ndarray, np.ndarray]:
        """Prophet's forecast of the target dates (trend, seasonality, holidays), plus the
        mean residual of the aggregate's observed days after the fit's cutoff among its
        last ``level_days`` (the level correction; none from the fit's own history)."""
        days = len(values)
        end = start + pd.Timedelta(days=days - 1)
        targets = end + pd.to_timedelta(np.arange(1, horizon + 1), "D")
        recent = np.arange(max(days - self.level_days, 0), days)
        dates = start + pd.to_timedelta(recent, "D")
        keep = (dates > self.cutoff) & np.isfinite(values[recent])
        recent, dates = recent[keep], dates[keep]
        out = self.model.predict(pd.DataFrame({"ds": dates.append(targets)}))
        yhat = out["yhat"].to_numpy(dtype="float64")
        level = float(np.mean(values[recent] - yhat[:len(recent)])) if len(recent) else 0.0
        width = (out["yhat_upper"].to_numpy(dtype="float64")
                 - out["yhat_lower"].to_numpy(dtype="float64"))[len(recent):]
        return yhat[len(recent):] + level, width / (2.0 * self.z)


class ProphetAggregate(_AggregateForecaster):
    """Prophet per segment aggregate, festivals as holidays; see the module docstring."""

    name = "prophet"
    _method = "prophet"

    def __init__(self, festivals: pd.DataFrame | None = None,
                 seasonality_mode: str = "additive", interval_width: float = 0.8,
                 uncertainty_samples: int = 300, level_days: int = 7, **common: Any) -> None:
        super().__init__(**common)
        if seasonality_mode not in ("additive", "multiplicative"):
            raise ValueError("ProphetAggregate: seasonality_mode must be 'additive' or "
                             f"'multiplicative', got {seasonality_mode!r}")
        if not 0 < interval_width < 1 or uncertainty_samples < 2 or level_days < 0:
            raise ValueError("ProphetAggregate: need 0 < interval_width < 1, "
                             "uncertainty_samples >= 2 and level_days >= 0")
        self.holidays = _holidays(festivals)
        self.seasonality_mode = seasonality_mode
        self.interval_width, self.uncertainty_samples = interval_width, uncertainty_samples
        self.level_days = level_days

    def _import(self) -> None:
        _import_prophet()

    def _fit_aggregate(self, values: np.ndarray, start: pd.Timestamp
                       ) -> tuple[_AggregateModel, str]:
        prophet_cls = _import_prophet()
        days = len(values)
        ds = start + pd.to_timedelta(np.arange(days), "D")
        history = pd.DataFrame({"ds": ds, "y": values}).dropna()
        span = (history["ds"].max() - history["ds"].min()).days + 1
        yearly = span >= 730
        model = prophet_cls(weekly_seasonality=True, yearly_seasonality=yearly,
                            daily_seasonality=False, holidays=self.holidays,
                            seasonality_mode=self.seasonality_mode,
                            interval_width=self.interval_width,
                            uncertainty_samples=self.uncertainty_samples)
        model.fit(history, seed=self._seed)
        cutoff = start + pd.Timedelta(days=days - 1)
        n_hol = 0 if self.holidays is None else self.holidays["holiday"].nunique()
        return (_ProphetFit(model, cutoff, self.interval_width, self.level_days),
                f"weekly{' + yearly' if yearly else ''}, {n_hol} holiday(s)")


def _import_prophet() -> Any:
    """Import Prophet quietly: no plotly notice, no cmdstanpy chatter."""
    logging.getLogger("prophet.plot").setLevel(logging.CRITICAL)
    from prophet import Prophet

    stan = logging.getLogger("cmdstanpy")
    if not stan.handlers:  # else cmdstanpy adds its own INFO handler on first use
        stan.addHandler(logging.NullHandler())
    stan.setLevel(logging.ERROR)
    logging.getLogger("prophet").setLevel(logging.WARNING)
    return Prophet


def _holidays(festivals: pd.DataFrame | None) -> pd.DataFrame | None:
    """Validate the festivals frame and shape it as Prophet's ``holidays``."""
    if festivals is None or len(festivals) == 0:
        return None
    missing = [c for c in ("holiday", "ds") if c not in festivals.columns]
    if missing:
        raise ValueError(f"ProphetAggregate: festivals lacks column(s) {missing}; need "
                         "holiday, ds and optionally lower_window, upper_window (has "
                         f"{list(festivals.columns)})")
    out = pd.DataFrame({"holiday": festivals["holiday"].astype(str),
                        "ds": pd.to_datetime(festivals["ds"]).dt.normalize()})
    for col, sign in (("lower_window", -1), ("upper_window", 1)):
        win = festivals[col] if col in festivals.columns else pd.Series(0, festivals.index)
        win = pd.to_numeric(win, errors="coerce").fillna(0).astype("int64")
        if (sign * win < 0).any():
            raise ValueError(f"ProphetAggregate: festivals.{col} must be "
                             f"{'<= 0' if sign < 0 else '>= 0'} (days around ds)")
        out[col] = win.to_numpy()
    if out["ds"].isna().any() or out["holiday"].isin(["", "nan", "None"]).any():
        raise ValueError("ProphetAggregate: festivals has rows without a holiday name or ds")
    return out.drop_duplicates(["holiday", "ds"]).reset_index(drop=True)
