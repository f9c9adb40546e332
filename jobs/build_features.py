"""``replenish run build_features``: demand_daily and the feature table for a date or range.

Reads the validated tables (``lake/clean``) for the dates asked plus the 30-day lookback the
features need (the calendar also 60 days ahead, for "days to the next festival"), and
replaces the ``lake/demand_daily`` and ``lake/features`` partitions of those dates only. A
nightly run therefore reads a month of data, not the whole history; a backfill
(``--from/--to``) is one Spark job over the range. Both give the same rows (tested).
"""
from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from jobs.config import Config
from jobs.lake import list_dates, partition_dir
from jobs.lake_spark import read_range, read_snapshot, write_dates
from jobs.spark import get_spark

__all__ = ["run", "FeatureResult", "LOOKBACK_DAYS", "CALENDAR_AHEAD_DAYS", "clean_root"]

LOOKBACK_DAYS = 30
CALENDAR_AHEAD_DAYS = 60


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


def clean_root(cfg: Config) -> Path:
    return cfg.lake / "clean"


def run(cfg: Config, run_date: dt.date | None = None, *, start: dt.date | None = None,
        end: dt.date | None = None) -> FeatureResult:
    """Build demand_daily and features for ``run_date`` or ``start..end``."""
    from pyspark.sql import functions as F

    from features.build import build_features
    from features.demand import active_pairs, demand_daily

    start = start or run_date
    end = end or run_date or start
    if start is None or end is None:
        raise ValueError("build_features needs run_date or start and end")
    t0 = time.perf_counter()
    spark = get_spark(cfg, "replenish-build-features")
    clean = clean_root(cfg)
    lo = start - dt.timedelta(days=LOOKBACK_DAYS)
    sales = read_range(spark, clean, "sales", lo, end)
    inventory = read_range(spark, clean, "inventory", lo, end, required=False)
    calendar = read_range(spark, clean, "calendar", lo,
                          end + dt.timedelta(days=CALENDAR_AHEAD_DAYS))
    weather = read_range(spark, clean, "weather", lo - dt.timedelta(days=3), end,
                         required=False)
    promotions = read_range(spark, clean, "promotions", lo, end, required=False)
    stores = read_snapshot(spark, clean, "stores", end)
    skus = read_snapshot(spark, clean, "skus", end)
    have = set(list_dates(clean, "sales"))
    missing = [d.isoformat() for d in _dates(start, end) if d not in have]
    if missing:
        raise FileNotFoundError(f"table 'sales' (clean), partitions {missing[:5]}"
                                f"{' ...' if len(missing) > 5 else ''}: missing; run ingest and "
                                "validate_raw for those dates first")

    dates = _dates(lo, end)
    pairs = active_pairs(inventory, stores, skus, dates)
    demand = demand_daily(sales, inventory, pairs, stores=stores, skus=skus).cache()
    in_range = (F.col("date") >= F.lit(start)) & (F.col("date") <= F.lit(end))
    write_dates(demand.where(in_range), cfg.lake, "demand_daily")
    feats = build_features(demand, calendar, weather, promotions, stores, skus, start, end,
                           lookback=LOOKBACK_DAYS)
    write_dates(feats, cfg.lake, "features")
    demand.unpersist()
    result = FeatureResult(start, end, _rows(cfg.lake, "demand_daily", start, end),
                           _rows(cfg.lake, "features", start, end), len(feats.columns) - 1,
                           round(time.perf_counter() - t0, 1))
    return result


def _rows(root: Path, table: str, start: dt.date, end: dt.date) -> int:
    """Rows written for ``start..end``, from the Parquet footers (no Spark job)."""
    total = 0
    for day in list_dates(root, table):
        if start <= day <= end:
            for f in partition_dir(root, table, day).glob("*.parquet"):
                total += pq.read_metadata(f).num_rows
    return total


def _dates(start: dt.date, end: dt.date) -> list[dt.date]:
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
