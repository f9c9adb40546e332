"""The local (pyarrow) rule evaluation against Spark, its reference.

The hand-written frames of ``test_spark_rules`` (a good row and one bad row per rule,
boundaries, duplicates) and a seeded frame full of nulls, NaNs, infinities, ties and
duplicates are flagged both ways and must agree row for row; counts, samples, the text of
values and the numeric conversions must agree too. What the local path cannot mirror raises
``Unsupported``.
"""
from __future__ import annotations

import datetime as dt
import math
import random
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from expectations.arrow_rules import (
    Unsupported,
    convert,
    failure_samples,
    flag_table,
    spark_strings,
)
from expectations.raw import RAW_SUITES
from expectations.rules import RuleContext, between, in_set, not_null, sql_rule, unique
from expectations.spark_rules import FAILED, count_failures, flag_rows
from expectations.spark_rules import failure_samples as spark_samples
from jobs.schema import arrow_schema
from tests.expectations.test_spark_rules import _DDL, _cases, _duplicates, _frame

D = dt.date(2025, 10, 9)
REFS = {"stores": [1, 2], "skus": [10, 11, 20]}


def _table(table: str, rows: list[dict[str, Any]]) -> pa.Table:
    schema = arrow_schema(table)
    fields = [f.with_nullable(True) for f in schema]
    fields += [pa.field(c, pa.int32() if c == "__row" else pa.string())
               for c in rows[0] if c not in schema.names]
    return pa.Table.from_pylist(rows, schema=pa.schema(fields))


def _spark_flags(spark, table: str, rows: list[dict[str, Any]], rules, ctx) -> dict[int, list]:
    flagged = flag_rows(_frame(spark, table, rows), rules, ctx, REFS,
                        data_columns=arrow_schema(table).names)
    return {r["__row"]: list(r[FAILED]) for r in flagged.select("__row", FAILED).collect()}


def _arrow_flags(table: str, rows: list[dict[str, Any]], rules, ctx) -> dict[int, list]:
    data = _table(table, rows)
    flagged = flag_table(data, rules, ctx, REFS, data_columns=arrow_schema(table).names)
    return dict(zip(data.column("__row").to_pylist(), flagged.failed_rules(), strict=True))


@pytest.mark.parametrize("table", sorted(RAW_SUITES))
def test_each_rule_flags_the_same_rows_as_spark(spark, table: str) -> None:
    suite = RAW_SUITES[table]
    ctx = RuleContext(D, {"ts": "__raw__ts"} if table == "sales" else {})
    per_row = [r for r in suite.rules if r.kind != "unique"]
    key_rule = [r for r in suite.rules if r.kind == "unique"]
    rows, expected = _cases(table)
    got = _arrow_flags(table, rows, per_row, ctx)
    assert {i: set(v) for i, v in got.items()} == dict(enumerate(expected))
    assert got == _spark_flags(spark, table, rows, per_row, ctx), "rule order in the list too"
    dups = _duplicates(table)
    assert _arrow_flags(table, dups, key_rule, ctx) == \
        _spark_flags(spark, table, dups, key_rule, ctx)


def _messy_sales(n: int, seed: int) -> list[dict[str, Any]]:
    """Sales rows drawn from small pools, so nulls, NaNs, ties and duplicates abound."""
    rnd = random.Random(seed)
    day = dt.datetime.combine(D, dt.time())

    def pick(*values: Any) -> Any:
        return rnd.choice(values)

    rows = []
    for i in range(n):
        ts = pick(None, day, day + dt.timedelta(hours=5, microseconds=250_000),
                  day - dt.timedelta(microseconds=1), day + dt.timedelta(days=1),
                  day + dt.timedelta(hours=23, minutes=59, seconds=59, microseconds=999_999))
        rows.append(dict(
            txn_id=pick(None, "a", "b", "c", "é", "B", f"u{i}"), store_id=pick(None, 1, 2, 7),
            sku_id=pick(None, 10, 11, 99), ts=ts, quantity=pick(None, -1, 0, 3, 10_000, 10_001),
            unit_price=pick(None, float("nan"), float("inf"), -0.0, 0.0, 1e-12, 2.5, 1e6, 1e6 + 1),
            on_promotion=pick(None, True, False), __raw__ts=None if ts is None else str(ts),
            __row=i))
        if rnd.random() < 0.2:  # a parse failure: text arrived, no timestamp came out
            rows[-1].update(ts=None, __raw__ts="not a time")
    return rows


