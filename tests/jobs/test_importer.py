"""jobs/importer.py on hand-written CSVs, checked against a plain-Python reading of the file,
plus one run on the real Store Item Demand zip restricted to a week."""
from __future__ import annotations

import csv
import datetime as dt
import zipfile
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from jobs import importer
from jobs.config import Config
from jobs.lake import list_dates, read_partition, read_range

REAL_ZIP = Path("/work/shared/data/store-item-demand.zip")
DAYS = [dt.date(2024, 3, d) for d in range(1, 6)]
NEGATIVE = ("2024-03-02", "2", "1", "-4")
BAD_DATE = ("2024-02-30", "3", "2", "9")
ZERO = ("2024-03-04", "1", "2", "0")


def _rows() -> list[tuple[str, str, str, str]]:
    """3 stores x 2 items x 5 days; three cells replaced by a negative, a bad date, a zero."""
    rows = []
    for day in DAYS:
        for store in (1, 2, 3):
            for item in (1, 2):
                rows.append((day.isoformat(), str(store), str(item),
                             str(store * 10 + item + day.day)))
    rows[1 * 6 + 2] = NEGATIVE                 # 2024-03-02, store 2, item 1
    rows[2 * 6 + 5] = BAD_DATE                 # 2024-03-03, store 3, item 2
    rows[3 * 6 + 1] = ZERO                     # 2024-03-04, store 1, item 2
    return rows


def _write_csv(path: Path, rows, header=("date", "store", "item", "sales")) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def _expected_lines(path: Path) -> dict[tuple[dt.date, int, int], int]:
    """The reference: read the file row by row and keep valid rows with sales > 0."""
    out = {}
    with path.open() as fh:
        for row in csv.DictReader(fh):
            try:
                day = dt.date.fromisoformat(row["date"])
            except ValueError:
                continue
            sales = int(row["sales"])
            if sales > 0:
                out[(day, int(row["store"]), int(row["item"]))] = sales
    return out


def _sales_by_key(cfg: Config) -> dict[tuple[dt.date, int, int], int]:
    t = read_range(cfg.landing, "sales", dt.date(2000, 1, 1), dt.date(2100, 1, 1)).to_pandas()
    t["date"] = pd.to_datetime(t["date"]).dt.date
    return {(d, int(s), int(k)): int(q)
            for d, s, k, q in t[["date", "store_id", "sku_id", "quantity"]].itertuples(False)}


def _lake_tables(cfg: Config) -> dict[str, pd.DataFrame]:
    out = {}
    for name in ("stores", "skus", "sales", "calendar", "weather", "promotions"):
        for day in list_dates(cfg.landing, name):
            out[f"{name}/{day}"] = read_partition(cfg.landing, name, day).to_pandas()
    out["rejected"] = pq.read_table(importer.rejected_path(cfg)).to_pandas()
    return out


@pytest.fixture
def small_csv(tmp_path: Path) -> Path:
    return _write_csv(tmp_path / "train.csv", _rows())


def test_import_counts_quarantine_and_sales(small_csv: Path, tmp_path: Path) -> None:
    cfg = Config(home=tmp_path / "home")
    res = importer.run(cfg, small_csv, progress=False)

    assert res.rows_read == 30 and res.rows_skipped == 0
    assert res.rows_read == res.rows_written + res.rows_rejected
    assert res.rows_rejected == 2
    assert res.dates == (DAYS[0], DAYS[-1]) and res.partitions == 5

    rejected = pq.read_table(importer.rejected_path(cfg)).to_pandas()
    got = {tuple(r[:4]): r[4] for r in
           rejected[["date", "store", "item", "sales", "reason"]].itertuples(False)}
    assert got == {NEGATIVE: "sales: negative", BAD_DATE: "date: not a YYYY-MM-DD date"}
    assert sorted(rejected["line"]) == [2 + 8, 2 + 17]

    expected = _expected_lines(small_csv)
    assert _sales_by_key(cfg) == expected
    assert (DAYS[3], 1, 2) not in _sales_by_key(cfg)          # the zero-sales row
    assert res.tables["sales"] == len(expected) == 27

    sales = read_partition(cfg.landing, "sales", DAYS[0]).to_pandas()
    assert (sales["ts"] == pd.Timestamp("2024-03-01 19:00")).all()
    assert sales["txn_id"].iloc[0] == "si-20240301-1-1"
    assert (sales["unit_price"] == 100.0).all() and not sales["on_promotion"].any()


