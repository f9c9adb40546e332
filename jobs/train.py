"""``replenish run train --date D``: backtest, fit, register and gate the forecasting ensemble.

1. Reads the feature rows of the days the backtest and the final fit need (``train_days`` plus
   ``n_cutoffs + validation_origins`` weeks up to D) for a seeded sample of the pairs active on D
   (``max_series``), with the store clusters of D (``replenish run cluster``) joined.
2. Backtests (``models.backtest``): every member, the ensemble (weights learnt out of sample)
   and the baselines, per horizon and cluster; on generated data also the oracle (the true
   expected demand under ``truth/``).
3. Learns the final per-cluster weights on the backtest's forecasts and fits every member on
   the last ``train_days`` days up to D.
4. Logs to MLflow: a parent run per training (parameters, data window, tags with the Airflow
   DAG and run ids when called from a DAG) and a child run per model with its metrics;
   artifacts: the backtest tables, forecast-vs-actual plots of sample series, XGBoost feature
   importance, a calibration plot, the ensemble weights and the cluster plots. Registers the
   ensemble as one pyfunc model version.
5. The gate (``gate``): the new version becomes ``champion`` only if its business cost over
   the backtest origins the champion had not seen is lower than the champion's on the same
   rows; otherwise ``challenger``. The verdict is tagged on the version and returned.

The backtest's metrics also go to ``lake/backtest_metrics/date=D`` (for the monitoring of
issue 6 and the BI views).
"""
from __future__ import annotations

import datetime as dt
import logging
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from jobs.airflow_tasks import run_tags
from jobs.config import Config
from jobs.lake import (
    list_dates,
    read_partition,
    read_range,
    read_snapshot,
    write_partition,
)

__all__ = ["run", "run_if_due", "due", "Skipped", "TrainResult", "ensemble_config",
           "load_feature_rows", "gate", "MIN_HISTORY_DAYS", "RETRAIN_EVERY_DAYS",
           "champion_trained", "last_trained"]

log = logging.getLogger(__name__)

_PIP = ["xgboost-cpu==3.2.0", "torch==2.13.0", "prophet==1.5.0", "statsmodels==0.15.0",
        "pandas==2.3.3", "scikit-learn==1.9.1", "pyarrow==25.0.1"]


@dataclass(frozen=True)
class TrainResult:
    run_date: dt.date
    version: int
    alias: str
    gate: str
    overall: pd.DataFrame
    run_id: str
    seconds: float
    flags: tuple[str, ...] = field(default=())

    def summary(self) -> str:
        lines = [f"train {self.run_date}: version {self.version} -> @{self.alias} "
                 f"({self.gate}); MLflow run {self.run_id}; {self.seconds:.0f} s"]
        cols = [c for c in ("model", "wape", "wape_q50", "rmsse", "bias", "coverage_q80",
                            "coverage_q95", "business_cost") if c in self.overall.columns]
        lines.append(self.overall[cols].to_string(index=False, float_format="%.3f"))
        lines += [f"flag: {f}" for f in self.flags]
        return "\n".join(lines)


def ensemble_config(cfg: Config) -> Any:
    from models.ensemble_model import EnsembleConfig

    if cfg.model_profile == "quick":
        return EnsembleConfig.quick(max_series=min(cfg.max_series, 1500))
    return EnsembleConfig(max_series=cfg.max_series)


def _keys(a: pa.Table | pd.DataFrame) -> pa.Array:
    """One int64 per (store_id, sku_id), to filter partitions by a set of pairs."""
    if isinstance(a, pd.DataFrame):
        return pa.array(a["store_id"].astype("int64").to_numpy() * 10_000_000
                        + a["sku_id"].astype("int64").to_numpy())
    return pc.add(pc.multiply(a["store_id"].cast(pa.int64()), 10_000_000),
                  a["sku_id"].cast(pa.int64()))


