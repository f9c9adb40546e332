"""Import the public "Store Item Demand Forecasting Challenge" data into the landing area.

``replenish import store-item CSV_OR_ZIP`` reads ``date,store,item,sales`` daily totals
(a plain CSV, or a zip holding ``train.csv``) and writes the raw tables of
``jobs/schema.py`` into ``$REPLENISH_HOME/landing`` (``replenish run ingest`` takes it from there), so every later step runs on it
unchanged. What the data lacks (prices, costs, shelf space, weather, festivals) is filled
with the documented constants below; ``docs/bring_your_own_data.md`` lists them all.

Rows that break a rule are never dropped silently: they go to
``$REPLENISH_HOME/lake/quarantine/import_store_item/rejected.parquet`` with the original
values as strings and a ``reason``, and ``rows_read == rows_written + rows_rejected``.
``inventory`` is not written: stock levels are unknown, so no day counts as a stock-out.

The import is vectorised (one pass of pandas over all rows, then one slice per date) and
idempotent: every partition it writes is replaced, so importing twice gives the same lake.
"""
from __future__ import annotations

import datetime as dt
import io
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from jobs.config import Config
from jobs.lake import write_partition
from jobs.schema import arrow_schema

__all__ = ["BUDGET_DAYS_OF_DEMAND", "REGIONS", "REQUIRED_COLUMNS", "SALE_HOUR", "SKU_DEFAULTS",
           "STORE_DEFAULTS", "WEATHER_DEFAULTS", "ImportResult", "rejected_path", "run"]

#: Columns the input must have (others, e.g. Kaggle's ``id``, are ignored).
REQUIRED_COLUMNS = ("date", "store", "item", "sales")
#: Regions written to ``calendar`` each day (the schema's north | south | east | west).
REGIONS = ("north", "south", "east", "west")
#: Hour given to every sales line: the data is a daily total and 18:00-22:00 is the peak.
SALE_HOUR = 19
#: A store's daily budget is this many days of its mean daily units at the default unit cost.
BUDGET_DAYS_OF_DEMAND = 3.0

#: Constants for ``stores`` columns the data does not have.
STORE_DEFAULTS: Mapping[str, object] = MappingProxyType({
    "region": "north",
    "latitude": 28.6139,          # New Delhi: one place for every store
    "longitude": 77.2090,
    "customer_density": 10.0,
    "competitor_proximity_km": 2.0,
    "demographic_index": 0.5,
    "capacity_ambient_l": 1_000_000.0,   # large enough never to bind
    "capacity_chilled_l": 1_000_000.0,
    "capacity_frozen_l": 1_000_000.0,
})
_UNIT_COST, _PRICE = 70.0, 100.0  # INR, the same for every SKU
#: Constants for ``skus`` columns the data does not have.
SKU_DEFAULTS: Mapping[str, object] = MappingProxyType({
    "category": "unknown",
    "zone": "ambient",
    "is_perishable": False,
    "shelf_life_days": 365,
    "unit_cost": _UNIT_COST,
    "price": _PRICE,
    "case_pack": 1,
    "moq_cases": 1,
    "supplier_id": 1,
    "lead_time_days": 1,
    "volume_l": 1.0,
})
#: Neutral weather for every city and day: real weather is unknown.
WEATHER_DEFAULTS: Mapping[str, float] = MappingProxyType({
    "temp_max_c": 30.0, "rain_mm": 0.0, "humidity": 0.6,
})

_INT32_MAX = 2**31 - 1
_NOT_INT = f"not an integer in [0, {_INT32_MAX}]"
_QUARANTINE_SCHEMA = pa.schema([
    ("source", pa.string()), ("line", pa.int64()), ("date", pa.string()),
    ("store", pa.string()), ("item", pa.string()), ("sales", pa.string()),
    ("reason", pa.string()),
])


@dataclass(frozen=True)
class ImportResult:
    """What an import read, wrote and rejected.

    ``rows_read`` counts the input rows inside the filters; each is either accepted
    (``rows_written``; a zero-sales row is accepted and written as the absence of a sales
    line) or rejected (``rows_rejected``, in ``quarantine``). ``rows_skipped`` were outside
    the filters. ``tables`` is rows written per lake table, summed over partitions.
    """

    source: str
    rows_read: int
    rows_written: int
    rows_rejected: int
    rows_skipped: int
    dates: tuple[dt.date, dt.date] | None
    stores: int
    skus: int
    partitions: int
    tables: Mapping[str, int] = field(hash=False)
    quarantine: Path = field(hash=False)

    def summary(self) -> str:
        """A few lines for the command line."""
        span = f"{self.dates[0]}..{self.dates[1]}" if self.dates else "no dates"
        tables = ", ".join(f"{k}={v:,}" for k, v in self.tables.items())
        return (f"{self.source}: read {self.rows_read:,} rows, accepted {self.rows_written:,}, "
                f"rejected {self.rows_rejected:,}, skipped by filters {self.rows_skipped:,}\n"
                f"{span}: {self.partitions:,} dates, {self.stores} stores, {self.skus} skus\n"
                f"rows written: {tables}\n"
                f"rejected rows: {self.quarantine}")


