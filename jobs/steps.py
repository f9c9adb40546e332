"""The pipeline steps a user (or a DAG task) runs by name, for one date or a range.

Each step is a ``run(cfg, run_date)`` function in its own ``jobs`` module. A range runs the
dates in order, except steps that take a whole range at once (``build_features``), which
do one Spark job for the range: that is how a backfill stays fast.
"""
from __future__ import annotations

import datetime as dt
import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jobs.config import Config

__all__ = ["STEPS", "Step", "run_step", "date_range"]


@dataclass(frozen=True)
class Step:
    name: str
    module: str
    function: str
    doc: str
    ranged: bool = False  # the function accepts (cfg, start=..., end=...)
    #: The function takes ``ahead`` (bring in / gate the promotions of the coming week). A
    #: range asks it of its last date only: every earlier date's coming week is in the range,
    #: and each date of it is done on its own.
    ahead: bool = False

    def load(self) -> Callable[..., Any]:
        return getattr(importlib.import_module(self.module), self.function)


STEPS: dict[str, Step] = {s.name: s for s in (
    Step("ingest", "jobs.ingest", "run",
         "bring the day's raw partitions from the landing area (or PostgreSQL) into lake/raw, "
         "and the promotions of the coming week that have arrived", ahead=True),
    Step("validate_raw", "jobs.validate", "run_raw",
         "Great Expectations gates on the raw partitions: clean rows to lake/clean, the rest "
         "to lake/quarantine, one data_quality row per rule in the warehouse; the promotions "
         "of the coming week too", ahead=True),
    Step("build_features", "jobs.build_features", "run",
         "demand_daily and the feature table for the date(s), reading a 30-day lookback",
         ranged=True),
    Step("validate_features", "jobs.validate", "run_features",
         "the feature table's suite: keys, row count, nulls only where history is short"),
    Step("cluster", "jobs.cluster", "run",
         "k-means++ store clusters (k by silhouette) from the last 8 weeks of demand"),
    Step("train", "jobs.train", "run",
         "backtest, fit and register the ensemble in MLflow; champion only if it beats the "
         "champion's business cost on the same backtest window"),
    Step("train_if_due", "jobs.train", "run_if_due",
         "what the nightly DAG runs: train when due (weekly, a drift flag, no champion), "
         "else keep the champion"),
    Step("score", "jobs.score", "run",
         "forecast every active pair for days 1-7 with the champion (fallbacks flagged)"),
    Step("plan", "jobs.plan", "run",
         "tonight's orders: one MILP per store (Spark applyInPandas), checked, with a greedy "
         "fallback; lake/plans (a line per active pair, explained) and lake/purchase_orders"),
    Step("audit", "jobs.publish", "audit",
         "stage D's plan, forecasts, purchase orders, actual demand and KPIs in the warehouse "
         "and audit them; publishes nothing"),
    Step("publish", "jobs.publish", "run",
         "write-audit-publish D into the warehouse in one transaction (re-stages and "
         "re-audits what it commits)"),
    Step("report", "jobs.report", "run",
         "the night's report (plan, forecast, KPIs, monitoring) as Markdown/HTML with plots, "
         "logged to MLflow"),
    Step("monitor", "jobs.monitor", "run",
         "rolling forecast WAPE vs the backtest (x1.1 -> retrain) and feature drift (PSI)"),
)}


def date_range(start: dt.date, end: dt.date) -> list[dt.date]:
    if end < start:
        raise ValueError(f"--to {end} is before --from {start}")
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def run_step(cfg: Config, name: str, start: dt.date, end: dt.date | None = None,
             progress: bool = True) -> list[Any]:
    """Run step ``name`` for ``start..end`` (inclusive); returns each call's result."""
    if name not in STEPS:
        raise ValueError(f"unknown step {name!r}; steps are {', '.join(STEPS)}")
    step = STEPS[name]
    end = end or start
    func = step.load()
    if step.ranged:
        return [func(cfg, start=start, end=end)]
    days = date_range(start, end)
    from tqdm import tqdm

    results = []
    for day in tqdm(days, desc=name, unit="day", disable=not progress or len(days) == 1,
                    file=sys.stderr):
        extra = {"ahead": day == days[-1]} if step.ahead else {}
        results.append(func(cfg, day, **extra))
    return results
