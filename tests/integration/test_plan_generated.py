"""``replenish run plan`` on a generated tiny world, weeks in: every zone has room and gets
orders (the generator's min-max rule once overfilled ambient and frozen zones from about day
5, and the nightly plan then ordered nothing into them for weeks)."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from jobs import generate, plan
from jobs.config import Config
from jobs.lake import read_partition, read_range, write_partition
from jobs.world import ZONE_NAMES
from optimize.inputs import QUANTILE_COLUMNS
from tests.optimize.helpers import nb_quantiles
from tests.worlds import ingest_as_clean

START = dt.date(2025, 3, 1)
DAYS = 28
NIGHT = START + dt.timedelta(days=20)  # well past day 5


def _truth_forecasts(cfg: Config, day: dt.date) -> None:
    """lake/forecasts/date=day in jobs/score.py's layout, from the truth's distribution of
    the 7 days after ``day`` (the oracle's forecast: this test is about room, not accuracy)."""
    t = read_range(cfg.truth, "demand", day + dt.timedelta(days=1),
                   day + dt.timedelta(days=7)).to_pandas()
    t["horizon"] = (pd.to_datetime(t["date"]) - pd.Timestamp(day)).dt.days.astype("int32")
    q = nb_quantiles(t.expected_demand.to_numpy(), t.nb_dispersion.to_numpy())
    fc = pd.DataFrame({
        "run_date": day, "store_id": t.store_id, "sku_id": t.sku_id,
        "target_date": t["date"], "horizon": t.horizon, "model": "truth",
        "mean": t.expected_demand.astype(float),
        **{c: q[:, j] for j, c in enumerate(QUANTILE_COLUMNS)},
        "evening_share": 0.6, "evening_mean": 0.6 * t.expected_demand.astype(float),
        "model_version": "0", "flags": None})
    table = pa.Table.from_pandas(fc, preserve_index=False)
    table = table.cast(table.schema.set(table.schema.get_field_index("flags"),
                                        pa.field("flags", pa.string())))
    write_partition(cfg.lake, "forecasts", day, table, schema=table.schema)


@pytest.fixture(scope="module")
def night(spark, tmp_path_factory):
    """The night's plan and, last, the same night planned as if no supplier were ever late
    (``late_prob`` 0, the first night's behaviour)."""
    cfg = Config(home=tmp_path_factory.mktemp("plan-generated"), spark_shuffle_partitions=2,
                 plan_time_limit_s=20.0)
    generate.run(cfg, "tiny", START, DAYS, seed=7, progress=False)
    # every day up to the night: the inventory history the suppliers' late_prob is learnt from
    days = [START + dt.timedelta(days=i) for i in range((NIGHT - START).days + 1)]
    ingest_as_clean(cfg, days, tables=("stores", "skus", "inventory"))
    _truth_forecasts(cfg, NIGHT)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(plan, "supplier_lateness", lambda cfg, day: plan.Lateness(
            pd.Series(dtype=float, name="late_prob")))
        on_time = plan.run(cfg, NIGHT)
        never_late = read_partition(cfg.lake, "plans", NIGHT).to_pandas()
    result = plan.run(cfg, NIGHT)
    lines = read_partition(cfg.lake, "plans", NIGHT).to_pandas()
    return cfg, result, lines, (on_time, never_late)


def test_every_zone_of_every_store_has_room_and_the_plan_orders_into_every_zone(night):
    cfg, result, lines, _ = night
    assert result.heuristic + result.skipped == 0, result.fallbacks
    clean = cfg.lake / "clean"
    stores = read_partition(clean, "stores", START).to_pandas().set_index("store_id")
    skus = read_partition(clean, "skus", START).to_pandas().set_index("sku_id")
    litres = (lines.on_hand + lines.on_order) * lines.sku_id.map(skus.volume_l)
    held = lines.assign(litres=litres).groupby(["store_id", "zone"]).litres.sum()
    for (store_id, zone), litres in held.items():
        assert litres <= stores.loc[store_id, f"capacity_{zone}_l"] + 1e-6, (store_id, zone)
    # no line is held back by a zone's room, no store is told a zone is over capacity
    assert not lines.binding_constraint.fillna("").str.startswith("capacity").any()
    assert not lines.store_note.fillna("").str.contains("capacity").any()
    # every store orders into its ambient and chilled zones tonight; a zone that orders
    # nothing (tiny's two frozen SKUs, say) has the week's demand on hand already
    ordered = lines[lines.order_units > 0].groupby("zone").store_id.nunique()
    assert ordered.get("ambient", 0) == 4 and ordered.get("chilled", 0) >= 3, ordered.to_dict()
    by_zone = lines.groupby(["store_id", "zone"])
    for (store_id, zone), z in by_zone:
        if (z.order_units == 0).all():
            short = z[z.on_hand + z.on_order < z.forecast_coverage]
            assert short.empty, (store_id, zone, short[["sku_id", "on_hand"]])
    assert set(lines.zone) == set(ZONE_NAMES)
    assert np.isfinite(lines.order_value).all()


def test_the_plan_learns_each_suppliers_late_deliveries_from_the_inventory_history(night):
    cfg, result, lines, (on_time, never_late) = night
    lateness = plan.supplier_lateness(cfg, NIGHT)
    # 20 days of lead-1 deliveries seen; the generator's suppliers are late 2-12% of the time
    assert lateness.days == (NIGHT - START).days
    assert result.late_deliveries == lateness.deliveries > 100
    assert 0 < result.late_late < result.late_deliveries
    assert result.late_suppliers == lateness.suppliers == lines.supplier_id.nunique()
    assert 0.0 < result.late_prob_mean == pytest.approx(lateness.mean, abs=1e-4)
    assert lateness.late_prob.max() < 0.3
    assert "late deliveries" in result.summary() and "late_prob learnt" in result.summary()
    assert on_time.late_deliveries == 0 and "no history" in on_time.summary()
    # the lines were planned with it: the same night planned as if never late differs, and
    # orders no more in all
    key = ["store_id", "sku_id"]
    both = lines.merge(never_late, on=key, suffixes=("", "_never_late"))
    assert len(both) == len(lines) == len(never_late)
    differs = ((both.order_units != both.order_units_never_late)
               | ~np.isclose(both.expected_lost_units, both.expected_lost_units_never_late))
    assert differs.any()
    assert both.order_units.sum() >= both.order_units_never_late.sum()
