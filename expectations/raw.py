"""The raw tables' rules, one suite per table: what gets a row quarantined and what fails a step.

Row rules (``RawSuite.rules``) send a bad row to ``lake/quarantine/<table>`` with the names of
the rules it broke; the step fails only if more than ``quarantine_max_share`` of a partition
is quarantined. Table rules (:data:`TABLE_CHECKS`) fail the step outright: they mean the
partition as a whole cannot be trusted.

Duplicates: of the copies of a repeated key, the first in the rule's ``order_by`` order
(ascending, nulls last; for sales the earliest ``ts``) is kept and every other copy is
quarantined; identical copies are interchangeable. A kept copy that breaks another rule is
quarantined too, so then no copy reaches the clean table.
"""
from __future__ import annotations

from dataclasses import dataclass

from expectations.rules import (
    RowRule,
    between,
    in_set,
    known_key,
    not_null,
    parseable,
    unique,
    within_day,
)

__all__ = ["RawSuite", "RAW_SUITES", "TABLE_CHECKS", "MAX_UNITS_PER_LINE", "MAX_PRICE_INR",
           "MAX_DISCOUNT", "TEMP_RANGE_C", "MAX_RAIN_MM", "REGIONS", "ZONES", "PROMO_TYPES",
           "VOLUME_BAND", "VOLUME_LOOKBACK", "VOLUME_MIN_HISTORY", "raw_suite"]

#: A sales line of more units than this is an outlier, not a sale (10^6 units is a typo).
MAX_UNITS_PER_LINE = 10_000
#: Prices and costs above this (INR per unit) are data errors.
MAX_PRICE_INR = 1_000_000.0
#: Promotions never take more than this share off the price.
MAX_DISCOUNT = 0.9
TEMP_RANGE_C = (-40.0, 60.0)
#: More than the wettest day ever recorded anywhere (about 1,800 mm).
MAX_RAIN_MM = 2_000.0
REGIONS = ("north", "south", "east", "west")
ZONES = ("ambient", "chilled", "frozen")
PROMO_TYPES = ("discount", "bundle", "festival")
#: Row volume must lie within this band of the trailing median (festivals triple volume).
VOLUME_BAND = (0.25, 4.0)
#: Previous partitions whose raw row counts make the trailing median.
VOLUME_LOOKBACK = 14
#: Fewer previous partitions than this and the volume check is skipped (with a note).
VOLUME_MIN_HISTORY = 7

#: Table-level checks: any failure stops the step. Name -> what it means.
TABLE_CHECKS: dict[str, str] = {
    "table_present": "The table exists in the lake. inventory, promotions and weather may be "
                     "absent altogether (imported sales-only data has none): the table is "
                     "then skipped with a note.",
    "partition_present": "The partition for the run date (or, for a dimension, a snapshot on "
                         "or before it) exists.",
    "readable_parquet": "Every file of the partition is a Parquet file Spark can read.",
    "partition_not_empty": "The partition has at least one row (promotions may be empty).",
    "columns_present": "Every column of jobs/schema.py is present.",
    "column_types": "Every column has the schema type, or converts to it without loss (it is "
                    "then converted, with a warning). Unconvertible values fail the table, "
                    "except in columns with a parse rule, where they are quarantined.",
    "extra_columns": "Columns not in the schema are dropped from clean: a warning, not a "
                     "failure.",
    "row_volume": "Rows are within VOLUME_BAND of the median of the previous VOLUME_LOOKBACK "
                  "partitions (skipped with fewer than VOLUME_MIN_HISTORY).",
    "reference_available": "The dimension snapshot in force that known-key rules need has been "
                           "validated.",
    "quarantine_share": "At most quarantine_max_share of the partition's rows are quarantined.",
    "ge_suite_clean": "The Great Expectations suite passes on the clean partition (if it does "
                      "not, the rule table and the suite disagree: a bug).",
    "ge_suite_raw": "The Great Expectations suite on the raw partition, for the report only.",
}


@dataclass(frozen=True)
class RawSuite:
    """The rules of one raw table and how its partitions behave."""

    table: str
    rules: tuple[RowRule, ...]
    allow_empty: bool = False
    volume_check: bool = False
    optional: bool = False

    @property
    def name(self) -> str:
        return f"raw.{self.table}"

    @property
    def parse_columns(self) -> frozenset[str]:
        """Columns whose unconvertible values are quarantined instead of failing the table."""
        return frozenset(r.columns[0] for r in self.rules if r.kind == "parseable")


