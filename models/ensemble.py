"""Ensemble weights learned per segment on a rolling-origin validation window, and the combiner.

``EnsembleWeights.fit(member_forecasts, actuals, segments)`` learns, for every segment and for
all rows together (segment ``"*"``, used for segments it has not seen), non-negative weights
summing to 1 that minimise the validation error of the weighted mean of the members' point
forecasts:

* ``objective="wape"``: sum |sum_m w_m f_m - a| (the WAPE up to its constant denominator);
  ``"business_cost"``: sum under_cost (a - f)^+ + over_cost (f - a)^+ with the actuals' per-row
  costs (``models.metrics.business_cost``).
* Both are piecewise linear in w, so the minimum over the simplex is found exactly by a linear
  program (``scipy.optimize.linprog``, HiGHS): variables w and the under/over parts of each
  row's error, ``F w + e_under - e_over = a``, ``sum w = 1``, all >= 0, solved through its
  dual (k constraints for k members; 0.3 s for 20,000 rows). Exact where SLSQP on a
  non-smooth objective stalls, and on the simplex by construction (no clipping and
  renormalising). Above ``max_rows`` rows a seeded sample of rows is used.
* Shrinkage, a credibility blend that stays on the simplex: with n validation rows,
  ``w = n / (n + shrinkage) * w_opt + shrinkage / (n + shrinkage) * anchor``. The weights of
  all rows (segment ``"*"``) are shrunk towards the prior (the case study's
  0.4/0.3/0.2/0.1); a segment's towards the weights of all rows, so a small segment borrows
  what the pooled validation rows say instead of falling back to the case study's guess. A
  segment with fewer than ``min_rows`` rows gets its anchor.
* Quantiles (``per_quantile=True``, the default): each quantile column ``q<p>`` every member
  has gets its own weights, from the same LP with the pinball loss at tau = p / 100
  (under = tau, over = 1 - tau), shrunk the same way: a member whose intervals are too
  narrow or too wide weighs less in the upper quantiles than in the point forecast, and
  ``q50``, the median forecast (WAPE's optimum), is the pinball-0.5 (absolute error)
  combination of the members' medians. ``per_quantile=False``: every column uses the point
  forecast's weights.
* Prior of the members present: the prior's weight of each member (members the prior does not
  name get 1 / number of members), renormalised to sum to 1.

Rows are those where every member has a forecast and there is an actual, joined on store_id,
sku_id, target_date and horizon (so several backtest cutoffs can be stacked); rows dropped by
the join are counted in the log.

``combine`` takes a weighted mean of the members' ``mean`` and, level by level, of their
quantiles, each column with its weights (quantile averaging, "Vincentization": the combined
quantile function is a weighted mean of the members'; its spread is an average spread,
narrower than the mixture of their distributions, which also carries their disagreement),
then clips at 0 and takes a running max across levels so the quantiles stay monotone. Where a
member lacks a row the weights of the members that have it are renormalised (equal weights if
they are all 0).
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Self

import numpy as np
import pandas as pd
from scipy import optimize

from models.metrics import quantile_levels
from models.protocol import KEY, check_train

__all__ = ["PRIOR", "GLOBAL_SEGMENT", "EnsembleWeights", "combine", "rolling_origin_cutoffs"]

log = logging.getLogger(__name__)

#: The case study's weights.
PRIOR: dict[str, float] = {"xgboost": 0.4, "lstm": 0.3, "prophet": 0.2, "arima": 0.1}
#: The segment holding the weights learnt on all rows, used where a segment is unknown.
GLOBAL_SEGMENT = "*"
_ROW = [*KEY, "target_date", "horizon"]
_OBJECTIVES = ("wape", "business_cost")


def _check_members(members: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    if not members:
        raise ValueError("ensemble: no member forecasts given")
    out = {}
    for name, df in members.items():
        missing = [c for c in [*_ROW, "mean"] if c not in df.columns]
        if missing:
            raise ValueError(f"ensemble: member {name!r} lacks column(s) {missing} "
                             f"(has {list(df.columns)})")
        fc = df.copy()
        fc["target_date"] = pd.to_datetime(fc["target_date"]).dt.normalize().astype(
            "datetime64[ns]")
        fc["horizon"] = fc["horizon"].astype("int64")
        dup = fc.duplicated(_ROW, keep=False)
        if dup.any():
            raise ValueError(f"ensemble: member {name!r} has {int(dup.sum())} row(s) repeating "
                             f"a (store_id, sku_id, target_date, horizon), e.g.\n"
                             f"{fc.loc[dup, [*_ROW, 'mean']].head(5).to_string(index=False)}")
        values = fc[["mean", *quantile_levels(list(fc.columns))]].to_numpy(dtype="float64")
        if not np.isfinite(values).all():
            raise ValueError(f"ensemble: member {name!r} has null or infinite forecasts")
        out[str(name)] = fc
    return out


def _prior_for(names: list[str], prior: Mapping[str, float]) -> np.ndarray:
    raw = np.array([float(prior.get(n, 1.0 / len(names))) for n in names])
    if (raw < 0).any() or not np.isfinite(raw).all():
        raise ValueError(f"ensemble: prior weights must be finite and >= 0, got {dict(prior)}")
    total = raw.sum()
    return raw / total if total > 0 else np.full(len(names), 1.0 / len(names))


def _solve(f: np.ndarray, a: np.ndarray, under: np.ndarray, over: np.ndarray) -> np.ndarray | None:
    """Simplex weights minimising sum under (a - F w)^+ + over (F w - a)^+, or None.

    Solved through the LP's dual, max a'y + s subject to F'y + s <= 0 (one row per member) and
    -over <= y <= under: k constraints instead of n, so HiGHS takes a fraction of a second for
    tens of thousands of rows; the weights are the multipliers of the k constraints (the free
    ``s`` makes them sum to 1)."""
    n, k = f.shape
    a_ub = np.hstack([f.T, np.ones((k, 1))])
    bounds = [*zip(-over, under, strict=True), (None, None)]
    res = optimize.linprog(-np.append(a, 1.0), A_ub=a_ub, b_ub=np.zeros(k), bounds=bounds,
                           method="highs")
    if res.status != 0 or res.ineqlin is None:
        return None
    w = np.clip(-np.asarray(res.ineqlin.marginals, dtype="float64"), 0.0, None)
    return w / w.sum() if w.sum() > 0 else None


class EnsembleWeights:
    """Per-segment simplex weights for the members; see the module docstring."""

    def __init__(self, prior: Mapping[str, float] = PRIOR, objective: str = "wape",
                 shrinkage: float = 50.0, min_rows: int = 28, max_rows: int = 50_000,
                 costs: tuple[str, str] = ("under_cost", "over_cost"),
                 segment_col: str = "segment", seed: int = 42,
                 per_quantile: bool = True) -> None:
        if objective not in _OBJECTIVES:
            raise ValueError(f"EnsembleWeights: objective must be one of {_OBJECTIVES}, "
                             f"got {objective!r}")
        if not shrinkage >= 0 or min_rows < 1 or max_rows < 1:
            raise ValueError("EnsembleWeights: need shrinkage >= 0, min_rows >= 1 and "
                             "max_rows >= 1")
        self.prior, self.objective, self.shrinkage = dict(prior), objective, shrinkage
        self.min_rows, self.max_rows, self.costs = min_rows, max_rows, costs
        self.segment_col, self.seed, self.per_quantile = segment_col, seed, per_quantile
        self.members_: list[str] = []
        #: forecast columns with their own weights: ``mean``, then the quantile columns
        self.columns_: list[str] = []
        #: segment -> weights of the point forecast (``mean``), aligned with ``members_``
        self.weights_: dict[str, np.ndarray] = {}
        #: (segment, column) -> weights, aligned with ``members_``
        self.column_weights_: dict[tuple[str, str], np.ndarray] = {}
        self._rows: dict[str, int] = {}
        self._method: dict[tuple[str, str], str] = {}
        self._segments: pd.DataFrame | None = None
        #: Validation score (objective per actual unit) per segment and model, ensemble too.
        self.scores_ = pd.DataFrame()

    def fit(self, member_forecasts: Mapping[str, pd.DataFrame], actuals: pd.DataFrame,
            segments: pd.DataFrame | None = None) -> Self:
        """Learn weights on validation forecasts (stacked cutoffs allowed) and their actuals
        (store_id, sku_id, date, y, plus the cost columns for ``business_cost``).
        ``segments``: store_id, sku_id, segment; default the actuals' ``segment`` column,
        else all rows in one segment."""
        members = _check_members(member_forecasts)
        names = list(members)
        prior = _prior_for(names, self.prior)
        act = check_train(actuals, "actuals")
        if self.objective == "business_cost":
            missing = [c for c in self.costs if c not in act.columns]
            if missing:
                raise ValueError(f"EnsembleWeights: objective 'business_cost' needs actuals "
                                 f"column(s) {missing}")
        seg_map = self._segment_map(act, segments)
        qcols = _common_quantiles(members) if self.per_quantile else {}
        rows = self._join(members, act, seg_map, list(qcols))
        a = rows["y"].to_numpy(dtype="float64")
        if self.objective == "business_cost":
            under = rows[self.costs[0]].to_numpy(dtype="float64")
            over = rows[self.costs[1]].to_numpy(dtype="float64")
            if (~np.isfinite(under) | ~np.isfinite(over) | (under < 0) | (over < 0)).any():
                raise ValueError("EnsembleWeights: cost columns must be finite and >= 0")
        else:
            under = over = np.ones(len(a))
        # column -> (forecast matrix, under weight, over weight): the point forecast with the
        # objective, each quantile with its pinball loss
        targets = {"mean": (rows[[f"mean@{n}" for n in names]].to_numpy(dtype="float64"),
                            under, over)}
        for col, tau in qcols.items():
            targets[col] = (rows[[f"{col}@{n}" for n in names]].to_numpy(dtype="float64"),
                            np.full(len(a), tau), np.full(len(a), 1.0 - tau))
        labels = rows["segment"].to_numpy()
        groups: list[tuple[str, np.ndarray]] = [(GLOBAL_SEGMENT, np.arange(len(a)))]
        if seg_map is not None:
            groups += [(str(s), np.flatnonzero(labels == s)) for s in pd.unique(labels)]
        rng = np.random.default_rng(self.seed)
        self.members_, self.columns_ = names, list(targets)
        self.weights_, self.column_weights_, self._rows, self._method = {}, {}, {}, {}
        scores = []
        for seg, idx in groups:
            self._rows[seg] = len(idx)
            for col, (f, u, o) in targets.items():
                # a segment shrinks towards the weights of all rows, those towards the prior
                anchor = prior if seg == GLOBAL_SEGMENT else \
                    self.column_weights_[(GLOBAL_SEGMENT, col)]
                w, method = self._weights(f[idx], a[idx], u[idx], o[idx], anchor, rng)
                self.column_weights_[(seg, col)], self._method[(seg, col)] = w, method
            self.weights_[seg] = self.column_weights_[(seg, "mean")]
            f, u, o = targets["mean"]
            scores.append(self._scores(seg, f[idx], a[idx], u[idx], o[idx]))
        self._segments = seg_map
        self.scores_ = pd.concat(scores, ignore_index=True)
        log.info("ensemble: weights for %d segment(s) and %d column(s) from %d validation rows "
                 "(%s): %s", len(self.weights_), len(self.columns_), len(a), self.objective, {
                     n: round(float(w), 3) for n, w in zip(names, self.weights_[GLOBAL_SEGMENT],
                                                           strict=True)})
        return self

    def _segment_map(self, act: pd.DataFrame, segments: pd.DataFrame | None
                     ) -> pd.DataFrame | None:
        if segments is None and self.segment_col in act.columns:
            segments = act[[*KEY, self.segment_col]].drop_duplicates(list(KEY), keep="last")
        if segments is None:
            return None
        missing = [c for c in [*KEY, self.segment_col] if c not in segments.columns]
        if missing:
            raise ValueError(f"EnsembleWeights: segments lacks column(s) {missing}")
        out = segments[[*KEY, self.segment_col]].drop_duplicates(list(KEY), keep="last")
        out = out.rename(columns={self.segment_col: "segment"})
        out["segment"] = out["segment"].astype(str)
        if (out["segment"] == GLOBAL_SEGMENT).any():
            raise ValueError(f"EnsembleWeights: segment {GLOBAL_SEGMENT!r} is reserved for "
                             "the weights over all rows")
        return out

    def _join(self, members: dict[str, pd.DataFrame], act: pd.DataFrame,
              seg_map: pd.DataFrame | None, qcols: list[str]) -> pd.DataFrame:
        rows: pd.DataFrame | None = None
        sizes = {}
        for name, fc in members.items():
            part = fc[[*_ROW, "mean", *qcols]].rename(
                columns={c: f"{c}@{name}" for c in ["mean", *qcols]})
            sizes[name] = len(part)
            rows = part if rows is None else rows.merge(part, on=_ROW, how="inner")
        assert rows is not None
        extra = [c for c in self.costs if c in act.columns and self.objective == "business_cost"]
        actual = act[[*KEY, "date", "y", *extra]].rename(columns={"date": "target_date"})
        rows = rows.merge(actual, on=[*KEY, "target_date"], how="inner")
        if seg_map is not None:
            rows = rows.merge(seg_map, on=list(KEY), how="left")
            rows["segment"] = rows["segment"].fillna("unknown")
        else:
            rows["segment"] = GLOBAL_SEGMENT
        dropped = {n: s - len(rows) for n, s in sizes.items() if s > len(rows)}
        if dropped:
            log.warning("ensemble: %d common validation rows; rows of each member left out "
                        "(no forecast from another member or no actual): %s", len(rows), dropped)
        if len(rows) == 0:
            raise ValueError("ensemble: no validation row has a forecast from every member and "
                             "an actual; check that the members cover the same series, "
                             "target_date and horizon as the actuals")
        return rows.sort_values(_ROW, kind="stable").reset_index(drop=True)

    def _weights(self, f: np.ndarray, a: np.ndarray, under: np.ndarray, over: np.ndarray,
                 anchor: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
        n = len(a)
        if n < self.min_rows:
            return anchor.copy(), "prior"
        if n > self.max_rows:
            pick = np.sort(rng.choice(n, self.max_rows, replace=False))
            f, a, under, over = f[pick], a[pick], under[pick], over[pick]
        best = _solve(f, a, under, over)
        if best is None:
            log.warning("ensemble: the weight LP failed on %d rows; using the prior", n)
            return anchor.copy(), "prior (LP failed)"
        lam = n / (n + self.shrinkage)
        w = lam * best + (1.0 - lam) * anchor
        return w / w.sum(), "optimised"

    def _scores(self, seg: str, f: np.ndarray, a: np.ndarray, under: np.ndarray,
                over: np.ndarray) -> pd.DataFrame:
        def score(pred: np.ndarray) -> float:
            err = pred - a
            total = float(a.sum())
            cost = float(np.sum(under * np.maximum(-err, 0) + over * np.maximum(err, 0)))
            return cost / total if total > 0 else float("nan")

        names = [*self.members_, "ensemble"]
        preds = [f[:, j] for j in range(f.shape[1])] + [f @ self.weights_[seg]]
        return pd.DataFrame({"segment": seg, "model": names, "n_rows": len(a),
                             self.objective: [score(p) for p in preds]})

    # ------------------------------------------------------------------------ results
    def _fitted(self) -> None:
        if not self.weights_:
            raise RuntimeError("EnsembleWeights: call fit(...) first")

    def weights_for(self, segment: str | None = None, column: str = "mean"
                    ) -> dict[str, float]:
        """The weights of ``segment`` (the all-rows weights when unknown or None) for the
        forecast ``column`` (``mean``, the point forecast, or a quantile column)."""
        self._fitted()
        seg = GLOBAL_SEGMENT if segment is None else str(segment)
        if seg not in self.weights_:
            seg = GLOBAL_SEGMENT
        w = self.column_weights_.get((seg, column), self.weights_[seg])
        return {n: float(x) for n, x in zip(self.members_, w, strict=True)}

    def weights_frame(self) -> pd.DataFrame:
        """One row per segment, forecast column and member: segment, column (``mean`` or a
        quantile column), model, weight, prior, n_rows, method (``optimised``, ``prior``),
        for logging and for ``combine``."""
        self._fitted()
        prior = _prior_for(self.members_, self.prior)
        rows = [(seg, col, name, float(w[j]), float(prior[j]), self._rows[seg],
                 self._method[(seg, col)])
                for (seg, col), w in self.column_weights_.items()
                for j, name in enumerate(self.members_)]
        return pd.DataFrame(rows, columns=["segment", "column", "model", "weight", "prior",
                                           "n_rows", "method"])

    def combine(self, member_forecasts: Mapping[str, pd.DataFrame],
                segments: pd.DataFrame | None = None) -> pd.DataFrame:
        """``combine`` with the learnt weights; ``segments`` (store_id, sku_id, segment)
        defaults to the fit's."""
        self._fitted()
        seg = segments if segments is not None else self._segments
        if seg is not None and self.segment_col in seg.columns and "segment" not in seg.columns:
            seg = seg.rename(columns={self.segment_col: "segment"})
        return combine(member_forecasts, self.weights_frame(), seg)


