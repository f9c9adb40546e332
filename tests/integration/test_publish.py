"""Write–audit–publish against a real PostgreSQL (the session ``pg`` fixture).

A tiny hand-written lake (2 stores, 3 SKUs, 5 active pairs) is published for dates far in
the future, so the shared warehouse's other rows are never touched; the module deletes its
rows at the end. The crash tests run ``jobs.publish.run`` in a subprocess that pauses at a
debug hook and kill it with SIGKILL.
"""
from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from psycopg2 import errors

from jobs import publish, warehouse
from jobs.config import Config
from jobs.lake import write_partition
from jobs.schema import arrow_schema

FIRST, LAST = dt.date(2071, 1, 1), dt.date(2078, 12, 31)  # every date this module uses
REPO = Path(__file__).resolve().parents[2]

# ----------------------------------------------------------------------------- a tiny lake

STORES = pd.DataFrame({
    "store_id": [1, 2], "store_name": ["Koramangala", "Indiranagar"],
    "city": ["Bengaluru"] * 2, "region": ["south"] * 2, "latitude": [12.93, 12.97],
    "longitude": [77.62, 77.64], "customer_density": [9.0, 7.5],
    "competitor_proximity_km": [0.8, 1.2], "demographic_index": [0.7, 0.6],
    "capacity_ambient_l": [1000.0, 800.0], "capacity_chilled_l": [200.0, 150.0],
    "capacity_frozen_l": [100.0, 80.0], "daily_budget": [10_000.0, 5_000.0],
    "opened_on": [dt.date(2024, 1, 1)] * 2})
SKUS = pd.DataFrame({
    "sku_id": [10, 11, 12], "sku_name": ["atta 5kg", "milk 1l", "peas 500g"],
    "category": ["staples", "dairy", "frozen"], "zone": ["ambient", "chilled", "frozen"],
    "is_perishable": [False, True, False], "shelf_life_days": [180, 3, 365],
    "unit_cost": [20.0, 30.0, 50.0], "price": [26.0, 36.0, 65.0], "case_pack": [6, 4, 2],
    "moq_cases": [1, 1, 1], "supplier_id": [1, 2, 2], "lead_time_days": [1, 2, 2],
    "volume_l": [0.5, 1.0, 2.0], "launched_on": [dt.date(2024, 1, 1)] * 3})
PAIRS = [(1, 10), (1, 11), (1, 12), (2, 10), (2, 11)]
#: (store, sku) -> on_hand, on_order, received, wasted at close of the run date
STOCK = {(1, 10): (10, 0, 0, 0), (1, 11): (0, 4, 8, 2), (1, 12): (0, 0, 0, 0),
         (2, 10): (4, 0, 0, 0), (2, 11): (0, 0, 0, 1)}
#: (store, sku) -> units_sold, stockout, demand (None: unknown)
DEMAND = {(1, 10): (5, False, 5.0), (1, 11): (3, True, 4.5), (1, 12): (0, True, None),
          (2, 10): (2, False, 2.0), (2, 11): (4, True, 4.0)}
#: (store, sku) -> cases ordered
ORDERS = {(1, 10): 2, (1, 11): 3, (1, 12): 0, (2, 10): 1, (2, 11): 0}

DEMAND_SCHEMA = pa.schema([("store_id", pa.int32()), ("sku_id", pa.int32()),
                           ("units_sold", pa.int32()), ("revenue", pa.float64()),
                           ("stockout", pa.bool_()), ("demand", pa.float64()),
                           ("censored", pa.bool_())])
FORECAST_SCHEMA = pa.schema([
    ("run_date", pa.date32()), ("store_id", pa.int32()), ("sku_id", pa.int32()),
    ("target_date", pa.date32()), ("horizon", pa.int64()), ("model", pa.string()),
    ("mean", pa.float64()), ("q50", pa.float64()), ("q80", pa.float64()),
    ("q90", pa.float64()), ("q95", pa.float64()), ("q99", pa.float64()),
    ("evening_share", pa.float64()), ("evening_mean", pa.float64()),
    ("model_version", pa.string()), ("flags", pa.string())])
