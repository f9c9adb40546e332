"""``replenish run monitor --date D``: forecast accuracy against the backtest, and data drift.

Two checks, stored in ``lake/monitoring/date=D`` (one row per check) and, when the warehouse
is reachable, in its table ``replenish.monitoring``:

* **accuracy**: the rolling WAPE of the forecasts of the last ``WINDOW_DAYS`` store days:
  every ``lake/forecasts`` row whose target day lies in [D - 6, D], against the corrected
  demand of ``lake/demand_daily`` (rows with unknown demand are left out), all horizons.
  The baseline is the ensemble's backtest WAPE of the champion's training run
  (``lake/backtest_metrics``, the latest partition on or before D). Rolling WAPE worse than
  ``WAPE_TOLERANCE`` x the baseline raises the flag, and ``retrain`` tells the next night's
  ``train_if_due`` to retrain.
* **drift**: the population stability index (PSI) of key features between the store day D
  and a reference window (the 28 days before the champion's training date, else the 28 days
  before D): ten bins on the reference's deciles, ``PSI = sum (p - q) ln(p / q)`` with empty
  bins floored at 1e-4. PSI above ``PSI_ALERT`` (0.25, the usual "major shift") flags the
  feature; two or more flagged features ask for a retrain.

With too little data (no forecasts whose targets have actuals yet, no backtest) a check is
recorded as ``skipped`` with the reason, never as a pass.
"""
from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from jobs.config import Config
from jobs.lake import list_dates, read_partition, write_partition

__all__ = ["run", "MonitorResult", "psi", "WINDOW_DAYS", "WAPE_TOLERANCE", "PSI_ALERT",
           "DRIFT_FEATURES"]

log = logging.getLogger(__name__)

WINDOW_DAYS = 7
WAPE_TOLERANCE = 1.1
PSI_ALERT = 0.25
REFERENCE_DAYS = 28
DRIFT_FEATURES = ("lag_1", "roll_mean_7", "roll_mean_30", "roll_std_7", "zero_sale_share_30",
                  "discount_pct", "price_ratio", "evening_share_30")
_COLUMNS = ["run_date", "check", "metric", "value", "baseline", "threshold", "status",
            "retrain", "detail"]


@dataclass(frozen=True)
class MonitorResult:
    run_date: dt.date
    rows: pd.DataFrame
    retrain: bool

    def summary(self) -> str:
        lines = [f"monitor {self.run_date}: "
                 + ("RETRAIN requested for the next night" if self.retrain else "no retrain")]
        for r in self.rows.itertuples():
            value = "-" if not math.isfinite(r.value) else f"{r.value:.4f}"
            lines.append(f"  {r.check:<9} {r.metric:<22} {value:>9}  {r.status}  {r.detail}")
        return "\n".join(lines)


def psi(reference: np.ndarray, current: np.ndarray, bins: int = 10,
        floor: float = 1e-4) -> float:
    """Population stability index of ``current`` against ``reference`` (NaN dropped), on the
    reference's quantile bins; NaN when either side is empty."""
    ref = np.asarray(reference, dtype="float64")
    cur = np.asarray(current, dtype="float64")
    ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
    if len(ref) == 0 or len(cur) == 0:
        return float("nan")
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
    p = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=len(edges) + 1)
    q = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=len(edges) + 1)
    p = np.maximum(p / p.sum(), floor)
    q = np.maximum(q / q.sum(), floor)
    return float(np.sum((q - p) * np.log(q / p)))


def _frame(table: str, cfg: Config, days: list[dt.date], columns: list[str]) -> pd.DataFrame:
    parts = []
    for day in days:
        t = read_partition(cfg.lake, table, day, columns=columns).to_pandas()
        t["date"] = day
        parts.append(t)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


