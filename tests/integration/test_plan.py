"""``replenish run plan`` on a hand-made lake: 3 stores x a few SKUs, real Spark.

Store 1 is ordinary (plus an inventory row for a SKU missing from the skus snapshot), store 2
has a tight chilled zone and a pair without a forecast, store 3's budget is negative (no
plan can meet it). Supplier 30 has a minimum order value.
"""
from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from jobs import plan
from jobs.config import Config
from jobs.lake import partition_dir, read_partition, write_partition
from jobs.schema import EXPIRY_COLUMNS
from jobs.steps import STEPS
from optimize import StoreInputs, check_plan
from optimize.inputs import QUANTILE_COLUMNS
from optimize.runner import PLAN_TABLE_COLUMNS, WAREHOUSE_COLUMNS
from tests.optimize.helpers import nb_quantiles

D = dt.date(2025, 3, 10)
SNAP = dt.date(2025, 3, 1)
#: sku_id: category, zone, perishable, shelf life, cost, price, case, moq, supplier, lead, volume
SKUS = {
    1: ("snacks", "ambient", False, 120, 20.0, 30.0, 12, 1, 10, 2, 0.3),
    2: ("dairy", "chilled", True, 3, 40.0, 55.0, 6, 1, 20, 1, 1.0),
    3: ("frozen", "frozen", False, 180, 90.0, 140.0, 4, 1, 20, 1, 1.5),
    4: ("fruits_vegetables", "ambient", True, 2, 30.0, 45.0, 5, 2, 30, 1, 0.8),
    5: ("beverages", "ambient", False, 365, 25.0, 40.0, 12, 1, 10, 3, 1.2),
}
#: store_id: (ambient L, chilled L, frozen L, daily budget INR)
STORES = {1: (5000.0, 800.0, 400.0, 50_000.0), 2: (5000.0, 25.0, 400.0, 50_000.0),
          3: (5000.0, 800.0, 400.0, -100.0)}
PAIRS = [(1, s) for s in (1, 2, 3, 4, 5, 99)] + [(2, s) for s in (1, 2, 3, 4)] + \
    [(3, s) for s in (1, 2, 3, 4, 5)]
NO_FORECAST = (2, 4)
MIN_ORDER = {30: 500.0}


def _write_lake(cfg: Config) -> None:
    clean = cfg.lake / "clean"
    stores = pd.DataFrame([{
        "store_id": s, "store_name": f"store {s}", "city": "Delhi", "region": "north",
        "latitude": 28.6, "longitude": 77.2, "customer_density": 10.0,
        "competitor_proximity_km": 1.0, "demographic_index": 0.5, "capacity_ambient_l": a,
        "capacity_chilled_l": c, "capacity_frozen_l": f, "daily_budget": b,
        "opened_on": dt.date(2024, 1, 1)} for s, (a, c, f, b) in STORES.items()])
    write_partition(clean, "stores", SNAP, pa.Table.from_pandas(stores))
    skus = pd.DataFrame([{
        "sku_id": k, "sku_name": f"sku {k}", "category": v[0], "zone": v[1],
        "is_perishable": v[2], "shelf_life_days": v[3], "unit_cost": v[4], "price": v[5],
        "case_pack": v[6], "moq_cases": v[7], "supplier_id": v[8], "lead_time_days": v[9],
        "volume_l": v[10], "launched_on": dt.date(2024, 1, 1)} for k, v in SKUS.items()])
    write_partition(clean, "skus", SNAP, pa.Table.from_pandas(skus))
    rng = np.random.default_rng(3)
    inv = []
    for store, sku in PAIRS:
        exp = dict.fromkeys(EXPIRY_COLUMNS, 0)
        perishable = SKUS.get(sku, (None, None, False))[2]
        units = int(rng.integers(0, 15))
        exp["exp_1d" if perishable else "exp_later"] = units
        inv.append({"store_id": store, "sku_id": sku, "on_hand": units,
                    "on_order": int(rng.integers(0, 5)) if not perishable else 0,
                    "received": 0, "wasted": 0, **exp})
    write_partition(clean, "inventory", D, pa.Table.from_pandas(pd.DataFrame(inv)))
    fc = []
    for store, sku in PAIRS:
        if (store, sku) == NO_FORECAST:
            continue
        mean = np.round(rng.uniform(1.0, 12.0) * np.array([1, 1.1, .9, 1, 1.2, 1.3, 1]), 2)
        q = nb_quantiles(mean, 6.0)
        for h in range(7):
            fc.append({"run_date": D, "store_id": store, "sku_id": sku,
                       "target_date": D + dt.timedelta(days=h + 1), "horizon": h + 1,
                       "model": "ensemble", "mean": float(mean[h]),
                       **{c: float(q[h, j]) for j, c in enumerate(QUANTILE_COLUMNS)},
                       "evening_share": 0.6, "evening_mean": 0.6 * float(mean[h]),
                       "model_version": "1", "flags": None})
    table = pa.Table.from_pandas(pd.DataFrame(fc), preserve_index=False)
    table = table.cast(table.schema.set(table.schema.get_field_index("flags"),
                                        pa.field("flags", pa.string())))
    write_partition(cfg.lake, "forecasts", D, table, schema=table.schema)
    sup = pa.table({"supplier_id": pa.array(list(MIN_ORDER), pa.int32()),
                    "min_order_value": pa.array(list(MIN_ORDER.values()), pa.float64())})
    write_partition(clean, "suppliers", SNAP, sup, schema=sup.schema)


