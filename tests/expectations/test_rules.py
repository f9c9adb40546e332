"""The rule vocabulary and the raw rule table, without Spark: SQL text and consistency."""
from __future__ import annotations

import datetime as dt

import pytest

from expectations.raw import MAX_UNITS_PER_LINE, RAW_SUITES, TABLE_CHECKS, ZONES, raw_suite
from expectations.rules import (
    RowRule,
    RuleContext,
    between,
    finite,
    in_set,
    known_key,
    not_null,
    parseable,
    sql_rule,
    unique,
    within_day,
)
from jobs.schema import RAW_TABLES
from jobs.schema import ZONES as SCHEMA_ZONES

D = dt.date(2025, 10, 9)
CTX = RuleContext(D)


def test_every_kind_compiles_to_sql_true_for_a_bad_row() -> None:
    assert not_null("a").bad_sql(CTX) == "`a` IS NULL"
    assert not_null("a", when=("h", 7)).bad_sql(CTX) == "`a` IS NULL AND `h` >= 7"
    assert between("q", 0, 10).bad_sql(CTX) == \
        "`q` IS NOT NULL AND (isnan(`q`) OR `q` < 0 OR `q` > 10)"
    assert between("p", 0, strict_min=True).bad_sql(CTX) == \
        "`p` IS NOT NULL AND (isnan(`p`) OR `p` <= 0)"
    assert in_set("z", ("a", "b'c")).bad_sql(CTX) == "`z` NOT IN ('a', 'b\\'c')"
    assert "isnan" in (finite("x").bad_sql(CTX) or "")
    assert within_day("ts").bad_sql(CTX) == (
        "`ts` < TIMESTAMP_NTZ '2025-10-09 00:00:00' OR "
        "`ts` >= TIMESTAMP_NTZ '2025-10-10 00:00:00'")
    assert sql_rule("r", ["a"], "a > '{day}'", "d").bad_sql(CTX) == "a > '2025-10-09'"
    assert unique("a").bad_sql(CTX) is None and known_key("a", "t").bad_sql(CTX) is None


def test_converted_columns_are_judged_on_what_arrived() -> None:
    ctx = RuleContext(D, {"ts": "__raw__ts"})
    assert parseable("ts", "timestamp").bad_sql(ctx) == "`__raw__ts` IS NOT NULL AND `ts` IS NULL"
    assert not_null("ts").bad_sql(ctx) == "`__raw__ts` IS NULL"
    # A column that arrived with its schema type has nothing to parse.
    assert parseable("ts", "timestamp").bad_sql(CTX) == "false"


def test_a_rule_must_name_a_known_kind_and_a_column() -> None:
    with pytest.raises(ValueError, match="unknown kind"):
        RowRule("r", "bogus", ("a",), "")
    with pytest.raises(ValueError, match="names no column"):
        RowRule("r", "not_null", (), "")


def test_every_raw_table_has_a_suite_covering_its_schema() -> None:
    assert set(RAW_SUITES) == set(RAW_TABLES)
    for name, table in RAW_TABLES.items():
        suite = raw_suite(name)
        columns = set(table.names)
        names = [r.name for r in suite.rules]
        assert len(names) == len(set(names)), f"{name}: duplicate rule names"
        for rule in suite.rules:
            assert set(rule.columns) <= columns, (name, rule.name)
            assert set(rule.order_by) <= columns, (name, rule.name)
        required = {c.name for c in table.columns if not c.nullable}
        checked = {r.columns[0] for r in suite.rules if r.kind == "not_null"}
        assert checked == required, f"{name}: not-null rules {checked ^ required}"
        keys = [r for r in suite.rules if r.kind == "unique"]
        assert [r.columns for r in keys] == [table.key], f"{name}: key uniqueness"
        assert set(RAW_TABLES) >= {r.ref_table for r in suite.rules if r.kind == "known_key"}
    with pytest.raises(KeyError, match="no raw suite"):
        raw_suite("nope")


def test_the_rule_table_holds_what_the_brief_asks() -> None:
    sales = {r.name: r for r in RAW_SUITES["sales"].rules}
    assert sales["quantity_range"].max_value == MAX_UNITS_PER_LINE < 10**6
    assert sales["unit_price_range"].strict_min and sales["unit_price_range"].min_value == 0
    assert {"txn_id_unique", "store_id_known", "sku_id_known", "ts_parseable",
            "ts_within_partition_day"} <= set(sales)
    assert RAW_SUITES["sales"].parse_columns == {"ts"}
    skus = {r.name: r for r in RAW_SUITES["skus"].rules}
    assert skus["shelf_life_days_positive"].strict_min
    assert skus["price_range"].strict_min and skus["unit_cost_range"].strict_min
    promo = {r.name: r for r in RAW_SUITES["promotions"].rules}
    assert (promo["discount_pct_range"].min_value, promo["discount_pct_range"].max_value) == (0, 0.9)
    weather = {r.name: r for r in RAW_SUITES["weather"].rules}
    assert (weather["humidity_range"].min_value, weather["humidity_range"].max_value) == (0, 1)
    assert weather["rain_mm_range"].min_value == 0
    inventory = {r.name: r for r in RAW_SUITES["inventory"].rules}
    assert inventory["store_sku_unique"].columns == ("store_id", "sku_id")
    assert all(inventory[f"{c}_non_negative"].min_value == 0 for c in ("on_hand", "exp_later"))
    assert ZONES == SCHEMA_ZONES
    assert {"partition_present", "readable_parquet", "partition_not_empty", "columns_present",
            "column_types", "extra_columns", "row_volume", "quarantine_share"} <= set(TABLE_CHECKS)
    assert RAW_SUITES["promotions"].allow_empty and RAW_SUITES["inventory"].optional
    assert RAW_SUITES["sales"].volume_check and not RAW_SUITES["sales"].optional


def test_check_text_explains_relational_rules() -> None:
    assert "first ordered by ts" in unique("txn_id", order_by=("ts",)).check_text()
    assert "stores.store_id" in known_key("store_id", "stores").check_text()