def _accuracy(cfg: Config, run_date: dt.date) -> dict[str, object]:
    lo = run_date - dt.timedelta(days=WINDOW_DAYS - 1)
    runs = [d for d in list_dates(cfg.lake, "forecasts")
            if lo - dt.timedelta(days=7) <= d < run_date]
    actual_days = [d for d in list_dates(cfg.lake, "demand_daily") if lo <= d <= run_date]
    row: dict[str, object] = {"check": "accuracy", "metric": "rolling_wape_7d",
                              "threshold": WAPE_TOLERANCE}
    if not runs or not actual_days:
        return {**row, "value": math.nan, "baseline": math.nan, "status": "skipped",
                "retrain": False, "detail": "no forecasts with known actuals in the window yet"}
    parts = []
    for day in runs:
        f = read_partition(cfg.lake, "forecasts", day,
                           columns=["store_id", "sku_id", "target_date", "mean"]).to_pandas()
        parts.append(f)
    fc = pd.concat(parts, ignore_index=True)
    fc["target_date"] = pd.to_datetime(fc["target_date"]).dt.date
    fc = fc.loc[(fc["target_date"] >= lo) & (fc["target_date"] <= run_date)]
    act = _frame("demand_daily", cfg, actual_days, ["store_id", "sku_id", "demand"])
    both = fc.merge(act.rename(columns={"date": "target_date"}),
                    on=["store_id", "sku_id", "target_date"]).dropna(subset=["demand"])
    if both.empty or both["demand"].sum() <= 0:
        return {**row, "value": math.nan, "baseline": math.nan, "status": "skipped",
                "retrain": False, "detail": "no forecast row has a known actual yet"}
    wape = float(np.abs(both["mean"] - both["demand"]).sum() / both["demand"].sum())
    base_days = [d for d in list_dates(cfg.lake, "backtest_metrics") if d <= run_date]
    if not base_days:
        return {**row, "value": wape, "baseline": math.nan, "status": "skipped",
                "retrain": False, "detail": "no backtest to compare with (train first)"}
    bt = read_partition(cfg.lake, "backtest_metrics", base_days[-1]).to_pandas()
    base = bt.loc[(bt["grouping"] == "overall") & (bt["model"] == "ensemble"), "wape"]
    if base.empty or not math.isfinite(float(base.iloc[0])):
        return {**row, "value": wape, "baseline": math.nan, "status": "skipped",
                "retrain": False, "detail": f"backtest of {base_days[-1]} has no ensemble WAPE"}
    baseline = float(base.iloc[0])
    worse = wape > WAPE_TOLERANCE * baseline
    return {**row, "value": wape, "baseline": baseline,
            "status": "flag" if worse else "ok", "retrain": bool(worse),
            "detail": (f"{len(both):,} forecast rows of runs {runs[0]}..{runs[-1]} vs backtest "
                       f"of {base_days[-1]} ({wape / baseline:.2f}x)")}


def _drift(cfg: Config, run_date: dt.date) -> list[dict[str, object]]:
    have = list_dates(cfg.lake, "features")
    if run_date not in have:
        raise FileNotFoundError(f"table 'features': partition date={run_date} does not exist; "
                                "run build_features first")
    anchor = run_date
    base_days = [d for d in list_dates(cfg.lake, "backtest_metrics") if d <= run_date]
    if base_days:
        anchor = base_days[-1]
    ref_days = [d for d in have if anchor - dt.timedelta(days=REFERENCE_DAYS) <= d < anchor]
    if anchor == run_date or len(ref_days) < 7:
        ref_days = [d for d in have
                    if run_date - dt.timedelta(days=REFERENCE_DAYS) <= d < run_date]
    cols = [c for c in DRIFT_FEATURES
            if c in read_partition(cfg.lake, "features", run_date).column_names]
    rows = []
    if len(ref_days) < 7:
        return [{"check": "drift", "metric": f"psi_{c}", "value": math.nan,
                 "baseline": math.nan, "threshold": PSI_ALERT, "status": "skipped",
                 "retrain": False, "detail": f"only {len(ref_days)} reference day(s)"}
                for c in cols]
    ref = _frame("features", cfg, ref_days, cols)
    cur = _frame("features", cfg, [run_date], cols)
    for c in cols:
        value = psi(ref[c].to_numpy(dtype="float64"), cur[c].to_numpy(dtype="float64"))
        rows.append({"check": "drift", "metric": f"psi_{c}", "value": value,
                     "baseline": math.nan, "threshold": PSI_ALERT,
                     "status": ("skipped" if not math.isfinite(value) else
                                "flag" if value > PSI_ALERT else "ok"),
                     "retrain": False,
                     "detail": f"{ref_days[0]}..{ref_days[-1]} vs {run_date}"})
    flagged = sum(r["status"] == "flag" for r in rows)
    if flagged >= 2:
        for r in rows:
            r["retrain"] = r["status"] == "flag"
    return rows


def run(cfg: Config, run_date: dt.date) -> MonitorResult:
    rows = [_accuracy(cfg, run_date), *_drift(cfg, run_date)]
    frame = pd.DataFrame(rows)
    frame.insert(0, "run_date", run_date)
    frame = frame[_COLUMNS]
    frame["value"] = frame["value"].astype("float64")
    frame["baseline"] = frame["baseline"].astype("float64")
    frame["threshold"] = frame["threshold"].astype("float64")
    table = pa.Table.from_pandas(frame, preserve_index=False)
    write_partition(cfg.lake, "monitoring", run_date, table, schema=table.schema)
    _to_warehouse(cfg, frame)
    retrain = bool(frame["retrain"].any())
    return MonitorResult(run_date, frame, retrain)


def _to_warehouse(cfg: Config, frame: pd.DataFrame) -> None:
    """Replace the date's rows in replenish.monitoring (skipped with a warning when the
    warehouse is down: the lake partition is the record)."""
    from jobs import warehouse

    rows = [(r.run_date, r.check, r.metric, _num(r.value), _num(r.baseline), _num(r.threshold),
             r.status, bool(r.retrain), r.detail) for r in frame.itertuples(index=False)]
    try:
        warehouse.migrate(cfg)
        warehouse.replace_rows(cfg, "monitoring", [("run_date = %s", (frame["run_date"].iloc[0],))],
                               ("run_date", "check_name", "metric", "value", "baseline",
                                "threshold", "status", "retrain", "detail"), rows)
    except Exception as exc:  # the lake holds the result; the warehouse copy is a convenience
        log.warning("monitor: warehouse unreachable (%s); rows kept in lake/monitoring only",
                    exc)


def _num(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None