def rejected_path(cfg: Config) -> Path:
    """Where the rejected rows of the last store-item import live."""
    return cfg.lake / "quarantine" / "import_store_item" / "rejected.parquet"


# ---------------------------------------------------------------------------- reading

def _open_csv(path: Path) -> tuple[str, bytes]:
    """The CSV's display name and bytes: the file itself, or train.csv (or the one CSV) of a zip."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if not zipfile.is_zipfile(path):
        return str(path), path.read_bytes()
    with zipfile.ZipFile(path) as zf:
        csvs = [n for n in zf.namelist() if n.lower().endswith(".csv")
                and not n.startswith("__MACOSX/") and not n.endswith("/")]
        train = [n for n in csvs if Path(n).name.lower() == "train.csv"]
        if len(train) == 1:
            member = train[0]
        elif not train and len(csvs) == 1:
            member = csvs[0]
        else:
            raise ValueError(f"{path}: expected train.csv or exactly one .csv inside the zip, "
                             f"found {csvs or 'no csv files'}")
        return f"{path}:{member}", zf.read(member)


def _read_raw(source: str, data: bytes) -> pd.DataFrame:
    """The required columns as stripped strings ('' when empty), plus the file line number."""
    raw = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False,
                      skipinitialspace=True)
    raw.columns = [str(c).strip() for c in raw.columns]
    for col in REQUIRED_COLUMNS:
        if col not in raw.columns:
            raise ValueError(f"{source}: missing column {col!r} (required: "
                             f"{', '.join(REQUIRED_COLUMNS)}; found: {', '.join(raw.columns)})")
    out = pd.DataFrame({c: raw[c].fillna("").str.strip() for c in REQUIRED_COLUMNS})
    out["line"] = np.arange(2, len(out) + 2, dtype=np.int64)  # line 1 is the header
    return out


# ------------------------------------------------------------------------- validation

def _to_int(values: pd.Series, lo: int) -> pd.Series:
    """Integers in [lo, int32 max] as float (NaN where missing, fractional or out of range)."""
    num = pd.to_numeric(values.where(values != ""), errors="coerce")
    ok = np.isfinite(num) & (num % 1 == 0) & (num >= lo) & (num <= _INT32_MAX)
    return num.where(ok)


def _parse(raw: pd.DataFrame) -> pd.DataFrame:
    """Typed columns (NaN/NaT where a value breaks its rule) and each row's rejection reason."""
    num_sales = pd.to_numeric(raw["sales"].where(raw["sales"] != ""), errors="coerce")
    parsed = pd.DataFrame({
        "date": pd.to_datetime(raw["date"], format="%Y-%m-%d", errors="coerce"),
        "store": _to_int(raw["store"], 0),
        "item": _to_int(raw["item"], 0),
        "sales": _to_int(raw["sales"], 0),
    }, index=raw.index)
    rules = [(raw["date"] == "", "date: missing"),
             ((raw["date"] != "") & parsed["date"].isna(), "date: not a YYYY-MM-DD date")]
    for col in ("store", "item", "sales"):
        present = raw[col] != ""
        broken = present & parsed[col].isna()
        rules.append((~present, f"{col}: missing"))
        if col == "sales":
            rules.append((num_sales < 0, "sales: negative"))
            broken &= ~(num_sales < 0)
        rules.append((broken, f"{col}: {_NOT_INT}"))
    parsed["reason"] = _reasons(raw.index, rules)
    return parsed


def _reasons(index: pd.Index, rules: list[tuple[pd.Series, str]]) -> pd.Series:
    """'; '-joined names of the rules each row breaks ('' when it breaks none)."""
    reason = pd.Series("", index=index, dtype=object)
    for mask, text in rules:
        mask = mask.fillna(False).to_numpy(bool)
        if mask.any():
            hit = reason[mask]
            reason[mask] = np.where(hit == "", text, hit + "; " + text)
    return reason


