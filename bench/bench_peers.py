#!/usr/bin/env python
"""Accuracy against peers: replenish's ensemble and each member vs statsforecast and
mlforecast, on the same series, horizon, cutoffs and rows.

For each data set (a generated world, with the oracle row; the public Store Item Demand set)
the script builds the feature table (ingest, raw -> clean copy, ``build_features``,
``cluster``: as ``bench_models.py``), loads the training rows the way ``replenish run train``
does (``jobs.train.load_feature_rows``: a seeded sample of the active pairs) and then:

1. runs the project's own rolling-origin backtest (``models.backtest.backtest``): every
   member, the ensemble (weights learnt out of sample), the baselines and the oracle;
2. at each of the backtest's evaluation origins, fits the peers on the same series and the
   same ``train_days`` window of corrected demand (``models.ensemble_model.training_frame``)
   and forecasts the same 7 days: statsforecast ``AutoETS``, ``SeasonalNaive`` and
   ``CrostonOptimized``, and mlforecast's ``LightGBM`` on lags 1, 2, 3, 7, 14, 21, 28, rolling
   means and the weekday (recursive);
3. scores every model with ``models.metrics.evaluate`` on exactly the same rows: the
   (store, SKU, day) rows that every model forecast and that have a known demand.

Peers see only the demand history (no promotions, prices, weather or festivals): that is
what they are built for. Their series are completed over the training window (days before a
SKU's first observation are 0, a censored day without sales takes the previous day's demand)
because statsforecast and mlforecast need regular series that end at the origin.

Peer quantiles: q50 = the point forecast (statsforecast's and mlforecast's intervals are
symmetric around it), q80/q90/q95/q99 = the upper ends of the 60/80/90/98% central prediction
intervals (native ones for AutoETS and SeasonalNaive; conformal, 2 windows of 7 days, for
CrostonOptimized and LightGBM), clipped at 0 and made monotone like the project's.

Wall time: fit + forecast seconds per origin, the mean over the origins a model was fitted
at (the project's members also at the first, weights-only origin); the ensemble's is the sum
of its members'. Results go to the "Peers" section of ``bench/RESULTS.md``, plots to
``bench/plots/``. Needs the optional ``bench`` extra: ``pip install -c constraints.txt -e
'.[bench]'``.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import logging
import math
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    RESULTS,
    LoadSampler,
    command,
    machine,
    machine_line,
    md_table,
    update_results,
    verdict,
)

SECTION = "## Peers (statsforecast, mlforecast)"
STORE_ITEM_ZIP = Path("/work/shared/data/store-item-demand.zip")
PEERS = ("sf_autoets", "sf_seasonal_naive", "sf_croston_optimized", "mlf_lightgbm")
PEER_LABEL = {"sf_autoets": "statsforecast AutoETS",
              "sf_seasonal_naive": "statsforecast SeasonalNaive",
              "sf_croston_optimized": "statsforecast CrostonOptimized",
              "mlf_lightgbm": "mlforecast LightGBM"}
#: Central interval levels whose upper ends become q80, q90, q95, q99 (q50 = the point).
LEVELS = {60: "q80", 80: "q90", 90: "q95", 98: "q99"}
METRICS = [("wape", "WAPE"), ("rmsse", "RMSSE"), ("pinball_mean", "pinball mean"),
           ("pinball_q50", "pinball q50"), ("pinball_q95", "pinball q95"),
           ("coverage_q80", "cov q80"), ("coverage_q95", "cov q95"), ("bias", "bias")]

log = logging.getLogger("bench_peers")


def _say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ------------------------------------------------------------------------------ peers
def complete_series(train: pd.DataFrame, start: pd.Timestamp, cutoff: pd.Timestamp,
                    keys: pd.DataFrame) -> pd.DataFrame:
    """statsforecast's long frame (unique_id, ds, y) with one row per series and day in
    [start, cutoff]: 0 before a series' first observation, the previous value on a missing
    day after it (a censored day without sales), so every series ends at the origin."""
    days = pd.date_range(start, cutoff, freq="D")
    uid = keys["store_id"].astype("int64") * 1_000_000 + keys["sku_id"].astype("int64")
    grid = pd.DataFrame({"unique_id": np.repeat(uid.to_numpy(), len(days)),
                         "ds": np.tile(days.to_numpy(), len(uid))})
    t = train[["store_id", "sku_id", "date", "y"]]
    obs = pd.DataFrame({"unique_id": t["store_id"].astype("int64") * 1_000_000
                        + t["sku_id"].astype("int64"), "ds": t["date"].to_numpy(),
                        "y": t["y"].astype("float64").to_numpy()})
    df = grid.merge(obs, on=["unique_id", "ds"], how="left")
    seen = df["y"].notna().groupby(df["unique_id"]).cummax()
    df["y"] = df.groupby("unique_id")["y"].ffill()
    df.loc[~seen, "y"] = 0.0
    return df.sort_values(["unique_id", "ds"]).reset_index(drop=True)


def to_forecast_frame(fc: pd.DataFrame, col: str, cutoff: pd.Timestamp) -> pd.DataFrame:
    """A peer's output (unique_id, ds, col, col-hi-L ...) -> the project's forecast frame
    (store_id, sku_id, target_date, horizon, mean, q50 .. q99), monotone and >= 0."""
    fc = fc.reset_index() if "unique_id" not in fc.columns else fc
    uid = fc["unique_id"].astype("int64")
    out = pd.DataFrame({"store_id": (uid // 1_000_000).to_numpy(),
                        "sku_id": (uid % 1_000_000).to_numpy(),
                        "target_date": pd.to_datetime(fc["ds"]).astype("datetime64[ns]"),
                        "horizon": ((pd.to_datetime(fc["ds"]) - cutoff) // pd.Timedelta(days=1))
                        .astype("int64").to_numpy()})
    point = np.clip(fc[col].to_numpy(dtype="float64"), 0.0, None)
    out["mean"] = point
    out["q50"] = point
    running = point.copy()
    for level, name in LEVELS.items():
        running = np.maximum(running, np.clip(fc[f"{col}-hi-{level}"].to_numpy("float64"),
                                              0.0, None))
        out[name] = running
    return out


def peer_forecasts(df: pd.DataFrame, horizon: int, cutoff: pd.Timestamp, threads: int,
                   lgb_rounds: int) -> tuple[dict[str, pd.DataFrame], dict[str, float],
                                             list[str]]:
    """Fit every peer on ``df`` (unique_id, ds, y) and forecast ``horizon`` days; returns
    (forecast frames, seconds, flags). A peer that fails is flagged, not fatal."""
    import lightgbm as lgb
    from mlforecast import MLForecast
    from mlforecast.lag_transforms import RollingMean
    from mlforecast.utils import PredictionIntervals
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS, CrostonOptimized, SeasonalNaive
    from statsforecast.utils import ConformalIntervals

    conformal = ConformalIntervals(h=horizon, n_windows=2)
    stats = {"sf_autoets": (AutoETS(season_length=7, alias="m")),
             "sf_seasonal_naive": SeasonalNaive(season_length=7, alias="m"),
             "sf_croston_optimized": CrostonOptimized(alias="m", prediction_intervals=conformal)}
    levels = list(LEVELS)
    out: dict[str, pd.DataFrame] = {}
    seconds: dict[str, float] = {}
    flags: list[str] = []
    for name, model in stats.items():
        t0 = time.perf_counter()
        try:
            sf = StatsForecast(models=[model], freq="D", n_jobs=threads)
            fc = sf.forecast(df=df, h=horizon, level=levels)
            out[name] = to_forecast_frame(fc, "m", cutoff)
        except Exception as exc:  # reported, not fatal
            flags.append(f"{cutoff.date()} {name}: {type(exc).__name__}: {exc}"[:300])
            continue
        seconds[name] = time.perf_counter() - t0
    t0 = time.perf_counter()
    try:
        mf = MLForecast(
            models={"m": lgb.LGBMRegressor(n_estimators=lgb_rounds, learning_rate=0.05,
                                           num_leaves=31, min_child_samples=20,
                                           subsample=0.8, subsample_freq=1,
                                           colsample_bytree=0.8, random_state=42,
                                           num_threads=threads, verbosity=-1)},
            freq="D", lags=[1, 2, 3, 7, 14, 21, 28],
            lag_transforms={1: [RollingMean(window_size=7), RollingMean(window_size=28)],
                            7: [RollingMean(window_size=4)]},
            date_features=["dayofweek", "day"], num_threads=1)
        mf.fit(df, prediction_intervals=PredictionIntervals(n_windows=2, h=horizon))
        fc = mf.predict(horizon, level=levels)
        out["mlf_lightgbm"] = to_forecast_frame(fc, "m", cutoff)
        seconds["mlf_lightgbm"] = time.perf_counter() - t0
    except Exception as exc:  # reported, not fatal
        flags.append(f"{cutoff.date()} mlf_lightgbm: {type(exc).__name__}: {exc}"[:300])
    return out, seconds, flags


# ------------------------------------------------------------------------------ scoring
def common_rows(forecasts: pd.DataFrame, actuals: pd.DataFrame) -> pd.DataFrame:
    """(store_id, sku_id, target_date, cutoff) rows that every model forecast and that
    have an actual."""
    keys = ["store_id", "sku_id", "target_date", "cutoff"]
    act = actuals.rename(columns={"date": "target_date"})[keys].drop_duplicates()
    n_models = forecasts["model"].nunique()
    counts = forecasts.groupby(keys).size().rename("k").reset_index()
    both = counts.loc[counts["k"] == n_models, keys]
    return both.merge(act, on=keys, how="inner")


def score_all(forecasts: pd.DataFrame, actuals: pd.DataFrame, history: pd.DataFrame,
              costs: tuple[str, str] | None) -> pd.DataFrame:
    """``models.metrics.evaluate`` per model on the rows of ``common_rows`` (identical for
    every model), plus the mean pinball loss over the quantile levels a model has."""
    from models.metrics import evaluate

    keys = ["store_id", "sku_id", "target_date", "cutoff"]
    rows = common_rows(forecasts, actuals)
    fc = forecasts.merge(rows, on=keys, how="inner")
    act = actuals.rename(columns={"date": "target_date"}).merge(rows, on=keys).rename(
        columns={"target_date": "date"})
    act = act[["store_id", "sku_id", "date", "y", "cutoff"]]
    out = []
    for _model, part in fc.groupby("model", sort=False):
        part = part.dropna(axis=1, how="all")  # the oracle has a mean but no quantiles
        # one actual per (series, day): the cutoffs' target days never overlap
        res = evaluate(act.drop(columns="cutoff"), part.drop(columns=["cutoff"]), history,
                       by=["model"], costs=costs)
        out.append(res)
    table = pd.concat(out, ignore_index=True)
    pin = [c for c in table.columns if c.startswith("pinball_q")]
    table["pinball_mean"] = table[pin].mean(axis=1, skipna=False) if pin else np.nan
    return table


# ------------------------------------------------------------------------------ worlds
def _cfg(home: Path, profile: str, max_series: int):
    from jobs.config import Config

    with socket.socket() as sock:  # a free port: never touch another home's PostgreSQL
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return Config(home=home, spark_driver_memory="3g", spark_shuffle_partitions=4,
                  pg_port=port, model_profile=profile, max_series=max_series)


def _stop_spark() -> None:
    from pyspark.sql import SparkSession

    spark = SparkSession.getActiveSession()
    if spark is not None:
        spark.stop()


def _features(cfg) -> dt.date:
    """ingest every landing date, raw -> clean copy, one feature build, clusters."""
    from common import clean_from_raw

    from jobs import build_features, cluster, ingest
    from jobs.lake import list_dates

    dates = list_dates(cfg.landing, "sales")
    for day in dates:
        ingest.run(cfg, day)
    clean_from_raw(cfg, dates)
    build_features.run(cfg, start=dates[0], end=dates[-1])
    _stop_spark()
    cluster.run(cfg, dates[-1])
    return dates[-1]


def _inputs(cfg, run_date: dt.date, ens):
    """What ``replenish run train`` gives the backtest: rows, calendar, costs, oracle."""
    from jobs.lake import list_dates, read_range, read_snapshot
    from jobs.train import load_feature_rows
    from models.objective import unit_costs

    span = ens.train_days + ens.horizon * (ens.n_cutoffs + ens.validation_origins)
    start = run_date - dt.timedelta(days=span - 1)
    rows = load_feature_rows(cfg, start, run_date, ens.max_series, ens.seed)
    skus = read_snapshot(cfg.lake / "clean", "skus", run_date).to_pandas()
    costs = unit_costs(skus, ens.holding_rate_per_day).reset_index(drop=True)
    try:
        calendar = read_range(cfg.lake / "clean", "calendar", start,
                              run_date + dt.timedelta(days=60),
                              columns=["region", "festival"]).to_pandas()
    except FileNotFoundError:
        calendar = None
    oracle = None
    truth = [d for d in list_dates(cfg.truth, "demand") if start <= d <= run_date]
    if truth:
        oracle = read_range(cfg.truth, "demand", truth[0], truth[-1],
                            columns=["store_id", "sku_id", "expected_demand"]).to_pandas()
    return rows, calendar, costs, oracle


@dataclass
class Part:
    name: str
    tag: str = ""  # prefix of its checks in the run_all summary
    describe: str = ""
    table: pd.DataFrame | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    wall: dict[str, float] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    verdicts: list[tuple[str, str, str, str]] = field(default_factory=list)
    cutoffs: str = ""
    n_series: int = 0
    backtest_rows: int = 0
    plots: list[Path] = field(default_factory=list)


def run_part(part: Part, cfg, run_date: dt.date, ens, threads: int, lgb_rounds: int) -> None:
    from models.backtest import ENSEMBLE, ORACLE, backtest, date_window
    from models.ensemble_model import training_frame

    rows, calendar, costs, oracle = _inputs(cfg, run_date, ens)
    t0 = time.perf_counter()
    result = backtest(rows, ens, calendar, costs, oracle, progress=_say)
    part.wall["replenish backtest (all members, baselines, 4 origins)"] = (
        time.perf_counter() - t0)
    part.flags += list(result.flags)
    part.n_series = result.n_series
    part.backtest_rows = int(result.overall.loc[result.overall["model"] == ENSEMBLE,
                                                "n"].iloc[0])
    fit = result.fit_seconds.groupby("model")["seconds"].mean().to_dict()
    part.seconds.update(fit)
    part.seconds[ENSEMBLE] = sum(fit.get(m, 0.0) for m in ens.members)
    part.cutoffs = ", ".join(str(c.date()) for c in result.eval_cutoffs)
    keys = rows[["store_id", "sku_id"]].drop_duplicates().reset_index(drop=True)

    peer_fc, peer_s = [], {p: [] for p in PEERS}
    t0 = time.perf_counter()
    for cut in result.eval_cutoffs:
        train = training_frame(date_window(rows, cut - pd.Timedelta(days=ens.train_days), cut))
        start = cut - pd.Timedelta(days=ens.train_days - 1)
        df = complete_series(train, start, cut, keys)
        _say(f"{part.name}: peers at origin {cut.date()} ({df['unique_id'].nunique():,} "
             f"series x {df['ds'].nunique()} days)")
        fcs, secs, flags = peer_forecasts(df, ens.horizon, cut, threads, lgb_rounds)
        part.flags += flags
        for name, fc in fcs.items():
            peer_fc.append(fc.assign(model=name, cutoff=cut))
            peer_s[name].append(secs[name])
    part.wall[f"peers ({len(PEERS)} models, {len(result.eval_cutoffs)} origins)"] = (
        time.perf_counter() - t0)
    part.seconds.update({p: float(np.mean(s)) for p, s in peer_s.items() if s})

    ours = result.forecasts[[c for c in result.forecasts.columns
                             if c not in ("segment", "under_cost", "over_cost")]]
    allfc = pd.concat([ours, *peer_fc], ignore_index=True)
    allfc = allfc.merge(costs[["sku_id", "under_cost", "over_cost"]], on="sku_id", how="left")
    actuals = pd.concat([
        result.actuals.loc[(result.actuals["date"] > c)
                           & (result.actuals["date"] <= c + pd.Timedelta(days=ens.horizon))]
        .assign(cutoff=c) for c in result.eval_cutoffs], ignore_index=True)
    history = training_frame(date_window(rows, result.eval_cutoffs[0] - pd.Timedelta(
        days=ens.train_days), result.eval_cutoffs[0]))[["store_id", "sku_id", "date", "y"]]
    part.table = score_all(allfc, actuals, history, ("under_cost", "over_cost"))
    _verdicts(part, with_oracle=ORACLE in set(part.table["model"]))


# ------------------------------------------------------------------------------ report
def _value(table: pd.DataFrame, model: str, metric: str) -> float:
    row = table.loc[table["model"] == model, metric]
    return float(row.iloc[0]) if len(row) else float("nan")


def _verdicts(part: Part, with_oracle: bool) -> None:
    t = part.table
    assert t is not None
    peers = [p for p in PEERS if p in set(t["model"])]
    if not peers:
        part.verdicts.append((f"{part.tag}: ensemble vs peers", "no peer ran", "-", "MISS"))
        return
    tag = f"{part.tag}: " if part.tag else ""
    ens_w = _value(t, "ensemble", "wape")
    best = min(peers, key=lambda p: _value(t, p, "wape"))
    bw = _value(t, best, "wape")
    part.verdicts.append((f"{tag}ensemble WAPE <= best peer ({best})",
                          f"{ens_w:.1%} vs {bw:.1%}", "<=", verdict(ens_w <= bw,
                                                                      ens_w / bw - 1, "over")))
    ens_p = _value(t, "ensemble", "pinball_mean")
    bestp = min(peers, key=lambda p: _value(t, p, "pinball_mean"))
    bp = _value(t, bestp, "pinball_mean")
    part.verdicts.append((f"{tag}ensemble mean pinball <= best peer ({bestp})",
                          f"{ens_p:.3f} vs {bp:.3f}", "<=",
                          verdict(ens_p <= bp, ens_p / bp - 1, "over")))
    ens_r = _value(t, "ensemble", "rmsse")
    bestr = min(peers, key=lambda p: _value(t, p, "rmsse"))
    br = _value(t, bestr, "rmsse")
    part.verdicts.append((f"{tag}ensemble RMSSE <= best peer ({bestr})", f"{ens_r:.3f} vs {br:.3f}",
                          "<=", verdict(ens_r <= br, ens_r / br - 1, "over")))
    if with_oracle:
        ora = _value(t, "oracle", "wape")
        part.verdicts.append((f"{tag}best peer WAPE vs oracle (information)",
                              f"{bw:.1%} vs {ora:.1%} = {bw / ora:.2f}x", "-", "-"))


def _fmt(v: object, kind: str) -> str:
    try:
        x = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "-"
    if not math.isfinite(x):
        return "-"
    if kind in ("wape",) or kind.startswith("coverage"):
        return f"{x:.1%}"
    if kind == "bias":
        return f"{x:+.1%}"
    if kind == "business_cost":
        return f"{x:,.0f}"
    if kind == "s":
        return f"{x:,.2f}"
    return f"{x:.3f}"


def _order(models: list[str]) -> list[str]:
    from models.ensemble_model import MEMBERS

    first = [m for m in ("oracle", "ensemble", *MEMBERS, *PEERS, "seasonal_naive",
                         "moving_average") if m in models]
    return first + [m for m in models if m not in first]


def _kind(model: str) -> str:
    if model == "oracle":
        return "truth"
    if model in PEERS:
        return "peer"
    if model in ("seasonal_naive", "moving_average"):
        return "replenish baseline"
    return "replenish"


def results_table(part: Part) -> list[str]:
    t = part.table
    assert t is not None
    header = ["model", "kind", "rows", *[lbl for _, lbl in METRICS], "business cost",
              "fit+forecast s/origin"]
    rows = []
    for m in _order(list(t["model"])):
        r = t.loc[t["model"] == m].iloc[0]
        name = PEER_LABEL.get(m, m)
        name = f"**{name}**" if m == "ensemble" else name
        rows.append([name, _kind(m), f"{int(r['n']):,}",
                     *[_fmt(r.get(k), k) for k, _ in METRICS],
                     _fmt(r.get("business_cost"), "business_cost"),
                     _fmt(part.seconds.get(m), "s")])
    return md_table(header, rows, ":---|:---" + "|---:" * (len(header) - 2))


def _plot(part: Part, folder: Path | None, slug: str) -> None:
    if folder is None or part.table is None:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = part.table
    order = _order(list(t["model"]))
    labels = [PEER_LABEL.get(m, m).replace("statsforecast ", "sf ").replace(
        "mlforecast ", "mlf ") for m in order]
    colors = ["tab:green" if m == "oracle" else "tab:red" if m == "ensemble" else
              "tab:orange" if m in PEERS else "tab:gray" if "naive" in m or "moving" in m
              else "tab:blue" for m in order]
    folder.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), dpi=80)
    for ax, (metric, label) in zip(axes, (("wape", "WAPE"), ("pinball_mean", "mean pinball")),
                                   strict=True):
        ax.bar(labels, [_value(t, m, metric) for m in order], color=colors)
        ax.set_title(f"{part.name.replace('`', '')}: {label}", fontsize=9)
        ax.tick_params(axis="x", labelrotation=60, labelsize=7)
    fig.tight_layout()
    path = folder / f"peers_{slug}.png"
    fig.savefig(path)
    plt.close(fig)
    part.plots.append(path)


def _part_text(part: Part) -> list[str]:
    lines = [f"### {part.name}", "", part.describe, "",
             f"Backtest: {part.n_series:,} series; evaluation origins {part.cutoffs}, 7 days "
             f"each. Every model is scored on the same {int(part.table['n'].iloc[0]):,} rows "
             f"(the project's own backtest scored {part.backtest_rows:,} for the ensemble).",
             ""] if part.table is not None else [f"### {part.name}", "", part.describe, ""]
    if part.table is not None:
        lines += results_table(part) + [""]
        lines += [f"![{p.stem}](plots/{p.name})" for p in part.plots] + [""]
    if part.wall:
        lines += ["Wall time: " + "; ".join(f"{k} {v:,.0f} s" for k, v in part.wall.items())
                  + ".", ""]
    if part.verdicts:
        lines += md_table(["check", "measured", "target", "verdict"],
                          [list(v) for v in part.verdicts], ":---|---:|---:|:---") + [""]
    if part.flags:
        lines += ["Flags raised:", ""] + [f"- {f}" for f in part.flags] + [""]
    return lines


# ------------------------------------------------------------------------------ main
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench/bench_peers.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="a few minutes: tiny 150 days and a store-item subset (stores 1-2, "
                   "items 1-10, 150 days), the quick profile")
    p.add_argument("--parts", default="generated,store-item",
                   help="comma-separated parts (default generated,store-item)")
    p.add_argument("--scenario", default="small", choices=["tiny", "small", "medium"],
                   help="generated world (default small, 365 days)")
    p.add_argument("--days", type=int, default=365, help="days generated (default 365)")
    p.add_argument("--series", type=int, default=1000,
                   help="series sampled from the generated world (default 1000 of small's "
                   "2,000: the full-profile XGBoost backtest is the longest step)")
    p.add_argument("--profile", default="full", choices=["full", "quick"],
                   help="profile of the project's ensemble (default full)")
    p.add_argument("--si-days", type=int, default=200,
                   help="store-item: last days of train.csv (default 200)")
    p.add_argument("--si-stores", default="1,2", help="store-item stores (default 1,2)")
    p.add_argument("--si-items", default="all", help="store-item items (default all 50)")
    p.add_argument("--lgb-rounds", type=int, default=300,
                   help="LightGBM boosting rounds (default 300)")
    p.add_argument("--threads", type=int, default=2, help="threads for the peers (default 2)")
    p.add_argument("--keep", action="store_true", help="keep the temporary homes")
    p.add_argument("--out", default=str(RESULTS),
                   help="RESULTS.md to update ('-' to only print); default bench/RESULTS.md")
    return p


def _ids(text: str) -> list[int] | None:
    return None if text == "all" else [int(x) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        import lightgbm  # noqa: F401
        import mlforecast  # noqa: F401
        import statsforecast  # noqa: F401
    except ImportError as exc:
        print(f"bench_peers: the peers are not installed ({exc}); run "
              "`.venv/bin/pip install -c constraints.txt -e '.[bench]'` (or `make bench`)",
              file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still delete the temp homes
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    for name in ("cmdstanpy", "prophet", "py4j", "mlflow", "alembic", "lightgbm"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from jobs.train import ensemble_config

    quick = args.quick
    profile = "quick" if quick else args.profile
    wanted = set(args.parts.split(","))
    temps: list[Path] = []
    parts: list[Part] = []
    plots = None if args.out == "-" else Path(args.out).parent / "plots"
    started = time.perf_counter()
    load = LoadSampler().start()

    def home(tag: str) -> Path:
        path = Path(tempfile.mkdtemp(prefix=f"bench-peers-{tag}-"))
        temps.append(path)
        return path

    try:
        if "generated" in wanted:
            from jobs import generate

            scenario, days = ("tiny", 150) if quick else (args.scenario, args.days)
            series = 5000 if quick else args.series
            part = Part(f"Generated `{scenario}`, {days} days", tag=f"{scenario}")
            cfg = _cfg(home(scenario), profile, series)
            generate.run(cfg, scenario, dt.date(2024, 1, 1), days, seed=42, progress=False)
            last = _features(cfg)
            ens = ensemble_config(cfg)
            part.describe = (
                f"`replenish generate --scenario {scenario} --days {days} --seed 42` from "
                f"2024-01-01, features and clusters as in `bench_models.py`; backtest on "
                f"{last} with the `{profile}` profile (train_days {ens.train_days}, "
                f"n_cutoffs {ens.n_cutoffs}, a seeded sample of at most {ens.max_series:,} "
                "series). The oracle is the generator's expected demand.")
            _say(f"{part.name}: backtest and peers")
            run_part(part, cfg, last, ens, args.threads, args.lgb_rounds)
            _plot(part, plots, "quick" if quick else scenario)
            parts.append(part)

        if "store-item" in wanted:
            from jobs import importer

            days, stores, items = ((150, [1, 2], list(range(1, 11))) if quick else
                                   (args.si_days, _ids(args.si_stores), _ids(args.si_items)))
            part = Part("Store Item Demand (public data)", tag="store-item")
            cfg = _cfg(home("store-item"), profile, 5000)
            end = dt.date(2017, 12, 31)
            importer.run(cfg, STORE_ITEM_ZIP, start=end - dt.timedelta(days=days - 1), end=end,
                         stores=stores, items=items, progress=False)
            last = _features(cfg)
            ens = dataclasses.replace(ensemble_config(cfg), n_cutoffs=4)
            sel = (f"stores {'all' if stores is None else ','.join(map(str, stores))}, "
                   f"items {'all' if items is None else f'{min(items)}-{max(items)}'}")
            part.describe = (
                f"`replenish import store-item` of the last {days} days of `train.csv` (to "
                f"{last}), {sel}; backtest on {last} with the `{profile}` profile and "
                "n_cutoffs = 4, as in `bench_models.py`. No oracle.")
            _say(f"{part.name}: backtest and peers")
            run_part(part, cfg, last, ens, args.threads, args.lgb_rounds)
            _plot(part, plots, "store_item_quick" if quick else "store_item")
            parts.append(part)
    finally:
        load.stop()
        try:
            _stop_spark()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass
        if not args.keep:
            for path in temps:
                shutil.rmtree(path, ignore_errors=True)
        else:
            _say("kept: " + ", ".join(map(str, temps)))

    info = machine()
    total = time.perf_counter() - started
    text = [SECTION, "", f"Command: `{command()}` (from the repository root)", "",
            machine_line(info), "",
            f"Total wall time {total / 60:.1f} min; {load.describe(info['nproc'])}", "",
            "Peers: statsforecast 2.x `AutoETS(season_length=7)`, `SeasonalNaive(7)`, "
            "`CrostonOptimized` (conformal intervals); mlforecast `LightGBM` "
            f"({args.lgb_rounds} rounds, lags 1-3/7/14/21/28, rolling means, weekday; "
            "conformal intervals). They see the demand history only. q50 = their point "
            "forecast, q80/q90/q95/q99 = the upper ends of their 60/80/90/98% intervals. "
            "Metrics: `models.metrics.evaluate` (WAPE, RMSSE with the weekly seasonal-naive "
            "scale, pinball per quantile and their mean over q50..q99, one-sided coverage "
            "of q80 and q95, business cost) on the rows every model forecast.", ""]
    for part in parts:
        text += _part_text(part)
    out = "\n".join(text)
    print(out)
    if args.out != "-":
        update_results(Path(args.out), out)
    return 0 if parts else 1


if __name__ == "__main__":
    sys.exit(main())