def _only(pairs: pd.DataFrame) -> Callable[[pa.Table], pa.Table]:
    """A ``read_range`` filter keeping the rows of the (store_id, sku_id) ``pairs``."""
    wanted = _keys(pairs)
    return lambda t: t.filter(pc.is_in(_keys(t), value_set=wanted))


def load_feature_rows(cfg: Config, start: dt.date, end: dt.date, max_series: int,
                      seed: int) -> pd.DataFrame:
    """Feature rows in [start, end] of a seeded sample of the pairs active on ``end``, with the
    store ``cluster`` of ``end`` joined (0 when there are no clusters)."""
    from models.backtest import sample_series

    dates = [d for d in list_dates(cfg.lake, "features") if start <= d <= end]
    if not dates or dates[-1] != end:
        raise FileNotFoundError(f"table 'features': partition date={end} missing (have "
                                f"{len(dates)} partitions in {start}..{end}); run "
                                "build_features first")
    last = read_partition(cfg.lake, "features", end, columns=["store_id", "sku_id"])
    keys = sample_series(last.to_pandas(), max_series, seed)
    rows = read_range(cfg.lake, "features", dates[0], end, where=_only(keys)).to_pandas()
    rows["date"] = pd.to_datetime(rows["date"]).astype("datetime64[ns]")
    try:
        from jobs.cluster import read_clusters

        clusters = read_clusters(cfg, end).to_pandas()[["store_id", "cluster"]]
    except FileNotFoundError:
        log.warning("train: no store clusters on or before %s; every store in cluster 0", end)
        clusters = pd.DataFrame({"store_id": rows["store_id"].unique(), "cluster": 0})
    return rows.merge(clusters, on="store_id", how="left").fillna({"cluster": 0})


def _oracle(cfg: Config, start: dt.date, end: dt.date,
            pairs: pd.DataFrame) -> pd.DataFrame | None:
    """The generator's true demand distribution in [start, end] for the sampled ``pairs`` only
    (all of a blinkit world's pairs over the backtest span would be billions of values)."""
    dates = [d for d in list_dates(cfg.truth, "demand") if start <= d <= end]
    if not dates:
        return None
    t = read_range(cfg.truth, "demand", dates[0], dates[-1],
                   columns=["store_id", "sku_id", "expected_demand", "nb_dispersion"],
                   where=_only(pairs))
    return t.to_pandas()


def _costs(cfg: Config, day: dt.date, ens: Any) -> pd.DataFrame:
    from models.objective import unit_costs

    skus = read_snapshot(cfg.lake / "clean", "skus", day).to_pandas()
    return unit_costs(skus, ens.holding_rate_per_day).reset_index(drop=True)


def _calendar(cfg: Config, start: dt.date, end: dt.date) -> pd.DataFrame | None:
    try:
        return read_range(cfg.lake / "clean", "calendar", start, end,
                          columns=["region", "festival"]).to_pandas()
    except FileNotFoundError:
        return None


def gate(new_cost: float, champion_cost: float | None) -> tuple[bool, str]:
    """(promote?, reason): the new version must cost strictly less on the same rows."""
    if champion_cost is None:
        return True, "first version: no champion to beat"
    if not math.isfinite(new_cost):
        return False, "new version's business cost is undefined"
    if not math.isfinite(champion_cost):
        return True, "champion's business cost is undefined on this window"
    better = new_cost < champion_cost
    rel = (new_cost / champion_cost - 1.0) if champion_cost > 0 else 0.0
    return better, (f"business cost {new_cost:,.0f} vs champion {champion_cost:,.0f} "
                    f"({rel:+.1%}) on the same backtest rows")