PLAN_SCHEMA = pa.schema([
    ("run_date", pa.date32()), ("store_id", pa.int32()), ("sku_id", pa.int32()),
    ("supplier_id", pa.int32()), ("delivery_date", pa.date32()),
    ("order_cases", pa.int32()), ("order_units", pa.int32()), ("case_pack", pa.int32()),
    ("unit_cost", pa.float64()), ("order_value", pa.float64()), ("on_hand", pa.int32()),
    ("on_order", pa.int32()), ("forecast_coverage", pa.float64()),
    ("safety_stock", pa.float64()), ("order_up_to", pa.float64()),
    ("expected_service_level", pa.float64()), ("expected_waste_units", pa.float64()),
    ("binding_constraint", pa.string()), ("solver_status", pa.string()),
    ("fallback_reason", pa.string()),
    # extra lake columns the warehouse does not hold
    ("zone", pa.string()), ("order_volume_l", pa.float64()), ("gap", pa.float64())])
PO_SCHEMA = pa.schema([
    ("po_id", pa.string()), ("run_date", pa.date32()), ("store_id", pa.int32()),
    ("supplier_id", pa.int32()), ("delivery_date", pa.date32()), ("n_lines", pa.int32()),
    ("order_cases", pa.int64()), ("order_units", pa.int64()), ("order_value", pa.float64()),
    ("order_volume_l", pa.float64()), ("min_order_value", pa.float64()),
    ("min_order_met", pa.bool_())])


def world(day: dt.date, scale: float = 1.0) -> dict[str, pd.DataFrame]:
    """The lake tables of ``day``; ``scale`` changes forecasts and one order (a new version)."""
    sku = SKUS.set_index("sku_id")
    inventory = pd.DataFrame([{"store_id": s, "sku_id": k, "on_hand": oh, "on_order": oo,
                               "received": rc, "wasted": w,
                               **{f"exp_{d}d": 0 for d in range(1, 8)}, "exp_later": oh}
                              for (s, k), (oh, oo, rc, w) in STOCK.items()])
    demand = pd.DataFrame([{"store_id": s, "sku_id": k, "units_sold": u, "revenue": u * 1.0,
                            "stockout": so, "demand": d, "censored": so}
                           for (s, k), (u, so, d) in DEMAND.items()])
    forecasts = pd.DataFrame([
        {"run_date": day, "store_id": s, "sku_id": k, "target_date": day + dt.timedelta(h),
         "horizon": h, "model": "ensemble", "mean": m, "q50": m, "q80": 1.3 * m,
         "q90": 1.5 * m, "q95": 1.7 * m, "q99": 2.2 * m, "evening_share": 0.6,
         "evening_mean": 0.6 * m, "model_version": "3", "flags": None}
        for s, k in PAIRS for h in range(1, 8) for m in [scale * (2.0 + k / 10 + h / 10)]])
    orders = dict(ORDERS)
    if scale != 1.0:
        orders[(2, 10)] = 2
    plans = pd.DataFrame([
        {"run_date": day, "store_id": s, "sku_id": k, "supplier_id": sku.supplier_id[k],
         "delivery_date": day + dt.timedelta(int(sku.lead_time_days[k])),
         "order_cases": c, "order_units": c * sku.case_pack[k], "case_pack": sku.case_pack[k],
         "unit_cost": sku.unit_cost[k], "order_value": c * sku.case_pack[k] * sku.unit_cost[k],
         "on_hand": STOCK[(s, k)][0], "on_order": STOCK[(s, k)][1],
         "forecast_coverage": 3.0 * scale, "safety_stock": 1.5, "order_up_to": 4.5,
         "expected_service_level": 0.97, "expected_waste_units": 0.1,
         "binding_constraint": None, "solver_status": "optimal", "fallback_reason": None,
         "zone": sku.zone[k], "order_volume_l": c * sku.case_pack[k] * sku.volume_l[k],
         "gap": 0.0}
        for (s, k), c in orders.items()])
    return {"stores": STORES.copy(), "skus": SKUS.copy(), "inventory": inventory,
            "demand_daily": demand, "forecasts": forecasts, "plans": plans,
            "purchase_orders": purchase_orders(plans)}


