"""replenish_intraday: top-up orders every two hours, 08:00-22:00 Asia/Kolkata.

Each task is one call into ``jobs`` (``jobs.airflow_tasks.run_intraday``); nothing heavy is
imported at module level.
"""
from __future__ import annotations

import datetime as dt
import os

import pendulum
from airflow.sdk import Param, dag, get_current_context, task

DOC = """
### replenish_intraday

Every two hours from 08:00 to 22:00 (Asia/Kolkata), for the store day of the logical date and
the sales before its hour:

snapshot (the day's sales so far, validated: rows in = accepted + rejected) → rescore (the
nightly forecast for today is re-scored with today's sales and the intraday profile, ~62% of
units in 18-22h; stock now = last night's close + this morning's deliveries − sold) → topup
(SKUs that will run out before the next delivery get an express top-up in whole cases,
within 15% of the store's daily budget) → audit (no negative line, one line per pair, within
the cap) → publish (the hour's rows replace themselves in `replenish.topup_order` in one
transaction, audited again).

It only adds top-ups: the nightly `reorder_plan` is never changed. Retries: 2, exponential
backoff; one run at a time.
"""

DEFAULT_ARGS = {
    "owner": "replenish",
    # REPLENISH_DAG_RETRIES lets a test run fail fast; production keeps the default 2
    "retries": int(os.environ.get("REPLENISH_DAG_RETRIES", "2")),
    "retry_delay": dt.timedelta(minutes=1),
    "retry_exponential_backoff": True,
    "max_retry_delay": dt.timedelta(minutes=10),
}


def _phase(name: str) -> str:
    from jobs.airflow_tasks import run_intraday

    return run_intraday(name, get_current_context())


@dag(
    dag_id="replenish_intraday",
    schedule="0 8-22/2 * * *",
    start_date=pendulum.datetime(2025, 1, 1, tz="Asia/Kolkata"),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["replenish", "intraday"],
    doc_md=DOC,
    params={"scenario": Param("", type="string", description="when set, the generated world "
                              "under REPLENISH_HOME must be this scenario (a guard against "
                              "triggering on the wrong environment)")},
)
def replenish_intraday() -> None:
    @task
    def snapshot() -> str:
        return _phase("snapshot")

    @task
    def rescore() -> str:
        return _phase("rescore")

    @task
    def topup() -> str:
        return _phase("topup")

    @task
    def audit() -> str:
        return _phase("audit")

    @task
    def publish() -> str:
        return _phase("publish")

    snapshot() >> rescore() >> topup() >> audit() >> publish()


replenish_intraday()