def _common_quantiles(members: Mapping[str, pd.DataFrame]) -> dict[str, float]:
    """The quantile columns (column -> level) every member has."""
    first = quantile_levels(list(next(iter(members.values())).columns))
    return {c: t for c, t in first.items() if all(c in fc.columns for fc in members.values())}


def combine(member_forecasts: Mapping[str, pd.DataFrame],
            weights: Mapping[str, float] | pd.DataFrame,
            segments: pd.DataFrame | None = None) -> pd.DataFrame:
    """Weighted mean of the members' means and quantiles (see the module docstring).

    ``weights``: {member: weight} for every row and column, or a ``weights_frame()`` (segment,
    model, weight and optionally column) used with ``segments`` (store_id, sku_id, segment);
    series without a segment, or whose segment the frame lacks, get segment ``"*"``. With a
    ``column`` column each forecast column uses its own weights (a column the frame lacks
    uses those of ``mean``). Members without a weight weigh 0. Returns store_id, sku_id,
    target_date, horizon, mean and the quantile columns every member has.
    """
    members = _check_members(member_forecasts)
    names = list(members)
    qcols = list(_common_quantiles(members))
    rows: pd.DataFrame | None = None
    for name, fc in members.items():
        part = fc[[*_ROW, "mean", *qcols]].rename(
            columns={c: f"{c}@{name}" for c in ["mean", *qcols]})
        rows = part if rows is None else rows.merge(part, on=_ROW, how="outer")
    assert rows is not None
    present = np.stack([rows[f"mean@{n}"].notna().to_numpy() for n in names], axis=1)
    equal = present / present.sum(axis=1, keepdims=True)
    by_column = _column_frames(weights)
    label = _row_segments(rows, segments) if by_column is not None else None
    out = rows[_ROW].copy()
    cache: dict[int, np.ndarray] = {}
    for col in ["mean", *qcols]:
        if by_column is None:
            source: Mapping[str, float] | pd.DataFrame = weights
        else:
            source = by_column.get(col, by_column["mean"])
        key = id(source)
        if key not in cache:
            w = _row_weights(rows, names, source, label)  # (n, k)
            w = np.where(present, w, 0.0)
            total = w.sum(axis=1, keepdims=True)
            cache[key] = np.where(total > 0, w / np.where(total > 0, total, 1.0), equal)
        vals = np.stack([rows[f"{col}@{n}"].to_numpy(dtype="float64") for n in names], axis=1)
        out[col] = np.nansum(np.where(present, vals, 0.0) * cache[key], axis=1)
    out["mean"] = np.clip(out["mean"].to_numpy(), 0.0, None)
    if qcols:
        q = np.clip(out[qcols].to_numpy(dtype="float64"), 0.0, None)
        out[qcols] = np.maximum.accumulate(q, axis=1)
    origin = out["target_date"] - pd.to_timedelta(out["horizon"], unit="D")
    order = np.lexsort((out["horizon"].to_numpy(), origin.to_numpy(),
                        out["sku_id"].to_numpy(), out["store_id"].to_numpy()))
    return out.iloc[order].reset_index(drop=True)


