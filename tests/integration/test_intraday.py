"""Intraday top-ups on a tiny generated world with a real warehouse."""
from __future__ import annotations

import datetime as dt
import hashlib

import pandas as pd
import pyarrow as pa
import pytest

from jobs import generate, ingest, intraday
from jobs.lake import list_dates, partition_dir, read_partition, write_partition
from tests.worlds import ingest_as_clean

START = dt.date(2025, 8, 1)
DAYS = 10
D = START + dt.timedelta(days=DAYS - 1)
PREV = D - dt.timedelta(days=1)


def test_remaining_share_follows_the_evening_peak():
    assert intraday.remaining_share(0) == pytest.approx(1.0)
    assert intraday.remaining_share(8) > intraday.remaining_share(18) > 0.3
    assert intraday.remaining_share(22) < 0.01


def test_top_ups_fill_the_gap_in_cases_within_the_budget():
    lines = pd.DataFrame({
        "store_id": [1, 1, 1, 2], "sku_id": [1, 2, 3, 1],
        "on_hand_now": [0, 10, 2, 0], "remaining_mean": [8.0, 5.0, 30.0, 4.0],
        "remaining_q90": [11.0, 8.0, 40.0, 6.0], "case_pack": [6, 6, 10, 4],
        "unit_cost": [10.0, 10.0, 50.0, 1.0], "price": [20.0, 20.0, 60.0, 2.0]})
    out = intraday.top_ups(lines, pd.Series({1: 1000.0, 2: 1000.0}), 0.15)
    by = out.set_index(["store_id", "sku_id"])
    assert by.loc[(1, 1), "topup_units"] == 12  # 11 short -> 2 cases of 6
    assert by.loc[(1, 2), "topup_units"] == 0  # enough on hand
    # store 1 may spend 150: sku 1 (120, margin 10/unit) fits; sku 3 (4 cases = 2000) not
    assert by.loc[(1, 3), "topup_units"] == 0 and by.loc[(1, 3), "reason"].startswith("over")
    assert by.loc[(2, 1), "topup_units"] == 8
    assert (out["topup_units"] >= 0).all()
    spent = out.groupby("store_id")["order_value"].sum()
    assert (spent <= 150 + 1e-9).all()


@pytest.fixture(scope="module")
def world(spark, pg, tmp_path_factory):
    from jobs import warehouse

    cfg = pg.replace(home=tmp_path_factory.mktemp("intraday"),
                     warehouse_url=pg.warehouse_url or warehouse.url(pg))
    generate.run(cfg, "tiny", START, DAYS, seed=3, progress=False)
    ingest_as_clean(cfg, tables=("stores", "skus", "inventory"))
    raw = ingest.raw_root(cfg)
    # the nightly forecast of PREV: the pair's mean sales of the week, with a spread
    sales = pd.concat([read_partition(raw, "sales", d).to_pandas()
                       for d in list_dates(raw, "sales") if d <= PREV])
    mean = (sales.groupby(["store_id", "sku_id"])["quantity"].sum() / (DAYS - 1)).rename("mean")
    inv = read_partition(raw, "inventory", PREV, columns=["store_id", "sku_id"]).to_pandas()
    fc = inv.merge(mean.reset_index(), how="left").fillna({"mean": 0.0})
    fc = fc.assign(run_date=PREV, target_date=D, horizon=1, q50=fc["mean"],
                   q80=fc["mean"] * 1.3 + 1, q90=fc["mean"] * 1.5 + 2,
                   q95=fc["mean"] * 1.7 + 2, q99=fc["mean"] * 2 + 3)
    t = pa.Table.from_pandas(fc, preserve_index=False)
    write_partition(cfg.lake, "forecasts", PREV, t, schema=t.schema)
    return cfg


def test_intraday_adds_top_ups_and_publishes_them_idempotently(world):
    from jobs import warehouse

    plan = pa.table({"store_id": [1], "sku_id": [1], "order_units": [6],
                     "delivery_date": pa.array([D], pa.date32())})
    write_partition(world.lake, "plans", PREV, plan, schema=plan.schema)
    before = _digest(partition_dir(world.lake, "plans", PREV))
    res = intraday.run(world, D, 14)
    assert res.rows_in == res.rows_accepted + sum(res.rejected.values())
    assert res.topups > 0 and res.units > 0
    assert _digest(partition_dir(world.lake, "plans", PREV)) == before  # the plan is untouched
    rows = read_partition(world.lake, "topups", D).to_pandas()
    assert (rows["hour"] == 14).all() and (rows["topup_units"] > 0).all()
    assert (rows["topup_units"] % rows["case_pack"] == 0).all()
    again = intraday.run(world, D, 14)
    assert again.topups == res.topups
    intraday.run(world, D, 18)
    with warehouse.connect(world) as conn, conn.cursor() as cur:
        cur.execute("SELECT hour, count(*), sum(topup_units) FROM replenish.topup_order "
                    "WHERE run_date = %s GROUP BY hour ORDER BY hour", (D,))
        published = cur.fetchall()
    assert published[0] == (14, res.topups, res.units)
    assert [h for h, _, _ in published] == [14, 18]
    lake_hours = sorted(read_partition(world.lake, "topups", D).to_pandas()["hour"].unique())
    assert lake_hours == [14, 18]