def _read(cfg: Config, table: str) -> pd.DataFrame:
    return read_partition(cfg.lake, table, D).to_pandas()


@pytest.fixture(scope="module")
def night(spark, tmp_path_factory):
    cfg = Config(home=tmp_path_factory.mktemp("plan"), spark_shuffle_partitions=2,
                 plan_time_limit_s=20.0)
    _write_lake(cfg)
    result = plan.run(cfg, D)
    return cfg, result, _read(cfg, "plans"), _read(cfg, "purchase_orders")


def test_step_is_registered():
    assert STEPS["plan"].load() is plan.run


def test_one_line_per_active_pair_with_the_warehouse_columns(night):
    _, result, lines, _ = night
    assert list(lines.columns) == list(PLAN_TABLE_COLUMNS)
    assert list(lines.columns[:20]) == list(WAREHOUSE_COLUMNS)
    assert sorted(zip(lines.store_id, lines.sku_id, strict=True)) == sorted(PAIRS)
    not_null = [c for c in WAREHOUSE_COLUMNS if c not in (
        "expected_service_level", "expected_waste_units", "binding_constraint",
        "fallback_reason")]
    assert not lines[not_null].isna().any().any()
    assert (lines.run_date == D).all()
    assert result.lines == len(PAIRS) and result.stores == 3
    assert result.lines_ordered > 0 and result.units == lines.order_units.sum()
    assert (lines.order_units == lines.order_cases * lines.case_pack).all()
    lead = lines.lead_time_days.clip(lower=1)
    assert (pd.to_datetime(lines.delivery_date) == pd.Timestamp(D)
            + pd.to_timedelta(lead, unit="D")).all()
    text = result.summary()
    assert "3 stores" in text and "FALLBACK store 3" in text


def test_check_plan_holds_on_every_store(night):
    cfg, _, lines, _ = night
    pcfg = plan.plan_config(cfg)
    inv = read_partition(cfg.lake / "clean", "inventory", D).to_pandas()
    sku = pd.DataFrame.from_dict(SKUS, orient="index", columns=[
        "category", "zone", "is_perishable", "shelf_life_days", "unit_cost", "price",
        "case_pack", "moq_cases", "supplier_id", "lead_time_days", "volume_l"]
    ).rename_axis("sku_id").reset_index()
    for store_id, (a, c, f, b) in STORES.items():
        ln = inv[inv.store_id == store_id].merge(sku, on="sku_id")
        st = StoreInputs(store_id, a, c, f, b, MIN_ORDER)
        p = lines[(lines.store_id == store_id) & lines.sku_id.isin(ln.sku_id)]
        fake = SimpleNamespace(lines=p.fillna({"expected_service_level": 0.0,
                                              "expected_waste_units": 0.0}),
                               store_id=store_id, note="checked")
        assert check_plan(fake, ln, st, pcfg) == [], store_id
        if b > 0:
            assert p.order_value.sum() <= b + 1e-6
        assert p.order_volume_l[p.zone == "chilled"].sum() <= c + 1e-6


def test_impossible_budget_falls_back_with_its_reason(night):
    _, result, lines, _ = night
    s3 = lines[lines.store_id == 3]
    assert (s3.solver_status == "heuristic").all() and (s3.method == "greedy").all()
    assert (s3.solver_result == "infeasible").all()
    assert (s3.order_units == 0).all()
    assert s3.fallback_reason.str.contains("budget").all()
    assert result.heuristic == 1 and result.optimal + result.feasible == 2
    ok = lines[lines.store_id != 3]
    assert ok.solver_status.isin(["optimal", "feasible", "skipped"]).all()


def test_missing_inputs_get_a_zero_line_with_a_reason(night):
    _, _, lines, _ = night
    unknown = lines[(lines.store_id == 1) & (lines.sku_id == 99)].iloc[0]
    assert unknown.solver_status == "skipped" and unknown.order_units == 0
    assert "not in the skus snapshot" in unknown.fallback_reason
    nofc = lines[(lines.store_id == NO_FORECAST[0]) & (lines.sku_id == NO_FORECAST[1])].iloc[0]
    assert nofc.order_units == 0 and "no forecast" in nofc.fallback_reason
    assert pd.isna(nofc.expected_service_level)
    solved = lines[(lines.store_id == 1) & (lines.sku_id != 99)]
    assert solved.fallback_reason.isna().all()
    assert (solved.forecast_coverage > 0).all()
    assert np.allclose(solved.safety_stock, solved.order_up_to - solved.forecast_coverage)


