"""The history features, computed on dense [day x pair] arrays with numpy.

``features.build`` lays out the daily rows of every store x SKU pair as arrays with one row
per day and one column per pair (``Days``); ``history_features`` computes, for a block of
days, every feature that reads the pair's own past: the families history, lag, rolling,
intermittency, intraday and promotion_history of ``features.catalog``.

Why it is exact and incremental:

- A float window sum over [D-k, D-1] adds the days D-1, D-2, ..., D-k in that order, the
  k-day sum continuing the shorter one (3, 7, 14, 30). The value of a row therefore depends
  on its own window only, never on where the loaded range starts, so a nightly run and a
  backfill agree bit for bit. (A prefix-sum difference would not.)
- Counts and integer sums use prefix sums, which are exact.
- Missing days stay missing: a lag landing on a day the pair was not active is null, and
  the rolling windows use the days present.

Every output is a float64 array [days, pairs] with NaN for null (integer features hold
whole numbers); ``features.build`` casts them to the catalog's types.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.catalog import LAGS, MAX_WINDOW, ROLL_WINDOWS, SAME_WEEKDAY_LAGS

__all__ = ["Days", "history_features", "HISTORY_FEATURES"]

#: The features ``history_features`` returns, in catalog order.
HISTORY_FEATURES: tuple[str, ...] = (
    "history_days",
    *[f"lag_{k}" for k in LAGS], "same_weekday_mean_4", "units_lag_1", "units_lag_7",
    *[f"roll_mean_{k}" for k in ROLL_WINDOWS], *[f"roll_std_{k}" for k in ROLL_WINDOWS],
    "roll_max_7", "roll_min_7", "days_since_last_sale",
    "zero_sale_share_7", "zero_sale_share_30", "stockout_share_7", "stockout_share_30",
    "evening_share_7", "evening_share_30",
    "promo_share_30", "promo_lift_30", "avg_price_30")


@dataclass(frozen=True)
class Days:
    """The pairs' daily rows as arrays [day, pair]; cells without a row have ``present``
    False (their other values are ignored).

    ``demand`` is NaN where unknown (a stock-out day without sales); ``promo`` says a
    promotion applied to the pair that day.
    """

    present: np.ndarray   # bool
    demand: np.ndarray    # float64
    units: np.ndarray     # int: units sold
    evening: np.ndarray   # int: units sold 18:00-22:00
    revenue: np.ndarray   # float64
    stockout: np.ndarray  # bool: closed with an empty shelf
    promo: np.ndarray     # bool

    @property
    def shape(self) -> tuple[int, int]:
        return self.present.shape


def history_features(days: Days, first: int, stop: int,
                     lookback: int = MAX_WINDOW) -> dict[str, np.ndarray]:
    """The history features of the days ``first`` .. ``stop - 1`` (row indices of ``days``).

    Reads the rows [first - lookback, stop); returns ``HISTORY_FEATURES`` as float64 arrays
    [stop - first, pairs], NaN for null.
    """
    if lookback < MAX_WINDOW:
        raise ValueError(f"lookback={lookback}: features read up to {MAX_WINDOW} days back")
    if not lookback <= first <= stop <= days.shape[0]:
        raise ValueError(f"days [{first}, {stop}) need {lookback} days before them within "
                         f"the {days.shape[0]} rows given")
    w = _Window(days, first, stop, lookback)
    n = w.counts(w.present, (*ROLL_WINDOWS, lookback))
    z = w.counts(w.unknown, ROLL_WINDOWS)
    zero = w.counts(w.present & (w.units == 0), (7, 30))
    stockout = w.counts(w.stockout, (7, 30))
    units = w.counts(w.units, (7, 30))
    evening = w.counts(w.evening, (7, 30))
    s = w.sums(w.known, ROLL_WINDOWS)
    q = w.sums(w.known * w.known, ROLL_WINDOWS)
    s_clean = w.sums(np.where(w.stockout, 0.0, w.known), (30,))[30]
    s_promo = w.sums(np.where(w.promo, w.known, 0.0), (30,))[30]
    revenue = w.sums(w.revenue, (30,))[30]
    n_promo = w.counts(w.promo, (30,))[30]
    z_promo = w.counts(w.promo & w.unknown, (30,))[30]

    # The value a censored day without sales stands for, relative to the row (keeps it
    # incremental): the mean over non-censored days in [D-30, D-1], else over known days.
    mean_clean = _div(s_clean, n[30] - stockout[30])
    mean_known = _div(s[30], n[30] - z[30])
    fill = np.where(n[30] - stockout[30] != 0, mean_clean,
                    np.where(n[30] - z[30] != 0, mean_known, 0.0))

    out: dict[str, np.ndarray] = {"history_days": n[lookback].astype(np.float64)}
    for k in LAGS:
        on_day = w.back(w.demand, k)
        out[f"lag_{k}"] = np.where(w.back(w.unknown, k), fill, on_day)
    total, present = np.zeros_like(fill), np.zeros(fill.shape, dtype=np.int64)
    for k in SAME_WEEKDAY_LAGS:
        lag = out[f"lag_{k}"]
        has = ~np.isnan(lag)
        total = total + np.where(has, lag, 0.0)
        present += has
    out["same_weekday_mean_4"] = _div(total, present)
    for k in (1, 7):
        out[f"units_lag_{k}"] = np.where(w.back(w.present, k), w.back(w.units, k), np.nan)

    for k in ROLL_WINDOWS:
        filled = z[k] * fill
        mean = _div(s[k] + filled, n[k])
        var = np.maximum(_div(q[k] + filled * fill, n[k]) - mean * mean, 0.0)
        out[f"roll_mean_{k}"] = mean
        out[f"roll_std_{k}"] = np.where(n[k] > 0, np.sqrt(var), np.nan)
    unknown7 = np.where(z[7] > 0, fill, np.nan)
    high, low = w.extremes(7)
    out["roll_max_7"] = np.where(n[7] > 0, np.fmax(high, unknown7), np.nan)
    out["roll_min_7"] = np.where(n[7] > 0, np.fmin(low, unknown7), np.nan)

    out["days_since_last_sale"] = w.days_since_sale().astype(np.float64)
    for k in (7, 30):
        out[f"zero_sale_share_{k}"] = _div(zero[k], n[k])
    for k in (7, 30):
        out[f"stockout_share_{k}"] = _div(stockout[k], n[k])
    for k in (7, 30):
        out[f"evening_share_{k}"] = _div(evening[k], units[k])

    s_other = s[30] - s_promo
    mean_promo = _div(s_promo + z_promo * fill, n_promo)
    mean_other = _div(s_other + (z[30] - z_promo) * fill, n[30] - n_promo)
    with np.errstate(invalid="ignore"):
        lift_ok = (n_promo > 0) & (mean_other > 0)
    out["promo_share_30"] = _div(n_promo, n[30])
    out["promo_lift_30"] = np.where(lift_ok, _div(mean_promo, mean_other), np.nan)
    out["avg_price_30"] = _div(revenue, units[30])
    return {name: out[name] for name in HISTORY_FEATURES}


def _div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den as float64, NaN where den is 0 (or either is NaN)."""
    out = np.full(np.broadcast_shapes(np.shape(num), np.shape(den)), np.nan)
    with np.errstate(invalid="ignore"):
        np.divide(num, den, out=out, where=den != 0)
    return out