def _champion_cost(cfg: Config, rows: pd.DataFrame, result: Any, costs: pd.DataFrame,
                   ens: Any) -> tuple[int | None, float | None, float, str]:
    """(champion version, its cost, the new ensemble's cost on the same rows, window)."""
    from models import registry
    from models.backtest import ENSEMBLE, complete_future, date_window
    from models.ensemble_model import training_frame
    from models.metrics import business_cost

    version = registry.champion_version(cfg.mlflow_uri)
    if version is None:
        new = result.forecasts.loc[result.forecasts["model"] == ENSEMBLE]
        return None, None, _cost(new, result.actuals, costs, business_cost), "all origins"
    champion = registry.load_version(cfg.mlflow_uri, version)
    cuts = [c for c in result.eval_cutoffs if c >= champion.cutoff] or result.eval_cutoffs[-1:]
    window = ", ".join(str(c.date()) for c in cuts)
    ours, theirs = [], []
    for cut in cuts:
        history = training_frame(date_window(rows, cut - pd.Timedelta(days=ens.train_days), cut))
        future = complete_future(date_window(rows, cut, cut + pd.Timedelta(days=ens.horizon)),
                           ens.horizon)
        fc, _, _ = champion.forecast(history, future, ens.horizon)
        theirs.append(fc)
        ours.append(result.forecasts.loc[(result.forecasts["model"] == ENSEMBLE)
                                         & (result.forecasts["cutoff"] == cut)])
    mine, other = pd.concat(ours), pd.concat(theirs)
    common = mine[["store_id", "sku_id", "target_date"]].merge(
        other[["store_id", "sku_id", "target_date"]])
    new_cost = _cost(mine.merge(common), result.actuals, costs, business_cost)
    old_cost = _cost(other.merge(common), result.actuals, costs, business_cost)
    return version, old_cost, new_cost, window


def _cost(fc: pd.DataFrame, actuals: pd.DataFrame, costs: pd.DataFrame, fn: Any) -> float:
    rows = fc[["store_id", "sku_id", "target_date", "mean"]].merge(
        actuals.rename(columns={"date": "target_date"})[["store_id", "sku_id", "target_date",
                                                        "y"]],
        on=["store_id", "sku_id", "target_date"]).merge(
        costs[["sku_id", "under_cost", "over_cost"]], on="sku_id")
    if rows.empty:
        return float("nan")
    return float(fn(rows["y"], rows["mean"], rows["under_cost"], rows["over_cost"]))