def test_bad_snapshot_lines_are_rejected_and_counted(world, tmp_path):
    cfg = world.replace(home=tmp_path / "copy")
    import shutil

    shutil.copytree(world.home, cfg.home, ignore=shutil.ignore_patterns("pg"))
    sales = read_partition(cfg.landing, "sales", D).to_pandas()
    sales.loc[sales.index[:3], "quantity"] = -5
    sales.loc[sales.index[3:5], "unit_price"] = 0.0
    sales["ts"] = pd.to_datetime(sales["ts"])
    sales.loc[sales.index[0], "ts"] = pd.Timestamp(D) + pd.Timedelta(hours=9)
    t = pa.Table.from_pandas(sales, preserve_index=False)
    write_partition(cfg.landing, "sales", D, t, schema=t.schema)
    res = intraday.run(cfg, D, 23)
    assert res.rejected.get("quantity_in_range") == 3
    assert res.rejected.get("price_positive") == 2
    assert res.rows_in == res.rows_accepted + 5


def test_phases_one_by_one_equal_the_whole_run_and_the_audit_names_its_rule(world, tmp_path):
    import shutil

    cfg = world.replace(home=tmp_path / "copy")
    shutil.copytree(world.home, cfg.home, ignore=shutil.ignore_patterns("pg"))
    with pytest.raises(FileNotFoundError, match="intraday_forecasts.*rescore step for hour 16"):
        intraday.topup(cfg, D, 16)
    intraday.snapshot(cfg, D, 16)
    scored = intraday.rescore(cfg, D, 16)
    pairs = read_partition(cfg.lake, "intraday_forecasts", D).to_pandas()
    pairs = pairs.loc[pairs["hour"] == 16]
    assert len(pairs) == scored.pairs > 0
    # the rest of the day is a share of the day's forecast, scaled by a bounded factor
    share = intraday.remaining_share(16)
    ratio = pairs["remaining_mean"] / (pairs["mean"] * share)
    assert ratio.dropna().between(0.5 - 1e-9, 2.0 + 1e-9).all()
    assert (pairs["on_hand_now"] >= 0).all()
    res = intraday.topup(cfg, D, 16)
    assert "3 rules" in intraday.audit(cfg, D, 16)
    whole = intraday.run(world.replace(home=cfg.home), D, 16)
    assert (whole.topups, whole.units) == (res.topups, res.units)
    # a tampered lake row fails the audit with table, partition and rule, and is not published
    rows = read_partition(cfg.lake, "topups", D).to_pandas()
    first = rows.index[rows["hour"] == 16][0]
    rows.loc[first, "topup_units"] = -rows.loc[first, "topup_units"]
    t = pa.Table.from_pandas(rows, preserve_index=False)
    write_partition(cfg.lake, "topups", D, t, schema=t.schema)
    with pytest.raises(ValueError, match=r"topups.*date=2025-08-10 hour=16.*non_negative"):
        intraday.audit(cfg, D, 16)
    with pytest.raises(ValueError, match="non_negative"):
        intraday.publish(cfg, D, 16)


def test_missing_inputs_are_clear_errors(world, tmp_path):
    import shutil

    with pytest.raises(FileNotFoundError, match="sales.*2025-08-11.*not arrived"):
        intraday.run(world, D + dt.timedelta(days=1), 10)
    cfg = world.replace(home=tmp_path / "copy")
    shutil.copytree(world.home, cfg.home, ignore=shutil.ignore_patterns("pg"))
    shutil.rmtree(partition_dir(cfg.lake, "forecasts", PREV))
    with pytest.raises(FileNotFoundError, match="forecasts.*2025-08-09.*score first"):
        intraday.run(cfg, D, 10)


def _digest(folder) -> str:
    h = hashlib.sha256()
    for f in sorted(folder.glob("*")):
        h.update(f.read_bytes())
    return h.hexdigest()

