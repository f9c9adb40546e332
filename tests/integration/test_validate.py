"""validate_raw and validate_features end to end: real Spark, real PostgreSQL, real GE.

A tiny world is generated once, copied from landing to lake/raw (ingest's job, done by hand
here) and validated for its last day, D. Every other test works on a private copy of that
lake with ONE bad input, and checks the clear error (table, partition, column and rule
named) or the quarantine outcome (rows in = accepted + quarantined); the local (pyarrow)
and the Spark row engines must leave exactly the same outputs. One embedded
PostgreSQL per module (or REPLENISH_WAREHOUSE_URL) receives the data_quality rows.
"""
from __future__ import annotations

import datetime as dt
import math
import os
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs import generate, validate, warehouse
from jobs.config import Config
from jobs.lake import partition_dir
from jobs.schema import arrow_schema

EXTERNAL_URL = os.environ.get("REPLENISH_WAREHOUSE_URL") or None
START = dt.date(2025, 10, 1)
DAYS = 10
D = START + dt.timedelta(days=DAYS - 1)  # 9 earlier partitions: the volume check runs
TABLES = ("stores", "skus", "sales", "inventory", "promotions", "weather", "calendar")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def pg_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if EXTERNAL_URL is not None:
        warehouse.migrate(Config(warehouse_url=EXTERNAL_URL))
        yield EXTERNAL_URL
        return
    cfg = Config(home=tmp_path_factory.mktemp("dq-pg"), pg_port=_free_port())
    warehouse.start(cfg)
    try:
        warehouse.migrate(cfg)
        yield warehouse.url(cfg)
    finally:
        warehouse.stop(cfg)


@dataclass(frozen=True)
class World:
    cfg: Config
    summary: validate.ValidationSummary


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, spark: Any, pg_url: str) -> World:
    cfg = Config(home=tmp_path_factory.mktemp("dq-world"), warehouse_url=pg_url)
    generate.run(cfg, "tiny", START, days=DAYS, progress=False)
    shutil.copytree(cfg.landing, cfg.lake / "raw")  # what ingest does
    return World(cfg, validate.run_raw(cfg, D))


@pytest.fixture
def lake(world: World, tmp_path: Path) -> Config:
    """A private copy of the validated lake (raw and clean), same warehouse."""
    home = tmp_path / "home"
    shutil.copytree(world.cfg.lake, home / "lake")
    return Config(home=home, warehouse_url=world.cfg.warehouse_url)


def _raw(cfg: Config, table: str, day: dt.date = D) -> pa.Table:
    return pq.read_table(partition_dir(cfg.lake / "raw", table, day))


def _put(cfg: Config, table: str, data: pa.Table | bytes, day: dt.date = D) -> None:
    """Replace a raw partition with one file holding ``data`` (any schema, or any bytes)."""
    folder = partition_dir(cfg.lake / "raw", table, day)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    if isinstance(data, bytes):
        (folder / "part-00000.parquet").write_bytes(data)
    else:
        pq.write_table(data, folder / "part-00000.parquet")


def _replace(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), name, values)


def _dq(cfg: Config, table: str) -> dict[tuple[str, str], dict[str, Any]]:
    conn = warehouse.connect(cfg)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("""SELECT rule, column_name, partition_date, rows_in, rows_accepted,
                                  rows_quarantined, success, details
                             FROM replenish.data_quality
                            WHERE run_date = %s AND table_name = %s""", (D, table))
            names = [d[0] for d in cur.description]
            return {(r[0], r[1]): dict(zip(names, r, strict=True)) for r in cur.fetchall()}
    finally:
        conn.close()


def _dq_counts(cfg: Config) -> dict[str, int]:
    conn = warehouse.connect(cfg)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT table_name, count(*) FROM replenish.data_quality "
                        "WHERE run_date = %s GROUP BY 1", (D,))
            return dict(cur.fetchall())
    finally:
        conn.close()