def run(cfg: Config, run_date: dt.date, *, ens: Any = None) -> TrainResult:
    """Backtest, fit, log, register and gate (see the module docstring)."""
    import mlflow

    from models import registry
    from models.backtest import ENSEMBLE, backtest
    from models.ensemble_model import (
        EnsembleModel,
        EnsemblePyfunc,
        join_input,
        learn_weights,
        make_members,
        training_frame,
    )
    from models.protocol import ModelConfig

    t0 = time.perf_counter()
    ens = ens or ensemble_config(cfg)
    span = ens.train_days + ens.horizon * (ens.n_cutoffs + ens.validation_origins)
    start = run_date - dt.timedelta(days=span - 1)
    rows = load_feature_rows(cfg, start, run_date, ens.max_series, ens.seed)
    costs = _costs(cfg, run_date, ens)
    calendar = _calendar(cfg, start, run_date + dt.timedelta(days=60))
    oracle = _oracle(cfg, start, run_date, rows[["store_id", "sku_id"]].drop_duplicates())
    log.info("train %s: %d feature rows of %d series, %s..%s", run_date, len(rows),
             rows[["store_id", "sku_id"]].drop_duplicates().shape[0], start, run_date)

    result = backtest(rows, ens, calendar, costs, oracle)
    members_bt = {m: result.forecasts.loc[result.forecasts["model"] == m,
                                          ["store_id", "sku_id", "target_date", "horizon",
                                           "mean", *_qcols(result.forecasts)]]
                  for m in ens.members if (result.forecasts["model"] == m).any()}
    segments = (rows.drop_duplicates(["store_id", "sku_id"], keep="last")
                [["store_id", "sku_id", "cluster"]].assign(
                    segment=lambda d: d["cluster"].astype(int).astype(str))
                [["store_id", "sku_id", "segment"]])
    weights = learn_weights(members_bt, result.actuals.drop(columns="segment"), segments, ens,
                            costs)

    cut = pd.Timestamp(run_date)
    train = training_frame(rows.loc[rows["date"] > cut - pd.Timedelta(days=ens.train_days)])
    members = make_members(ens, calendar, costs)
    fit_seconds: dict[str, float] = {}
    flags = list(result.flags)
    for name, member in list(members.items()):
        began = time.perf_counter()
        try:
            member.fit(train, ModelConfig(seed=ens.seed))
        except Exception as exc:  # a member that cannot fit is left out, flagged
            flags.append(f"final fit {name}: {type(exc).__name__}: {exc}"[:300])
            del members[name]
            continue
        fit_seconds[name] = round(time.perf_counter() - began, 1)
    if not members:
        raise RuntimeError("train: no member could be fitted: " + "; ".join(flags))
    clusters = rows[["store_id", "cluster"]].drop_duplicates("store_id")
    model = EnsembleModel(members=members, weights=weights, clusters=clusters, config=ens,
                          cutoff=cut, fit_seconds=fit_seconds, flags=flags)

    champion_version, champion_cost, new_cost, window = _champion_cost(cfg, rows, result,
                                                                       costs, ens)
    promote, reason = gate(new_cost, champion_cost)

    uri = cfg.mlflow_uri
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    exp = registry.experiment_id(uri, cfg.mlflow_experiment)
    tags = {"run_date": run_date.isoformat(), "step": "train",
            **run_tags()}
    folder = cfg.reports / "train" / run_date.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    _write_tables(folder, result, weights)
    _plots(folder, result, model, rows)
    overall = result.overall
    with mlflow.start_run(experiment_id=exp, run_name=f"train {run_date}", tags=tags) as parent:
        mlflow.log_metrics(_weight_metrics(weights))
        mlflow.log_params({**ens.params(), "data_start": start.isoformat(),
                           "data_end": run_date.isoformat(), "n_series": result.n_series,
                           "cutoffs": ",".join(str(c.date()) for c in result.eval_cutoffs)})
        for r in overall.itertuples():
            for metric in ("wape", "wape_q50", "rmsse", "mape", "bias", "coverage_q80",
                           "coverage_q95", "business_cost", "pinball_q50", "pinball_q95"):
                value = getattr(r, metric, float("nan"))
                if isinstance(value, float) and math.isfinite(value):
                    mlflow.log_metric(f"{metric}_{r.model}", value)
        for name in overall["model"]:
            with mlflow.start_run(experiment_id=exp, run_name=name, nested=True,
                                  tags={**tags, "model": name}):
                mine = overall.loc[overall["model"] == name].iloc[0]
                mlflow.log_metrics({k: float(v) for k, v in mine.items()
                                    if k != "model" and isinstance(v, int | float | np.number)
                                    and math.isfinite(float(v))})
                for r in result.by_horizon.loc[result.by_horizon["model"] == name].itertuples():
                    mlflow.log_metric("wape_by_horizon", float(r.wape), step=int(r.horizon))
                fit = result.fit_seconds
                if len(fit) and name in set(fit["model"]):
                    mlflow.log_metric("backtest_fit_seconds",
                                      float(fit.loc[fit["model"] == name, "seconds"].mean()))
                if name in fit_seconds:
                    mlflow.log_metric("final_fit_seconds", fit_seconds[name])
        mlflow.log_artifacts(str(folder), artifact_path="report")
        cluster_dir = cfg.reports / "clusters"
        if cluster_dir.is_dir():
            done = [p for p in sorted(cluster_dir.iterdir()) if p.name <= run_date.isoformat()]
            if done:
                mlflow.log_artifacts(str(done[-1]), artifact_path="clusters")
        with tempfile.TemporaryDirectory() as tmp:
            path = model.save(Path(tmp) / "ensemble.pkl")
            history = train.loc[train["date"] > cut - pd.Timedelta(days=14)].head(200)
            sample_in = join_input(history, rows.loc[rows["date"] == cut].head(50))
            signature = mlflow.models.infer_signature(
                sample_in, pd.DataFrame({"model": ["ensemble"], "store_id": [1],
                                         "sku_id": [1], "target_date": [cut],
                                         "horizon": [1], "mean": [1.0],
                                         **{q: [1.0] for q in _qcols(result.forecasts)},
                                         "flags": [""]}),
                params={"horizon": ens.horizon})
            info = mlflow.pyfunc.log_model(name="ensemble", python_model=EnsemblePyfunc(),
                                           artifacts={"ensemble": str(path)},
                                           signature=signature,
                                           registered_model_name=registry.REGISTERED_MODEL,
                                           pip_requirements=_PIP)
        version = int(info.registered_model_version)
        mlflow.set_tag("model_version", str(version))
        run_id = parent.info.run_id
    c = registry.client(uri)
    ens_row = overall.loc[overall["model"] == ENSEMBLE]
    vtags = {"run_date": run_date.isoformat(), "cutoff": str(cut.date()),
             "backtest_wape": _fmt(ens_row, "wape"),
             "backtest_business_cost": _fmt(ens_row, "business_cost"),
             "gate": ("champion: " if promote else "challenger: ") + reason,
             "gate_window": window}
    for k, v in vtags.items():
        c.set_model_version_tag(registry.REGISTERED_MODEL, str(version), k, v)
    if promote:
        registry.set_champion(uri, version, reason=reason)
        alias = registry.CHAMPION
    else:
        c.set_registered_model_alias(registry.REGISTERED_MODEL, registry.CHALLENGER,
                                     str(version))
        alias = registry.CHALLENGER
    _write_metrics(cfg, run_date, result)
    return TrainResult(run_date, version, alias, reason, overall, run_id,
                       round(time.perf_counter() - t0, 1), tuple(flags))