def test_purchase_orders_sum_to_the_plan(night):
    _, result, lines, po = night
    ordered = lines[lines.order_units > 0]
    want = ordered.groupby(["store_id", "supplier_id", "delivery_date"]).agg(
        n_lines=("sku_id", "size"), order_units=("order_units", "sum"),
        order_value=("order_value", "sum")).reset_index()
    got = po.sort_values(["store_id", "supplier_id", "delivery_date"], ignore_index=True)
    assert len(got) == len(want) == result.purchase_orders > 0
    assert (got.n_lines.to_numpy() == want.n_lines.to_numpy()).all()
    assert (got.order_units.to_numpy() == want.order_units.to_numpy()).all()
    assert np.allclose(got.order_value, want.order_value)
    by_supplier = lines.groupby("supplier_id").order_units.sum()
    assert po.groupby("supplier_id").order_units.sum().to_dict() == \
        by_supplier[by_supplier > 0].to_dict()
    for r in got.itertuples():
        assert r.po_id == plan.po_id(D, r.store_id, r.supplier_id, r.delivery_date)
        minimum = MIN_ORDER.get(r.supplier_id, 0.0)
        assert r.min_order_value == minimum
        assert r.min_order_met == (r.order_value >= minimum - 1e-6)
    assert po.po_id.is_unique


def test_rerun_gives_identical_rows(night):
    cfg, _, lines, po = night
    plan.run(cfg, D)
    keys = ["store_id", "sku_id"]
    pd.testing.assert_frame_equal(
        _read(cfg, "plans").sort_values(keys, ignore_index=True),
        lines.sort_values(keys, ignore_index=True))
    pd.testing.assert_frame_equal(
        _read(cfg, "purchase_orders").sort_values("po_id", ignore_index=True),
        po.sort_values("po_id", ignore_index=True))
    assert [p.name for p in partition_dir(cfg.lake, "plans", D).parent.iterdir()] == \
        [f"date={D}"]
    assert not list(cfg.lake.glob(".staging-*")), "staging folders are cleaned up"


def test_missing_forecasts_partition_is_a_clear_error(night):
    cfg = night[0]
    later = D + dt.timedelta(days=1)
    with pytest.raises(FileNotFoundError, match=f"'forecasts': partition date={later}"):
        plan.run(cfg, later)


def test_a_store_subset_is_replanned_and_the_other_stores_kept(night, tmp_path):
    import shutil

    cfg0, _, lines, po = night
    cfg = cfg0.replace(home=tmp_path / "copy")
    shutil.copytree(cfg0.home, cfg.home)
    # store 1's forecasts triple: only store 1 may change, stores 2 and 3 are kept as they are
    fc = read_partition(cfg.lake, "forecasts", D).to_pandas()
    one = fc["store_id"] == 1
    fc.loc[one, ["mean", *QUANTILE_COLUMNS]] = fc.loc[one, ["mean", *QUANTILE_COLUMNS]] * 3
    table = pa.Table.from_pandas(fc, preserve_index=False)
    write_partition(cfg.lake, "forecasts", D, table, schema=table.schema)
    result = plan.run(cfg.replace(stores=(1,)), D)
    assert result.stores == 1 and result.kept_stores == 2
    assert "kept from the previous run" in result.summary()
    after = _read(cfg, "plans")
    keys = ["store_id", "sku_id"]
    assert sorted(map(tuple, after[keys].to_numpy())) == sorted(map(tuple, lines[keys].to_numpy()))
    others = lines.loc[lines["store_id"] != 1].sort_values(keys, ignore_index=True)
    pd.testing.assert_frame_equal(
        after.loc[after["store_id"] != 1].sort_values(keys, ignore_index=True), others)
    mine = after.loc[after["store_id"] == 1, "order_units"].sum()
    assert mine > lines.loc[lines["store_id"] == 1, "order_units"].sum()
    new_po = _read(cfg, "purchase_orders")
    pd.testing.assert_frame_equal(
        new_po.loc[new_po["store_id"] != 1].sort_values("po_id", ignore_index=True),
        po.loc[po["store_id"] != 1].sort_values("po_id", ignore_index=True))
    assert new_po.loc[new_po["store_id"] == 1, "order_units"].sum() == mine
    with pytest.raises(ValueError, match=r"stores \[7\].*'inventory' \(clean\).*2025-03-10"):
        plan.run(cfg.replace(stores=(1, 7)), D)