def _in_filters(parsed: pd.DataFrame, start: dt.date | None, end: dt.date | None,
                stores: Iterable[int] | None, items: Iterable[int] | None) -> pd.Series:
    """Rows inside the filters. A value that does not parse passes its filter, so a broken
    row is only left out when it provably lies outside the selection."""
    keep = pd.Series(True, index=parsed.index)
    known = parsed["date"].notna()
    if start is not None:
        keep &= ~known | (parsed["date"] >= pd.Timestamp(start))
    if end is not None:
        keep &= ~known | (parsed["date"] <= pd.Timestamp(end))
    for col, wanted in (("store", stores), ("item", items)):
        if wanted is not None:
            keep &= parsed[col].isna() | parsed[col].isin([int(v) for v in wanted])
    return keep


def _mark_duplicates(parsed: pd.DataFrame) -> None:
    """Reject every repeat of a (date, store, item) after its first row: a daily total
    given twice is ambiguous, and the repeat would reuse the first row's txn_id."""
    ok = parsed["reason"] == ""
    dup = parsed[ok].duplicated(["date", "store", "item"], keep="first")
    parsed.loc[dup[dup].index, "reason"] = ("duplicate: an earlier row has the same "
                                            "(date, store, item)")


def _write_rejected(cfg: Config, source: str, raw: pd.DataFrame, reason: pd.Series) -> Path:
    """Replace the rejected-rows file (empty when nothing was rejected, so none is stale)."""
    frame = raw.assign(source=source, reason=reason)
    table = pa.Table.from_pandas(frame[_QUARANTINE_SCHEMA.names], schema=_QUARANTINE_SCHEMA,
                                 preserve_index=False)
    path = rejected_path(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}")
    pq.write_table(table, tmp, compression="zstd")
    tmp.replace(path)
    return path


# ---------------------------------------------------------------------------- mapping

def _stores_table(good: pd.DataFrame, first: dt.date, n_dates: int, n_skus: int) -> pa.Table:
    """One row per store; the budget is BUDGET_DAYS_OF_DEMAND days of its mean daily units."""
    units = good.groupby("store_id")["quantity"].sum().sort_index()
    ids = units.index.to_numpy(np.int32)
    cost = _UNIT_COST
    floor = cost * n_skus  # one unit of every SKU, so a store that sold nothing can still buy
    budget = np.maximum(BUDGET_DAYS_OF_DEMAND * units.to_numpy(float) / n_dates * cost, floor)
    n = len(ids)
    cols = {
        "store_id": ids,
        "store_name": [f"Store {i}" for i in ids],
        "city": [f"store-item-{i}" for i in ids],
        **{k: [v] * n for k, v in STORE_DEFAULTS.items()},
        "daily_budget": np.round(budget, 2),
        "opened_on": [first] * n,
    }
    return pa.table(cols).select(arrow_schema("stores").names).cast(arrow_schema("stores"))


def _skus_table(good: pd.DataFrame, first: dt.date) -> pa.Table:
    """One row per item, launched on its first day with sales (else the first import day)."""
    ids = np.sort(good["sku_id"].unique()).astype(np.int32)
    sold = good[good["quantity"] > 0].groupby("sku_id")["date"].min()
    launched = [sold[i].date() if i in sold.index else first for i in ids]
    n = len(ids)
    cols = {
        "sku_id": ids,
        "sku_name": [f"item-{i}" for i in ids],
        **{k: [v] * n for k, v in SKU_DEFAULTS.items()},
        "launched_on": launched,
    }
    return pa.table(cols).select(arrow_schema("skus").names).cast(arrow_schema("skus"))


def _sales_table(good: pd.DataFrame) -> tuple[pa.Table, np.ndarray]:
    """All sales lines (sales > 0) sorted by date, and the date of each line."""
    lines = good[good["quantity"] > 0].sort_values(["date", "store_id", "sku_id"])
    stamp = lines["date"].dt.strftime("%Y%m%d")
    txn = "si-" + stamp + "-" + lines["store_id"].astype(str) + "-" + lines["sku_id"].astype(str)
    table = pa.table({
        "txn_id": txn.to_numpy(str),
        "store_id": lines["store_id"].to_numpy(np.int32),
        "sku_id": lines["sku_id"].to_numpy(np.int32),
        "ts": (lines["date"] + pd.Timedelta(hours=SALE_HOUR)).to_numpy("datetime64[us]"),
        "quantity": lines["quantity"].to_numpy(np.int32),
        "unit_price": np.full(len(lines), _PRICE),
        "on_promotion": np.zeros(len(lines), bool),
    }).cast(arrow_schema("sales"))
    return table, lines["date"].to_numpy("datetime64[D]")