def _fails(cfg: Config, **kwargs: Any) -> validate.ValidationError:
    with pytest.raises(validate.ValidationError) as info:
        validate.run_raw(cfg, D, **kwargs)
    return info.value


def _named(err: Exception, table: str, column: str, rule: str,
           partition: dt.date | None = D) -> None:
    where = f"date={partition}" if partition else "(none)"
    assert f"table {table}, partition {where}, column {column}, rule {rule}" in str(err), err


# ----------------------------------------------------------------------------- a valid world


def test_a_valid_world_passes_and_lands_clean_typed_partitions(world: World) -> None:
    cfg, summary = world.cfg, world.summary
    assert summary.ok and set(summary.tables) == set(TABLES)
    for name, t in summary.tables.items():
        assert t.status == "ok", (name, t)
        assert t.rows_in == t.rows_accepted + t.rows_quarantined and t.rows_quarantined == 0
        assert t.partition == (START if name in ("stores", "skus") else D)
        clean = partition_dir(cfg.lake / "clean", name, t.partition)
        written = pq.read_table(clean)
        assert written.num_rows == t.rows_accepted
        assert [(f.name, f.type) for f in written.schema] == \
               [(f.name, f.type) for f in arrow_schema(name)], name
        assert not partition_dir(cfg.lake / "quarantine", name, t.partition).exists()
        assert t.report is not None and t.report.is_file()
    assert summary.report.is_file() and "raw_sales.html" in summary.report.read_text()
    assert (cfg.reports / "data_docs" / "index.html").is_file(), "GE Data Docs site"
    assert "quantity_range" in summary["sales"].report.read_text()

    rows = _dq(cfg, "sales")
    assert all(r["success"] for r in rows.values()), rows
    assert rows[("quantity_range", "quantity")]["rows_quarantined"] == 0
    share = rows[("quarantine_share", "")]
    assert share["rows_in"] == share["rows_accepted"] + share["rows_quarantined"]
    volume = rows[("row_volume", "")]["details"]
    assert 0.25 <= volume["ratio"] <= 4 and "skipped" not in volume
    assert rows[("ge_suite_clean", "")]["details"]["engine"] == "pandas"
    assert set(_dq_counts(cfg)) >= set(TABLES)


def test_a_rerun_replaces_its_rows_and_partitions_and_ge_runs_on_spark(world: World) -> None:
    cfg = world.cfg
    before = _dq_counts(cfg)
    clean = partition_dir(cfg.lake / "clean", "sales", D)
    first = pq.read_table(clean)
    again = validate.run_raw(cfg, D, tables=("sales",), ge_engine="spark")
    assert again.ok and set(again.tables) == {"sales"}
    assert _dq_counts(cfg) == before, "a re-run replaces, never duplicates"
    assert pq.read_table(clean).equals(first)
    assert len([p for p in clean.iterdir() if p.suffix == ".parquet"]) == 1
    ge = _dq(cfg, "sales")[("ge_suite_clean", "")]
    assert ge["success"] is True and ge["details"]["engine"] == "spark"


# ----------------------------------------------------------------------------- table failures


def test_a_missing_column_fails_naming_it_and_removes_the_stale_clean_partition(
        lake: Config) -> None:
    _put(lake, "sales", _raw(lake, "sales").drop_columns(["quantity"]))
    err = _fails(lake, tables=("sales",))
    _named(err, "sales", "quantity", "columns_present")
    assert "quantity (int32) is missing" in str(err)
    assert not partition_dir(lake.lake / "clean", "sales", D).exists()
    row = _dq(lake, "sales")[("columns_present", "quantity")]
    assert row["success"] is False and row["rows_in"] > 0
    assert err.summary["sales"].status == "failed" and err.report.is_file()