class _Window:
    """The rows [first - lookback, stop) of ``Days``, and sums over each output day's past."""

    def __init__(self, days: Days, first: int, stop: int, lookback: int) -> None:
        rows = slice(first - lookback, stop)
        self.lookback, self.n = lookback, stop - first
        self.present = days.present[rows].astype(bool)
        demand = days.demand[rows].astype(np.float64)
        self.unknown = self.present & np.isnan(demand)
        ok = self.present & ~self.unknown
        self.known = np.where(ok, demand, 0.0)
        self.demand = np.where(self.present, demand, np.nan)  # NaN: absent or unknown
        self.units = np.where(self.present, days.units[rows], 0).astype(np.int64)
        self.evening = np.where(self.present, days.evening[rows], 0).astype(np.int64)
        self.revenue = np.where(self.present, days.revenue[rows], 0.0).astype(np.float64)
        self.stockout = self.present & days.stockout[rows].astype(bool)
        self.promo = self.present & days.promo[rows].astype(bool)

    def back(self, a: np.ndarray, j: int) -> np.ndarray:
        """``a`` on day D-j, for every output day D: [n, pairs]."""
        start = self.lookback - j
        return a[start:start + self.n]

    def counts(self, a: np.ndarray, ks: tuple[int, ...]) -> dict[int, np.ndarray]:
        """Exact integer sums of ``a`` over [D-k, D-1] for each k (prefix sums)."""
        c = np.zeros((a.shape[0] + 1, a.shape[1]), dtype=np.int64)
        for t in range(a.shape[0]):  # row by row: much faster than cumsum along axis 0
            np.add(c[t], a[t], out=c[t + 1])
        now = c[self.lookback:self.lookback + self.n]
        return {k: now - c[self.lookback - k:self.lookback - k + self.n] for k in ks}

    def sums(self, a: np.ndarray, ks: tuple[int, ...]) -> dict[int, np.ndarray]:
        """Float sums over [D-k, D-1] for each k, adding D-1, D-2, ... in that order."""
        acc = self.back(a, 1).copy()
        out = {1: acc.copy()} if 1 in ks else {}
        for j in range(2, max(ks) + 1):
            acc += self.back(a, j)
            if j in ks:
                out[j] = acc.copy()
        return out

    def extremes(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Max and min of the known demand over [D-k, D-1]; NaN where none is known."""
        has = self.present & ~self.unknown
        high = np.full((self.n, self.present.shape[1]), -np.inf)
        low = np.full_like(high, np.inf)
        for j in range(1, k + 1):
            v, ok = self.back(self.known, j), self.back(has, j)
            high = np.where(ok, np.maximum(high, v), high)
            low = np.where(ok, np.minimum(low, v), low)
        return np.where(np.isinf(high), np.nan, high), np.where(np.isinf(low), np.nan, low)

    def days_since_sale(self) -> np.ndarray:
        """Days since the last day with units sold in [D-lookback, D-1]; lookback + 1 if
        none."""
        sold = self.present & (self.units > 0)
        last = np.empty(sold.shape, dtype=np.int64)  # the last row <= t with a sale, or -1
        last[0] = np.where(sold[0], 0, -1)
        for t in range(1, sold.shape[0]):
            last[t] = np.where(sold[t], t, last[t - 1])
        before = self.back(last, 1)
        since = self.lookback + np.arange(self.n)[:, None] - before
        return np.where((before >= 0) & (since <= self.lookback), since, self.lookback + 1)