def _weight_metrics(weights: pd.DataFrame) -> dict[str, float]:
    """``weight_<column>_<model>`` of the all-rows segment (every segment's weights are in
    the ``weights.csv`` artifact)."""
    w = weights.loc[weights["segment"] == "*"]
    column = w["column"] if "column" in w.columns else pd.Series("mean", index=w.index)
    return {f"weight_{c}_{m}": float(v)
            for c, m, v in zip(column, w["model"], w["weight"], strict=True)}


def _fmt(row: pd.DataFrame, col: str) -> str:
    if row.empty or col not in row.columns:
        return "nan"
    return f"{float(row[col].iloc[0]):.6g}"


def _qcols(df: pd.DataFrame) -> list[str]:
    from models.metrics import quantile_levels

    return list(quantile_levels([str(c) for c in df.columns]))


def _write_tables(folder: Path, result: Any, weights: pd.DataFrame) -> None:
    result.overall.to_csv(folder / "backtest_overall.csv", index=False)
    result.by_horizon.to_csv(folder / "backtest_by_horizon.csv", index=False)
    result.by_segment.to_csv(folder / "backtest_by_cluster.csv", index=False)
    result.by_cutoff.to_csv(folder / "backtest_by_cutoff.csv", index=False)
    result.weights.to_csv(folder / "weights_by_origin.csv", index=False)
    weights.to_csv(folder / "weights.csv", index=False)
    cols = [c for c in ("model", "n", "wape", "wape_q50", "rmsse", "mape", "bias",
                        "coverage_q80", "coverage_q95", "business_cost")
            if c in result.overall.columns]
    (folder / "backtest.md").write_text(
        "# Backtest\n\nOrigins scored: " + ", ".join(str(c.date()) for c in result.eval_cutoffs)
        + f"; {result.n_series} series.\n\n" + result.overall[cols].to_markdown(
            index=False, floatfmt=".3f") + "\n")


def _write_metrics(cfg: Config, run_date: dt.date, result: Any) -> None:
    parts = []
    for grouping, frame in (("overall", result.overall), ("horizon", result.by_horizon),
                            ("cluster", result.by_segment), ("cutoff", result.by_cutoff)):
        f = frame.copy()
        f.insert(0, "grouping", grouping)
        for col in ("horizon", "segment", "cutoff"):
            if col in f.columns:
                f[col] = f[col].astype(str)
        parts.append(f)
    table = pa.Table.from_pandas(pd.concat(parts, ignore_index=True), preserve_index=False)
    write_partition(cfg.lake, "backtest_metrics", run_date, table, schema=table.schema)


