"""Ingest copies a day's landing partitions into lake/raw, faithfully and idempotently."""
from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs import generate, ingest
from jobs.config import Config
from jobs.lake import list_dates, partition_dir, read_partition

DAY = dt.date(2025, 3, 2)


@pytest.fixture()
def landed(tmp_path) -> Config:
    cfg = Config(home=tmp_path / "h")
    generate.run(cfg, "tiny", dt.date(2025, 3, 1), 3, seed=3, progress=False)
    return cfg


def test_copies_every_table_for_the_date_only(landed):
    result = ingest.run(landed, DAY)
    raw = ingest.raw_root(landed)
    for table in ingest.DAILY_TABLES:
        if table != "promotions":
            assert list_dates(raw, table) == [DAY]
        assert read_partition(raw, table, DAY).equals(read_partition(landed.landing, table, DAY))
        assert result.rows[table] == read_partition(landed.landing, table, DAY).num_rows
    # The dimension snapshot in force on DAY is the one of the first day.
    assert list_dates(raw, "stores") == [dt.date(2025, 3, 1)]
    assert "sales" in result.summary()


def test_promotions_of_the_coming_week_come_in_ahead(landed):
    """The window is 1-3 March and the generator published the promotion plan through
    10 March: the run of 2 March brings in 3-9 March's promotions, not the 10th's."""
    result = ingest.run(landed, DAY)
    raw = ingest.raw_root(landed)
    ahead = [DAY + dt.timedelta(days=k) for k in range(1, 8)]
    assert list_dates(raw, "promotions") == [DAY, *ahead]
    assert sorted(result.promotions_ahead) == ahead
    for day in ahead:
        assert read_partition(raw, "promotions", day).equals(
            read_partition(landed.landing, "promotions", day))
        assert result.promotions_ahead[day] == read_partition(raw, "promotions", day).num_rows
    assert "ahead (2025-03-03..2025-03-09, 7 partition(s))" in result.summary()
    # Only the promotions come in ahead, and not when they were not asked for.
    assert list_dates(raw, "sales") == [DAY]
    again = ingest.run(landed, DAY + dt.timedelta(days=1), tables=("sales",))
    assert not again.promotions_ahead
    assert list_dates(raw, "promotions")[-1] == ahead[-1]


def test_a_backfill_brings_promotions_ahead_of_its_last_date_only(landed, monkeypatch):
    """Over 1-3 March the earlier dates' coming weeks are in the range or in the last
    date's, so only the 3rd brings promotions in ahead (4-10 March): the same raw lake as
    night by night, each partition copied once."""
    from jobs.steps import run_step

    copied = []
    real = ingest._copy_partition
    monkeypatch.setattr(ingest, "_copy_partition",
                        lambda table, day, *a: copied.append((table, day)) or real(table, day, *a))
    results = run_step(landed, "ingest", dt.date(2025, 3, 1), dt.date(2025, 3, 3),
                       progress=False)
    assert [bool(r.promotions_ahead) for r in results] == [False, False, True]
    days = list_dates(ingest.raw_root(landed), "promotions")
    assert days == [dt.date(2025, 3, d) for d in range(1, 11)]
    assert sorted(d for t, d in copied if t == "promotions") == days  # each once


def test_rerun_replaces_the_partition_with_identical_files(landed):
    ingest.run(landed, DAY)
    folder = partition_dir(ingest.raw_root(landed), "sales", DAY)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    ingest.run(landed, DAY)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_missing_partition_names_table_and_date(landed):
    with pytest.raises(ingest.IngestError, match=r"table 'sales', partition date=2025-03-09: "
                       r"missing in the landing area"):
        ingest.run(landed, dt.date(2025, 3, 9), tables=("sales",))


def test_empty_partition_is_an_error(landed):
    folder = partition_dir(landed.landing, "sales", DAY)
    for f in folder.iterdir():
        f.unlink()
    with pytest.raises(ingest.IngestError, match="holds no files"):
        ingest.run(landed, DAY, tables=("sales",))


def test_a_file_that_is_not_parquet_is_named(landed):
    folder = partition_dir(landed.landing, "weather", DAY)
    for f in folder.iterdir():
        f.write_text("this is not parquet")
    with pytest.raises(ingest.IngestError, match=r"table 'weather', partition date=2025-03-02: "
                       r"part-00000.parquet is not a Parquet file"):
        ingest.run(landed, DAY, tables=("weather",))
    # Nothing half-written is left in the lake.
    assert not partition_dir(ingest.raw_root(landed), "weather", DAY).exists()


def test_csv_extracts_become_parquet(landed):
    folder = partition_dir(landed.landing, "weather", DAY)
    for f in folder.iterdir():
        f.unlink()
    (folder / "weather.csv").write_text("city,temp_max_c,rain_mm,humidity\nDelhi,31.5,0,0.4\n")
    ingest.run(landed, DAY, tables=("weather",))
    got = read_partition(ingest.raw_root(landed), "weather", DAY).to_pylist()
    assert got == [{"city": "Delhi", "temp_max_c": 31.5, "rain_mm": 0, "humidity": 0.4}]


def test_optional_tables_may_be_absent_entirely(tmp_path):
    cfg = Config(home=tmp_path / "h")
    for table, rows in (("sales", {"txn_id": ["a"], "store_id": [1], "sku_id": [1],
                                   "ts": [dt.datetime(2025, 3, 2, 19)], "quantity": [2],
                                   "unit_price": [10.0], "on_promotion": [False]}),
                        ("calendar", {"region": ["north"], "is_holiday": [False],
                                      "festival": [None], "festival_intensity": [0.0],
                                      "is_payday": [False]})):
        folder = partition_dir(cfg.landing, table, DAY)
        folder.mkdir(parents=True)
        pq.write_table(pa.table(rows), folder / "part-0.parquet")
    for dim, rows in (("stores", {"store_id": [1]}), ("skus", {"sku_id": [1]})):
        folder = partition_dir(cfg.landing, dim, DAY)
        folder.mkdir(parents=True)
        pq.write_table(pa.table(rows), folder / "part-0.parquet")
    result = ingest.run(cfg, DAY)
    assert set(result.skipped) == {"inventory", "promotions", "weather"}
    assert result.rows["sales"] == 1


def test_unknown_table_is_rejected(landed):
    with pytest.raises(ValueError, match="unknown tables \\['orders'\\]"):
        ingest.run(landed, DAY, tables=("orders",))
