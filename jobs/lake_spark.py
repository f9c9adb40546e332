"""Spark access to the date-partitioned lake: read a date range, write whole partitions.

Reads list the partition folders that exist and hand Spark only those paths, so a nightly
run touches its lookback window, not the whole history. Writes use dynamic partition
overwrite: the dates present in the DataFrame are replaced, every other date is left alone.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

from jobs.lake import latest_snapshot_date, list_dates, partition_dir

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["read_range", "read_snapshot", "write_dates", "has_table"]


def has_table(root: Path, table: str) -> bool:
    return bool(list_dates(root, table))


def read_range(spark: SparkSession, root: Path, table: str, start: dt.date, end: dt.date,
               required: bool = True) -> DataFrame | None:
    """Partitions ``start..end`` of ``table`` with a ``date`` column; None if none and not
    ``required``."""
    dates = [d for d in list_dates(root, table) if start <= d <= end]
    if not dates:
        if required:
            raise FileNotFoundError(f"table {table!r}: no partitions between {start} and {end} "
                                    f"under {Path(root) / table}")
        return None
    paths = [str(partition_dir(root, table, d)) for d in dates]
    return spark.read.option("basePath", str(Path(root) / table)).parquet(*paths)


def read_snapshot(spark: SparkSession, root: Path, table: str, day: dt.date) -> DataFrame:
    """The dimension snapshot in force on ``day`` (without its ``date`` column)."""
    snap = latest_snapshot_date(root, table, day)
    return spark.read.parquet(str(partition_dir(root, table, snap)))


def write_dates(df: DataFrame, root: Path, table: str, partitions: int | None = None) -> None:
    """Replace the partitions of ``table`` for the dates present in ``df``."""
    out = df.repartition(partitions, "date") if partitions else df.repartition("date")
    (out.write.mode("overwrite").partitionBy("date")
        .option("partitionOverwriteMode", "dynamic").parquet(str(Path(root) / table)))
