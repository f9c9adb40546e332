"""Rolling-origin backtest of the ensemble, its members and the baselines, side by side.

``backtest(rows, cfg, ...)`` takes feature-table rows (``features.catalog``: keys, labels and
features, plus the store ``cluster``) and:

1. picks ``cfg.validation_origins + cfg.n_cutoffs`` origins
   ``models.ensemble.rolling_origin_cutoffs`` (step = horizon, so the windows tile the last
   weeks) and a seeded sample of at most ``cfg.max_series`` series (the same at every
   origin);
2. at every origin ``c`` fits each member and the baselines (seasonal naive, moving average)
   on the ``cfg.train_days`` days up to ``c`` and forecasts days ``c+1 .. c+H`` (XGBoost from
   the feature rows of those days: their covariates are taken as known, weather included);
3. scores the ensemble out of sample: at origin k its weights are learnt on the members'
   forecasts of origins 0..k-1 only, so the first ``cfg.validation_origins`` origins serve
   only as validation and the **last ``n_cutoffs`` origins are the evaluation window** of
   every model;
4. computes ``models.metrics.evaluate`` per model, per model x horizon, per model x segment
   (store cluster) and per model x cutoff, against the corrected demand (``demand``) of the
   target days, with the business cost from each SKU's real (unbounded) costs; with
   ``oracle`` (the generator's expected demand: store_id, sku_id, date, expected_demand) an
   ``oracle`` row too: its ``mean`` is the true expected demand and, when ``oracle`` also has
   ``nb_dispersion`` (the size of the generator's negative binomial), its quantiles are
   those of that distribution (``oracle_quantiles``), so its ``q50`` is the true median and
   ``wape_q50`` compares medians with medians.

Rows of the target days without a known demand (censored, no sales) are not scored; a series
whose forecast lacks a target day is scored on the days it has.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from models.baselines import MovingAverage, SeasonalNaive
from models.ensemble import combine, rolling_origin_cutoffs
from models.ensemble_model import (
    EnsembleConfig,
    learn_weights,
    make_members,
    training_frame,
)
from models.metrics import evaluate
from models.protocol import KEY, ModelConfig, nb_quantiles, quantile_columns

__all__ = ["BacktestResult", "backtest", "sample_series", "complete_future", "date_window",
           "oracle_quantiles", "BASELINES", "ENSEMBLE", "ORACLE"]

log = logging.getLogger(__name__)

BASELINES: tuple[str, ...] = ("seasonal_naive", "moving_average")
ENSEMBLE = "ensemble"
ORACLE = "oracle"
_TARGET = [*KEY, "target_date"]


@dataclass
class BacktestResult:
    """Everything a backtest produced; ``metrics`` has one row per model and group."""

    cutoffs: list[pd.Timestamp]
    eval_cutoffs: list[pd.Timestamp]
    forecasts: pd.DataFrame  # model, cutoff, forecast frame columns (scored rows only)
    actuals: pd.DataFrame  # store_id, sku_id, date, y, segment
    overall: pd.DataFrame  # model + metrics over the evaluation window
    by_horizon: pd.DataFrame
    by_segment: pd.DataFrame
    by_cutoff: pd.DataFrame
    weights: pd.DataFrame  # cutoff, segment, model, weight (learnt before each origin)
    fit_seconds: pd.DataFrame  # model, cutoff, seconds
    n_series: int
    flags: list[str] = field(default_factory=list)

    def score(self, model: str, metric: str) -> float:
        row = self.overall.loc[self.overall["model"] == model, metric]
        return float(row.iloc[0]) if len(row) else float("nan")


def sample_series(rows: pd.DataFrame, max_series: int, seed: int) -> pd.DataFrame:
    """A seeded sample of at most ``max_series`` (store_id, sku_id) pairs of ``rows``."""
    keys = rows[list(KEY)].drop_duplicates().sort_values(list(KEY)).reset_index(drop=True)
    if len(keys) <= max_series:
        return keys
    pick = np.sort(np.random.default_rng(seed).choice(len(keys), max_series, replace=False))
    return keys.iloc[pick].reset_index(drop=True)


def complete_future(future: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """Future rows of the pairs that have a row on every target day."""
    n = future.groupby(list(KEY))["date"].transform("size")
    return future.loc[n == horizon]


def date_window(rows: pd.DataFrame, lo: pd.Timestamp, hi: pd.Timestamp) -> pd.DataFrame:
    d = rows["date"]
    return rows.loc[(d > lo) & (d <= hi)]


def oracle_quantiles(mean: np.ndarray, size: np.ndarray,
                     quantiles: tuple[float, ...]) -> np.ndarray:
    """(n, len(quantiles)) quantiles of the generator's demand distribution, a negative
    binomial with mean ``mean`` and size ``size`` (``protocol.nb_quantiles``)."""
    return nb_quantiles(mean, size, quantiles)


def _costs_on(frame: pd.DataFrame, costs: pd.DataFrame | None) -> pd.DataFrame:
    if costs is None:
        return frame
    return frame.merge(costs[["sku_id", "under_cost", "over_cost"]], on="sku_id", how="left")


def backtest(rows: pd.DataFrame, cfg: EnsembleConfig, calendar: pd.DataFrame | None = None,
             costs: pd.DataFrame | None = None, oracle: pd.DataFrame | None = None,
             progress: Callable[[str], None] | None = None) -> BacktestResult:
    """Rolling-origin backtest (see the module docstring). ``costs``: ``unit_costs`` rows
    (sku_id, under_cost, over_cost) for the business cost and the XGBoost objective."""
    rows = rows.copy()
    rows["date"] = pd.to_datetime(rows["date"]).astype("datetime64[ns]")
    if "cluster" not in rows.columns:
        rows["cluster"] = 0
    keys = sample_series(rows, cfg.max_series, cfg.seed)
    rows = rows.merge(keys, on=list(KEY), how="inner")
    h = cfg.horizon
    warm = cfg.validation_origins
    cutoffs = rolling_origin_cutoffs(rows["date"], n_cutoffs=cfg.n_cutoffs + warm, horizon=h,
                                     min_train_days=28)
    segments = (rows.sort_values("date").drop_duplicates(list(KEY), keep="last")
                [[*KEY, "cluster"]].assign(segment=lambda d: d["cluster"].astype(str))
                [[*KEY, "segment"]])
    member_fc: dict[pd.Timestamp, dict[str, pd.DataFrame]] = {}
    actual_by: dict[pd.Timestamp, pd.DataFrame] = {}
    timings: list[dict[str, object]] = []
    flags: list[str] = []
    scored: list[pd.DataFrame] = []
    weight_rows: list[pd.DataFrame] = []
    mcfg = ModelConfig(seed=cfg.seed)

    for k, cut in enumerate(cutoffs):
        say = progress or (lambda msg: log.info("%s", msg))
        say(f"backtest origin {k + 1}/{len(cutoffs)}: {cut.date()}")
        train_rows = date_window(rows, cut - pd.Timedelta(days=cfg.train_days), cut)
        train = training_frame(train_rows)
        target = date_window(rows, cut, cut + pd.Timedelta(days=h))
        future = complete_future(target, h)
        act = training_frame(target)[[*KEY, "date", "y"]]
        actual_by[cut] = act
        fcs: dict[str, pd.DataFrame] = {}
        models = make_members(cfg, calendar, costs)
        models.update({"seasonal_naive": SeasonalNaive(), "moving_average": MovingAverage()})
        for name, model in models.items():
            began = time.perf_counter()
            try:
                model.fit(train, mcfg)
                fc = model.predict(h, cfg.quantiles, future=future)
            except Exception as exc:  # a member that cannot fit is reported, not fatal
                flags.append(f"{cut.date()} {name}: {type(exc).__name__}: {exc}"[:300])
                log.warning("backtest: %s", flags[-1])
                continue
            timings.append({"model": name, "cutoff": cut,
                            "seconds": time.perf_counter() - began})
            fcs[name] = fc
        if oracle is not None:
            o = oracle.copy()
            o["date"] = pd.to_datetime(o["date"]).astype("datetime64[ns]")
            o = date_window(o, cut, cut + pd.Timedelta(days=h)).merge(keys, on=list(KEY))
            fcs[ORACLE] = pd.DataFrame({
                "store_id": o["store_id"], "sku_id": o["sku_id"], "target_date": o["date"],
                "horizon": ((o["date"] - cut) // pd.Timedelta(days=1)).astype("int64"),
                "mean": o["expected_demand"].astype("float64")})
            if "nb_dispersion" in o.columns:
                q = oracle_quantiles(o["expected_demand"].to_numpy(),
                                     o["nb_dispersion"].to_numpy(), tuple(cfg.quantiles))
                for j, col in enumerate(quantile_columns(cfg.quantiles)):
                    fcs[ORACLE][col] = q[:, j]
        member_fc[cut] = fcs
        members_here = [m for m in cfg.members if m in fcs]
        if k >= warm and members_here:
            past = [c for c in cutoffs[:k]]
            stacked = {m: pd.concat([member_fc[c][m] for c in past if m in member_fc[c]],
                                    ignore_index=True) for m in members_here}
            stacked = {m: f for m, f in stacked.items() if len(f)}
            past_act = pd.concat([actual_by[c] for c in past], ignore_index=True)
            weights = learn_weights(stacked, past_act, segments, cfg, costs)
            weight_rows.append(weights.assign(cutoff=cut))
            fcs[ENSEMBLE] = combine({m: fcs[m] for m in stacked}, weights, segments)
        if k >= warm:
            for name, fc in fcs.items():
                scored.append(fc.assign(model=name, cutoff=cut))

    eval_cutoffs = cutoffs[warm:]
    forecasts = pd.concat(scored, ignore_index=True)
    actuals = pd.concat([actual_by[c] for c in eval_cutoffs], ignore_index=True)
    actuals = actuals.merge(segments, on=list(KEY), how="left")
    # score only rows that have an actual (censored days and inactive pairs are not scored)
    have = actuals[[*KEY, "date"]].rename(columns={"date": "target_date"})
    forecasts = forecasts.merge(have, on=_TARGET, how="inner")
    forecasts = forecasts.merge(segments, on=list(KEY), how="left")
    forecasts = _costs_on(forecasts, costs)
    history = training_frame(date_window(rows, eval_cutoffs[0] - pd.Timedelta(
        days=cfg.train_days), eval_cutoffs[0]))[[*KEY, "date", "y"]]
    cost_cols = ("under_cost", "over_cost") if costs is not None else None
    scored_actuals = actuals.drop(columns="segment")
    result = {label: _evaluate_models(scored_actuals, forecasts, history, by, cost_cols)
              for label, by in (("overall", ["model"]), ("by_horizon", ["model", "horizon"]),
                                ("by_segment", ["model", "segment"]),
                                ("by_cutoff", ["model", "cutoff"]))}
    return BacktestResult(
        cutoffs=cutoffs, eval_cutoffs=eval_cutoffs, forecasts=forecasts, actuals=actuals,
        overall=result["overall"], by_horizon=result["by_horizon"],
        by_segment=result["by_segment"], by_cutoff=result["by_cutoff"],
        weights=(pd.concat(weight_rows, ignore_index=True) if weight_rows
                 else pd.DataFrame(columns=["cutoff", "segment", "model", "weight"])),
        fit_seconds=pd.DataFrame(timings), n_series=len(keys), flags=flags)


def _evaluate_models(actuals: pd.DataFrame, forecasts: pd.DataFrame, history: pd.DataFrame,
                     by: list[str], costs: tuple[str, str] | None) -> pd.DataFrame:
    """``evaluate`` model by model (each model's rows align one-to-one with the actuals)."""
    out = []
    for _, fc in forecasts.groupby("model", sort=False):
        days = fc[[*KEY, "target_date"]].drop_duplicates().rename(
            columns={"target_date": "date"})
        act = actuals.merge(days, on=[*KEY, "date"], how="inner")
        fc = fc.dropna(axis=1, how="all")  # the oracle has a mean but no quantiles
        out.append(evaluate(act, fc, history, by=by, costs=costs))
    return pd.concat(out, ignore_index=True)
