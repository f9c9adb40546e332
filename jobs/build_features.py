"""``replenish run build_features``: demand_daily and the feature table for a date or range.

Reads the validated tables (``lake/clean``) for the dates asked plus the 30-day lookback the
features need (the calendar also 60 days ahead, for "days to the next festival"), and
replaces the ``lake/demand_daily`` and ``lake/features`` partitions of those dates only. A
nightly run therefore reads a month of data, not the whole history; a backfill
(``--from/--to``) gives the same rows (tested).

How a range runs: it is cut into chunks of at most ``CHUNK_DAYS`` days (and, in a world of
more than ``PAIRS_PER_TASK`` store x SKU pairs, into groups of whole stores), and Spark runs
one task per chunk and group (``mapInPandas`` over the task numbers). A task reads its days' sales and
stock from the lake, computes ``demand_daily`` day by day (plus its lookback days, in memory)
and the features with ``features.build.feature_tables`` (numpy), and writes one Parquet
file per date (and store group) into a staging folder. Only chunk numbers and row counts cross between the JVM
and Python; the wide feature rows never do. When every task has finished, each date's
partitions are swapped into the lake (``jobs.lake.replace_dir``: a crash never leaves half a
date). Memory stays bounded by the chunk and group sizes, whatever the range and the
number of stores.
"""
from __future__ import annotations

import datetime as dt
import math
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from jobs.config import Config
from jobs.lake import (
    list_dates,
    partition_dir,
    read_partition,
    read_snapshot,
    replace_dir,
)
from jobs.spark import get_spark

__all__ = ["run", "FeatureResult", "LOOKBACK_DAYS", "CALENDAR_AHEAD_DAYS", "CHUNK_DAYS",
           "PAIRS_PER_TASK",
           "clean_root"]

LOOKBACK_DAYS = 30
CALENDAR_AHEAD_DAYS = 60
#: Most days one task builds; each task also recomputes its lookback days' demand.
CHUNK_DAYS = 46
#: Most store x SKU pairs one task builds (stores x SKUs of the snapshot, whole stores): a
#: task's memory grows with pairs x (days + lookback), so a world with more pairs than this
#: is split into groups of stores as well as chunks of days (``blinkit``'s 3.2 M pairs: ~27
#: groups). Features are per pair, so the split does not change any row.
PAIRS_PER_TASK = 120_000
_SALES = ["store_id", "sku_id", "ts", "quantity", "unit_price", "on_promotion"]
_FEATURE_INPUTS = ["store_id", "sku_id", "units_sold", "demand", "censored", "stockout",
                   "evening_units", "revenue"]
_STATS = "date date, demand_rows long, feature_rows long"


@dataclass(frozen=True)
class FeatureResult:
    start: dt.date
    end: dt.date
    demand_rows: int
    feature_rows: int
    feature_columns: int
    seconds: float

    def summary(self) -> str:
        return (f"build_features {self.start}..{self.end}: {self.demand_rows:,} demand_daily "
                f"rows, {self.feature_rows:,} feature rows x {self.feature_columns} columns in "
                f"{self.seconds:.1f} s")


@dataclass(frozen=True)
class _Plan:
    """What every task needs: where to read and write, and the small shared tables."""

    clean: Path
    staging: Path
    chunks: tuple[tuple[dt.date, dt.date], ...]
    #: store ids of each group, or one ``None`` group: every store, nothing filtered
    groups: tuple[tuple[int, ...] | None, ...]
    has_inventory: bool
    has_promotions: bool
    stores: pd.DataFrame
    skus: pd.DataFrame
    calendar: pd.DataFrame
    weather: pd.DataFrame | None


def clean_root(cfg: Config) -> Path:
    return cfg.lake / "clean"


