"""Features against a plain pandas reference, and the job: incremental == full recompute.

The hand-made data set has a gap (a day the pair is not stocked), a stock-out with its
last sale at 19:xx, an intermittent SKU, a new SKU that appears mid-window and a promotion.
The job runs in Spark (one task per chunk of days) on a generated ``tiny`` world.
"""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features.build import FEATURE_SCHEMA, build_features
from features.demand import DEMAND_SCHEMA, active_pairs, demand_daily, share_before_hour
from jobs import build_features as job
from jobs import generate
from jobs.config import Config
from jobs.lake import list_dates, read_partition, write_partition
from tests.worlds import ingest_as_clean

START = dt.date(2025, 1, 1)
DAYS = 40
D0 = START + dt.timedelta(days=32)
END = START + dt.timedelta(days=DAYS - 1)


def _day(i: int) -> dt.date:
    return START + dt.timedelta(days=i)


def _world():
    """(sales, inventory, promotions, calendar, weather, stores, skus) as pandas frames."""
    rng = np.random.default_rng(0)
    sales, inv = [], []
    for i in range(DAYS):
        day = _day(i)
        # SKU 1: steady seller with a weekly shape; not stocked on day 12 (a gap);
        # stock-out on day 31 after a 19:40 sale.
        if i != 12:
            n = 3 + (day.weekday() >= 5) * 2 + int(rng.integers(0, 3))
            for k in range(n):
                hours = [9, 13, 18] if i == 31 else [9, 13, 18, 20]
                hour = 19 if i == 31 and k == n - 1 else int(rng.choice(hours))
                sales.append((f"t{i}-1-{k}", 1, 1, dt.datetime.combine(day, dt.time(hour, 40)),
                              1, 50.0 * (0.8 if 20 <= i <= 22 else 1.0), 20 <= i <= 22))
            inv.append((1, 1, 0 if i == 31 else 10))
        # SKU 2: intermittent, sells every third day.
        if i % 3 == 0:
            sales.append((f"t{i}-2", 1, 2, dt.datetime.combine(day, dt.time(21, 5)), 2, 30.0,
                          False))
        inv.append((1, 2, 5))
        # SKU 3: new, launched on day 28.
        if i >= 28:
            sales.append((f"t{i}-3", 1, 3, dt.datetime.combine(day, dt.time(11, 0)), 1, 80.0,
                          False))
            inv.append((1, 3, 4))
    sales = pd.DataFrame(sales, columns=["txn_id", "store_id", "sku_id", "ts", "quantity",
                                         "unit_price", "on_promotion"])
    sales["date"] = sales.ts.dt.date
    inv = pd.DataFrame([(s, k, oh) for s, k, oh in inv], columns=["store_id", "sku_id",
                                                                    "on_hand"])
    inv["date"] = [d for i in range(DAYS) for d in [_day(i)] * (
        (i != 12) + 1 + (i >= 28))]
    for c in ["on_order", "received", "wasted", *[f"exp_{d}d" for d in range(1, 8)]]:
        inv[c] = 0
    inv["exp_later"] = inv.on_hand
    promos = pd.DataFrame([("P1", 1, 1, 0.2, "discount", _day(i)) for i in (20, 21, 22)],
                          columns=["promo_id", "store_id", "sku_id", "discount_pct",
                                   "promo_type", "date"])
    cal = pd.DataFrame([(r, i == 35, "Holi" if i in (34, 35) else None,
                         1.0 if i == 35 else (0.7 if i == 34 else 0.0), _day(i).day <= 3,
                         _day(i)) for i in range(DAYS + 10) for r in ("north", "south")],
                       columns=["region", "is_holiday", "festival", "festival_intensity",
                                "is_payday", "date"])
    weather = pd.DataFrame([("Delhi", 30.0 + i % 5, float(i % 4 == 0) * 12.0, 0.5, _day(i))
                            for i in range(DAYS)],
                           columns=["city", "temp_max_c", "rain_mm", "humidity", "date"])
    stores = pd.DataFrame([dict(store_id=1, store_name="A", city="Delhi", region="north",
                                latitude=28.6, longitude=77.2, customer_density=10.0,
                                competitor_proximity_km=1.0, demographic_index=0.5,
                                capacity_ambient_l=1000.0, capacity_chilled_l=500.0,
                                capacity_frozen_l=200.0, daily_budget=5000.0,
                                opened_on=dt.date(2024, 1, 1))])
    skus = pd.DataFrame([dict(sku_id=k, sku_name=f"s{k}", category=c, zone="ambient",
                              is_perishable=k == 1, shelf_life_days=3 if k == 1 else 180,
                              unit_cost=p * 0.7, price=p, case_pack=6, moq_cases=1,
                              supplier_id=1, lead_time_days=1, volume_l=0.5, launched_on=lo)
                         for k, c, p, lo in ((1, "dairy", 50.0, dt.date(2024, 1, 1)),
                                             (2, "snacks", 30.0, dt.date(2024, 1, 1)),
                                             (3, "bakery", 80.0, _day(28)))])
    return sales, inv, promos, cal, weather, stores, skus