def _column_frames(weights: Mapping[str, float] | pd.DataFrame
                   ) -> dict[str, pd.DataFrame] | None:
    """A weights frame split by forecast column (a frame without ``column``: all ``mean``);
    None for a plain {member: weight} mapping."""
    if not isinstance(weights, pd.DataFrame):
        return None
    missing = [c for c in ("segment", "model", "weight") if c not in weights.columns]
    if missing:
        raise ValueError(f"combine: weights frame lacks column(s) {missing}")
    if "column" not in weights.columns:
        return {"mean": weights}
    out = {str(c): part for c, part in weights.groupby("column", sort=False)}
    if "mean" not in out:
        raise ValueError("combine: a weights frame with a 'column' column needs the 'mean' "
                         "rows (used for columns it lacks)")
    return out


def _row_segments(rows: pd.DataFrame, segments: pd.DataFrame | None) -> pd.Series | None:
    if segments is None:
        return None
    seg = segments[[*KEY, "segment"]].drop_duplicates(list(KEY), keep="last")
    label = rows[list(KEY)].merge(seg.assign(segment=seg["segment"].astype(str)),
                                  on=list(KEY), how="left")["segment"]
    label.index = rows.index
    return label


def _row_weights(rows: pd.DataFrame, names: list[str],
                 weights: Mapping[str, float] | pd.DataFrame,
                 label: pd.Series | None) -> np.ndarray:
    if not isinstance(weights, pd.DataFrame):
        vec = np.array([float(weights.get(n, 0.0)) for n in names])
        if (vec < 0).any() or not np.isfinite(vec).all():
            raise ValueError(f"combine: weights must be finite and >= 0, got {dict(weights)}")
        return np.broadcast_to(vec, (len(rows), len(names))).copy()
    table = weights.pivot_table(index="segment", columns="model", values="weight",
                                aggfunc="last").reindex(columns=names).fillna(0.0)
    table.index = table.index.astype(str)
    if GLOBAL_SEGMENT not in table.index:
        if len(table) != 1:
            raise ValueError(f"combine: a weights frame with several segments needs the "
                             f"{GLOBAL_SEGMENT!r} row for series of other segments")
        table.index = pd.Index([GLOBAL_SEGMENT])
    if label is None:
        label = pd.Series(GLOBAL_SEGMENT, index=rows.index)
    else:
        label = label.where(label.isin(table.index), GLOBAL_SEGMENT)
    return table.loc[label.to_numpy()].to_numpy(dtype="float64")