def run(cfg: Config, run_date: dt.date | None = None, *, start: dt.date | None = None,
        end: dt.date | None = None) -> FeatureResult:
    """Build demand_daily and features for ``run_date`` or ``start..end``."""
    from features.build import FEATURE_SCHEMA

    start = start or run_date
    end = end or run_date or start
    if start is None or end is None:
        raise ValueError("build_features needs run_date or start and end")
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    t0 = time.perf_counter()
    clean = clean_root(cfg)
    lo = start - dt.timedelta(days=LOOKBACK_DAYS)
    have = set(list_dates(clean, "sales"))
    missing = [d.isoformat() for d in _dates(start, end) if d not in have]
    if missing:
        raise FileNotFoundError(f"table 'sales' (clean), partitions {missing[:5]}"
                                f"{' ...' if len(missing) > 5 else ''}: missing; run ingest and "
                                "validate_raw for those dates first")
    staging = cfg.lake / f".staging-build-features-{uuid.uuid4().hex[:8]}"
    plan = _Plan(
        clean=clean, staging=staging, chunks=tuple(_chunks(start, end, CHUNK_DAYS)),
        groups=_store_groups(_snapshot(clean, "stores", end), _snapshot(clean, "skus", end),
                             PAIRS_PER_TASK),
        has_inventory=_has(clean, "inventory", lo, end),
        has_promotions=_has(clean, "promotions", lo, end),
        stores=_snapshot(clean, "stores", end), skus=_snapshot(clean, "skus", end),
        calendar=_range(clean, "calendar", lo, end + dt.timedelta(days=CALENDAR_AHEAD_DAYS)),
        weather=(_range(clean, "weather", lo - dt.timedelta(days=3), end)
                 if _has(clean, "weather", lo - dt.timedelta(days=3), end) else None))
    spark = get_spark(cfg, "replenish-build-features")
    try:
        n = len(plan.chunks) * len(plan.groups)
        tasks = spark.range(0, n, 1, numPartitions=n)
        stats = tasks.mapInPandas(partial(_run_tasks, plan), _STATS).collect()
        for day in _dates(start, end):
            for table in ("demand_daily", "features"):
                final = partition_dir(cfg.lake, table, day)
                final.parent.mkdir(parents=True, exist_ok=True)
                replace_dir(partition_dir(staging, table, day), final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return FeatureResult(start, end, sum(r.demand_rows for r in stats),
                         sum(r.feature_rows for r in stats), len(FEATURE_SCHEMA) - 1,
                         round(time.perf_counter() - t0, 1))


def _run_tasks(plan: _Plan, batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """A Spark task: build the chunks whose numbers arrive (one per task)."""
    for batch in batches:
        for i in batch["id"]:
            chunk, group = divmod(int(i), len(plan.groups))
            yield _build_chunk(plan, *plan.chunks[chunk], group)


def _store_groups(stores: pd.DataFrame, skus: pd.DataFrame,
                  most_pairs: int) -> tuple[tuple[int, ...] | None, ...]:
    """Consecutive groups of store ids with at most ``most_pairs`` store x SKU pairs each
    (at least one store), or ``(None,)`` when every store fits one task."""
    ids = sorted(int(x) for x in stores["store_id"].unique())
    per = max(1, most_pairs // max(1, len(skus)))
    if len(ids) <= per:
        return (None,)
    n = math.ceil(len(ids) / per)
    size = math.ceil(len(ids) / n)
    return tuple(tuple(ids[i:i + size]) for i in range(0, len(ids), size))


def _build_chunk(plan: _Plan, start: dt.date, end: dt.date, group: int = 0) -> pd.DataFrame:
    """demand_daily and features of [start, end] for one group of stores into the staging
    folder (one file per date and group); row counts."""
    from features.build import feature_tables
    from features.demand import DEMAND_SCHEMA, demand_for_day, pairs_for_day

    ids = plan.groups[group]
    part = f"part-{group:05d}.parquet"
    stores = plan.stores if ids is None else plan.stores[plan.stores["store_id"].isin(ids)]

    def read(table: str, day: dt.date, columns: list[str]) -> pd.DataFrame:
        return _read(plan.clean, table, day, columns, ids)

    first = start - dt.timedelta(days=LOOKBACK_DAYS)
    sales_days = set(list_dates(plan.clean, "sales"))
    stock_days = set(list_dates(plan.clean, "inventory")) if plan.has_inventory else set()
    demand: dict[dt.date, pd.DataFrame] = {}
    demand_rows: dict[dt.date, int] = {}
    for day in _dates(first, end):
        inventory = None
        if plan.has_inventory:
            inventory = (read("inventory", day, ["store_id", "sku_id", "on_hand", "wasted"])
                         if day in stock_days else pd.DataFrame(
                             {"store_id": [], "sku_id": [], "on_hand": [], "wasted": []},
                             dtype="int32"))
        pairs = pairs_for_day(inventory, stores, plan.skus, day)
        sales = (read("sales", day, _SALES) if day in sales_days
                 else pd.DataFrame({c: [] for c in _SALES}))
        rows = demand_for_day(sales, inventory, pairs, day)
        if day >= start:
            table = pa.Table.from_pandas(rows.drop(columns="date"), schema=DEMAND_SCHEMA,
                                         preserve_index=False)
            _write(plan.staging, "demand_daily", day, table, part)
            demand_rows[day] = table.num_rows
        demand[day] = rows[_FEATURE_INPUTS]
    promotions = None
    if plan.has_promotions and _has(plan.clean, "promotions", first, end):
        promotions = _range(plan.clean, "promotions", first, end, datetime64=True)
        if ids is not None:
            promotions = promotions[promotions["store_id"].isin(ids)]
    out = []
    for day, table in feature_tables(demand, plan.calendar, plan.weather, promotions,
                                     stores, plan.skus, start, end, LOOKBACK_DAYS):
        _write(plan.staging, "features", day, table.drop_columns(["date"]), part)
        out.append((day, demand_rows[day], table.num_rows))
    return pd.DataFrame(out, columns=["date", "demand_rows", "feature_rows"])


def _read(root: Path, table: str, day: dt.date, columns: list[str],
          stores: tuple[int, ...] | None = None) -> pd.DataFrame:
    """One partition's ``columns``; only the rows of ``stores`` when given."""
    if stores is None:
        return read_partition(root, table, day, columns).to_pandas()
    path = partition_dir(root, table, day)
    if not path.is_dir():
        read_partition(root, table, day, columns)  # its clear error
    return pq.read_table(path, columns=columns,
                         filters=[("store_id", "in", list(stores))]).to_pandas()


def _write(root: Path, table: str, day: dt.date, data: pa.Table,
           name: str = "part-00000.parquet") -> None:
    folder = partition_dir(root, table, day)
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(data, folder / name, compression="zstd")


def _has(root: Path, table: str, start: dt.date, end: dt.date) -> bool:
    return any(start <= d <= end for d in list_dates(root, table))


def _range(root: Path, table: str, start: dt.date, end: dt.date,
           datetime64: bool = False) -> pd.DataFrame:
    """Partitions ``start..end`` with a ``date`` column (partitions written by different
    writers may disagree on nullability, so every column is made nullable)."""
    parts = []
    for day in list_dates(root, table):
        if start <= day <= end:
            t = read_partition(root, table, day)
            t = t.cast(pa.schema([f.with_nullable(True) for f in t.schema]))
            parts.append(t.append_column("date", pa.array([day] * t.num_rows, pa.date32())))
    if not parts:
        raise FileNotFoundError(f"table {table!r}: no partitions between {start} and {end} "
                                f"under {Path(root) / table}")
    return pa.concat_tables(parts).to_pandas(date_as_object=not datetime64)


def _snapshot(root: Path, table: str, day: dt.date) -> pd.DataFrame:
    return read_snapshot(root, table, day).to_pandas()


def _chunks(start: dt.date, end: dt.date, most: int) -> list[tuple[dt.date, dt.date]]:
    """[start, end] cut into the fewest runs of at most ``most`` days, of equal length."""
    days = (end - start).days + 1
    n = math.ceil(days / most)
    out, first = [], start
    for i in range(n):
        size = days // n + (i < days % n)
        out.append((first, first + dt.timedelta(days=size - 1)))
        first += dt.timedelta(days=size)
    return out


def _dates(start: dt.date, end: dt.date) -> list[dt.date]:
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
