"""The DAG files: they parse, carry the promised settings and graph, and import nothing heavy."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"
NIGHTLY = ["ingest", "validate_raw", "build_features", "validate_features", "cluster", "train",
           "score", "plan", "audit", "publish", "report", "monitor"]
INTRADAY = ["snapshot", "rescore", "topup", "audit", "publish"]


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory):
    os.environ.setdefault("AIRFLOW_HOME", str(tmp_path_factory.mktemp("airflow-home")))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def _chain(dag) -> list[str]:
    """The task ids in order, asserting the graph is one straight line."""
    roots = [t for t in dag.tasks if not t.upstream_task_ids]
    assert len(roots) == 1, f"{dag.dag_id}: several roots {roots}"
    order, task = [], roots[0]
    while True:
        order.append(task.task_id)
        down = sorted(task.downstream_task_ids)
        if not down:
            return order
        assert len(down) == 1, f"{dag.dag_id}: {task.task_id} fans out to {down}"
        task = dag.get_task(down[0])


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dags) == {"replenish_nightly", "replenish_intraday"}


@pytest.mark.parametrize(("dag_id", "tasks", "cron"), [
    ("replenish_nightly", NIGHTLY, "0 2 * * *"),
    ("replenish_intraday", INTRADAY, "0 8-22/2 * * *")])
def test_graph_schedule_and_settings(dagbag, dag_id, tasks, cron):
    dag = dagbag.dags[dag_id]
    assert _chain(dag) == tasks
    assert "replenish" in dag.tags
    assert dag.max_active_runs == 1 and dag.catchup is False
    assert dag.doc_md and dag_id in dag.doc_md
    assert dag.timetable.expression == cron
    assert str(dag.timetable.timezone) == "Asia/Kolkata"
    for task in dag.tasks:
        assert task.retries >= 2, task.task_id
        assert task.retry_exponential_backoff, task.task_id


def test_nightly_params(dagbag):
    params = dagbag.dags["replenish_nightly"].params
    assert params["force_retrain"] is False
    assert {"stores", "scenario"} <= set(params.keys())


def test_dag_files_import_nothing_heavy():
    code = (
        "import sys, runpy\n"
        f"for f in {sorted(str(p) for p in DAGS.glob('*.py'))!r}:\n"
        "    runpy.run_path(f)\n"
        "heavy = sorted(m for m in ('pyspark', 'torch', 'xgboost', 'prophet', 'mlflow', "
        "'statsmodels', 'pulp', 'great_expectations', 'sklearn', 'jobs.train') "
        "if m in sys.modules)\n"
        "print('HEAVY:' + ','.join(heavy))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, check=True)
    assert out.stdout.strip().splitlines()[-1] == "HEAVY:"


def test_business_dates():
    import datetime as dt

    import pendulum

    from jobs.airflow_tasks import business_date, intraday_slot

    nightly = {"logical_date": pendulum.datetime(2025, 5, 1, 2, 0, tz="Asia/Kolkata")}
    assert business_date(nightly) == dt.date(2025, 4, 30)
    utc = {"logical_date": pendulum.datetime(2025, 5, 1, 10, 30, tz="UTC")}  # 16:00 IST
    assert intraday_slot(utc) == (dt.date(2025, 5, 1), 16)
    with pytest.raises(ValueError, match="logical_date"):
        business_date({})


def test_params_are_applied_or_refused(tmp_path):
    import json

    from jobs.airflow_tasks import apply_params
    from jobs.config import Config

    cfg = Config(home=tmp_path)
    assert apply_params(cfg, {"stores": "4,2", "scenario": ""}).stores == (2, 4)
    assert apply_params(cfg, {"stores": ""}).stores == ()
    with pytest.raises(ValueError, match="no generated world"):
        apply_params(cfg, {"scenario": "small"})
    (tmp_path / "world.json").write_text(json.dumps({"scenario": "tiny"}))
    assert apply_params(cfg, {"scenario": "tiny"}) == cfg
    with pytest.raises(ValueError, match="scenario='small'.*is 'tiny'"):
        apply_params(cfg, {"scenario": "small"})
    with pytest.raises(ValueError, match="stores: 'x'"):
        apply_params(cfg, {"stores": "1,x"})