def _plots(folder: Path, result: Any, model: Any, rows: pd.DataFrame) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from models.backtest import ENSEMBLE

    fc = result.forecasts
    last = result.eval_cutoffs[-1]
    ens = fc.loc[(fc["model"] == ENSEMBLE) & (fc["cutoff"] == last)]
    if len(ens):
        volume = ens.groupby(["store_id", "sku_id"])["mean"].sum().sort_values()
        picks = list(volume.index[np.linspace(0, len(volume) - 1, 6).astype(int)])
        fig, axes = plt.subplots(2, 3, figsize=(14, 7))
        for ax, (store, sku) in zip(axes.ravel(), picks, strict=False):
            hist = rows.loc[(rows["store_id"] == store) & (rows["sku_id"] == sku)
                            & (rows["date"] > last - pd.Timedelta(days=28))]
            ax.plot(hist["date"], hist["demand"], "k.-", lw=1, label="demand")
            f = ens.loc[(ens["store_id"] == store) & (ens["sku_id"] == sku)]
            ax.plot(f["target_date"], f["mean"], "b-", label="ensemble mean")
            if "q80" in f.columns:
                ax.fill_between(f["target_date"], f.get("q50", f["mean"]), f["q95"],
                                alpha=0.2, label="q50..q95")
            ax.set_title(f"store {store} sku {sku}", fontsize=9)
            ax.tick_params(axis="x", labelrotation=45, labelsize=7)
        axes.ravel()[0].legend(fontsize=7)
        fig.suptitle(f"Forecast vs actual, origin {last.date()}")
        fig.tight_layout()
        fig.savefig(folder / "forecast_vs_actual.png", dpi=90)
        plt.close(fig)
    levels = [c for c in result.overall.columns if c.startswith("coverage_q")]
    if levels:
        fig, ax = plt.subplots(figsize=(6, 5))
        nominal = [int(c.removeprefix("coverage_q")) / 100 for c in levels]
        for r in result.overall.itertuples():
            values = [getattr(r, c) for c in levels]
            if all(isinstance(v, float) and math.isfinite(v) for v in values):
                ax.plot(nominal, values, "o-", label=r.model)
        ax.plot([0.4, 1], [0.4, 1], "k--", lw=1, label="ideal")
        ax.set_xlabel("quantile level")
        ax.set_ylabel("share of actuals at or below it")
        ax.set_title("Calibration (backtest)")
        ax.legend(fontsize=7)
        fig.savefig(folder / "calibration.png", dpi=90, bbox_inches="tight")
        plt.close(fig)
    xgb = model.members.get("xgboost")
    if xgb is not None and hasattr(xgb, "importance_plot"):
        fig = xgb.importance_plot()
        fig.savefig(folder / "feature_importance.png", dpi=90, bbox_inches="tight")
        xgb.feature_importance().to_csv(folder / "feature_importance.csv", index=False)
    fig, ax = plt.subplots(figsize=(7, 4))
    weights = model.weights
    if "column" in weights.columns:  # one set per forecast column: plot the point forecast's
        weights = weights.loc[weights["column"] == "mean"]
    w = weights.pivot_table(index="segment", columns="model", values="weight")
    w.plot.bar(stacked=True, ax=ax)
    ax.set_ylabel("weight")
    ax.set_title("Ensemble weights of the mean per store cluster ('*' = all)")
    fig.savefig(folder / "weights.png", dpi=90, bbox_inches="tight")
    plt.close(fig)


#: Days of history the first backtest origin needs; ``train`` needs this plus the weeks of
#: the origins (4 x 7 by default: 56 days of features).
MIN_HISTORY_DAYS = 28
#: Retrain when the champion is this many days old.
RETRAIN_EVERY_DAYS = 7