@pytest.fixture(scope="module")
def computed():
    sales, inv, promos, cal, weather, stores, skus = _world()
    dates = [_day(i) for i in range(DAYS)]
    pairs = active_pairs(inv, stores, skus, dates)
    demand = demand_daily(sales, inv, pairs, stores=stores, skus=skus)
    feats = build_features(demand, cal, weather, promos, stores, skus, D0, END)
    return demand, feats


def test_demand_daily_matches_a_pandas_groupby(computed):
    demand, _ = computed
    sales, inv, *_ = _world()
    units = sales.groupby(["date", "store_id", "sku_id"]).quantity.sum()
    evening = sales[sales.ts.dt.hour.between(18, 21)].groupby(
        ["date", "store_id", "sku_id"]).quantity.sum()
    d = demand.set_index(["date", "store_id", "sku_id"]).sort_index()
    assert len(d) == len(inv), "one row per active pair and day, zero-sale days included"
    assert (d.units_sold == units.reindex(d.index).fillna(0)).all()
    assert (d.evening_units == evening.reindex(d.index).fillna(0)).all()
    out = d.loc[(_day(31), 1, 1)]
    assert bool(out.stockout) and bool(out.censored)
    share = share_before_hour()[19]
    assert out.demand == pytest.approx(min(out.units_sold / share, 3 * out.units_sold))
    normal = d[~d.stockout.astype(bool)]
    assert (normal.demand == normal.units_sold).all(), "no correction without a stock-out"
    assert (_day(12), 1, 1) not in d.index, "a day the pair is not stocked has no row"


def _reference(demand: pd.DataFrame, day: dt.date, store: int, sku: int) -> dict:
    """Obviously-correct history features for one row, straight from the definitions."""
    s = demand[(demand.store_id == store) & (demand.sku_id == sku)].set_index("date")

    def window(k: int) -> pd.DataFrame:
        return s[(s.index >= day - dt.timedelta(days=k)) & (s.index < day)]

    out = {"history_days": len(window(30))}
    for k in (1, 2, 3, 7, 14, 30):
        prev = day - dt.timedelta(days=k)
        out[f"lag_{k}"] = s.demand.get(prev, np.nan)
    for k in (3, 7, 14, 30):
        w = window(k).demand
        out[f"roll_mean_{k}"] = w.mean() if len(w) else np.nan
        out[f"roll_std_{k}"] = w.std(ddof=0) if len(w) else np.nan
    w30 = window(30)
    sold = w30[w30.units_sold > 0]
    out["days_since_last_sale"] = (day - max(sold.index)).days if len(sold) else 31
    for k in (7, 30):
        w = window(k)
        out[f"zero_sale_share_{k}"] = (w.units_sold == 0).mean() if len(w) else np.nan
    return out


def test_history_features_match_the_reference(computed):
    demand, feats = computed
    checked = 0
    for row in feats.itertuples():
        ref = _reference(demand, row.date, row.store_id, row.sku_id)
        for name, expected in ref.items():
            got = getattr(row, name)
            if pd.isna(expected):
                assert pd.isna(got), (row.date, row.sku_id, name, got)
            else:
                assert got == pytest.approx(expected, rel=1e-9, abs=1e-9), (
                    row.date, row.sku_id, name, got, expected)
            checked += 1
    assert checked > 300


def test_calendar_promotion_and_new_sku_features(computed):
    _, feats = computed
    f = feats.set_index(["date", "sku_id"])
    assert set(feats.date) == {D0 + dt.timedelta(days=i) for i in range((END - D0).days + 1)}
    assert f.loc[(_day(34), 1)].days_to_next_festival == 0
    assert f.loc[(_day(33), 1)].days_to_next_festival == 1
    assert f.loc[(_day(33), 1)].day_of_week == _day(33).weekday()
    new = f.loc[(_day(33), 3)]
    assert new.history_days == 5 and bool(new.is_new_sku)
    assert pd.isna(new.lag_7), "short history: the week-ago lag does not exist"
    assert not pd.isna(new.lag_1)
    assert feats.units_sold.notna().all()


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory) -> Config:
    """A tiny generated world ingested, with raw copied to clean (validation is tested
    elsewhere)."""
    cfg = Config(home=tmp_path_factory.mktemp("features-job"))
    generate.run(cfg, "tiny", dt.date(2025, 5, 1), 36, seed=11, progress=False)
    ingest_as_clean(cfg)
    return cfg


def test_incremental_night_equals_full_recompute(spark, lake):
    last = dt.date(2025, 6, 5)
    full = job.run(lake, start=dt.date(2025, 6, 1), end=last)
    assert full.feature_rows > 0 and full.feature_rows == full.demand_rows
    path = str(lake.lake / "features" / f"date={last}")
    keys = ["store_id", "sku_id"]
    before = spark.read.parquet(path).toPandas().sort_values(keys).reset_index(drop=True)
    night = job.run(lake, last)
    after = spark.read.parquet(path).toPandas().sort_values(keys).reset_index(drop=True)
    assert night.feature_rows == len(before)
    pd.testing.assert_frame_equal(before, after[before.columns])
    # Only the night's partition was rewritten; the others are still there.
    assert len(list_dates(lake.lake, "features")) == 5