def test_a_type_that_does_not_convert_fails_with_expected_and_found(lake: Config) -> None:
    sales = _raw(lake, "sales")
    words = [str(q) for q in sales.column("quantity").to_pylist()]
    words[:3] = ["lots", "n/a", "lots"]
    _put(lake, "sales", _replace(sales, "quantity", pa.array(words)))
    err = _fails(lake, tables=("sales",))
    _named(err, "sales", "quantity", "column_types")
    assert f"expected int32, found string: 3 of {sales.num_rows} values do not convert" in \
        str(err)
    assert "quantity='lots'" in str(err) and "quantity='n/a'" in str(err)


def test_a_missing_partition_fails(lake: Config) -> None:
    shutil.rmtree(partition_dir(lake.lake / "raw", "sales", D))
    err = _fails(lake, tables=("sales",))
    _named(err, "sales", "-", "partition_present")
    assert "is missing" in str(err)


def test_an_empty_partition_fails(lake: Config) -> None:
    _put(lake, "sales", arrow_schema("sales").empty_table())
    _named(_fails(lake, tables=("sales",)), "sales", "-", "partition_not_empty")


def test_a_file_that_is_not_parquet_fails_saying_so(lake: Config) -> None:
    _put(lake, "sales", b"txn_id,store_id\nT1,1\n")
    err = _fails(lake, tables=("sales",))
    _named(err, "sales", "-", "readable_parquet")
    assert "part-00000.parquet is not a Parquet file" in str(err)


def test_a_day_with_far_too_few_rows_fails_the_volume_band(lake: Config) -> None:
    _put(lake, "sales", _raw(lake, "sales").slice(0, 5))
    err = _fails(lake, tables=("sales",))
    _named(err, "sales", "-", "row_volume")
    assert "x the median" in str(err) and "previous 9 partitions" in str(err)


def test_absent_inventory_is_skipped_and_a_day_without_promotions_is_fine(
        lake: Config) -> None:
    shutil.rmtree(lake.lake / "raw" / "inventory")
    _put(lake, "promotions", arrow_schema("promotions").empty_table())
    summary = validate.run_raw(lake, D, tables=("inventory", "promotions"))
    t = summary["inventory"]
    assert t.status == "skipped" and "no inventory table" in t.notes[0]
    assert _dq(lake, "inventory")[("table_present", "")]["success"] is True
    promotions = summary["promotions"]
    assert (promotions.status, promotions.rows_in, promotions.rows_accepted) == ("ok", 0, 0)
    clean = pq.read_table(partition_dir(lake.lake / "clean", "promotions", D))
    assert clean.num_rows == 0 and clean.column_names == arrow_schema("promotions").names


def test_promotions_brought_in_ahead_are_validated_as_their_own_dates(world: World) -> None:
    """The run of D validated the promotion plan of D+1..D+7 (the generator publishes it a
    week ahead and the fixture copied it to raw): clean partitions with the clean schema,
    each with its own report and data_quality rows."""
    cfg, summary = world.cfg, world.summary
    ahead = [D + dt.timedelta(days=k) for k in range(1, 8)]
    assert [a.run_date for a in summary.ahead] == ahead
    for a in summary.ahead:
        t = a["promotions"]
        assert a.ok and t.partition == a.run_date and set(a.tables) == {"promotions"}
        assert t.rows_in == t.rows_accepted == _raw(cfg, "promotions", a.run_date).num_rows
        clean = pq.read_table(partition_dir(cfg.lake / "clean", "promotions", a.run_date))
        assert clean.column_names == arrow_schema("promotions").names
        assert clean.num_rows == t.rows_accepted
        assert a.report.is_file()
    assert f"promotions {ahead[0]} (ahead): ok" in summary.summary()
    # A backfill's earlier dates leave it to the dates themselves (jobs.steps).
    assert validate.run_raw(cfg, D, tables=("promotions",), ahead=False).ahead == ()