@dataclass(frozen=True)
class Skipped:
    """``run_if_due`` decided not to train; why, and which champion stays."""

    run_date: dt.date
    reason: str
    champion: int | None

    def summary(self) -> str:
        keep = f"champion version {self.champion} stays" if self.champion else "no champion"
        return f"train {self.run_date}: skipped ({self.reason}); {keep}"


def champion_trained(cfg: Config) -> tuple[int | None, dt.date | None]:
    """The champion's version and the ``run_date`` it was trained on (its registry tag; an
    untagged version reads as trained on 1970-01-01); (None, None) without a champion."""
    from models import registry

    version = registry.champion_version(cfg.mlflow_uri)
    if version is None:
        return None, None
    tags = registry.client(cfg.mlflow_uri).get_model_version(
        registry.REGISTERED_MODEL, str(version)).tags or {}
    return version, dt.date.fromisoformat(tags.get("run_date", "1970-01-01"))


def last_trained(cfg: Config, run_date: dt.date) -> tuple[int | None, dt.date | None]:
    """The newest registered version trained on or before ``run_date`` (champion or not) and
    that date: the last time the nightly run trained, whatever its gate decided."""
    from models import registry

    table = registry.list_versions(cfg.mlflow_uri)
    dates = pd.to_datetime(table["run_date"], errors="coerce").dt.date
    table = table.assign(day=dates).loc[dates.notna() & (dates <= run_date)]
    if table.empty:
        return None, None
    row = table.sort_values(["day", "version"]).iloc[-1]
    return int(row["version"]), row["day"]


def due(cfg: Config, run_date: dt.date, force: bool = False) -> tuple[bool, str]:
    """Whether the nightly run should train: forced, no champion yet, a drift flag raised by
    monitoring after the last training, or the last training is a week old; and never
    without the days of features the backtest needs (``MIN_HISTORY_DAYS`` before the first
    of its weekly origins). The last training is the newest version trained on or before
    ``run_date``, champion or not: a version the gate kept as challenger waits its week like
    a promoted one (else a champion that keeps winning would be retrained every night)."""
    ens = ensemble_config(cfg)
    need = MIN_HISTORY_DAYS + ens.horizon * (ens.n_cutoffs + ens.validation_origins)
    have = [d for d in list_dates(cfg.lake, "features")
            if run_date - dt.timedelta(days=need + 60) <= d <= run_date]
    if len(have) < need:
        return False, (f"not enough history: {len(have)} day(s) of features up to {run_date}, "
                       f"need {need}")
    if force:
        return True, "forced (force_retrain)"
    version, trained = champion_trained(cfg)
    if version is None or trained is None:
        return True, "no champion yet"
    latest, when = last_trained(cfg, run_date)
    if latest is None or when is None or when < trained:
        latest, when = version, trained
    what = (f"champion version {version}" if latest == version else
            f"version {latest} (kept as challenger; champion version {version})")
    flags = [d for d in list_dates(cfg.lake, "monitoring") if when < d < run_date]
    for day in reversed(flags):
        table = read_partition(cfg.lake, "monitoring", day)
        if "retrain" in table.column_names and any(table.column("retrain").to_pylist()):
            return True, f"monitoring on {day} asked for a retrain"
    age = (run_date - when).days
    if age >= RETRAIN_EVERY_DAYS:
        return True, f"the last training, {what}, is {age} days old"
    return False, f"the last training, {what} on {when}, is {age} day(s) old"


def run_if_due(cfg: Config, run_date: dt.date, force: bool = False) -> TrainResult | Skipped:
    """What the nightly DAG runs: ``run`` when ``due``, else keep the champion."""
    from models import registry

    go, reason = due(cfg, run_date, force)
    if not go:
        log.info("train %s: skipped: %s", run_date, reason)
        return Skipped(run_date, reason, registry.champion_version(cfg.mlflow_uri))
    log.info("train %s: %s", run_date, reason)
    return run(cfg, run_date)
