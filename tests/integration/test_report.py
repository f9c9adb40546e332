"""The nightly report: its sections from hand-made lake partitions, files and MLflow."""
from __future__ import annotations

import datetime as dt

import pyarrow as pa

from jobs import report
from jobs.config import Config
from jobs.lake import write_partition
from models import registry

D = dt.date(2025, 6, 30)


def _write(cfg, table, data: dict) -> None:
    t = pa.table(data)
    write_partition(cfg.lake, table, D, t, schema=t.schema)


def test_report_has_every_section_and_is_logged_to_mlflow(tmp_path):
    cfg = Config(home=tmp_path / "home")
    _write(cfg, "plans", {
        "store_id": [1, 1, 2], "sku_id": [1, 2, 1], "order_units": [12, 0, 6],
        "order_value": [120.0, 0.0, 30.0], "solver_status": ["optimal", "optimal", "greedy"],
        "fallback_reason": [None, None, "time limit"], "binding_constraint": ["budget", None,
                                                                              "moq"],
        "expected_service_level": [0.97, 0.99, 0.95], "expected_waste_units": [0.5, 0.0, 1.0],
        "forecast_coverage": [10.0, 1.0, 5.0]})
    _write(cfg, "forecasts", {
        "store_id": [1] * 7, "sku_id": [1] * 7, "horizon": list(range(1, 8)),
        "target_date": pa.array([D + dt.timedelta(days=h) for h in range(1, 8)], pa.date32()),
        "mean": [2.0] * 7, "q90": [4.0] * 7, "model": ["ensemble"] * 7,
        "model_version": ["3"] * 7, "flags": [None] * 7})
    res = report.run(cfg, D)
    text = (res.path.parent / "report.md").read_text()
    assert "3 lines for 2 stores; 2 lines order 18 units worth INR 150" in text
    assert "store 2: time limit" in text
    assert "ensemble (version 3)" in text
    assert "No demand_daily for this date." in text
    assert res.path.read_text().startswith("<!doctype html>")
    assert (res.path.parent / "orders_per_store.png").stat().st_size > 1000
    client = registry.client(cfg.mlflow_uri)
    names = {a.path for a in client.list_artifacts(res.mlflow_run_id, "report")}
    assert {"report/report.md", "report/report.html", "report/forecast_week.png"} <= names


def test_report_says_what_is_missing(tmp_path):
    cfg = Config(home=tmp_path / "empty")
    res = report.run(cfg, D)
    text = (res.path.parent / "report.md").read_text()
    assert "No plan for this date" in text and "No forecasts for this date" in text