def test_a_bad_ahead_partition_is_kept_out_without_failing_the_night(lake: Config) -> None:
    """D+2's plan lost a column: D's run still passes, says so, and removes the stale clean
    partition of D+2 (the night would otherwise forecast with last run's promotions); D+3's
    row for an unknown SKU is quarantined, rows in = accepted + quarantined."""
    plus2, plus3 = D + dt.timedelta(days=2), D + dt.timedelta(days=3)
    assert partition_dir(lake.lake / "clean", "promotions", plus2).is_dir()
    _put(lake, "promotions", _raw(lake, "promotions", plus2).drop_columns(["discount_pct"]),
         plus2)
    good = _raw(lake, "promotions", plus3)
    bad = good.slice(0, 1)
    bad = _replace(bad, "sku_id", pa.array([99_999], pa.int32()))
    _put(lake, "promotions", pa.concat_tables([good, bad.cast(good.schema)]), plus3)
    summary = validate.run_raw(lake, D, tables=("promotions",))
    assert summary.ok
    by_day = {a.run_date: a for a in summary.ahead}
    assert not by_day[plus2].ok and by_day[plus2]["promotions"].status == "failed"
    assert not partition_dir(lake.lake / "clean", "promotions", plus2).exists()
    assert f"promotions {plus2} (ahead): failed" in summary.summary()
    assert "gated again on its own night; kept out of clean" in summary.summary()
    t = by_day[plus3]["promotions"]
    assert (t.rows_in, t.rows_accepted, t.rows_quarantined) == (good.num_rows + 1,
                                                                good.num_rows, 1)
    quarantined = pq.read_table(partition_dir(lake.lake / "quarantine", "promotions", plus3))
    assert quarantined.column("sku_id").to_pylist() == ["99999"]


# ----------------------------------------------------------------------------- warnings


def test_an_extra_column_is_dropped_with_a_warning(lake: Config) -> None:
    sales = _raw(lake, "sales")
    _put(lake, "sales", sales.append_column("coupon", pa.array(["X"] * sales.num_rows)))
    summary = validate.run_raw(lake, D, tables=("sales",))
    t = summary["sales"]
    assert t.status == "ok" and t.rows_accepted == sales.num_rows
    assert any("extra column coupon" in w for w in t.warnings)
    clean = pq.read_table(partition_dir(lake.lake / "clean", "sales", D))
    assert clean.column_names == arrow_schema("sales").names
    rows = _dq(lake, "sales")
    assert rows[("extra_columns", "coupon")]["success"] is True
    assert "warning" in rows[("extra_columns", "coupon")]["details"]
    assert rows[("ge_suite_clean", "")]["success"] is True
    assert rows[("ge_suite_raw", "")]["details"]["suite_success"] is False  # the extra column


# ----------------------------------------------------------------------------- quarantine


def _with_bad_rows(cfg: Config) -> tuple[pa.Table, dict[str, set[str]], int]:
    """The day's sales with ``ts`` as text plus one row per defect; (table, rules by
    txn_id, good rows). The null-id row is keyed "<null>"."""
    sales = _raw(cfg, "sales")
    rows = sales.to_pylist()
    base = next(r for r in rows if r["ts"].hour < 22)
    noon = dt.datetime.combine(D, dt.time(12))

    def bad(txn: str | None, **change: Any) -> dict[str, Any]:
        return {**base, "txn_id": txn, "ts": noon, **change}

    defects: list[tuple[dict[str, Any], set[str]]] = [
        (bad("neg-qty", quantity=-1), {"quantity_range"}),
        (bad("huge-qty", quantity=10**6), {"quantity_range"}),
        (bad("zero-price", unit_price=0.0), {"unit_price_range"}),
        (bad("neg-price", unit_price=-3.5), {"unit_price_range"}),
        (bad("null-store", store_id=None), {"store_id_not_null"}),
        (bad(None), {"txn_id_not_null"}),
        (bad("unknown-store", store_id=999), {"store_id_known"}),
        (bad("unknown-sku", sku_id=9999), {"sku_id_known"}),
        (bad("future", ts=noon + dt.timedelta(days=1)), {"ts_within_partition_day"}),
        (bad("garbled-ts", ts="about noon"), {"ts_parseable"}),
        (bad(base["txn_id"], ts=base["ts"] + dt.timedelta(hours=1)), {"txn_id_unique"}),
    ]
    out = []
    for r in rows + [d for d, _ in defects]:
        ts = r["ts"]
        out.append({**r, "ts": ts if isinstance(ts, str) else ts.strftime("%Y-%m-%d %H:%M:%S")})
    schema = arrow_schema("sales")
    schema = schema.set(schema.get_field_index("ts"), pa.field("ts", pa.string()))
    schema = pa.schema([f.with_nullable(True) for f in schema])
    expected = {("<null>" if d["txn_id"] is None else d["txn_id"]): rules
                for d, rules in defects}
    return pa.Table.from_pylist(out, schema=schema), expected, len(rows)