def _calendar_table(payday: bool) -> pa.Table:
    """Every region, no festival, no holiday; payday on days 1-3 of the month."""
    n = len(REGIONS)
    return pa.table({
        "region": list(REGIONS), "is_holiday": [False] * n, "festival": [None] * n,
        "festival_intensity": [0.0] * n, "is_payday": [payday] * n,
    }).cast(arrow_schema("calendar"))


def _weather_table(cities: list[str]) -> pa.Table:
    """Neutral constants for every city: real weather is unknown."""
    n = len(cities)
    cols = {"city": cities, **{k: [v] * n for k, v in WEATHER_DEFAULTS.items()}}
    return pa.table(cols).cast(arrow_schema("weather"))


# -------------------------------------------------------------------------------- run

def run(cfg: Config, path: str | Path, *, start: dt.date | None = None,
        end: dt.date | None = None, stores: list[int] | None = None,
        items: list[int] | None = None, progress: bool = True) -> ImportResult:
    """Import ``date,store,item,sales`` daily totals into the raw lake (see module doc).

    ``start``/``end`` (inclusive), ``stores`` and ``items`` restrict the import, e.g. for a
    quick demo. Partitions for the imported dates are replaced; others are left alone.
    """
    if start is not None and end is not None and start > end:
        raise ValueError(f"start {start} is after end {end}")
    source, data = _open_csv(Path(path))
    raw = _read_raw(source, data)
    parsed = _parse(raw)
    keep = _in_filters(parsed, start, end, stores, items).to_numpy(bool)
    raw, parsed = raw[keep], parsed[keep].copy()
    _mark_duplicates(parsed)

    bad = (parsed["reason"] != "").to_numpy(bool)
    quarantine = _write_rejected(cfg, source, raw[bad], parsed.loc[bad, "reason"])
    good = pd.DataFrame({
        "date": parsed.loc[~bad, "date"],
        "store_id": parsed.loc[~bad, "store"].astype(np.int64),
        "sku_id": parsed.loc[~bad, "item"].astype(np.int64),
        "quantity": parsed.loc[~bad, "sales"].astype(np.int64),
    })
    counts = {"rows_read": len(parsed), "rows_written": len(good),
              "rows_rejected": int(bad.sum()), "rows_skipped": int((~keep).sum())}
    if good.empty:
        return ImportResult(source=source, dates=None, stores=0, skus=0, partitions=0,
                            tables=MappingProxyType({}), quarantine=quarantine, **counts)

    tables, n_dates = _write_lake(cfg, good, progress)
    days = good["date"]
    return ImportResult(source=source, dates=(days.min().date(), days.max().date()),
                        stores=tables["stores"], skus=tables["skus"], partitions=n_dates,
                        tables=MappingProxyType(tables), quarantine=quarantine, **counts)


def _write_lake(cfg: Config, good: pd.DataFrame, progress: bool) -> tuple[dict[str, int], int]:
    """Write dimensions at the first date and one partition per date for the daily tables;
    return rows written per table and the number of dates."""
    days = np.unique(good["date"].to_numpy("datetime64[D]"))
    first = days[0].item()
    stores = _stores_table(good, first, len(days), good["sku_id"].nunique())
    skus = _skus_table(good, first)
    write_partition(cfg.landing, "stores", first, stores)
    write_partition(cfg.landing, "skus", first, skus)

    sales, line_days = _sales_table(good)
    bounds = np.searchsorted(line_days, days, side="left").tolist() + [len(line_days)]
    calendar = {p: _calendar_table(p) for p in (False, True)}
    weather = _weather_table(stores.column("city").to_pylist())
    promotions = arrow_schema("promotions").empty_table()
    written = {"stores": stores.num_rows, "skus": skus.num_rows, "sales": 0, "calendar": 0,
               "weather": 0, "promotions": 0}
    for i, day64 in enumerate(tqdm(days, desc="import store-item", unit="day",
                                   disable=not progress)):
        day = day64.item()
        daily = {"sales": sales.slice(bounds[i], bounds[i + 1] - bounds[i]),
                 "calendar": calendar[day.day <= 3], "weather": weather,
                 "promotions": promotions}
        for name, table in daily.items():
            write_partition(cfg.landing, name, day, table)
            written[name] += table.num_rows
    return written, len(days)
