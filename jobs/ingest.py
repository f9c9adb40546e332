"""``replenish run ingest``: bring one day's raw partitions into the lake, faithfully.

Sources:
- ``landing`` (default): Parquet or CSV files under ``$REPLENISH_HOME/landing/<table>/date=D/``,
  where the generator, the importers and upstream extracts drop them;
- ``postgres``: tables of a PostgreSQL source system (``REPLENISH_SOURCE_URL``), read over JDBC
  with Spark, one date at a time.

The output ``$REPLENISH_HOME/lake/raw/<table>/date=D/`` is what arrived, converted to Parquet
but not judged: ``validate_raw`` decides which rows are good. Only that date's partitions are
replaced, so re-running a date gives the same lake. Dimension snapshots (``stores``, ``skus``)
are copied when the snapshot in force on D is not in the lake yet. With ``promotions``, the
partitions of D+1..D+``PROMOTIONS_AHEAD_DAYS`` that have arrived (the promotion plan) are
brought in too, each replacing its own raw partition, so the forecasts of D's coming week
know their promoted days; each is brought in again on its own day.
"""
from __future__ import annotations

import datetime as dt
import os
import shutil
import uuid
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from jobs.config import Config
from jobs.lake import latest_snapshot_date, list_dates, partition_dir, replace_dir
from jobs.schema import promotions_ahead

__all__ = ["run", "IngestResult", "IngestError", "DAILY_TABLES", "DIMENSIONS", "OPTIONAL",
           "raw_root", "landing_dates"]

DAILY_TABLES = ("sales", "inventory", "promotions", "weather", "calendar")
DIMENSIONS = ("stores", "skus")
#: Tables a data set may lack entirely (imported sales-only data has no stock snapshots).
OPTIONAL = frozenset({"inventory", "promotions", "weather"})


class IngestError(RuntimeError):
    """A partition could not be brought in; the message names table, partition and file."""


@dataclass(frozen=True)
class IngestResult:
    run_date: dt.date
    source: str
    rows: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    #: Promotions partitions of the coming days brought in ahead: date -> rows.
    promotions_ahead: dict[dt.date, int] = field(default_factory=dict)

    def summary(self) -> str:
        lines = [f"ingest {self.run_date} from {self.source}:"]
        lines += [f"  {t:<12} {n:>12,} rows" for t, n in self.rows.items()]
        if self.promotions_ahead:
            days = sorted(self.promotions_ahead)
            lines.append(f"  {'promotions':<12} {sum(self.promotions_ahead.values()):>12,} rows "
                         f"ahead ({days[0]}..{days[-1]}, {len(days)} partition(s))")
        lines += [f"  {t:<12} skipped: {why}" for t, why in self.skipped.items()]
        return "\n".join(lines)


def raw_root(cfg: Config) -> Path:
    return cfg.lake / "raw"


# ----------------------------------------------------------------------------- landing
def _source_files(table: str, day: dt.date, folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise IngestError(f"table {table!r}, partition date={day}: missing in the landing "
                          f"area ({folder} does not exist)")
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(
        (".", "_")))
    if not files:
        raise IngestError(f"table {table!r}, partition date={day}: the landing partition "
                          f"{folder} holds no files")
    return files


def _to_parquet(table: str, day: dt.date, src: Path, dst: Path) -> int:
    """Copy one landing file into ``dst`` as Parquet; returns its row count."""
    if src.suffix.lower() == ".csv":
        try:
            data = pacsv.read_csv(src)
        except Exception as exc:  # pyarrow raises several types for bad CSV
            raise IngestError(f"table {table!r}, partition date={day}: {src.name} is not "
                              f"readable CSV ({exc})") from None
        pq.write_table(data, dst / (src.stem + ".parquet"), compression="zstd")
        return data.num_rows
    try:
        rows = pq.read_metadata(src).num_rows
    except Exception as exc:
        raise IngestError(f"table {table!r}, partition date={day}: {src.name} is not a Parquet "
                          f"file ({type(exc).__name__}: {exc})") from None
    shutil.copyfile(src, dst / src.name)
    return rows


def _copy_partition(table: str, day: dt.date, src_dir: Path, dst_dir: Path) -> int:
    """Replace ``dst_dir`` with the files of ``src_dir`` atomically; returns rows copied."""
    dst_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst_dir.parent / f".tmp-{dst_dir.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        rows = sum(_to_parquet(table, day, f, tmp) for f in _source_files(table, day, src_dir))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    replace_dir(tmp, dst_dir)
    return rows


def _from_landing(cfg: Config, run_date: dt.date, tables: tuple[str, ...],
                  ahead: bool) -> IngestResult:
    result = IngestResult(run_date, "landing")
    raw = raw_root(cfg)
    for table in tables:
        if table in DIMENSIONS:
            try:
                snap = latest_snapshot_date(cfg.landing, table, run_date)
            except FileNotFoundError:
                raise IngestError(f"table {table!r}: no snapshot on or before {run_date} in "
                                  f"{cfg.landing / table}") from None
            result.rows[table] = _copy_partition(table, snap, partition_dir(
                cfg.landing, table, snap), partition_dir(raw, table, snap))
            continue
        if table in OPTIONAL and not (cfg.landing / table).is_dir():
            result.skipped[table] = "this data set has no such table"
            continue
        result.rows[table] = _copy_partition(table, run_date, partition_dir(
            cfg.landing, table, run_date), partition_dir(raw, table, run_date))
        if table == "promotions" and ahead:
            for day in promotions_ahead(run_date):
                src = partition_dir(cfg.landing, table, day)
                if src.is_dir():
                    result.promotions_ahead[day] = _copy_partition(
                        table, day, src, partition_dir(raw, table, day))
    return result