def test_bad_rows_are_quarantined_with_their_rules_and_too_many_fail_the_step(
        lake: Config) -> None:
    """Each defect in its own row: every row is quarantined with exactly its rule. Eleven
    bad rows are over 1% of the day, so the step fails, after writing clean, quarantine,
    data_quality and the report; a fixed re-run leaves no stale quarantine partition."""
    original = _raw(lake, "sales")
    data, expected, good = _with_bad_rows(lake)
    _put(lake, "sales", data)
    err = _fails(lake, tables=("sales",))
    columns = "quantity,unit_price,sku_id,store_id,ts,txn_id"  # most quarantined first
    _named(err, "sales", columns, "quarantine_share")
    assert f"{len(expected)} of {data.num_rows} rows" in str(err) and "limit 1.00%" in str(err)
    assert "quantity_range(quantity)=2" in str(err) and str(err).count("offending row:") == 5
    t = err.summary["sales"]
    assert (t.rows_in, t.rows_accepted, t.rows_quarantined) == (data.num_rows, good,
                                                                len(expected))
    assert any("ts arrived as string and was converted to timestamp[us]" in w
               for w in t.warnings)

    quarantine_dir = partition_dir(lake.lake / "quarantine", "sales", D)
    quarantine = pq.read_table(quarantine_dir)
    assert quarantine.column_names == arrow_schema("sales").names + ["failed_rules", "run_date"]
    assert all(quarantine.schema.field(c).type == pa.string()
               for c in arrow_schema("sales").names)
    assert set(quarantine.column("run_date").to_pylist()) == {D}
    got = {("<null>" if r["txn_id"] is None else r["txn_id"]): set(r["failed_rules"].split(","))
           for r in quarantine.to_pylist()}
    assert got == expected
    garbled = next(r for r in quarantine.to_pylist() if r["txn_id"] == "garbled-ts")
    assert garbled["ts"] == "about noon", "quarantine keeps the value as it arrived"

    clean = pq.read_table(partition_dir(lake.lake / "clean", "sales", D))
    assert clean.num_rows == good and clean.schema.field("ts").type == pa.timestamp("us")
    assert clean.num_rows + quarantine.num_rows == t.rows_in

    rows = _dq(lake, "sales")
    for rule, column in (("quantity_range", "quantity"), ("unit_price_range", "unit_price"),
                         ("txn_id_unique", "txn_id"), ("ts_parseable", "ts")):
        row = rows[(rule, column)]
        assert row["rows_quarantined"] == sum(rule in v for v in expected.values())
        assert row["rows_in"] == row["rows_accepted"] + row["rows_quarantined"]
        assert row["details"]["samples"], rule
    share = rows[("quarantine_share", columns)]
    assert share["success"] is False and share["rows_quarantined"] == len(expected)

    _put(lake, "sales", original)
    assert validate.run_raw(lake, D, tables=("sales",))["sales"].rows_quarantined == 0
    assert not quarantine_dir.exists()