def rolling_origin_cutoffs(dates: Iterable[object] | pd.Series | pd.Index, n_cutoffs: int = 3,
                           horizon: int = 7, step: int | None = None,
                           min_train_days: int = 28) -> list[pd.Timestamp]:
    """Backtest origins, oldest first: the last is ``max(dates) - horizon`` (its horizon ends on
    the last date), each earlier one ``step`` days (default ``horizon``) before the next, so the
    evaluation windows tile the last ``n_cutoffs * step`` days. Each origin needs
    ``min_train_days`` days of history from ``min(dates)`` (inclusive)."""
    if n_cutoffs < 1 or horizon < 1 or min_train_days < 1:
        raise ValueError("rolling_origin_cutoffs: n_cutoffs, horizon and min_train_days must "
                         "be >= 1")
    step = horizon if step is None else step
    if step < 1:
        raise ValueError(f"rolling_origin_cutoffs: step must be >= 1, got {step}")
    stamps = pd.to_datetime(pd.Series(list(dates))).dropna()
    if stamps.empty:
        raise ValueError("rolling_origin_cutoffs: no dates")
    first, last = stamps.min().normalize(), stamps.max().normalize()
    cutoffs = [last - pd.Timedelta(days=horizon + i * step) for i in range(n_cutoffs)][::-1]
    history = (cutoffs[0] - first).days + 1
    if history < min_train_days:
        raise ValueError(f"rolling_origin_cutoffs: {n_cutoffs} cutoff(s) {horizon} day(s) "
                         f"ahead every {step} day(s) leave the first origin "
                         f"{cutoffs[0].date()} only {history} day(s) of history from "
                         f"{first.date()}; need min_train_days={min_train_days}")
    return [pd.Timestamp(c) for c in cutoffs]