@pytest.mark.parametrize("seed", [1, 2])
def test_a_messy_frame_is_flagged_exactly_as_spark_does(spark, seed: int) -> None:
    rows = _messy_sales(300, seed)
    ctx = RuleContext(D, {"ts": "__raw__ts"})
    rules = list(RAW_SUITES["sales"].rules) + [
        not_null("quantity", name="q_when", when=("unit_price", 2)),
        in_set("store_id", (1, 7), name="store_set"), between("unit_price", 0.5, 1e6,
                                                              strict_max=True, name="p_strict"),
        unique("store_id", "sku_id", name="pair_unique")]
    got = _arrow_flags("sales", rows, rules, ctx)
    assert got == _spark_flags(spark, "sales", rows, rules, ctx)
    assert sum(1 for v in got.values() if v) > 100, "the frame must be messy"


def test_duplicates_are_ordered_as_spark_orders_them(spark) -> None:
    """Ties on a signed zero (-0.0 = 0.0), NaN above infinity, nulls last."""
    base = {"txn_id": "t", "store_id": 1, "sku_id": 10, "ts": dt.datetime(2025, 10, 9, 9),
            "quantity": 1, "__raw__ts": "x"}
    prices = [(-0.0, True), (0.0, False), (float("nan"), False), (float("inf"), False),
              (None, False), (-0.0, False)]
    ctx = RuleContext(D, {"ts": "__raw__ts"})
    (rule,) = [r for r in RAW_SUITES["sales"].rules if r.kind == "unique"]
    for order in ([0, 1, 2, 3, 4, 5], [5, 4, 3, 2, 1, 0], [2, 4, 0, 3, 1, 5]):
        rows = [dict(base, unit_price=prices[i][0], on_promotion=prices[i][1], __row=n)
                for n, i in enumerate(order)]
        assert _arrow_flags("sales", rows, [rule], ctx) == \
            _spark_flags(spark, "sales", rows, [rule], ctx)


def test_counts_and_samples_match_spark(spark) -> None:
    rows = _messy_sales(200, 3)
    ctx = RuleContext(D, {"ts": "__raw__ts"})
    rules = RAW_SUITES["sales"].rules
    names = arrow_schema("sales").names
    flagged = flag_rows(_frame(spark, "sales", rows), rules, ctx, REFS, data_columns=names)
    data = _table("sales", rows)
    local = flag_table(data, rules, ctx, REFS, data_columns=names)
    assert local.counts() == count_failures(flagged, rules)
    view = pa.table([spark_strings(data.column(c)) for c in names], names=names)
    wanted = ["quantity_range", "txn_id_unique", "ts_parseable", "store_id_known"]
    assert failure_samples(local, view, names, 3, wanted) == spark_samples(flagged, names, 3,
                                                                          wanted)


