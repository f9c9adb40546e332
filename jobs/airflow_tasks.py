"""What a DAG task does, kept out of the DAG files so they import nothing heavy.

A task calls ``run(step, context)``: it turns the Airflow context into the run's business
date and the project's ``Config``, runs the step through ``jobs.steps.run_step`` and returns a
short summary (stored as the task's XCom, shown in the UI and the logs).

Dates. The nightly DAG is scheduled at 02:00 Asia/Kolkata; the run triggered at 02:00 on day
T plans after the store day T-1 closed, so the business date is the logical date (in
Asia/Kolkata) minus one day: ``airflow dags test replenish_nightly 2025-05-01`` runs the night
of 2025-04-30. A backfill over logical dates therefore re-runs the matching store days, each
idempotent. The intraday DAG's business date is the logical date's own day, and its hour the
snapshot hour.

Params (DAG-level, editable when triggering): ``scenario`` (only used by demos to name the
world), ``stores`` (comma-separated store ids; empty = all; passed to the steps that can
restrict themselves), ``force_retrain``.
"""
from __future__ import annotations

import datetime as dt
import logging
from typing import Any

__all__ = ["business_date", "run", "intraday_slot", "run_intraday", "run_tags", "TZ"]

log = logging.getLogger(__name__)

TZ = "Asia/Kolkata"


#: Environment variables Airflow sets in a task -> the MLflow tag they become.
_AIRFLOW_TAGS = {"AIRFLOW_CTX_DAG_ID": "dag_id", "AIRFLOW_CTX_DAG_RUN_ID": "dag_run_id",
                 "AIRFLOW_CTX_TASK_ID": "task_id"}


def run_tags() -> dict[str, str]:
    """The Airflow ids of the running task (empty outside Airflow), for MLflow run tags."""
    import os

    return {tag: os.environ[var] for var, tag in _AIRFLOW_TAGS.items() if var in os.environ}


def business_date(context: dict[str, Any], offset_days: int = -1) -> dt.date:
    """The store day a run is about: the logical date in Asia/Kolkata plus ``offset_days``."""
    import pendulum

    logical = context.get("logical_date") or context.get("data_interval_end")
    if logical is None:
        raise ValueError("the Airflow context has no logical_date; trigger the DAG with one "
                         "(airflow dags trigger -l / dags test DAG DATE)")
    local = pendulum.instance(logical).in_timezone(TZ)
    return local.date() + dt.timedelta(days=offset_days)


def run(step: str, context: dict[str, Any], offset_days: int = -1, **kwargs: Any) -> str:
    """Run ``step`` for the context's business date; returns the step's summary text."""
    from jobs.config import load_config
    from jobs.steps import STEPS

    cfg = load_config()
    day = business_date(context, offset_days)
    params = context.get("params") or {}
    func = STEPS[step].load()
    log.info("replenish %s for %s (params %s)", step, day, dict(params))
    if STEPS[step].ranged:
        result = func(cfg, start=day, end=day, **kwargs)
    else:
        result = func(cfg, day, **kwargs)
    text = result.summary() if hasattr(result, "summary") else str(result)
    log.info("%s", text)
    return text


def intraday_slot(context: dict[str, Any]) -> tuple[dt.date, int]:
    """(store day, hour) of an intraday run: the logical date's own day and hour in
    Asia/Kolkata."""
    import pendulum

    logical = context.get("logical_date") or context.get("data_interval_end")
    if logical is None:
        raise ValueError("the Airflow context has no logical_date")
    local = pendulum.instance(logical).in_timezone(TZ)
    return local.date(), local.hour


def run_intraday(phase: str, context: dict[str, Any]) -> str:
    """One phase of the intraday run: ``snapshot``, ``rescore``, ``topup``, ``audit`` or
    ``publish`` (see :mod:`jobs.intraday`)."""
    from jobs import intraday
    from jobs.config import load_config

    cfg = load_config()
    day, hour = intraday_slot(context)
    func = {"snapshot": intraday.snapshot, "rescore": intraday.rescore,
            "topup": intraday.topup, "audit": intraday.audit,
            "publish": intraday.publish}[phase]
    result = func(cfg, day, hour)
    text = result.summary() if hasattr(result, "summary") else str(result)
    log.info("%s", text)
    return text