def test_the_job_writes_the_catalog_types_and_leaves_no_staging(lake):
    day = dt.date(2025, 6, 3)
    features = pq.read_table(lake.lake / "features" / f"date={day}")
    assert features.schema.remove_metadata() == FEATURE_SCHEMA.remove(0)  # without the date
    demand = pq.read_table(lake.lake / "demand_daily" / f"date={day}")
    assert demand.schema.remove_metadata() == DEMAND_SCHEMA
    assert features.num_rows == demand.num_rows > 0
    assert not [p for p in lake.lake.iterdir() if p.name.startswith(".")]


def test_a_range_in_several_chunks_equals_one_chunk(spark, lake, monkeypatch):
    first, last = dt.date(2025, 6, 1), dt.date(2025, 6, 5)
    one = {d: pq.read_table(lake.lake / "features" / f"date={d}")
           for d in job._dates(first, last)}
    monkeypatch.setattr(job, "CHUNK_DAYS", 2)
    assert len(job._chunks(first, last, job.CHUNK_DAYS)) == 3
    job.run(lake, start=first, end=last)
    for d, table in one.items():
        assert pq.read_table(lake.lake / "features" / f"date={d}").equals(table), d


def test_a_failing_task_leaves_the_lake_as_it_was(spark, lake):
    """Write-audit-publish: a failure in any task publishes nothing."""
    day = dt.date(2025, 6, 5)
    before = pq.read_table(lake.lake / "features" / f"date={day}")
    clean = job.clean_root(lake)
    stock = read_partition(clean, "inventory", day)
    try:
        # a duplicated stock row: the task for this day raises
        write_partition(clean, "inventory", day, pa.concat_tables([stock, stock.slice(0, 1)]))
        with pytest.raises(Exception, match="more than one stock row"):
            job.run(lake, start=dt.date(2025, 6, 4), end=day)
    finally:
        write_partition(clean, "inventory", day, stock)
    assert pq.read_table(lake.lake / "features" / f"date={day}").equals(before)
    assert not [p for p in lake.lake.iterdir() if p.name.startswith(".")]


def test_missing_clean_partition_is_a_clear_error(lake):
    with pytest.raises(FileNotFoundError, match=r"table 'sales' \(clean\), partitions "
                       r"\['2025-07-01'\]"):
        job.run(lake, dt.date(2025, 7, 1))


def test_chunks_cover_the_range_evenly():
    d = dt.date(2024, 1, 1)
    chunks = job._chunks(d, d + dt.timedelta(days=729), 46)
    sizes = [(b - a).days + 1 for a, b in chunks]
    assert len(chunks) == 16 and sum(sizes) == 730 and max(sizes) - min(sizes) <= 1
    assert all(b + dt.timedelta(days=1) == a for (_, b), (a, _) in zip(chunks, chunks[1:],
                                                                       strict=False))
    assert job._chunks(d, d, 46) == [(d, d)]


def test_a_range_split_into_store_groups_equals_one_task_per_chunk(spark, lake, monkeypatch):
    """A world with more pairs than PAIRS_PER_TASK is built by groups of stores: the same
    rows, in the same order (the group files of a date read back in store order)."""
    first, last = dt.date(2025, 6, 1), dt.date(2025, 6, 5)
    job.run(lake, start=first, end=last)
    one = {(t, d): pq.read_table(lake.lake / t / f"date={d}")
           for t in ("features", "demand_daily") for d in job._dates(first, last)}
    clean = job.clean_root(lake)
    stores = job._snapshot(clean, "stores", last)
    skus = job._snapshot(clean, "skus", last)
    monkeypatch.setattr(job, "PAIRS_PER_TASK", len(skus))  # one store per group
    groups = job._store_groups(stores, skus, job.PAIRS_PER_TASK)
    assert len(groups) == len(stores) > 1
    job.run(lake, start=first, end=last)
    folder = lake.lake / "features" / f"date={last}"
    assert len(list(folder.glob("*.parquet"))) == len(stores)
    for (t, d), table in one.items():
        again = pq.read_table(lake.lake / t / f"date={d}")
        assert again.num_rows == table.num_rows > 0, (t, d)
        assert again.combine_chunks().equals(table.combine_chunks()), (t, d)


def test_store_groups_are_whole_consecutive_stores_within_the_pair_budget():
    stores = pd.DataFrame({"store_id": [5, 1, 3, 2, 4, 6, 7]})
    skus = pd.DataFrame({"sku_id": range(10)})
    assert job._store_groups(stores, skus, 70) == (None,)
    assert job._store_groups(stores, skus, 30) == ((1, 2, 3), (4, 5, 6), (7,))
    assert job._store_groups(stores, skus, 5) == tuple((i,) for i in range(1, 8))
