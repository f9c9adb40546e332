"""Both DAGs end to end with ``airflow dags test`` on a tiny world, real everything.

The history before the run (nine weeks) is prepared the fast way (ingest, raw copied to clean,
one feature backfill); the DAG then runs every task for its night: ingest, the Great
Expectations gates, features, clusters, training (no champion yet, so it is due), scoring,
the MILP plan, write-audit-publish into PostgreSQL, the report and monitoring. The intraday
DAG then tops up the next day at 14:00 without touching the nightly plan.
"""
from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest

from jobs import build_features, generate
from jobs.lake import list_dates, read_partition
from tests.worlds import ingest_as_clean

START = dt.date(2025, 9, 1)
DAYS = 64
NIGHT = START + dt.timedelta(days=DAYS - 2)  # the nightly run's store day
NEXT = NIGHT + dt.timedelta(days=1)  # the intraday run's day (its landing sales exist)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def world(spark, pg, tmp_path_factory):
    """(cfg, env); ``spark`` first, so the session's test settings win."""
    from jobs import warehouse

    home = tmp_path_factory.mktemp("dag-runs")
    cfg = pg.replace(home=home, warehouse_url=pg.warehouse_url or warehouse.url(pg))
    generate.run(cfg, "tiny", START, DAYS, seed=13, progress=False)
    history = ingest_as_clean(cfg, [d for d in list_dates(cfg.landing, "sales") if d < NIGHT])
    build_features.run(cfg, start=history[0], end=history[-1])
    bin_dir = Path(sys.executable).parent
    env = {**os.environ,
           "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
           "AIRFLOW_HOME": str(home / "airflow"),
           "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "REPLENISH_HOME": str(home),
           "REPLENISH_WAREHOUSE_URL": cfg.warehouse_url,
           "REPLENISH_MODEL_PROFILE": "quick",
           "REPLENISH_MAX_SERIES": "60",
           "REPLENISH_DAG_RETRIES": "0",
           "PYSPARK_PYTHON": sys.executable,
           "SPARK_DRIVER_MEMORY": "2g",
           "SPARK_SHUFFLE_PARTITIONS": "2"}
    subprocess.run([str(bin_dir / "airflow"), "db", "migrate"], env=env, check=True,
                   capture_output=True, timeout=300)
    return cfg, env


def _dags_test(env: dict, dag_id: str, logical: str) -> str:
    log_file = Path(env["REPLENISH_HOME"]) / f"{dag_id}.log"
    with log_file.open("w") as fh:
        out = subprocess.run([str(Path(sys.executable).parent / "airflow"), "dags", "test",
                              dag_id, logical], env=env, stdout=fh, stderr=subprocess.STDOUT,
                             text=True, timeout=1500)
    log = log_file.read_text()
    assert out.returncode == 0, log[-5000:]
    assert "state=success" in log, log[-5000:]
    return log


def _rows(cfg, sql: str, *args) -> list[tuple]:
    from jobs import warehouse

    with warehouse.connect(cfg) as conn, conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchall()


@pytest.mark.timeout(1800)
def test_nightly_then_intraday(world):
    cfg, env = world
    # 02:00 IST on NIGHT + 1 is the night of NIGHT
    _dags_test(env, "replenish_nightly", f"{NEXT.isoformat()}T02:00:00+05:30")
    active = read_partition(cfg.lake, "features", NIGHT, columns=["store_id"]).num_rows
    assert _rows(cfg, "SELECT count(*) FROM replenish.reorder_plan WHERE run_date = %s",
                 NIGHT) == [(active,)]
    assert _rows(cfg, "SELECT count(*) FROM replenish.forecast WHERE run_date = %s",
                 NIGHT) == [(active * 7,)]
    assert (cfg.reports / "nightly" / NIGHT.isoformat() / "report.html").exists()
    assert NIGHT in list_dates(cfg.lake, "monitoring")
    from models import registry

    assert registry.champion_version(cfg.mlflow_uri) == 1  # trained: no champion before
    plan_before = _rows(cfg, "SELECT count(*), sum(order_units) FROM replenish.reorder_plan "
                        "WHERE run_date = %s", NIGHT)

    _dags_test(env, "replenish_intraday", f"{NEXT.isoformat()}T14:00:00+05:30")
    assert NEXT in list_dates(cfg.lake, "intraday_sales")
    published = _rows(cfg, "SELECT count(*), coalesce(min(topup_units), 1) FROM "
                      "replenish.topup_order WHERE run_date = %s AND hour = 14", NEXT)
    lake = read_partition(cfg.lake, "topups", NEXT).to_pandas()
    assert published[0][0] == int((lake["hour"] == 14).sum())
    assert published[0][1] > 0
    assert _rows(cfg, "SELECT count(*), sum(order_units) FROM replenish.reorder_plan "
                 "WHERE run_date = %s", NIGHT) == plan_before  # intraday never edits the plan
    assert NEXT in list_dates(cfg.lake, "intraday_forecasts")  # the rescore task's output
    from jobs.summary import summary

    text = summary(cfg, NIGHT)
    assert f"intraday top-ups of {NEXT}" in text
    assert f"14:00  {published[0][0]:>5,} lines" in text
