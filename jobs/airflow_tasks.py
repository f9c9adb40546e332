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

Params (DAG-level, editable when triggering), applied by :func:`apply_params`: ``scenario``
(when set, the generated world under ``$REPLENISH_HOME`` must be that scenario), ``stores``
(comma-separated store ids; empty = all; ``score`` and ``plan`` then re-run only those stores
and keep the other stores' rows of the date), ``force_retrain`` (the train task trains even
when no retraining is due).
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


def apply_params(cfg: Any, params: dict[str, Any]) -> Any:
    """The configuration a DAG run's params ask for: ``stores`` (comma-separated ids; score
    and plan re-run only those stores) and ``scenario`` (when set, the generated world under
    ``$REPLENISH_HOME`` must be that scenario, so a trigger against the wrong environment
    fails before it writes anything)."""
    import json

    from jobs.config import parse_stores

    stores = params.get("stores") or ""
    if stores:
        cfg = cfg.replace(stores=parse_stores(stores))
    scenario = str(params.get("scenario") or "").strip()
    if scenario:
        manifest = cfg.home / "world.json"
        if not manifest.is_file():
            raise ValueError(f"param scenario={scenario!r}, but {cfg.home} holds no generated "
                             "world (no world.json); leave scenario empty for real data")
        have = json.loads(manifest.read_text()).get("scenario")
        if have != scenario:
            raise ValueError(f"param scenario={scenario!r}, but the world under {cfg.home} is "
                             f"{have!r} (world.json); check REPLENISH_HOME")
    return cfg


def run(step: str, context: dict[str, Any], offset_days: int = -1, **kwargs: Any) -> str:
    """Run ``step`` for the context's business date; returns the step's summary text."""
    from jobs.config import load_config
    from jobs.steps import STEPS

    params = context.get("params") or {}
    cfg = apply_params(load_config(), params)
    day = business_date(context, offset_days)
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

    cfg = apply_params(load_config(), {"scenario": (context.get("params") or {}).get("scenario")})
    day, hour = intraday_slot(context)
    func = {"snapshot": intraday.snapshot, "rescore": intraday.rescore,
            "topup": intraday.topup, "audit": intraday.audit,
            "publish": intraday.publish}[phase]
    result = func(cfg, day, hour)
    text = result.summary() if hasattr(result, "summary") else str(result)
    log.info("%s", text)
    return text