def test_a_shelf_life_that_is_not_positive_is_quarantined(lake: Config) -> None:
    cfg = lake.replace(quarantine_max_share=0.1)
    skus = _raw(cfg, "skus", START)
    life = skus.column("shelf_life_days").to_pylist()
    life[0], life[1] = 0, -3
    _put(cfg, "skus", _replace(skus, "shelf_life_days", pa.array(life, pa.int32())), START)
    t = validate.run_raw(cfg, D, tables=("skus",))["skus"]
    assert (t.partition, t.rows_quarantined, t.rows_accepted) == (START, 2, skus.num_rows - 2)
    quarantine = pq.read_table(partition_dir(cfg.lake / "quarantine", "skus", START))
    assert quarantine.column("failed_rules").to_pylist() == ["shelf_life_days_positive"] * 2
    assert sorted(quarantine.column("shelf_life_days").to_pylist()) == ["-3", "0"]


def _defects_in_schema_types(cfg: Config) -> pa.Table:
    """The day's sales in their schema types plus rows that break rules (no conversion)."""
    sales = _raw(cfg, "sales")
    rows = sales.to_pylist()
    base = next(r for r in rows if r["ts"].hour < 22)
    noon = dt.datetime.combine(D, dt.time(12))
    rows += [dict(base, txn_id="neg", quantity=-1), dict(base, txn_id="nan", unit_price=math.nan),
             dict(base, txn_id="inf", unit_price=math.inf), dict(base, txn_id=None),
             dict(base, txn_id="nostore", store_id=None), dict(base, txn_id="unk", sku_id=9999),
             dict(base, txn_id="future", ts=noon + dt.timedelta(days=1, microseconds=5)),
             dict(base, ts=base["ts"] + dt.timedelta(hours=1)), dict(base),
             dict(base, txn_id="é-ü", quantity=10**6, on_promotion=None)]
    schema = pa.schema([f.with_nullable(True) for f in arrow_schema("sales")])
    return pa.Table.from_pylist(rows, schema=schema)


def _outputs(cfg: Config, table: str, **kwargs: Any) -> dict[str, Any]:
    """Everything one run_raw of ``table`` leaves behind, comparable across engines."""
    try:
        summary, error = validate.run_raw(cfg, D, tables=(table,), **kwargs), ""
    except validate.ValidationError as err:
        summary, error = err.summary, str(err)
    t = summary[table]
    dq = _dq(cfg, table)
    engine = {r["details"].pop("row_engine", None) for r in dq.values()} - {None}
    lake = {}
    for root in ("clean", "quarantine"):
        folder = partition_dir(cfg.lake / root, table, t.partition)
        data = pq.read_table(folder) if folder.exists() else None
        lake[root] = None if data is None else (
            [(f.name, f.type) for f in data.schema],
            sorted(map(repr, data.to_pylist())))
    return {"engine": engine, "error": error.replace(str(cfg.home), "HOME"),
            "counts": (t.status, t.rows_in, t.rows_accepted, t.rows_quarantined),
            "warnings": t.warnings, "notes": t.notes, "dq": repr(dq), "lake": lake}


@pytest.mark.parametrize("conversions", [False, True], ids=["schema-types", "int64-and-double"])
def test_the_local_and_the_spark_row_engines_agree(lake: Config, tmp_path: Path,
                                                   conversions: bool) -> None:
    """Same rows accepted and quarantined (with the same rules), same samples, messages,
    warnings and data_quality rows, whichever engine evaluates the rules."""
    data = _defects_in_schema_types(lake)
    if conversions:  # what pandas writes: int64 ids, float quantities
        data = data.cast(pa.schema([pa.field(f.name, pa.int64()) if f.type == pa.int32()
                                    else f for f in data.schema]))
        data = _replace(data, "quantity", data.column("quantity").cast(pa.float64()))
    _put(lake, "sales", data)
    other = Config(home=tmp_path / "other", warehouse_url=lake.warehouse_url)
    shutil.copytree(lake.lake, other.lake)
    local = _outputs(lake, "sales", row_engine="arrow")
    spark = _outputs(other, "sales", row_engine="spark")
    assert (local.pop("engine"), spark.pop("engine")) == ({"arrow"}, {"spark"})
    assert local == spark
    assert local["counts"] == ("failed", data.num_rows, data.num_rows - 10, 10)
    assert "quantity_range(quantity)=2" in local["error"]
    if conversions:
        assert any("quantity arrived as double" in w for w in local["warnings"])


