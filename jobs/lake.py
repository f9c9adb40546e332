"""Date-partitioned Parquet tables on local disk: write one partition, read some back.

A partition is replaced atomically (written beside, then renamed into place), so a crash
never leaves half a day, and writing the same date twice leaves one copy.
"""
from __future__ import annotations

import datetime as dt
import os
import shutil
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from jobs.schema import arrow_schema

__all__ = ["partition_dir", "write_partition", "replace_dir", "read_partition", "list_dates",
           "read_range", "latest_snapshot_date", "read_snapshot"]


def _iso(day: dt.date | str) -> str:
    return day if isinstance(day, str) else day.isoformat()


def partition_dir(root: Path, table: str, day: dt.date | str) -> Path:
    return Path(root) / table / f"date={_iso(day)}"


def write_partition(root: Path, table: str, day: dt.date | str, data: pa.Table,
                    schema: pa.Schema | None = None) -> Path:
    """Replace the ``day`` partition of ``table`` with ``data`` (cast to the table schema)."""
    schema = schema if schema is not None else arrow_schema(table)
    data = data.select(schema.names).cast(schema)
    final = partition_dir(root, table, day)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{final.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    pq.write_table(data, tmp / "part-00000.parquet", compression="zstd")
    replace_dir(tmp, final)
    return final


def replace_dir(tmp: Path, final: Path) -> None:
    """Swap the finished folder ``tmp`` in as ``final`` (two renames; the old one is removed)."""
    if final.exists():
        old = final.parent / f".old-{final.name}-{uuid.uuid4().hex[:8]}"
        os.rename(final, old)
        os.rename(tmp, final)
        shutil.rmtree(old)
    else:
        os.rename(tmp, final)


def list_dates(root: Path, table: str) -> list[dt.date]:
    base = Path(root) / table
    if not base.is_dir():
        return []
    return sorted(dt.date.fromisoformat(p.name[5:]) for p in base.iterdir()
                  if p.is_dir() and p.name.startswith("date="))


def read_partition(root: Path, table: str, day: dt.date | str,
                   columns: Iterable[str] | None = None) -> pa.Table:
    path = partition_dir(root, table, day)
    if not path.is_dir():
        raise FileNotFoundError(f"table {table!r}: partition date={_iso(day)} does not exist "
                                f"under {path.parent}")
    return pq.read_table(path, columns=list(columns) if columns else None)


def read_range(root: Path, table: str, start: dt.date, end: dt.date,
               columns: Iterable[str] | None = None,
               where: Callable[[pa.Table], pa.Table] | None = None) -> pa.Table:
    """Partitions ``start..end`` inclusive, with the partition date as a ``date`` column.

    ``where`` is applied to each partition as it is read (a filter or an aggregate), so only
    what it keeps is held in memory, never the whole range."""
    parts = []
    for day in list_dates(root, table):
        if start <= day <= end:
            t = read_partition(root, table, day, columns)
            if where is not None:
                t = where(t)
            parts.append(t.append_column("date", pa.array([day] * t.num_rows, pa.date32())))
    if not parts:
        raise FileNotFoundError(f"table {table!r}: no partitions between {start} and {end}")
    return pa.concat_tables(parts, promote_options="permissive")


def latest_snapshot_date(root: Path, table: str, day: dt.date) -> dt.date:
    dates = [d for d in list_dates(root, table) if d <= day]
    if not dates:
        raise FileNotFoundError(f"table {table!r}: no snapshot on or before {day}")
    return dates[-1]


def read_snapshot(root: Path, table: str, day: dt.date) -> pa.Table:
    """The dimension snapshot in force on ``day``."""
    return read_partition(root, table, latest_snapshot_date(root, table, day))
