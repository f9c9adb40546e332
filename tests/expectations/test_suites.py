"""The GE suites built from the rule tables: mapping, a pandas run, a Spark run, Data Docs."""
from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from expectations.raw import RAW_SUITES
from expectations.rules import RuleContext, sql_rule
from expectations.suites import GXRunner, build_expectations

D = dt.date(2025, 10, 9)
SALES = RAW_SUITES["sales"]
COLUMNS = ["txn_id", "store_id", "sku_id", "ts", "quantity", "unit_price", "on_promotion"]


def _sales(rows: list[tuple]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=COLUMNS)
    return df.astype({"store_id": "int32", "sku_id": "int32", "quantity": "int32",
                      "ts": "datetime64[us]"})


GOOD = [("t1", 1, 10, dt.datetime(2025, 10, 9, 9), 1, 20.0, False),
        ("t2", 2, 20, dt.datetime(2025, 10, 9, 23, 59, 59), 3, 5.5, True)]
REFS = {"stores": [1, 2], "skus": [10, 20]}


@pytest.fixture(scope="module")
def runner(tmp_path_factory) -> GXRunner:
    return GXRunner(tmp_path_factory.mktemp("docs"))


def test_every_rule_maps_to_an_expectation_or_says_why() -> None:
    ctx = RuleContext(D)
    pandas = build_expectations(SALES.rules, ctx, "pandas", COLUMNS, REFS)
    spark = build_expectations(SALES.rules, ctx, "spark", COLUMNS, REFS)
    kinds = {type(e).__name__ for e in pandas.expectations}
    assert {"ExpectColumnValuesToNotBeNull", "ExpectColumnValuesToBeBetween",
            "ExpectColumnValuesToBeUnique", "ExpectColumnValuesToBeInSet",
            "ExpectTableColumnsToMatchOrderedList"} <= kinds
    rules = {e.meta["rule"] for e in pandas.expectations}
    assert rules | {"ts_parseable"} == {r.name for r in SALES.rules} | {"columns_present"}
    assert pandas.not_mapped == ["ts_parseable: checked while converting types (Spark)"]
    # On Spark the day window is checked with the rule's own SQL (see suites.py on time zones).
    day = [e for e in spark.expectations if e.meta["rule"] == "ts_within_partition_day"]
    assert type(day[0]).__name__ == "UnexpectedRowsExpectation"
    # SQL rules run on Spark only; known keys need the reference keys.
    odd = sql_rule("odd", ["quantity"], "quantity % 2 = 1", "even quantities")
    assert build_expectations([odd], ctx, "pandas").not_mapped
    assert build_expectations([odd], ctx, "spark").expectations
    no_refs = build_expectations(SALES.rules, ctx, "pandas")
    assert any("store_id_known" in n for n in no_refs.not_mapped)


def test_pandas_suite_passes_on_clean_rows_and_names_each_broken_rule(runner) -> None:
    ctx = RuleContext(D)
    ok = runner.validate("raw.sales", "clean", _sales(GOOD), "pandas", SALES.rules, ctx,
                         COLUMNS, REFS)
    assert ok.success and ok.evaluated > 10 and not ok.failures
    bad = _sales(GOOD + [
        ("t1", 1, 10, dt.datetime(2025, 10, 9, 10), 1, 20.0, False),   # duplicate id
        ("t3", 1, 10, dt.datetime(2025, 10, 10, 0), 1, 20.0, False),   # next day
        ("t4", 1, 10, dt.datetime(2025, 10, 9, 10), -1, 20.0, False),  # negative units
        ("t5", 1, 10, dt.datetime(2025, 10, 9, 10), 10**6, 20.0, False),  # outlier
        ("t6", 1, 10, dt.datetime(2025, 10, 9, 10), 1, 0.0, False),    # free
        ("t7", 9, 99, dt.datetime(2025, 10, 9, 10), 1, 20.0, False),   # unknown keys
        (None, 1, 10, dt.datetime(2025, 10, 9, 10), 1, 20.0, False),   # no id
    ])
    result = runner.validate("raw.sales", "raw", bad, "pandas", SALES.rules, ctx, COLUMNS,
                             REFS)
    assert not result.success
    assert {o.rule for o in result.failures} == {
        "txn_id_unique", "ts_within_partition_day", "quantity_range", "unit_price_range",
        "store_id_known", "sku_id_known", "txn_id_not_null"}
    qty = next(o for o in result.failures if o.rule == "quantity_range")
    assert qty.unexpected_count == 2 and set(qty.sample) == {"-1", "1000000"}
    assert "quantity_range" not in ok.summary() and "failed" in result.summary()


def test_spark_suite_runs_on_pyspark_4_and_respects_the_day(spark, runner) -> None:
    """GE's Spark engine works with pyspark 4.3; the day window holds at the boundary."""
    from pyspark.sql import functions as F

    rows = [(t, s, k, str(ts), q, p, o) for t, s, k, ts, q, p, o in GOOD] + [
        ("t9", 1, 10, "2025-10-10 00:00:00", 1, 20.0, False)]
    df = spark.createDataFrame(rows, "txn_id string, store_id int, sku_id int, ts string, "
                               "quantity int, unit_price double, on_promotion boolean") \
        .withColumn("ts", F.col("ts").cast("timestamp_ntz"))
    result = runner.validate("raw.sales.spark", "raw", df, "spark", SALES.rules, RuleContext(D),
                             COLUMNS, REFS)
    assert result.engine == "spark"
    assert {o.rule for o in result.failures} == {"ts_within_partition_day"}
    (day,) = result.failures
    assert day.unexpected_count == 1
    urls = runner.build_docs()
    assert urls and all(u.startswith("file://") for u in urls.values())
    assert (runner.docs_dir / "index.html").is_file()


def test_a_conditional_null_rule_only_fires_with_enough_history(runner) -> None:
    from expectations.features import feature_rules

    rules = [r for r in feature_rules([{"name": "lag_7", "window_days": 7}], ["k"])
             if r.name == "lag_7_null_with_history"]
    frame = pd.DataFrame({"k": [1, 2, 3], "history_days": [3, 7, 30],
                          "lag_7": [None, 1.0, None]})
    result = runner.validate("features.cond", "x", frame, "pandas", rules, RuleContext(D))
    (failure,) = result.failures
    assert failure.rule == "lag_7_null_with_history" and failure.unexpected_count == 1