def test_dimensions_and_daily_tables(small_csv: Path, tmp_path: Path) -> None:
    cfg = Config(home=tmp_path / "home")
    res = importer.run(cfg, small_csv, progress=False)
    assert (res.stores, res.skus) == (3, 2)
    assert list_dates(cfg.landing, "stores") == [DAYS[0]] == list_dates(cfg.landing, "skus")

    stores = read_partition(cfg.landing, "stores", DAYS[0]).to_pandas()
    assert stores["store_id"].tolist() == [1, 2, 3]
    assert stores["city"].tolist() == ["store-item-1", "store-item-2", "store-item-3"]
    units = pd.Series(_expected_lines(small_csv)).groupby(level=1).sum()
    assert stores["daily_budget"].tolist() == pytest.approx(
        (3 * units / 5 * 70.0).round(2).tolist())

    skus = read_partition(cfg.landing, "skus", DAYS[0]).to_pandas()
    assert skus["sku_id"].tolist() == [1, 2]
    assert (skus["price"] == 100.0).all() and (skus["shelf_life_days"] == 365).all()

    for day in DAYS:
        cal = read_partition(cfg.landing, "calendar", day).to_pandas()
        assert cal["festival"].isna().all() and (cal["is_payday"] == (day.day <= 3)).all()
        assert read_partition(cfg.landing, "weather", day).num_rows == 3
        assert read_partition(cfg.landing, "promotions", day).num_rows == 0
    assert list_dates(cfg.landing, "inventory") == []


def test_reimport_is_identical(small_csv: Path, tmp_path: Path) -> None:
    cfg = Config(home=tmp_path / "home")
    first = importer.run(cfg, small_csv, progress=False)
    before = _lake_tables(cfg)
    second = importer.run(cfg, small_csv, progress=False)
    after = _lake_tables(cfg)
    assert first == second
    assert before.keys() == after.keys()
    for key in before:
        pd.testing.assert_frame_equal(before[key], after[key], obj=key)


def test_zip_with_train_csv(small_csv: Path, tmp_path: Path) -> None:
    archive = tmp_path / "data.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(small_csv, "train.csv")
        zf.writestr("test.csv", "id,date,store,item\n0,2024-03-06,1,1\n")
    cfg = Config(home=tmp_path / "home")
    res = importer.run(cfg, archive, progress=False)
    assert res.source.endswith("data.zip:train.csv")
    assert (res.rows_read, res.rows_rejected) == (30, 2)
    assert _sales_by_key(cfg) == _expected_lines(small_csv)


def test_filters_and_other_rules(tmp_path: Path) -> None:
    rows = [("2024-03-01", "1", "1", "5"), ("2024-03-01", "1", "1", "6"),   # duplicate
            ("2024-03-01", "", "1", "5"), ("2024-03-01", "1", "2", "2.5"),
            ("2024-03-02", "2", "1", "7"), ("2024-03-09", "1", "1", "-1"),  # outside end
            ("nope", "1", "1", "3")]
    path = _write_csv(tmp_path / "x.csv", rows)
    cfg = Config(home=tmp_path / "home")
    res = importer.run(cfg, path, end=dt.date(2024, 3, 2), stores=[1], progress=False)
    # Kept: 4 rows of store 1 (or unknown store) up to 03-02, and the bad date; skipped:
    # store 2 and the row after `end`.
    assert (res.rows_read, res.rows_skipped) == (5, 2)
    assert (res.rows_written, res.rows_rejected) == (1, 4)
    reasons = sorted(pq.read_table(importer.rejected_path(cfg)).column("reason").to_pylist())
    assert reasons == ["date: not a YYYY-MM-DD date",
                       "duplicate: an earlier row has the same (date, store, item)",
                       "sales: not an integer in [0, 2147483647]", "store: missing"]
    assert _sales_by_key(cfg) == {(dt.date(2024, 3, 1), 1, 1): 5}


def test_missing_column_names_file_and_column(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "nosales.csv", [("2024-03-01", "1", "1")],
                      header=("date", "store", "item"))
    with pytest.raises(ValueError, match=r"nosales\.csv: missing column 'sales'"):
        importer.run(Config(home=tmp_path / "home"), path, progress=False)


def test_real_store_item_week(tmp_path: Path) -> None:
    if not REAL_ZIP.is_file():
        pytest.skip(f"{REAL_ZIP} not found (public Store Item Demand data)")
    start, end = dt.date(2017, 12, 1), dt.date(2017, 12, 7)
    cfg = Config(home=tmp_path / "home")
    res = importer.run(cfg, REAL_ZIP, start=start, end=end, progress=False)

    with zipfile.ZipFile(REAL_ZIP) as zf, zf.open("train.csv") as fh:
        train = pd.read_csv(fh, parse_dates=["date"])
    week = train[(train["date"] >= pd.Timestamp(start)) & (train["date"] <= pd.Timestamp(end))]
    assert (res.stores, res.skus, res.partitions) == (10, 50, 7)
    assert res.rows_read == len(week) == 7 * 10 * 50 and res.rows_rejected == 0
    sales = read_range(cfg.landing, "sales", start, end)
    assert int(sales.column("quantity").to_pandas().sum()) == int(week["sales"].sum())
    assert sales.num_rows == int((week["sales"] > 0).sum())
