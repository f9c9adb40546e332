"""Monitoring: PSI against a plain computation, the accuracy flag, drift, and the warehouse."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from jobs import monitor
from jobs.lake import write_partition

D = dt.date(2025, 6, 30)


def test_psi_is_zero_for_the_same_distribution_and_large_for_a_shift():
    rng = np.random.default_rng(0)
    ref = rng.normal(10, 2, 20_000)
    assert monitor.psi(ref, rng.normal(10, 2, 20_000)) < 0.01
    assert monitor.psi(ref, rng.normal(13, 2, 20_000)) > monitor.PSI_ALERT
    assert np.isnan(monitor.psi(ref, np.array([np.nan])))


def test_psi_matches_a_plain_loop():
    ref = np.array([1, 2, 2, 3, 3, 3, 4, 4, 4, 4], dtype=float)
    cur = np.array([4, 4, 4, 4, 4, 3, 3, 2, 1, 1], dtype=float)
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, 11)[1:-1]))
    total = 0.0
    bounds = [-np.inf, *edges, np.inf]
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        p = max(np.mean((ref >= lo) & (ref < hi)), 1e-4)
        q = max(np.mean((cur >= lo) & (cur < hi)), 1e-4)
        total += (q - p) * np.log(q / p)
    assert monitor.psi(ref, cur) == pytest.approx(total)


def _home(pg, path):
    """The shared warehouse of the session, a lake of this test's own."""
    from jobs import warehouse

    return pg.replace(home=path, warehouse_url=pg.warehouse_url or warehouse.url(pg))


def _write(cfg, table, day, frame):
    t = pa.Table.from_pandas(frame, preserve_index=False)
    write_partition(cfg.lake, table, day, t, schema=t.schema)


def _lake(cfg, forecast_factor: float, shift: float = 0.0) -> None:
    rng = np.random.default_rng(1)
    pairs = [(s, k) for s in (1, 2) for k in range(1, 41)]
    for i in range(40):
        day = D - dt.timedelta(days=39 - i)
        demand = rng.poisson(20, len(pairs)).astype(float)
        _write(cfg, "demand_daily", day, pd.DataFrame(
            {"store_id": [p[0] for p in pairs], "sku_id": [p[1] for p in pairs],
             "demand": demand}))
        feats = {c: rng.normal(10 + (shift if day == D else 0), 2, len(pairs))
                 for c in monitor.DRIFT_FEATURES}
        _write(cfg, "features", day, pd.DataFrame(
            {"store_id": [p[0] for p in pairs], "sku_id": [p[1] for p in pairs], **feats}))
        if day < D:
            _write(cfg, "forecasts", day, pd.DataFrame(
                {"store_id": [p[0] for p in pairs], "sku_id": [p[1] for p in pairs],
                 "target_date": day + dt.timedelta(days=1),
                 "mean": 20.0 * forecast_factor}))
    _write(cfg, "backtest_metrics", D - dt.timedelta(days=20), pd.DataFrame(
        {"grouping": ["overall"], "model": ["ensemble"], "wape": [0.2]}))


def test_good_forecasts_pass_and_no_drift(pg, tmp_path):
    cfg = _home(pg, tmp_path / "ok")
    _lake(cfg, forecast_factor=1.0)
    res = monitor.run(cfg, D)
    acc = res.rows.loc[res.rows["check"] == "accuracy"].iloc[0]
    # Poisson(20) around a perfect mean: WAPE ~ E|X-20|/20 ~ 0.18 < 1.1 x 0.2
    assert acc["status"] == "ok" and acc["value"] == pytest.approx(0.18, abs=0.03)
    assert (res.rows.loc[res.rows["check"] == "drift", "status"] == "ok").all()
    assert not res.retrain


def test_bad_forecasts_and_drift_ask_for_a_retrain_and_land_in_the_warehouse(pg, tmp_path):
    from jobs import warehouse

    cfg = _home(pg, tmp_path / "bad")
    _lake(cfg, forecast_factor=1.6, shift=5.0)
    res = monitor.run(cfg, D)
    acc = res.rows.loc[res.rows["check"] == "accuracy"].iloc[0]
    assert acc["status"] == "flag" and acc["value"] > 1.1 * 0.2
    assert (res.rows.loc[res.rows["check"] == "drift", "status"] == "flag").all()
    assert res.retrain
    monitor.run(cfg, D)  # a re-run replaces the date's rows
    with warehouse.connect(cfg) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*), bool_or(retrain) FROM replenish.monitoring "
                    "WHERE run_date = %s", (D,))
        n, retrain = cur.fetchone()
    assert n == len(res.rows) and retrain is True


def test_without_history_checks_are_skipped_not_passed(tmp_path):
    from jobs.config import Config

    cfg = Config(home=tmp_path / "new", warehouse_url="postgresql://nobody@127.0.0.1:1/none")
    _write(cfg, "features", D, pd.DataFrame({"store_id": [1], "sku_id": [1], "lag_1": [1.0]}))
    res = monitor.run(cfg, D)
    assert set(res.rows["status"]) == {"skipped"}
    assert not res.retrain
