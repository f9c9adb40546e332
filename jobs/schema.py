"""The raw lake schema: the contract for anyone who loads their own data.

Every raw table arrives under ``$REPLENISH_HOME/landing/<table>/date=YYYY-MM-DD/*.parquet``
and, after ingest and validation, lives under ``$REPLENISH_HOME/lake/<table>/...``. The
``date`` is the partition key and is *not* stored inside the files. Dimension tables
(``stores``, ``skus``) are snapshots: the partition date is the day the snapshot takes
effect, and a reader uses the latest snapshot on or before its run date.

``docs/raw_schema.md`` is generated from this module (``replenish schema --markdown``).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pyarrow as pa

__all__ = ["Column", "Table", "RAW_TABLES", "TRUTH_TABLES", "arrow_schema", "table",
           "EXPIRY_COLUMNS", "ZONES", "schema_markdown", "PROMOTIONS_AHEAD_DAYS",
           "promotions_ahead"]

#: Storage zones of a dark store; capacity is in litres per zone.
ZONES = ("ambient", "chilled", "frozen")
#: Inventory units by days to expiry: exp_1d expire at the end of the snapshot's next day.
EXPIRY_COLUMNS = tuple(f"exp_{d}d" for d in range(1, 8)) + ("exp_later",)
#: Promotions are planned: the landing area may hold the ``promotions`` partitions of the
#: next days too (date = the day they apply). Ingest and validation of run date D bring in
#: those of D+1..D+PROMOTIONS_AHEAD_DAYS with D's, so the forecasts of the coming week know
#: which of their days are promoted. Each is brought in again on its own day.
PROMOTIONS_AHEAD_DAYS = 7


def promotions_ahead(run_date: dt.date) -> list[dt.date]:
    """The days whose promotions the run of ``run_date`` brings in ahead."""
    return [run_date + dt.timedelta(days=k) for k in range(1, PROMOTIONS_AHEAD_DAYS + 1)]


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    doc: str
    nullable: bool = False


@dataclass(frozen=True)
class Table:
    name: str
    doc: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    dimension: bool = False

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]


def _c(name: str, type_: pa.DataType, doc: str, nullable: bool = False) -> Column:
    return Column(name, type_, doc, nullable)


_I32, _I64, _F64, _STR, _BOOL = pa.int32(), pa.int64(), pa.float64(), pa.string(), pa.bool_()
_TS, _DATE = pa.timestamp("us"), pa.date32()

RAW_TABLES: dict[str, Table] = {t.name: t for t in (
    Table("stores", "Dark stores (snapshot).", (
        _c("store_id", _I32, "Store identifier"),
        _c("store_name", _STR, "Human-readable name"),
        _c("city", _STR, "City the store serves"),
        _c("region", _STR, "north | south | east | west: drives the festival calendar"),
        _c("latitude", _F64, "Degrees"),
        _c("longitude", _F64, "Degrees"),
        _c("customer_density", _F64, "Households per km2 in the delivery radius, thousands"),
        _c("competitor_proximity_km", _F64, "Distance to the nearest competing dark store"),
        _c("demographic_index", _F64, "Affluence index, 0 (low) to 1 (high)"),
        _c("capacity_ambient_l", _F64, "Ambient shelf volume, litres"),
        _c("capacity_chilled_l", _F64, "Chilled (2-8 C) volume, litres"),
        _c("capacity_frozen_l", _F64, "Frozen volume, litres"),
        _c("daily_budget", _F64, "Purchase budget per day, INR"),
        _c("opened_on", _DATE, "Opening date"),
    ), key=("store_id",), dimension=True),
    Table("skus", "Products (snapshot).", (
        _c("sku_id", _I32, "Product identifier"),
        _c("sku_name", _STR, "Human-readable name"),
        _c("category", _STR, "Category, e.g. dairy, fruits_vegetables, snacks"),
        _c("zone", _STR, "Storage zone: ambient | chilled | frozen"),
        _c("is_perishable", _BOOL, "True for fresh goods with a shelf life of 2-7 days"),
        _c("shelf_life_days", _I32, "Days a unit can be sold after it is received (> 0)"),
        _c("unit_cost", _F64, "Purchase cost per unit, INR"),
        _c("price", _F64, "Regular selling price per unit (MRP), INR"),
        _c("case_pack", _I32, "Units per case; orders are whole cases"),
        _c("moq_cases", _I32, "Minimum order quantity in cases when ordering at all"),
        _c("supplier_id", _I32, "Supplier identifier"),
        _c("lead_time_days", _I32, "Days from order to delivery at the store"),
        _c("volume_l", _F64, "Shelf volume per unit, litres"),
        _c("launched_on", _DATE, "First day the SKU was sold anywhere"),
    ), key=("sku_id",), dimension=True),
    Table("sales", "Sales transaction lines; timestamps are store-local (Asia/Kolkata).", (
        _c("txn_id", _STR, "Unique transaction line id"),
        _c("store_id", _I32, "Store"),
        _c("sku_id", _I32, "Product"),
        _c("ts", _TS, "Time of sale, local time, no time zone"),
        _c("quantity", _I32, "Units sold (>= 0)"),
        _c("unit_price", _F64, "Price paid per unit after discount, INR (> 0)"),
        _c("on_promotion", _BOOL, "True if a promotion applied"),
    ), key=("txn_id",)),
    Table("inventory", "Closing stock per store x SKU x day, after sales, receipts and expiry.", (
        _c("store_id", _I32, "Store"),
        _c("sku_id", _I32, "Product"),
        _c("on_hand", _I32, "Units on the shelf at close"),
        _c("on_order", _I32, "Units ordered and not yet received"),
        _c("received", _I32, "Units received this day (morning delivery)"),
        _c("wasted", _I32, "Units that expired this day and were written off"),
    ) + tuple(_c(c, _I32, "On-hand units expiring within " + (
        c[4:-1] + " day(s)" if c != "exp_later" else "more than 7 days"))
        for c in EXPIRY_COLUMNS), key=("store_id", "sku_id")),
    Table("weather", "Daily weather per city.", (
        _c("city", _STR, "City"),
        _c("temp_max_c", _F64, "Maximum temperature, C"),
        _c("rain_mm", _F64, "Rainfall, mm"),
        _c("humidity", _F64, "Relative humidity, 0-1"),
    ), key=("city",)),
    Table("calendar", "Holidays and festivals per region and day.", (
        _c("region", _STR, "north | south | east | west"),
        _c("is_holiday", _BOOL, "Public or regional holiday"),
        _c("festival", _STR, "Festival name on its main day and the run-up days, else null",
           nullable=True),
        _c("festival_intensity", _F64, "0 normally; 0-1 in a festival's run-up and main day"),
        _c("is_payday", _BOOL, "First days of the month, when salaries land"),
    ), key=("region",)),
    Table("promotions", "Promotions active on the day; the partitions of the next "
          f"{PROMOTIONS_AHEAD_DAYS} days may arrive ahead (the promotion plan).", (
        _c("promo_id", _STR, "Promotion identifier"),
        _c("store_id", _I32, "Store"),
        _c("sku_id", _I32, "Product"),
        _c("discount_pct", _F64, "Price reduction, 0-1"),
        _c("promo_type", _STR, "discount | bundle | festival"),
    ), key=("promo_id", "store_id", "sku_id")),
)}

TRUTH_TABLES: dict[str, Table] = {t.name: t for t in (
    Table("demand", "Ground truth per store x SKU x day (never read for training).", (
        _c("store_id", _I32, "Store"),
        _c("sku_id", _I32, "Product"),
        _c("expected_demand", _F64, "True mean demand given everything knowable in advance"),
        _c("nb_dispersion", _F64, "Negative-binomial size k: Var = mu + mu^2 / k"),
        _c("demand", _I32, "Realised demand (uncensored)"),
        _c("available", _I32, "Units that were really on the shelf to sell this day"),
        _c("sold", _I32, "Units sold = min(demand, available)"),
        _c("lost", _I32, "Demand that found an empty shelf"),
    ), key=("store_id", "sku_id")),
)}


def table(name: str) -> Table:
    try:
        return RAW_TABLES.get(name) or TRUTH_TABLES[name]
    except KeyError:
        raise KeyError(f"unknown table {name!r}; raw tables are {sorted(RAW_TABLES)}") from None


def arrow_schema(name: str) -> pa.Schema:
    return pa.schema([pa.field(c.name, c.type, nullable=c.nullable) for c in table(name).columns])


def schema_markdown() -> str:
    """The raw schema as Markdown, for the README and for people loading their own data."""
    out = ["# Raw lake schema", "",
           "Generated by `replenish schema --markdown` from `jobs/schema.py`.", "",
           "Every table arrives under `$REPLENISH_HOME/landing/<table>/date=YYYY-MM-DD/` as Parquet "
           "and is ingested into `$REPLENISH_HOME/lake/<table>/...`. "
           "The partition `date` is not stored in the files. `stores` and `skus` are snapshots "
           "effective from their partition date.", ""]
    for group, tables in (("Raw tables", RAW_TABLES), ("Ground truth (generator only)",
                                                      TRUTH_TABLES)):
        out += [f"## {group}", ""]
        for t in tables.values():
            out += [f"### `{t.name}`", "", t.doc + f" Key: ({', '.join(t.key)}).", "",
                    "| column | type | null | meaning |", "|---|---|---|---|"]
            out += [f"| `{c.name}` | {c.type} | {'yes' if c.nullable else 'no'} | {c.doc} |"
                    for c in t.columns]
            out.append("")
    return "\n".join(out)