def purchase_orders(plans: pd.DataFrame) -> pd.DataFrame:
    """The plan's ordering lines grouped as jobs/plan.py does."""
    keys = ["run_date", "store_id", "supplier_id", "delivery_date"]
    po = (plans[plans.order_units > 0].groupby(keys, as_index=False)
          .agg(n_lines=("sku_id", "size"), order_cases=("order_cases", "sum"),
               order_units=("order_units", "sum"), order_value=("order_value", "sum"),
               order_volume_l=("order_volume_l", "sum")))
    po["min_order_value"] = 0.0
    po["min_order_met"] = True
    po["po_id"] = [f"PO-{r.run_date:%Y%m%d}-{r.store_id}-{r.supplier_id}-"
                   f"{r.delivery_date:%Y%m%d}" for r in po.itertuples()]
    return po


def write_world(cfg: Config, day: dt.date, frames: dict[str, pd.DataFrame]) -> None:
    clean = cfg.lake / "clean"
    for table in ("stores", "skus", "inventory"):
        write_partition(clean, table, day, _arrow(frames[table], arrow_schema(table)),
                        arrow_schema(table))
    for table, schema in (("demand_daily", DEMAND_SCHEMA), ("forecasts", FORECAST_SCHEMA),
                          ("plans", PLAN_SCHEMA), ("purchase_orders", PO_SCHEMA)):
        if table in frames:
            names = [n for n in schema.names if n in frames[table].columns]
            sub = pa.schema([schema.field(n) for n in names])
            write_partition(cfg.lake, table, day, _arrow(frames[table][names], sub), sub)