def test_values_read_as_text_as_spark_casts_them(spark) -> None:
    doubles = [0.0, -0.0, 1.0, -2.5, 0.1, 1 / 3, 28.0, 0.001, 0.00099, 1e-12, 1.5e-7,
               9999999.999, 1e7, 12345678.9, 123456789012345.0, 999999999999999.9,
               float("nan"), float("inf"), float("-inf"), None]
    rnd = random.Random(5)
    doubles += [rnd.uniform(1, 10) * 10.0 ** rnd.randint(-12, 14) for _ in range(2000)]
    stamps = [dt.datetime(2025, 10, 9, 18), dt.datetime(2025, 10, 9, 18, 0, 0, 500_000),
              dt.datetime(2025, 10, 9, 0, 0, 0, 123), dt.datetime(999, 1, 2, 3, 4, 5), None]
    cases = {"double": pa.array(doubles, pa.float64()),
             "timestamp_ntz": pa.array(stamps, pa.timestamp("us")),
             "date": pa.array([dt.date(2025, 1, 2), dt.date(999, 12, 31), None], pa.date32()),
             "boolean": pa.array([True, False, None]),
             "int": pa.array([0, -5, 2 ** 31 - 1, None], pa.int32()),
             "bigint": pa.array([2 ** 62, -1, None], pa.int64()),
             "string": pa.array(["é", "", None])}
    for ddl, values in cases.items():
        df = spark.createDataFrame([(i, v) for i, v in enumerate(values.to_pylist())],
                                   f"i int, v {ddl}")
        want = [r[0] for r in df.orderBy("i").selectExpr("CAST(v AS STRING)").collect()]
        assert spark_strings(values).to_pylist() == want, ddl
    for outside in (1e16, 5e-324, 1e-13):
        with pytest.raises(Unsupported):
            spark_strings(pa.array([outside]))


def test_numeric_conversions_match_spark_try_cast_and_its_loss_check(spark) -> None:
    from pyspark.sql import functions as F

    cases = [(pa.int64(), pa.int32(), [0, -5, 2 ** 31 - 1, 2 ** 31, -2 ** 31 - 1, None]),
             (pa.int16(), pa.int32(), [7, -7, None]),
             (pa.int64(), pa.float64(), [3, -2 ** 60, None]),
             (pa.float64(), pa.int32(), [3.0, -0.0, 1.5, -2.5, 1e-5, 2.0 ** 31, -2.0 ** 31,
                                         float("nan"), float("inf"), 1e300, None])]
    for source, target, values in cases:
        ddl = {pa.int64(): "bigint", pa.int16(): "smallint", pa.float64(): "double"}[source]
        want = _DDL.get(target, "bigint")
        df = spark.createDataFrame([(i, v) for i, v in enumerate(values)], f"i int, v {ddl}")
        raw, conv = F.col("v").cast("string"), F.col("v").try_cast(want)
        bad = raw.isNotNull() & conv.isNull()
        if want == "int":
            as_double = raw.try_cast("double")
            bad = raw.isNotNull() & (conv.isNull() | as_double.isNull()
                                     | (as_double != conv.cast("double")))
        rows = df.orderBy("i").select(conv.alias("c"), F.coalesce(bad, F.lit(False))).collect()
        converted, lossy = convert(pa.array(values, source), target)
        assert lossy.tolist() == [r[1] for r in rows], (source, target)
        ok = [c for c, lost in zip(converted.to_pylist(), lossy, strict=True) if not lost]
        assert ok == [r[0] for r, lost in zip(rows, lossy, strict=True) if not lost]
        assert converted.type == target


def test_what_cannot_be_mirrored_says_so() -> None:
    table = pa.table({"k": pa.array([1.0, 1.0]), "s": pa.array(["1", "2"]),
                      "f": pa.array([1.0, 2.0], pa.float32())})
    ctx = RuleContext(D)
    for rule in (sql_rule("odd", ["s"], "s = '1'", "no ones"), unique("k"),
                 between("s", 0, 1), between("f", 0, 1), in_set("s", (1, 2))):
        with pytest.raises(Unsupported):
            flag_table(table, [rule], ctx)
    with pytest.raises(Unsupported):
        convert(pa.array(["1"]), pa.int32())
    assert flag_table(table, [not_null("f")], ctx).counts()["f_not_null"] == 0


def test_nothing_breaks_a_rule_on_null_and_nan_breaks_a_range() -> None:
    table = pa.table({"x": pa.array([None, math.nan, 0.5, 2.0])})
    flagged = flag_table(table, [between("x", 0, 1), in_set("x", (0.5,))], RuleContext(D))
    assert flagged.failed_rules() == [[], ["x_range", "x_valid"], [], ["x_range", "x_valid"]]
    assert np.array_equal(flagged.bad, [False, True, False, True])