def _required(*columns: str) -> tuple[RowRule, ...]:
    return tuple(not_null(c) for c in columns)


def _non_negative(*columns: str) -> tuple[RowRule, ...]:
    return tuple(between(c, 0, name=f"{c}_non_negative") for c in columns)


_COUNTS = ("on_hand", "on_order", "received", "wasted") + tuple(
    f"exp_{d}d" for d in range(1, 8)) + ("exp_later",)

RAW_SUITES: dict[str, RawSuite] = {s.table: s for s in (
    RawSuite("stores", _required(
        "store_id", "store_name", "city", "region", "latitude", "longitude", "customer_density",
        "competitor_proximity_km", "demographic_index", "capacity_ambient_l",
        "capacity_chilled_l", "capacity_frozen_l", "daily_budget", "opened_on") + (
        unique("store_id", order_by=("opened_on", "store_name")),
        in_set("region", REGIONS),
        between("latitude", -90, 90),
        between("longitude", -180, 180),
        between("demographic_index", 0, 1),
        between("daily_budget", 0, strict_min=True, name="daily_budget_positive"),
    ) + _non_negative("customer_density", "competitor_proximity_km", "capacity_ambient_l",
                      "capacity_chilled_l", "capacity_frozen_l")),
    RawSuite("skus", _required(
        "sku_id", "sku_name", "category", "zone", "is_perishable", "shelf_life_days",
        "unit_cost", "price", "case_pack", "moq_cases", "supplier_id", "lead_time_days",
        "volume_l", "launched_on") + (
        unique("sku_id", order_by=("launched_on", "sku_name")),
        in_set("zone", ZONES),
        between("shelf_life_days", 0, strict_min=True, name="shelf_life_days_positive"),
        between("unit_cost", 0, MAX_PRICE_INR, strict_min=True),
        between("price", 0, MAX_PRICE_INR, strict_min=True),
        between("case_pack", 1),
        between("moq_cases", 1),
        between("volume_l", 0, strict_min=True, name="volume_l_positive"),
    ) + _non_negative("lead_time_days")),
    RawSuite("sales", _required(
        "txn_id", "store_id", "sku_id", "ts", "quantity", "unit_price", "on_promotion") + (
        parseable("ts", "timestamp"),
        within_day("ts"),
        between("quantity", 0, MAX_UNITS_PER_LINE),
        between("unit_price", 0, MAX_PRICE_INR, strict_min=True),
        unique("txn_id", order_by=("ts", "store_id", "sku_id", "quantity", "unit_price",
                                   "on_promotion")),
        known_key("store_id", "stores"),
        known_key("sku_id", "skus"),
    ), volume_check=True),
    RawSuite("inventory", _required("store_id", "sku_id", *_COUNTS) + (
        unique("store_id", "sku_id", name="store_sku_unique"),
        known_key("store_id", "stores"),
        known_key("sku_id", "skus"),
    ) + _non_negative(*_COUNTS), volume_check=True, optional=True),
    RawSuite("promotions", _required(
        "promo_id", "store_id", "sku_id", "discount_pct", "promo_type") + (
        unique("promo_id", "store_id", "sku_id", name="promo_store_sku_unique"),
        between("discount_pct", 0, MAX_DISCOUNT),
        in_set("promo_type", PROMO_TYPES),
        known_key("store_id", "stores"),
        known_key("sku_id", "skus"),
    ), allow_empty=True, optional=True),
    RawSuite("weather", _required("city", "temp_max_c", "rain_mm", "humidity") + (
        unique("city"),
        between("temp_max_c", *TEMP_RANGE_C),
        between("rain_mm", 0, MAX_RAIN_MM),
        between("humidity", 0, 1),
    ), optional=True),
    RawSuite("calendar", _required("region", "is_holiday", "festival_intensity",
                                   "is_payday") + (
        unique("region"),
        in_set("region", REGIONS),
        between("festival_intensity", 0, 1),
    )),
)}


def raw_suite(table: str) -> RawSuite:
    try:
        return RAW_SUITES[table]
    except KeyError:
        raise KeyError(f"no raw suite for table {table!r}; suites exist for "
                       f"{sorted(RAW_SUITES)}") from None
