"""Each raw rule on a tiny hand-written Spark frame: one good row, one bad row per rule.

For every table the frame holds a valid row plus, for every rule of the table's suite, a
copy of it broken in exactly that rule's way; each row must be flagged with exactly the
rules expected (the good row and boundary rows with none). One Spark job per table.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa
import pytest

from expectations.raw import MAX_UNITS_PER_LINE, RAW_SUITES
from expectations.rules import RowRule, RuleContext
from expectations.spark_rules import FAILED, count_failures, failure_samples, flag_rows
from jobs.schema import arrow_schema

D = dt.date(2025, 10, 9)
_DDL = {pa.int32(): "int", pa.float64(): "double", pa.string(): "string",
        pa.bool_(): "boolean", pa.timestamp("us"): "timestamp_ntz", pa.date32(): "date"}

GOOD: dict[str, dict[str, Any]] = {
    "stores": dict(store_id=1, store_name="S1", city="Delhi", region="north", latitude=28.6,
                   longitude=77.2, customer_density=8.0, competitor_proximity_km=2.0,
                   demographic_index=0.5, capacity_ambient_l=900.0, capacity_chilled_l=400.0,
                   capacity_frozen_l=200.0, daily_budget=9000.0, opened_on=dt.date(2024, 1, 1)),
    "skus": dict(sku_id=10, sku_name="Milk", category="dairy", zone="chilled",
                 is_perishable=True, shelf_life_days=3, unit_cost=20.0, price=28.0, case_pack=6,
                 moq_cases=1, supplier_id=1, lead_time_days=1, volume_l=0.5,
                 launched_on=dt.date(2023, 1, 1)),
    "sales": dict(txn_id="t0", store_id=1, sku_id=10, ts=dt.datetime(2025, 10, 9, 18),
                  quantity=2, unit_price=28.0, on_promotion=False),
    "inventory": dict(store_id=1, sku_id=10, on_hand=5, on_order=0, received=6, wasted=1,
                      exp_1d=1, exp_2d=2, exp_3d=2, exp_4d=0, exp_5d=0, exp_6d=0, exp_7d=0,
                      exp_later=0),
    "promotions": dict(promo_id="P1", store_id=1, sku_id=10, discount_pct=0.2,
                       promo_type="discount"),
    "weather": dict(city="Delhi", temp_max_c=33.0, rain_mm=0.0, humidity=0.6),
    "calendar": dict(region="north", is_holiday=False, festival=None, festival_intensity=0.0,
                     is_payday=True),
}

#: Rows that must pass, at the edges of the rules.
BOUNDARY: dict[str, list[dict[str, Any]]] = {
    "sales": [dict(txn_id="b1", quantity=MAX_UNITS_PER_LINE),
              dict(txn_id="b2", quantity=0, ts=dt.datetime(2025, 10, 9, 23, 59, 59)),
              dict(txn_id="b3", ts=dt.datetime(2025, 10, 9, 0, 0, 0))],
    "promotions": [dict(promo_id="P2", discount_pct=0.9), dict(promo_id="P3", discount_pct=0.0)],
    "weather": [dict(city="Pune", humidity=1.0, rain_mm=0.0)],
    "calendar": [dict(region="south", festival="Diwali", festival_intensity=1.0)],
}

#: Extra hand-written bad rows: (changes, rules broken).
EXTRA: dict[str, list[tuple[dict[str, Any], set[str]]]] = {
    "sales": [
        (dict(txn_id="x1", quantity=10**6), {"quantity_range"}),
        (dict(txn_id="x2", quantity=-1), {"quantity_range"}),
        (dict(txn_id="x3", unit_price=-5.0), {"unit_price_range"}),
        (dict(txn_id="x4", unit_price=float("nan")), {"unit_price_range"}),
        (dict(txn_id="x5", ts=dt.datetime(2025, 10, 8, 23, 59)), {"ts_within_partition_day"}),
        (dict(txn_id="x6", ts=dt.datetime(2026, 1, 1, 12)), {"ts_within_partition_day"}),
        (dict(txn_id="x7", store_id=None, quantity=-3), {"store_id_not_null", "quantity_range"}),
    ],
    "skus": [(dict(sku_id=11, shelf_life_days=-2), {"shelf_life_days_positive"})],
}


def _negative(rule: RowRule, good: dict[str, Any]) -> dict[str, Any] | None:
    """A copy of ``good`` that breaks ``rule`` only (None for unique: tested apart)."""
    col = rule.columns[0]
    row = dict(good)
    if rule.kind == "not_null":
        row[col] = None
    elif rule.kind == "between":
        if rule.min_value is not None:
            bad = rule.min_value if rule.strict_min else rule.min_value - 1
        else:
            bad = rule.max_value if rule.strict_max else rule.max_value + 1  # type: ignore[operator]
        row[col] = type(good[col])(bad)
    elif rule.kind == "in_set":
        row[col] = "bogus"
    elif rule.kind == "known_key":
        row[col] = 999
    elif rule.kind == "parseable":
        row[col] = None
        row["__raw__ts"] = "not a time"
    elif rule.kind == "within_day":
        row[col] = dt.datetime(2025, 10, 10)  # the first instant of the next day
    elif rule.kind == "unique":
        return None
    if "__raw__ts" in good and rule.kind != "parseable":
        row["__raw__ts"] = None if row["ts"] is None else str(row["ts"])
    return row


def _frame(spark, table: str, rows: list[dict[str, Any]]):
    schema = arrow_schema(table)
    ddl = [f"`{f.name}` {_DDL[f.type]}" for f in schema]
    extra = [c for c in rows[0] if c not in schema.names]
    ddl += [f"`{c}` {'int' if c == '__row' else 'string'}" for c in extra]
    names = schema.names + extra
    return spark.createDataFrame([tuple(r.get(c) for c in names) for r in rows], ", ".join(ddl))


def _cases(table: str) -> tuple[list[dict[str, Any]], list[set[str]]]:
    """Rows and the rules each must break, for every rule but key uniqueness."""
    suite = RAW_SUITES[table]
    good = dict(GOOD[table])
    if table == "sales":
        good["__raw__ts"] = str(good["ts"])
    rows, expected = [good], [set()]
    for rule in suite.rules:
        row = _negative(rule, good)
        if row is not None:
            rows.append(row)
            expected.append({rule.name})
    for change in BOUNDARY.get(table, []):
        rows.append({**good, **change})
        expected.append(set())
    for change, broken in EXTRA.get(table, []):
        rows.append({**good, **change})
        expected.append(broken)
    if table == "sales":  # every row carries the ts as it arrived (a converted column)
        for r in rows:
            r.setdefault("__raw__ts", None if r["ts"] is None else str(r["ts"]))
    for i, r in enumerate(rows):
        r["__row"] = i
    return rows, expected


def _duplicates(table: str) -> list[dict[str, Any]]:
    """The good row three times (two copies must be flagged) and a row with another key."""
    (key_rule,) = [r for r in RAW_SUITES[table].rules if r.kind == "unique"]
    good = dict(GOOD[table])
    other = dict(good)
    for c in key_rule.columns[-1:]:
        other[c] = "other" if isinstance(good[c], str) else good[c] + 1
    rows = [dict(good, __row=100), dict(good, __row=101), dict(good, __row=102),
            dict(other, __row=103)]
    if table == "sales":
        for r in rows:
            r["__raw__ts"] = str(r["ts"])
    return rows


@pytest.fixture(scope="module")
def refs():
    """Reference keys as values (an IN-set, as validate passes dimensions of normal size)."""
    return {"stores": [1, 2], "skus": [10, 11, 20]}


@pytest.mark.parametrize("table", sorted(RAW_SUITES))
def test_each_rule_flags_its_bad_row_and_only_it(spark, refs, table: str) -> None:
    """Every rule but key uniqueness on one frame, key uniqueness on another; one job."""
    from pyspark.sql import functions as F

    suite = RAW_SUITES[table]
    ctx = RuleContext(D, {"ts": "__raw__ts"} if table == "sales" else {})
    names = arrow_schema(table).names
    per_row = [r for r in suite.rules if r.kind != "unique"]
    (key_rule,) = [r for r in suite.rules if r.kind == "unique"]
    rows, expected = _cases(table)
    dups = _duplicates(table)
    both = flag_rows(_frame(spark, table, rows), per_row, ctx, refs, data_columns=names) \
        .select("__row", FAILED).unionByName(
            flag_rows(_frame(spark, table, dups), [key_rule], ctx, refs, data_columns=names)
            .select("__row", FAILED)).orderBy(F.col("__row"))
    got = {r["__row"]: set(r[FAILED]) for r in both.collect()}
    assert len(got) == len(rows) + len(dups), "rule evaluation must not add or drop rows"
    mismatched = {i: (rows[i], got[i], want) for i, want in enumerate(expected) if got[i] != want}
    assert not mismatched, mismatched
    assert {r.name for r in per_row} <= set().union(*got.values()), "a negative case per rule"
    # Of three copies of one key, exactly two are flagged; the other key is not.
    assert sorted(len(got[i]) for i in (100, 101, 102)) == [0, 1, 1] and got[103] == set()
    assert got[100] | got[101] | got[102] == {key_rule.name}


def test_duplicates_keep_the_first_copy_in_order(spark) -> None:
    # Reference keys as DataFrames: the broadcast-join path of known-key rules.
    refs = {"stores": spark.createDataFrame([(1,), (2,)], "store_id int"),
            "skus": spark.createDataFrame([(10,), (20,)], "sku_id int")}
    base = dict(GOOD["sales"], __raw__ts=None)
    rows = [dict(base, ts=dt.datetime(2025, 10, 9, h), __row=h) for h in (20, 9, 15)]
    rows.append(dict(base, txn_id="other", __row=99))
    rows.append(dict(base, txn_id="unknown", store_id=7, sku_id=70, __row=98))
    ctx = RuleContext(D, {"ts": "__raw__ts"})
    for r in rows:
        r["__raw__ts"] = str(r["ts"])
    flagged = flag_rows(_frame(spark, "sales", rows), RAW_SUITES["sales"].rules, ctx, refs)
    got = {r["__row"]: list(r[FAILED]) for r in flagged.select("__row", FAILED).collect()}
    assert got == {9: [], 15: ["txn_id_unique"], 20: ["txn_id_unique"], 99: [],
                   98: ["store_id_known", "sku_id_known"]}


def test_counts_and_samples_per_rule(spark, refs) -> None:
    rows, expected = _cases("sales")
    ctx = RuleContext(D, {"ts": "__raw__ts"})
    rules = [r for r in RAW_SUITES["sales"].rules if r.kind != "unique"]
    flagged = flag_rows(_frame(spark, "sales", rows), rules, ctx, refs)
    counts = count_failures(flagged, rules)
    assert counts["rows"] == len(rows)
    assert counts["bad"] == sum(1 for e in expected if e)
    assert counts["quantity_range"] == sum("quantity_range" in e for e in expected) == 4
    samples = failure_samples(flagged, ["txn_id", "quantity"], n=2, rules=["quantity_range"])
    assert list(samples) == ["quantity_range"] and len(samples["quantity_range"]) == 2
    assert all(isinstance(v, str) for s in samples["quantity_range"] for v in s.values())