# ----------------------------------------------------------------------------- postgres
def _jdbc(cfg: Config) -> tuple[str, dict[str, str]]:
    if not cfg.source_url:
        raise IngestError("ingest_source=postgres needs REPLENISH_SOURCE_URL "
                          "(postgresql://user@host:port/db)")
    if not Path(cfg.jdbc_jar).is_file():
        raise IngestError(f"the PostgreSQL JDBC driver {cfg.jdbc_jar} is missing: install "
                          "Debian's libpostgresql-jdbc-java or set REPLENISH_JDBC_JAR")
    u = urlparse(cfg.source_url)
    url = f"jdbc:postgresql://{u.hostname}:{u.port or 5432}{u.path}"
    props = {"driver": "org.postgresql.Driver", "user": u.username or os.environ.get(
        "PGUSER", "postgres")}
    password = u.password or os.environ.get("PGPASSWORD")
    if password:
        props["password"] = password
    return url, props


def _from_postgres(cfg: Config, run_date: dt.date, tables: tuple[str, ...],
                   ahead: bool) -> IngestResult:
    """Each source table has the raw columns; daily tables also a ``date`` column (sales may
    have only ``ts``, whose day is used)."""
    from jobs.spark import get_spark

    spark = get_spark(cfg, "replenish-ingest")
    url, props = _jdbc(cfg)
    result = IngestResult(run_date, "postgres")
    for table in tables:
        name = f"{cfg.source_schema}.{table}"
        if table in DIMENSIONS:
            day_col = None
        else:  # the date column, probed once per table
            cols = spark.read.jdbc(url, f"(select * from {name} limit 0) as probe",
                                   properties=props).columns
            day_col = "date" if "date" in cols else "cast(ts as date)"
        read = partial(_pg_partition, cfg, spark, url, props, table, day_col)
        rows = read(run_date, ahead=False)
        assert rows is not None
        result.rows[table] = rows
        if table == "promotions" and ahead:
            for day in promotions_ahead(run_date):
                rows = read(day, ahead=True)
                if rows is not None:
                    result.promotions_ahead[day] = rows
    return result


def _pg_partition(cfg: Config, spark: Any, url: str, props: dict[str, str], table: str,
                  day_col: str | None, day: dt.date, ahead: bool) -> int | None:
    """Read one date of a source table (``day_col``: its date expression; None for a
    dimension, read whole) into its raw partition; its row count. A day brought in
    ``ahead`` that the source has no rows for is left alone (None): the plan may not be
    published yet."""
    name = f"{cfg.source_schema}.{table}"
    if day_col is None:
        query = f"(select * from {name}) as src"
    else:
        query = f"(select * from {name} where {day_col} = '{day.isoformat()}') as src"
    try:
        df = spark.read.jdbc(url, query, properties=props)
    except Exception as exc:
        raise IngestError(f"table {table!r}, partition date={day}: could not read "
                          f"{name} from the source ({str(exc).splitlines()[0]})") from None
    if "date" in df.columns:
        df = df.drop("date")
    folder = partition_dir(raw_root(cfg), table, day)
    tmp = folder.parent / f".tmp-{folder.name}-{uuid.uuid4().hex[:8]}"
    df.write.mode("overwrite").parquet(str(tmp))
    rows = spark.read.parquet(str(tmp)).count()
    if rows == 0 and ahead:
        shutil.rmtree(tmp)
        return None
    if table not in DIMENSIONS and rows == 0 and table not in OPTIONAL:
        shutil.rmtree(tmp)
        raise IngestError(f"table {table!r}, partition date={day}: the source table "
                          f"{name} has no rows for that date")
    replace_dir(tmp, folder)
    return rows


def run(cfg: Config, run_date: dt.date, tables: tuple[str, ...] | None = None,
        ahead: bool = True) -> IngestResult:
    """Ingest ``run_date``'s partitions of ``tables`` (default: all raw tables) and, with
    ``ahead`` and ``promotions``, the promotions of the coming week that have arrived (a
    backfill asks it of its last date only, ``jobs.steps``)."""
    tables = tables or DIMENSIONS + DAILY_TABLES
    unknown = sorted(set(tables) - set(DIMENSIONS + DAILY_TABLES))
    if unknown:
        raise ValueError(f"unknown tables {unknown}; raw tables are {DIMENSIONS + DAILY_TABLES}")
    if cfg.ingest_source == "postgres":
        return _from_postgres(cfg, run_date, tables, ahead)
    return _from_landing(cfg, run_date, tables, ahead)


def landing_dates(cfg: Config) -> list[dt.date]:
    """Dates for which the landing area has sales (what a backfill can cover)."""
    return list_dates(cfg.landing, "sales")