def test_a_value_that_does_not_convert_fails_alike_on_both_engines(lake: Config,
                                                                  tmp_path: Path) -> None:
    sales = _raw(lake, "sales")
    quantity = [float(q) for q in sales.column("quantity").to_pylist()]
    quantity[:4] = [1.5, 3e9, math.nan, 1.5]
    _put(lake, "sales", _replace(sales, "quantity", pa.array(quantity)))
    other = Config(home=tmp_path / "other", warehouse_url=lake.warehouse_url)
    shutil.copytree(lake.lake, other.lake)
    local, spark = _outputs(lake, "sales"), _outputs(other, "sales", row_engine="spark")
    assert local.pop("engine") == spark.pop("engine") == set()  # no rule ran
    assert local == spark
    err = local["error"]
    _named_text(err, "sales", "quantity", "column_types")
    assert f"4 of {sales.num_rows} values do not convert" in err
    assert "quantity='1.5'" in err and "quantity='3.0E9'" in err and "quantity='NaN'" in err


def _named_text(text: str, table: str, column: str, rule: str) -> None:
    assert f"table {table}, partition date={D}, column {column}, rule {rule}" in text, text


def test_an_unknown_row_engine_is_refused(lake: Config) -> None:
    with pytest.raises(ValueError, match="row_engine"):
        validate.run_raw(lake, D, row_engine="gpu")


# ----------------------------------------------------------------------------- features


@dataclass(frozen=True)
class _Feature:
    name: str
    window_days: int
    nullable: bool = False
    dtype: str = "double"
    min_history: int | None = None


class _StubCatalog:
    KEYS = ("date", "store_id", "sku_id")
    LABELS = ("units_sold",)
    MAX_WINDOW = 30
    FEATURES = (_Feature("history_days", 30, dtype="int", min_history=0), _Feature("lag_7", 7),
                _Feature("roll_mean_7", 7, min_history=1), _Feature("promo_share_30", 30,
                                                                    min_history=1),
                _Feature("day_of_week", 0, dtype="int"), _Feature("avg_price_30", 30,
                                                                  nullable=True))


_FEATURE_TYPES = {"store_id": pa.int32(), "sku_id": pa.int32(), "history_days": pa.int32(),
                  "day_of_week": pa.int32(), "units_sold": pa.int32()}


def _features(cfg: Config, rows: list[dict[str, Any]], pairs: list[tuple[int, int]]) -> None:
    names = list(rows[0])
    table = pa.table({n: pa.array([r[n] for r in rows], _FEATURE_TYPES.get(n, pa.float64()))
                      for n in names})
    folder = partition_dir(cfg.lake, "features", D)
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, folder / "part-00000.parquet")
    demand = partition_dir(cfg.lake, "demand_daily", D)
    demand.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"store_id": pa.array([p[0] for p in pairs], pa.int32()),
                             "sku_id": pa.array([p[1] for p in pairs], pa.int32()),
                             "units_sold": pa.array([1] * len(pairs), pa.int32())}),
                   demand / "part-00000.parquet")


def _frow(store: int, sku: int, history: int = 30, **values: Any) -> dict[str, Any]:
    row = {"store_id": store, "sku_id": sku, "history_days": history, "lag_7": 2.0,
           "roll_mean_7": 1.5, "promo_share_30": 0.1, "day_of_week": 4, "avg_price_30": None,
           "units_sold": 1}
    return {**row, **values}


