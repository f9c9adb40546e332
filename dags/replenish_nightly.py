"""replenish_nightly: the nightly run, 02:00 Asia/Kolkata, for the store day that just closed.

Each task is one call into ``jobs`` (``jobs.airflow_tasks.run``); nothing heavy is imported
at module level, so the scheduler parses this file in milliseconds.
"""
from __future__ import annotations

import datetime as dt
import os

import pendulum
from airflow.sdk import Param, dag, get_current_context, task

DOC = """
### replenish_nightly

The nightly pipeline for the store day that closed before the run (logical date in
Asia/Kolkata minus one day; `airflow dags test replenish_nightly 2025-05-01` runs the night of
2025-04-30):

ingest → validate_raw → build_features → validate_features → cluster → train (when due:
weekly, on a drift flag from monitoring, with no champion, or with `force_retrain`; the
backtest and the champion/challenger gate run inside it; otherwise the champion is reused) →
score → plan → audit → publish → report → monitor.

Every task is idempotent for its date, so a retry or a backfill (`airflow dags backfill
--start-date … --end-date …` over logical dates) re-runs cleanly. Retries: 2, exponential
backoff. One run at a time.

Params: `force_retrain` (train tonight whatever the schedule says), `stores` and `scenario`
(recorded for demos; the steps run on everything in the lake).
"""

DEFAULT_ARGS = {
    "owner": "replenish",
    # REPLENISH_DAG_RETRIES lets a test run fail fast; production keeps the default 2
    "retries": int(os.environ.get("REPLENISH_DAG_RETRIES", "2")),
    "retry_delay": dt.timedelta(minutes=2),
    "retry_exponential_backoff": True,
    "max_retry_delay": dt.timedelta(minutes=20),
}


def _run(step: str, **kwargs: object) -> str:
    from jobs.airflow_tasks import run

    return run(step, get_current_context(), **kwargs)


@dag(
    dag_id="replenish_nightly",
    schedule="0 2 * * *",
    start_date=pendulum.datetime(2025, 1, 1, tz="Asia/Kolkata"),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["replenish", "nightly"],
    doc_md=DOC,
    params={
        "force_retrain": Param(False, type="boolean",
                               description="train tonight even if the champion is recent"),
        "stores": Param("", type="string", description="comma-separated store ids: score "
                        "and plan re-run only these stores, keeping the others' rows of the "
                        "date (empty = all stores)"),
        "scenario": Param("", type="string", description="when set, the generated world "
                          "under REPLENISH_HOME must be this scenario (tiny, small, medium, "
                          "...); a guard against triggering on the wrong environment"),
    },
)
def replenish_nightly() -> None:
    @task
    def ingest() -> str:
        return _run("ingest")

    @task
    def validate_raw() -> str:
        return _run("validate_raw")

    @task
    def build_features() -> str:
        return _run("build_features")

    @task
    def validate_features() -> str:
        return _run("validate_features")

    @task
    def cluster() -> str:
        return _run("cluster")

    @task
    def train() -> str:
        params = get_current_context()["params"]
        return _run("train_if_due", force=bool(params.get("force_retrain")))

    @task
    def score() -> str:
        return _run("score")

    @task
    def plan() -> str:
        return _run("plan")

    @task
    def audit() -> str:
        return _run("audit")

    @task
    def publish() -> str:
        return _run("publish")

    @task
    def report() -> str:
        return _run("report")

    @task
    def monitor() -> str:
        return _run("monitor")

    (ingest() >> validate_raw() >> build_features() >> validate_features() >> cluster()
     >> train() >> score() >> plan() >> audit() >> publish() >> report() >> monitor())


replenish_nightly()