def _arrow(frame: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def cfg(pg: Config, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Config]:
    """The session warehouse, with a lake of this module's own."""
    url = pg.warehouse_url or warehouse.url(pg)
    config = Config(home=tmp_path_factory.mktemp("publish"), warehouse_url=url)
    yield config
    conn = warehouse.connect(config)
    try:
        with conn, conn.cursor() as cur:
            for table, key in publish.PUBLISHED.items():
                for schema in ("replenish", "replenish_staging"):
                    cur.execute(f"DELETE FROM {schema}.{table} WHERE {key} BETWEEN %s AND %s",
                                (FIRST, LAST))
            for table in ("active_pair", "store_limits", "sku_attrs", "batch"):
                cur.execute(f"DELETE FROM replenish_staging.{table} "
                            "WHERE run_date BETWEEN %s AND %s", (FIRST, LAST))
    finally:
        conn.close()


def published(cfg: Config, day: dt.date) -> dict[str, list[tuple[Any, ...]]]:
    """Every published row of ``day``, per table, in a stable order."""
    conn = warehouse.connect(cfg)
    try:
        with conn, conn.cursor() as cur:
            out = {}
            for table, key in publish.PUBLISHED.items():
                cur.execute(f"SELECT * FROM replenish.{table} WHERE {key} = %s", (day,))
                out[table] = sorted(cur.fetchall(), key=repr)
            return out
    finally:
        conn.close()


def staged_rows(cfg: Config, table: str, day: dt.date) -> int:
    return query(cfg, f"SELECT count(*) FROM replenish_staging.{table} "
                      f"WHERE {publish.PUBLISHED[table]} = %s", (day,))[0][0]


def query(cfg: Config, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = warehouse.connect(cfg)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()
    finally:
        conn.close()


# ----------------------------------------------------------------------------- KPIs


def test_store_kpis_match_a_hand_computation() -> None:
    day = dt.date(2071, 1, 5)
    frames = world(day)
    kpis = publish.store_kpis(day, frames["demand_daily"], frames["inventory"], SKUS)
    assert list(kpis.columns) == list(publish.KPI_COLUMNS)
    one, two = (kpis.set_index("store_id").loc[s] for s in (1, 2))
    # store 1: (1,10) met; (1,11) stock-out with demand 4.5 > 3 sold; (1,12) unknown demand
    assert one.service_level == pytest.approx(1 / 3)
    assert one.stockout_rate == pytest.approx(2 / 3)
    assert one.fill_rate == pytest.approx((5 + 3) / (5 + 4.5))
    # perishable sku 11 only: 2 wasted of the 2 + 3 units that left the shelf
    assert one.waste_pct == pytest.approx(100 * 2 / (2 + 3))
    # opening = close - received + sold + wasted, floored at 0: 15, 0 (-3), 0 units
    assert one.inventory_turnover == pytest.approx(365 * (5 * 20 + 3 * 30) / ((300 + 200) / 2))
    assert one.working_capital == pytest.approx(10 * 20)
    # store 2: the stock-out of (2,11) lost nothing (demand = sold); 1 of its 1 + 4 units
    # that left the shelf expired although nothing was received that day
    assert (two.service_level, two.stockout_rate, two.fill_rate) == (1.0, 0.5, 1.0)
    assert two.waste_pct == pytest.approx(100 * 1 / (1 + 4))
    assert two.inventory_turnover == pytest.approx(365 * (2 * 20 + 4 * 30) / ((270 + 80) / 2))
    assert kpis.policy.eq("observed").all() and kpis.total_cost.isna().all()
    assert (kpis.kpi_date == day).all()


def test_store_kpis_without_inventory_leave_stock_measures_null() -> None:
    day = dt.date(2071, 1, 5)
    kpis = publish.store_kpis(day, world(day)["demand_daily"], None, SKUS)
    assert kpis[["waste_pct", "inventory_turnover", "working_capital"]].isna().all().all()
    assert kpis.service_level.notna().all()


# ----------------------------------------------------------------------------- publish


def test_publish_loads_every_table_and_a_rerun_gives_identical_rows(cfg: Config) -> None:
    day = dt.date(2071, 2, 10)
    write_world(cfg, day, world(day))
    first = publish.run(cfg, day)
    assert dict(first.published) == {"forecast": 35, "reorder_plan": 5, "purchase_order": 3,
                                     "actual_demand": 5, "kpi_daily": 2}
    assert f"publish {day}" in first.summary() and "reorder_plan 5" in first.summary()
    rows = published(cfg, day)
    second = publish.run(cfg, day)
    assert second.published == first.published
    assert published(cfg, day) == rows
    for table in publish.PUBLISHED:
        assert staged_rows(cfg, table, day) == 0  # staging is cleared once published
    plan = query(cfg, "SELECT store_id, sku_id, order_units, order_value, unit_cost "
                      "FROM replenish.reorder_plan WHERE run_date = %s ORDER BY 1, 2", (day,))
    assert [(s, k, u, float(v), float(c)) for s, k, u, v, c in plan] == [
        (1, 10, 12, 240.0, 20.0), (1, 11, 12, 360.0, 30.0), (1, 12, 0, 0.0, 50.0),
        (2, 10, 6, 120.0, 20.0), (2, 11, 0, 0.0, 30.0)]
    fc = query(cfg, "SELECT horizon_days, target_date, mean, evening_mean FROM "
                    "replenish.forecast WHERE run_date = %s AND store_id = 1 AND sku_id = 10 "
                    "ORDER BY 1", (day,))
    assert [(h, t) for h, t, _, _ in fc] == [(h, day + dt.timedelta(h)) for h in range(1, 8)]
    assert fc[0][2] == pytest.approx(2.0 + 1.0 + 0.1) and fc[0][3] == pytest.approx(0.6 * 3.1)


def test_publish_replaces_only_its_date_and_its_kpi_policy(cfg: Config) -> None:
    day, before = dt.date(2071, 3, 10), dt.date(2071, 3, 9)
    for d in (before, day):
        write_world(cfg, d, world(d))
        publish.run(cfg, d)
    conn = warehouse.connect(cfg)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("INSERT INTO replenish.kpi_daily (kpi_date, store_id, service_level, "
                        "policy) VALUES (%s, 1, 0.99, 'oracle')", (day,))
    finally:
        conn.close()
    kept = published(cfg, before)
    write_world(cfg, day, world(day, scale=2.0))
    publish.run(cfg, day)
    assert published(cfg, before) == kept
    assert query(cfg, "SELECT policy, count(*) FROM replenish.kpi_daily WHERE kpi_date = %s "
                      "GROUP BY 1 ORDER BY 1", (day,)) == [("observed", 2), ("oracle", 1)]
    assert query(cfg, "SELECT order_units FROM replenish.reorder_plan WHERE run_date = %s "
                      "AND store_id = 2 AND sku_id = 10", (day,)) == [(12,)]


def test_audit_alone_stages_and_publishes_nothing(cfg: Config) -> None:
    day = dt.date(2071, 4, 10)
    write_world(cfg, day, world(day))
    result = publish.audit(cfg, day)
    assert result.rules > 20 and dict(result.staged)["reorder_plan"] == 5
    assert "rules passed" in result.summary()
    assert all(rows == [] for rows in published(cfg, day).values())
    assert staged_rows(cfg, "forecast", day) == 35


def test_publish_reuses_the_audits_staging_only_while_the_lake_is_unchanged(
        cfg: Config) -> None:
    day = dt.date(2071, 4, 21)
    write_world(cfg, day, world(day))
    publish.audit(cfg, day)
    reused = publish.run(cfg, day)
    assert reused.reused_staging and "audit's staged rows" in reused.summary()
    rows = published(cfg, day)
    assert query(cfg, "SELECT count(*) FROM replenish_staging.batch WHERE run_date = %s",
                 (day,)) == [(0,)]
    fresh = publish.run(cfg, day)  # no audit before it: stages itself
    assert not fresh.reused_staging and fresh.published == reused.published
    assert published(cfg, day) == rows
    # a partition rewritten after the audit (a re-run plan) is staged again
    publish.audit(cfg, day)
    write_world(cfg, day, world(day, scale=2.0))
    again = publish.run(cfg, day)
    assert not again.reused_staging
    assert query(cfg, "SELECT order_units FROM replenish.reorder_plan WHERE run_date = %s "
                      "AND store_id = 2 AND sku_id = 10", (day,)) == [(12,)]


def test_reused_staging_is_audited_again(cfg: Config) -> None:
    day = dt.date(2071, 4, 22)
    write_world(cfg, day, world(day))
    publish.audit(cfg, day)
    conn = warehouse.connect(cfg)
    try:
        with conn, conn.cursor() as cur:  # staged rows changed behind the audit's back
            cur.execute("UPDATE replenish_staging.reorder_plan SET order_units = -6 "
                        "WHERE run_date = %s AND store_id = 1 AND sku_id = 10", (day,))
    finally:
        conn.close()
    with pytest.raises(publish.AuditError, match="non_negative"):
        publish.run(cfg, day)
    assert all(rows == [] for rows in published(cfg, day).values())


# ----------------------------------------------------------------------------- failed audits

AUDIT_DAY = dt.date(2071, 5, 10)


def _plan_line(frames: dict[str, pd.DataFrame], store: int, sku: int) -> Any:
    plans = frames["plans"]
    return (plans.store_id == store) & (plans.sku_id == sku)


def _negative_order(f: dict[str, pd.DataFrame]) -> None:
    f["plans"].loc[_plan_line(f, 1, 12), ["order_cases", "order_units", "order_value"]] = (
        -1, -2, -100.0)


def _missing_line(f: dict[str, pd.DataFrame]) -> None:
    f["plans"] = f["plans"][~_plan_line(f, 2, 11)]


def _over_budget(f: dict[str, pd.DataFrame]) -> None:
    f["stores"].loc[f["stores"].store_id == 1, "daily_budget"] = 500.0  # orders 600 INR


def _over_capacity(f: dict[str, pd.DataFrame]) -> None:
    # 12 litres of milk ordered; 4 on order take 4 of 10 litres
    f["stores"].loc[f["stores"].store_id == 1, "capacity_chilled_l"] = 10.0


def _six_horizons(f: dict[str, pd.DataFrame]) -> None:
    fc = f["forecasts"]
    f["forecasts"] = fc[~((fc.store_id == 2) & (fc.sku_id == 11) & (fc.horizon == 7))]


def _crossing_quantiles(f: dict[str, pd.DataFrame]) -> None:
    f["forecasts"].loc[3, ["q80", "q90"]] = (9.0, 8.0)


def _null_mean(f: dict[str, pd.DataFrame]) -> None:
    f["forecasts"].loc[5, "mean"] = np.nan


def _po_off_plan(f: dict[str, pd.DataFrame]) -> None:
    f["purchase_orders"].loc[0, "order_units"] += 1


BAD_WORLDS: dict[str, tuple[Callable[[dict[str, pd.DataFrame]], None], str, str]] = {
    "negative order": (_negative_order, "reorder_plan", "non_negative"),
    "active pair without a plan line": (_missing_line, "reorder_plan",
                                        "one_line_per_active_pair"),
    "store over budget": (_over_budget, "reorder_plan", "budget"),
    "zone over capacity": (_over_capacity, "reorder_plan", "capacity"),
    "six horizons": (_six_horizons, "forecast", "horizons"),
    "quantiles cross": (_crossing_quantiles, "forecast", "quantiles_monotone"),
    "null mean": (_null_mean, "forecast", "not_null"),
    "purchase order off the plan": (_po_off_plan, "purchase_order", "matches_plan"),
}


@pytest.fixture(scope="module")
def good_audit_day(cfg: Config) -> dict[str, list[tuple[Any, ...]]]:
    write_world(cfg, AUDIT_DAY, world(AUDIT_DAY))
    publish.run(cfg, AUDIT_DAY)
    return published(cfg, AUDIT_DAY)


@pytest.mark.parametrize("case", sorted(BAD_WORLDS))
def test_a_failed_audit_names_the_rule_and_publishes_nothing(
        cfg: Config, good_audit_day: dict[str, list[tuple[Any, ...]]], case: str) -> None:
    spoil, table, rule = BAD_WORLDS[case]
    frames = world(AUDIT_DAY, scale=2.0)  # a new version, so a publish would show
    spoil(frames)
    write_world(cfg, AUDIT_DAY, frames)
    with pytest.raises(publish.AuditError) as caught:
        publish.run(cfg, AUDIT_DAY)
    failed = {(f.table, f.rule) for f in caught.value.failures}
    assert (table, rule) in failed
    message = str(caught.value)
    assert f"replenish.{table}" in message and f"={AUDIT_DAY}" in message
    assert f"rule {rule}" in message and "e.g. {" in message
    assert "nothing was published" in message
    assert published(cfg, AUDIT_DAY) == good_audit_day


def test_failure_samples_show_the_offending_rows(cfg: Config, good_audit_day: Any) -> None:
    frames = world(AUDIT_DAY)
    _over_budget(frames)
    write_world(cfg, AUDIT_DAY, frames)
    with pytest.raises(publish.AuditError) as caught:
        publish.audit(cfg, AUDIT_DAY)
    [budget] = [f for f in caught.value.failures if f.rule == "budget"]
    assert budget.failed_rows == 1
    assert budget.sample[0] == {"store_id": 1, "order_value": 600.0, "daily_budget": 500.0}


@pytest.mark.parametrize("case", ["row of another date", "missing column"])
def test_unloadable_partitions_are_refused_before_anything_is_staged(
        cfg: Config, good_audit_day: Any, case: str) -> None:
    frames = world(AUDIT_DAY, scale=2.0)
    if case == "row of another date":
        frames["plans"].loc[0, "run_date"] = AUDIT_DAY + dt.timedelta(1)
        match = "another date"
    else:
        frames["plans"] = frames["plans"].drop(columns="solver_status")
        match = "lacks column.*solver_status"
    write_world(cfg, AUDIT_DAY, frames)
    with pytest.raises(publish.PublishError, match=match):
        publish.run(cfg, AUDIT_DAY)
    assert published(cfg, AUDIT_DAY) == good_audit_day


def test_missing_input_partition_is_named(cfg: Config) -> None:
    day = dt.date(2071, 6, 10)
    frames = world(day)
    del frames["plans"]
    write_world(cfg, day, frames)
    with pytest.raises(FileNotFoundError, match=r"'plans'.*date=2071-06-10.*run plan"):
        publish.run(cfg, day)


# ----------------------------------------------------------------------------- crash safety


def _spawn(cfg: Config, day: dt.date, hook: str) -> subprocess.Popen[str]:
    """``publish.run`` in a child process that pauses at ``hook``; returns once it paused."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("REPLENISH_CONFIG", publish.PAUSE_AFTER_STAGING,
                        publish.PAUSE_BEFORE_COMMIT)}
    env.update({"REPLENISH_HOME": str(cfg.home),
                "REPLENISH_WAREHOUSE_URL": str(cfg.warehouse_url), hook: "600"})
    code = ("import datetime, sys; from jobs.config import load_config; from jobs import "
            "publish; publish.run(load_config(), datetime.date.fromisoformat(sys.argv[1]))")
    child = subprocess.Popen([sys.executable, "-c", code, day.isoformat()], cwd=REPO,
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True)
    watchdog = threading.Timer(120, child.kill)  # never hang the suite
    watchdog.start()
    seen = []
    try:
        assert child.stderr is not None
        for line in child.stderr:
            seen.append(line)
            if hook in line:
                return child
        raise AssertionError("publish exited before pausing:\n" + "".join(seen))
    finally:
        watchdog.cancel()


@pytest.mark.parametrize("hook", [publish.PAUSE_AFTER_STAGING, publish.PAUSE_BEFORE_COMMIT])
def test_a_killed_publish_leaves_the_previous_rows(cfg: Config, hook: str) -> None:
    day = dt.date(2071, 7, 10) if hook == publish.PAUSE_AFTER_STAGING else dt.date(2071, 7, 11)
    write_world(cfg, day, world(day))
    publish.run(cfg, day)
    old = published(cfg, day)
    write_world(cfg, day, world(day, scale=2.0))
    child = _spawn(cfg, day, hook)
    try:
        # paused: the new rows are staged (and, before commit, swapped in its transaction)
        assert staged_rows(cfg, "forecast", day) == 35
        assert published(cfg, day) == old  # readers never see an uncommitted swap
    finally:
        child.kill()  # SIGKILL: no cleanup, no rollback from the client side
        child.wait(timeout=60)
        assert child.stderr is not None
        child.stderr.close()
    assert child.returncode == -9
    assert published(cfg, day) == old
    publish.run(cfg, day)  # waits for the dead session's lock, then publishes normally
    new = published(cfg, day)
    assert new != old
    assert query(cfg, "SELECT order_units FROM replenish.reorder_plan WHERE run_date = %s "
                      "AND store_id = 2 AND sku_id = 10", (day,)) == [(12,)]


# ----------------------------------------------------------------------------- views, BI

VIEWS = ("v_reorder_plan_today", "v_purchase_orders", "v_store_kpis", "v_forecast_accuracy")
NEW_TABLES = ("purchase_order", "actual_demand", "forecast", "kpi_daily")


def test_views_and_new_tables_are_commented(cfg: Config) -> None:
    rows = query(cfg, """
        SELECT c.relname, a.attname, coalesce(col_description(c.oid, a.attnum), ''),
               coalesce(obj_description(c.oid, 'pg_class'), '')
          FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
         WHERE c.relnamespace = 'replenish'::regnamespace AND c.relname = ANY(%s)
           AND a.attnum > 0 AND NOT a.attisdropped""", (list(VIEWS + NEW_TABLES),))
    assert {r[0] for r in rows} == set(VIEWS + NEW_TABLES)
    assert [f"{t}.{c}" for t, c, text, _ in rows if not text.strip()] == []
    assert [t for t, _, _, text in rows if not text.strip()] == []


def test_views_show_the_latest_plan_orders_kpis_and_accuracy(cfg: Config) -> None:
    d1, d2 = dt.date(2078, 12, 1), dt.date(2078, 12, 2)  # the latest dates in the warehouse
    for day in (d1, d2):
        write_world(cfg, day, world(day))
        publish.run(cfg, day)
    today = query(cfg, "SELECT DISTINCT run_date FROM replenish.v_reorder_plan_today")
    assert today == [(d2,)]
    assert query(cfg, "SELECT count(*), count(*) FILTER (WHERE is_ordered) "
                      "FROM replenish.v_reorder_plan_today") == [(5, 3)]

    pos = query(cfg, "SELECT po_id, n_lines, order_units, order_value, is_latest_run FROM "
                     "replenish.v_purchase_orders WHERE run_date = %s ORDER BY 1", (d2,))
    assert [(p, n, u, float(v), latest) for p, n, u, v, latest in pos] == [
        ("PO-20781202-1-1-20781203", 1, 12, 240.0, True),
        ("PO-20781202-1-2-20781204", 1, 12, 360.0, True),
        ("PO-20781202-2-1-20781203", 1, 6, 120.0, True)]

    kpis = query(cfg, "SELECT store_id, service_level, meets_service_target, ordered_lines, "
                      "ordered_value FROM replenish.v_store_kpis WHERE kpi_date = %s AND "
                      "policy = 'observed' ORDER BY 1", (d2,))
    assert [(s, round(sl, 4), ok, n, float(v)) for s, sl, ok, n, v in kpis] == [
        (1, 0.3333, False, 2, 600.0), (2, 1.0, True, 1, 120.0)]

    # the forecasts of d1 for d2 (horizon 1) against d2's actual demand; (1,12) is unknown
    acc = query(cfg, "SELECT store_id, run_date, pairs, actual_units, forecast_units, wape, "
                     "bias, coverage_q80 FROM replenish.v_forecast_accuracy WHERE "
                     "target_date = %s AND horizon_days = 1 ORDER BY 1", (d2,))
    assert [(s, r, n) for s, r, n, *_ in acc] == [(1, d1, 2), (2, d1, 2)]
    for store, _, _, actual, forecast, wape, bias, cover in acc:
        pairs = [(k, DEMAND[(store, k)][2]) for s, k in PAIRS
                 if s == store and DEMAND[(store, k)][2] is not None]
        means = {k: 2.0 + k / 10 + 0.1 for k, _ in pairs}
        assert actual == pytest.approx(sum(a for _, a in pairs))
        assert forecast == pytest.approx(sum(means.values()))
        assert wape == pytest.approx(sum(abs(means[k] - a) for k, a in pairs) / actual)
        assert bias == pytest.approx((forecast - actual) / actual)
        assert cover == pytest.approx(np.mean([a <= 1.3 * means[k] for k, a in pairs]))


_BI_FORBIDDEN = {
    "read staging": "SELECT count(*) FROM replenish_staging.reorder_plan",
    "run the audit": "SELECT * FROM replenish_staging.audit('2071-01-01')",
    "publish": "SELECT * FROM replenish_staging.publish('2071-01-01')",
    "insert a purchase order": "INSERT INTO replenish.purchase_order (run_date, po_id, "
                               "store_id, supplier_id, delivery_date, n_lines, order_cases, "
                               "order_units, order_value) VALUES ('2071-01-01', 'x', 1, 1, "
                               "'2071-01-02', 1, 1, 1, 1)",
    "update actual demand": "UPDATE replenish.actual_demand SET demand = 0",
    "delete the plan": "DELETE FROM replenish.reorder_plan",
    "update a view": "UPDATE replenish.v_reorder_plan_today SET order_cases = 0",
    "delete from a view": "DELETE FROM replenish.v_reorder_plan_today",
    "create a table": "CREATE TABLE replenish.bi_scratch (a int)",
    "create in staging": "CREATE TABLE replenish_staging.bi_scratch (a int)",
}


@pytest.fixture
def bi(cfg: Config) -> Iterator[Any]:
    """A cursor acting as replenish_bi, in a transaction rolled back at the end."""
    conn = warehouse.connect(cfg)
    try:
        with conn.cursor() as cur:
            try:
                cur.execute("SET LOCAL ROLE replenish_bi")
            except errors.InsufficientPrivilege:
                pytest.skip("the test's database user may not SET ROLE replenish_bi")
            yield cur
    finally:
        conn.rollback()
        conn.close()


def test_bi_role_reads_views_and_published_tables(bi: Any) -> None:
    for name in VIEWS + ("purchase_order", "actual_demand", "reorder_plan", "forecast",
                         "kpi_daily"):
        bi.execute(f"SELECT count(*) FROM replenish.{name}")
        assert bi.fetchone()[0] >= 0
    bi.execute("SELECT has_schema_privilege('replenish_staging', 'USAGE')")
    assert bi.fetchone() == (False,)


@pytest.mark.parametrize("what", sorted(_BI_FORBIDDEN))
def test_bi_role_cannot_write_or_see_staging(bi: Any, what: str) -> None:
    with pytest.raises(errors.InsufficientPrivilege):
        bi.execute(_BI_FORBIDDEN[what])