def test_features_pass_with_short_history_nulls(lake: Config) -> None:
    rows = [_frow(1, 10), _frow(1, 20, history=3, lag_7=None),
            _frow(2, 10, history=0, lag_7=None, roll_mean_7=None, promo_share_30=None)]
    _features(lake, rows, [(1, 10), (1, 20), (2, 10)])
    summary = validate.run_features(lake, D, catalog=_StubCatalog)
    assert summary.ok and summary["features"].rows_in == 3
    rows_dq = _dq(lake, "features")
    assert rows_dq[("lag_7_null_with_history", "lag_7")]["success"] is True
    assert rows_dq[("active_pairs", "store_id,sku_id")]["success"] is True


@pytest.mark.parametrize("row_engine", ["auto", "spark"])
def test_features_failures_name_each_broken_rule(lake: Config, row_engine: str) -> None:
    rows = [_frow(1, 10), _frow(1, 20, history=10, lag_7=None),        # null with history
            _frow(2, 10, roll_mean_7=float("nan")),                     # NaN
            _frow(2, 20, roll_mean_7=float("inf")),                     # infinity
            _frow(3, 10, promo_share_30=1.5),                           # share above 1
            _frow(3, 20, day_of_week=9),                                # no such weekday
            _frow(1, 10)]                                               # duplicate key
    _features(lake, rows, [(1, 10), (1, 20), (2, 10), (2, 20), (3, 10), (9, 90)])
    with pytest.raises(validate.ValidationError) as info:
        validate.run_features(lake, D, catalog=_StubCatalog, row_engine=row_engine)
    err = info.value
    for column, rule in (("lag_7", "lag_7_null_with_history"), ("roll_mean_7", "roll_mean_7_finite"),
                         ("promo_share_30", "promo_share_30_range"),
                         ("day_of_week", "day_of_week_range"),
                         ("store_id,sku_id", "keys_unique"), ("store_id,sku_id", "active_pairs")):
        _named(err, "features", column, rule)
    assert "1 pair(s) missing from features" in str(err)
    assert "sku_id='90'" in str(err) or "'sku_id': 90" in str(err) or "sku_id=90" in str(err)
    assert _dq(lake, "features")[("keys_unique", "store_id,sku_id")]["success"] is False


def test_features_with_the_real_catalog(lake: Config) -> None:
    """A valid partition generated from features/catalog.py passes its suite."""
    catalog = pytest.importorskip("features.catalog")
    from expectations.features import feature_specs

    specs = {s.name: s for s in feature_specs(catalog.FEATURES)}
    types = {f.name: f.dtype for f in catalog.FEATURES}
    row: dict[str, Any] = {}
    for name, spec in specs.items():
        value = spec.min_value if spec.min_value is not None else (spec.max_value or 1)
        row[name] = {"boolean": False, "int": int(value)}.get(types[name], float(value))
    row["history_days"] = catalog.MAX_WINDOW
    pairs = [(1, 10), (1, 20), (2, 10)]
    columns = {"store_id": pa.array([p[0] for p in pairs], pa.int32()),
               "sku_id": pa.array([p[1] for p in pairs], pa.int32())}
    arrow = {"boolean": pa.bool_(), "int": pa.int32()}
    for name, value in row.items():
        columns[name] = pa.array([value] * len(pairs), arrow.get(types[name], pa.float64()))
    folder = partition_dir(lake.lake, "features", D)
    folder.mkdir(parents=True)
    pq.write_table(pa.table(columns), folder / "part-00000.parquet")
    demand = partition_dir(lake.lake, "demand_daily", D)
    demand.mkdir(parents=True)
    pq.write_table(pa.table({k: columns[k] for k in ("store_id", "sku_id")}),
                   demand / "part-00000.parquet")
    summary = validate.run_features(lake, D)
    assert summary.ok and summary["features"].rows_in == len(pairs)


def test_a_missing_features_partition_fails(lake: Config) -> None:
    with pytest.raises(validate.ValidationError) as info:
        validate.run_features(lake, D, catalog=_StubCatalog)
    _named(info.value, "features", "-", "partition_present")
