"""Validate the raw lake and the features with the suites in ``expectations/``.

``run_raw(cfg, D)`` checks every raw table's partition for D (for ``stores``/``skus``: the
snapshot in force on D) under ``lake/raw``:

1. table checks (``expectations.raw.TABLE_CHECKS``): partition present, files are Parquet,
   not empty, every schema column present, types equal or losslessly convertible, row
   volume within a band of the trailing median. A failure stops the table: nothing is
   written for it (a stale clean/quarantine partition of that date is removed);
2. row rules (``expectations.raw.RAW_SUITES``) in one pass: good rows, converted to
   the exact ``jobs/schema.py`` types with extra columns dropped (known-key rules look the
   ids up in the *clean* stores/skus snapshot in force, so clean tables always join), replace
   ``lake/clean/<table>/date=P``; bad rows, as the original values in strings plus
   ``failed_rules`` and ``run_date``, replace ``lake/quarantine/<table>/date=P`` (removed
   when there are none). Rows in = accepted + quarantined, checked on the written files;
3. the table's Great Expectations suite runs on the clean partition (it must pass: if not,
   the rule table and the suite disagree, a bug) and on the raw one for the report, and
   updates the Data Docs site under ``$REPLENISH_HOME/reports/data_docs/``.

Then one row per (table, partition, rule) replaces that run's rows in
``replenish.data_quality`` (one transaction), an HTML report per table is written under
``reports/data_docs/replenish/run_date=D/``, and a :class:`ValidationError` is raised if a
table check failed or a table quarantined more than ``cfg.quarantine_max_share``.

With ``promotions``, the raw promotions partitions of D+1..D+``PROMOTIONS_AHEAD_DAYS`` that
ingest brought in ahead (the promotion plan) are validated too, each as its own run of that
date (its clean partition, data_quality rows and report), so the scoring's target days read
validated promotions. A failed one is a warning of D's run, not a failure, and is gated
again on its own night (``ValidationSummary.ahead``): after a failed table check its
partition stays out of clean; after too many quarantined rows, its accepted rows are in
clean, as on any night.

``run_features(cfg, D)`` checks ``lake/features/date=D`` against the feature catalog
(``expectations.features``) and the active pairs of ``lake/demand_daily/date=D``.

Row engine: ``"auto"`` (default) evaluates the row rules of a partition of at most
``ROW_ARROW_MAX_CELLS`` cells (rows x columns; ``cfg.validate_arrow_max_cells`` if the
configuration has it) locally with pyarrow (``expectations.arrow_rules``) and writes clean
and quarantine with pyarrow: a day partition then needs no Spark job at all. Larger
partitions, and anything the local path cannot evaluate exactly as Spark would (a type
conversion other than between numbers, a ``sql`` rule, nested files, ...), run on Spark
(``expectations.spark_rules``), so a cluster still divides big loads. ``"spark"`` or
``"arrow"`` force one. Both give the same rows, counts, samples and messages.

GE engine: ``"auto"`` (default) validates partitions of at most ``GE_PANDAS_MAX_CELLS``
cells with GE's pandas engine (from the written Parquet) and larger ones with GE's Spark
engine; ``"spark"`` or ``"pandas"`` force one. GE on Spark works with pyspark 4.3 but costs
a few seconds of Spark jobs per suite whatever the size, which dominates a day partition.

Spark is started only when something needs it.
"""
from __future__ import annotations

import datetime as dt
import importlib
import json
import shutil
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from expectations import arrow_rules
from expectations.arrow_rules import Unsupported, can_convert, convert, flag_table, spark_strings
from expectations.features import HISTORY_COLUMN, feature_rules, feature_specs
from expectations.raw import (
    RAW_SUITES,
    TABLE_CHECKS,
    VOLUME_BAND,
    VOLUME_LOOKBACK,
    VOLUME_MIN_HISTORY,
    RawSuite,
)
from expectations.report import (
    MAX_SAMPLES,
    Finding,
    RuleOutcome,
    TableOutcome,
    ValidationError,
    render_index,
    render_table,
)
from expectations.rules import RuleContext
from expectations.spark_rules import (
    FAILED,
    count_failures,
    failed_rules_text,
    failure_samples,
    flag_rows,
)
from jobs.config import Config
from jobs.lake import latest_snapshot_date, list_dates, partition_dir, replace_dir, write_partition
from jobs.schema import RAW_TABLES, arrow_schema, promotions_ahead

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import Column, DataFrame, SparkSession

    from expectations.suites import GXRunner, SuiteResult

__all__ = ["ValidationSummary", "TableSummary", "ValidationError", "run_raw", "run_features",
           "RAW_ORDER", "GE_PANDAS_MAX_CELLS", "ROW_ARROW_MAX_CELLS", "raw_root", "clean_root",
           "quarantine_root", "report_dir"]

#: Validation order: dimensions first, since facts check their keys against them.
RAW_ORDER = ("stores", "skus", "sales", "inventory", "promotions", "weather", "calendar")
#: ``ge_engine="auto"`` uses GE's pandas engine up to this many cells (rows x columns).
GE_PANDAS_MAX_CELLS = 20_000_000
#: ``row_engine="auto"`` evaluates row rules with pyarrow up to this many cells, Spark above.
ROW_ARROW_MAX_CELLS = 20_000_000

_SPARK_TYPES = {pa.int32(): "int", pa.int64(): "bigint", pa.float64(): "double",
                pa.string(): "string", pa.bool_(): "boolean", pa.timestamp("us"): "timestamp_ntz",
                pa.date32(): "date"}
_INTEGRAL = {"int", "bigint"}
#: Known-key checks use an IN-set up to this many reference keys, a broadcast join above.
_IN_SET_MAX = 100_000


def raw_root(cfg: Config) -> Path:
    return cfg.lake / "raw"


def clean_root(cfg: Config) -> Path:
    return cfg.lake / "clean"


def quarantine_root(cfg: Config) -> Path:
    return cfg.lake / "quarantine"


def report_dir(cfg: Config, run_date: dt.date) -> Path:
    """Where the HTML reports of one run date go (GE's Data Docs site is two levels up)."""
    return cfg.reports / "data_docs" / "replenish" / f"run_date={run_date.isoformat()}"


@dataclass(frozen=True)
class TableSummary:
    table: str
    partition: dt.date | None
    status: str  # "ok", "failed" or "skipped"
    rows_in: int | None
    rows_accepted: int | None
    rows_quarantined: int | None
    warnings: tuple[str, ...]
    notes: tuple[str, ...]
    report: Path | None


@dataclass(frozen=True)
class ValidationSummary:
    """What one validation run found, per table; ``report`` is the run's HTML index."""

    run_date: dt.date
    suite: str
    tables: Mapping[str, TableSummary]
    report: Path
    #: The promotions partitions validated ahead (module docstring); a failed one is not a
    #: failure of this run.
    ahead: tuple[ValidationSummary, ...] = ()

    @property
    def ok(self) -> bool:
        return all(t.status != "failed" for t in self.tables.values())

    def __getitem__(self, table: str) -> TableSummary:
        return self.tables[table]

    def summary(self) -> str:
        """A few lines for the terminal: per table, rows in = accepted + quarantined."""
        lines = [f"validate {self.suite} {self.run_date}: {'ok' if self.ok else 'FAILED'} "
                 f"(report: {self.report})"]
        for t in self.tables.values():
            if t.status == "skipped":
                lines.append(f"  {t.table:<12} skipped: {'; '.join(t.notes)}")
                continue
            counts = (f"{t.rows_in:>10,} in = {t.rows_accepted or 0:>10,} accepted + "
                      f"{t.rows_quarantined or 0:>7,} quarantined"
                      if t.rows_in is not None else "")
            lines.append(f"  {t.table:<12} {t.status:<7} {counts}")
            lines += [f"    warning: {w}" for w in t.warnings]
        for a in self.ahead:
            t = a["promotions"]
            lines.append(f"  promotions {a.run_date} (ahead): {t.status}, {t.rows_accepted or 0:,} "
                         f"of {t.rows_in or 0:,} rows accepted" + (
                             "" if a.ok else " - gated again on its own night" + (
                                 "; kept out of clean" if t.rows_accepted is None else "")))
        return "\n".join(lines)


# ----------------------------------------------------------------------------- helpers


def _data_files(folder: Path) -> list[Path]:
    """Data files of a partition, skipping what Spark skips (names starting _ or .)."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and not any(
        part.startswith(("_", ".")) for part in p.relative_to(folder).parts))


def _write_spark(df: DataFrame, root: Path, table: str, day: dt.date) -> Path:
    """Replace partition ``day`` of ``table`` under ``root`` with ``df`` (one file)."""
    final = partition_dir(root, table, day)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{final.name}-{uuid.uuid4().hex[:8]}"
    df.coalesce(1).write.mode("overwrite").parquet(str(tmp))
    replace_dir(tmp, final)
    return final


def _write_arrow(data: pa.Table, root: Path, table: str, day: dt.date) -> Path:
    """Replace partition ``day`` of ``table`` under ``root`` with ``data`` (one zstd file,
    the schema as :func:`_write_spark` would write it: the caller's)."""
    return write_partition(root, table, day, data, schema=data.schema)


def _read_arrow(folder: Path, columns: Sequence[str] | None = None) -> pa.Table:
    """The partition's data files (one schema, checked before) as one table."""
    tables = [pq.ParquetFile(p).read(columns=columns) for p in _data_files(folder)]
    return pa.concat_tables(tables) if len(tables) != 1 else tables[0]


def _remove_partition(root: Path, table: str, day: dt.date | None) -> bool:
    if day is None:
        return False
    path = partition_dir(root, table, day)
    if path.exists():
        shutil.rmtree(path)
        return True
    return False


def _rows_on_disk(folder: Path) -> int:
    return sum(pq.ParquetFile(p).metadata.num_rows for p in _data_files(folder))


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:400] if text else type(err).__name__


def _parquet_metadata(files: Sequence[Path]) -> tuple[list[tuple[Path, pa.Schema, int]],
                                                       list[tuple[Path, str]]]:
    good, bad = [], []
    for path in files:
        try:
            meta = pq.ParquetFile(path)
            good.append((path, meta.schema_arrow, meta.metadata.num_rows))
        except Exception as err:  # pyarrow raises ArrowInvalid, OSError, ...
            bad.append((path, _first_line(err)))
    return good, bad


def _volume_history(root: Path, table: str, day: dt.date) -> list[int]:
    """Raw row counts of the last VOLUME_LOOKBACK partitions before ``day`` (from footers)."""
    counts = []
    for prev in [d for d in list_dates(root, table) if d < day][-VOLUME_LOOKBACK:]:
        try:
            counts.append(_rows_on_disk(partition_dir(root, table, prev)))
        except Exception:  # an unreadable old partition does not count
            continue
    return counts


def _median(values: Sequence[int]) -> float:
    s = sorted(values)
    mid = len(s) // 2
    return float(s[mid]) if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


def _engine(choice: str, rows: int, columns: int) -> str:
    if choice not in ("auto", "spark", "pandas"):
        raise ValueError(f"ge_engine must be 'auto', 'spark' or 'pandas', got {choice!r}")
    if choice != "auto":
        return choice
    return "pandas" if rows * max(columns, 1) <= GE_PANDAS_MAX_CELLS else "spark"


def _row_engine(cfg: Config, choice: str, rows: int, columns: int) -> str:
    if choice not in ("auto", "spark", "arrow"):
        raise ValueError(f"row_engine must be 'auto', 'spark' or 'arrow', got {choice!r}")
    if choice != "auto":
        return choice
    limit = getattr(cfg, "validate_arrow_max_cells", None)
    limit = ROW_ARROW_MAX_CELLS if limit is None else int(limit)
    return "arrow" if rows * max(columns, 1) <= limit else "spark"


def _flat(folder: Path) -> bool:
    """Every data file sits directly in the partition folder (Spark would treat a
    sub-folder ``k=v`` as a partition column: the local path leaves that to Spark)."""
    return all(p.parent == folder for p in _data_files(folder))


class _Unavailable(Exception):
    """A reference table the known-key rules need cannot be used."""


@dataclass
class _Builder:
    """Collects one table's outcome while it is being validated."""

    table: str
    suite: str
    run_date: dt.date
    partition: dt.date | None = None
    rows_in: int | None = None
    rows_accepted: int | None = None
    rows_quarantined: int | None = None
    rules: list[RuleOutcome] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    ge: list[SuiteResult] = field(default_factory=list)
    paths: dict[str, str] = field(default_factory=dict)
    skipped: bool = False

    def check(self, rule: str, success: bool, message: str = "", column: str = "",
              samples: Sequence[Mapping[str, Any]] = (), **details: Any) -> None:
        """Record a table-level check; a failed one becomes a finding."""
        self.rules.append(RuleOutcome(rule=rule, column=column, level="table",
                                      description=TABLE_CHECKS.get(rule, rule),
                                      success=success, check=message,
                                      samples=tuple(samples), details=details))
        if not success:
            self.findings.append(Finding(self.table, self.partition, column, rule, message,
                                         tuple(samples)))

    @property
    def failed(self) -> bool:
        return bool(self.findings)

    def outcome(self) -> TableOutcome:
        status = "skipped" if self.skipped else ("failed" if self.findings else "ok")
        return TableOutcome(
            table=self.table, suite=self.suite, run_date=self.run_date,
            partition=self.partition, status=status, rows_in=self.rows_in,
            rows_accepted=self.rows_accepted, rows_quarantined=self.rows_quarantined,
            rules=tuple(self.rules), findings=tuple(self.findings),
            warnings=tuple(self.warnings), notes=tuple(self.notes), ge=tuple(self.ge),
            paths=MappingProxyType(dict(self.paths)))


def _read_spark(spark: SparkSession, b: _Builder, folder: Path) -> DataFrame | None:
    try:
        df = spark.read.parquet(str(folder))
        df.schema  # noqa: B018 - forces the footer read, so a bad file fails here
        return df
    except Exception as err:
        b.check("readable_parquet", False, f"Spark cannot read the partition: {_first_line(err)}")
        return None


def _check_files(b: _Builder, folder: Path, allow_empty: bool) -> pa.Schema | None:
    """Parquet footers: readable, one schema, rows counted. Returns the schema or None."""
    files = _data_files(folder)
    if not files:
        b.rows_in = 0
        b.check("partition_not_empty", False, f"partition folder {folder} holds no data files")
        return None
    good, bad = _parquet_metadata(files)
    for path, err in bad:
        b.check("readable_parquet", False,
                f"file {path.name} is not a Parquet file (or is corrupt): {err}")
    if bad:
        return None
    b.check("readable_parquet", True, f"{len(good)} Parquet file(s)")
    schemas = {str(s.remove_metadata()) for _, s, _ in good}
    if len(schemas) > 1:
        b.check("column_types", False, "the partition's files disagree on the schema: "
                + "; ".join(f"{p.name}: {s.remove_metadata()}" for p, s, _ in good))
        return None
    b.rows_in = sum(n for _, _, n in good)
    if b.rows_in == 0 and not allow_empty:
        b.check("partition_not_empty", False, f"partition has 0 rows ({len(good)} file(s))")
        return None
    b.check("partition_not_empty", True, f"{b.rows_in} rows", rows=b.rows_in)
    return good[0][1]


# ----------------------------------------------------------------------------- row splits


class _SparkSplit:
    """A partition flagged on Spark: counts, samples and the two writes."""

    engine = "spark"
    reader = "Spark"

    def __init__(self, flagged: DataFrame, names: Sequence[str], original: Mapping[str, str],
                 hard_lossy: Mapping[str, Column], counts: dict[str, int]) -> None:
        from pyspark.sql import functions as F

        self.flagged, self.names, self.original = flagged, list(names), original
        self.hard_lossy, self.counts = hard_lossy, counts
        # Quarantine view: the values as they arrived, as strings.
        shown = [F.col(original.get(c, c)).cast("string").alias(c) for c in self.names]
        self.qview = flagged.select(*shown, FAILED)

    def lossy_samples(self, c: str) -> list[dict[str, Any]]:
        from pyspark.sql import functions as F

        rows = self.flagged.where(self.hard_lossy[c]).select(F.col(self.original[c]).alias(c)) \
            .distinct().orderBy(c).limit(MAX_SAMPLES).collect()
        return [{c: r[0]} for r in rows]

    def samples(self, failing: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        return failure_samples(self.qview, self.names, MAX_SAMPLES, failing) if failing else {}

    def write_clean(self, root: Path, table: str, day: dt.date) -> Path:
        from pyspark.sql import functions as F

        return _write_spark(self.flagged.where(F.size(FAILED) == 0).select(*self.names),
                            root, table, day)

    def write_quarantine(self, root: Path, table: str, day: dt.date, run_date: dt.date) -> Path:
        from pyspark.sql import functions as F

        return _write_spark(self.qview.where(F.size(FAILED) > 0).select(
            *self.names, failed_rules_text(), F.lit(run_date).alias("run_date")),
            root, table, day)

    def close(self) -> None:
        self.flagged.unpersist()


class _ArrowSplit:
    """A partition flagged locally; everything that could need Spark is done on creation
    (so :class:`Unsupported` surfaces before anything is recorded)."""

    engine = "arrow"
    reader = "pyarrow"

    def __init__(self, typed: pa.Table, flagged: arrow_rules.Flagged, schema: pa.Schema,
                 original: Mapping[str, str], hard_lossy: Mapping[str, np.ndarray]) -> None:
        names = schema.names
        self.names = names
        self.counts = flagged.counts({f"lossy:{c}": m for c, m in hard_lossy.items()})
        self._lossy = {}
        for c, mask in hard_lossy.items():
            if mask.any():
                text = spark_strings(typed.column(original[c]).filter(pa.array(mask)))
                self._lossy[c] = sorted(set(text.to_pylist()))[:MAX_SAMPLES]
        bad = flagged.bad
        self.clean = typed.filter(pa.array(~bad)).select(names).cast(
            pa.schema([f.with_nullable(True) for f in schema]))
        where = pa.array(np.flatnonzero(bad))
        self.failed = flagged.take(np.flatnonzero(bad))
        columns = [spark_strings(typed.column(original.get(c, c)).take(where)) for c in names]
        self.view = pa.table(columns, names=names)

    def lossy_samples(self, c: str) -> list[dict[str, Any]]:
        return [{c: v} for v in self._lossy.get(c, [])]

    def samples(self, failing: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        return arrow_rules.failure_samples(self.failed, self.view, self.names, MAX_SAMPLES,
                                           failing) if failing else {}

    def write_clean(self, root: Path, table: str, day: dt.date) -> Path:
        return _write_arrow(self.clean, root, table, day)

    def write_quarantine(self, root: Path, table: str, day: dt.date, run_date: dt.date) -> Path:
        rules = pa.array([",".join(r) for r in self.failed.failed_rules()], pa.string())
        dates = pa.array([run_date] * self.view.num_rows, pa.date32())
        data = self.view.append_column(pa.field("failed_rules", pa.string(), False), rules) \
            .append_column(pa.field("run_date", pa.date32(), False), dates)
        return _write_arrow(data, root, table, day)

    def close(self) -> None:
        pass


_Split = _SparkSplit | _ArrowSplit


def _arrow_plan(found: pa.Schema, expected: pa.Schema) -> dict[str, pa.DataType] | None:
    """The columns the local path converts (name -> type found), or None when Spark must
    read the partition: a type Spark would read differently from pyarrow, or a conversion
    other than between numbers."""
    plan = {}
    for f in expected:
        got = found.field(f.name).type
        if got == f.type:
            continue
        if not can_convert(got, f.type):
            return None
        plan[f.name] = got
    if any(f.name not in expected.names and f.type not in _SPARK_TYPES for f in found):
        return None
    return plan


# ----------------------------------------------------------------------------- raw


class _RawRun:
    """State of one run_raw call: Spark (started on first use), the GE runner, validated
    dimension snapshots."""

    def __init__(self, cfg: Config, run_date: dt.date, ge_engine: str,
                 row_engine: str = "auto") -> None:
        self.cfg = cfg
        self.run_date = run_date
        self.ge_engine = ge_engine
        self.row_engine = row_engine
        _engine(ge_engine, 0, 0)  # validate the choices early
        _row_engine(cfg, row_engine, 0, 0)
        self._spark: SparkSession | None = None
        self._job = ""
        self._runner: GXRunner | None = None
        self.outcomes: dict[str, _Builder] = {}
        self._refs: dict[str, tuple[Path, list[Any]]] = {}

    @property
    def spark(self) -> SparkSession:
        if self._spark is None:
            from jobs.spark import get_spark

            self._spark = get_spark(self.cfg, "replenish-validate")
            self._spark.sparkContext.setJobDescription(self._job or None)
        return self._spark

    def _describe(self, job: str) -> None:
        self._job = job
        if self._spark is not None:
            self._spark.sparkContext.setJobDescription(job or None)

    @property
    def runner(self) -> GXRunner:
        if self._runner is None:
            from expectations.suites import GXRunner

            self._runner = GXRunner(self.cfg.reports / "data_docs")
        return self._runner

    def ref(self, table: str) -> tuple[Path, list[Any]]:
        """The clean dimension snapshot in force on the run date, and its keys."""
        if table in self._refs:
            return self._refs[table]
        key = RAW_TABLES[table].key[0]
        done = self.outcomes.get(table)
        if done is not None:
            if done.failed or done.partition is None:
                raise _Unavailable(f"the {table} snapshot failed validation in this run")
            snap = done.partition
        else:
            try:
                snap = latest_snapshot_date(raw_root(self.cfg), table, self.run_date)
            except FileNotFoundError as err:
                raise _Unavailable(str(err)) from None
        path = partition_dir(clean_root(self.cfg), table, snap)
        if not path.is_dir():
            raise _Unavailable(f"the {table} snapshot date={snap} has not been validated (no "
                               f"{path}); validate {table} first")
        column = _read_arrow(path, [key]).column(key)
        keys = sorted(pc.unique(column.drop_null()).to_pylist())
        self._refs[table] = (path, keys)
        return self._refs[table]

    def _ref_frame(self, table: str) -> DataFrame:
        """The keys of a (large) reference snapshot as a Spark DataFrame, for a join."""
        key = RAW_TABLES[table].key[0]
        path, _ = self.ref(table)
        return self.spark.read.parquet(str(path)).select(key).where(f"{key} IS NOT NULL")

    def build_docs(self) -> None:
        """Render GE's Data Docs once for the run and link each table's results to it."""
        if self._runner is None:
            return
        urls = self._runner.build_docs()
        for b in self.outcomes.values():
            b.ge = self._runner.with_docs(b.ge, urls)

    # ------------------------------------------------------------------ one table

    def validate(self, table: str) -> _Builder:
        suite = RAW_SUITES[table]
        b = _Builder(table, suite.name, self.run_date)
        self.outcomes[table] = b
        self._describe(f"validate {table} {self.run_date}")
        try:
            self._validate(b, suite)
        finally:
            self._describe("")
        if b.failed and not b.skipped and b.rows_accepted is None:
            # Nothing was written: a clean partition from an earlier run would be stale.
            for root in (clean_root(self.cfg), quarantine_root(self.cfg)):
                if _remove_partition(root, table, b.partition):
                    b.notes.append(f"removed stale {root.name} partition date={b.partition}")
        return b

    def _locate(self, b: _Builder, suite: RawSuite) -> Path | None:
        root = raw_root(self.cfg)
        dates = list_dates(root, b.table)
        if RAW_TABLES[b.table].dimension:
            earlier = [d for d in dates if d <= self.run_date]
            if not earlier:
                b.check("partition_present", False, f"no {b.table} snapshot on or before "
                        f"{self.run_date} under {root / b.table}")
                return None
            b.partition = earlier[-1]
            b.check("partition_present", True, f"snapshot in force: date={b.partition}")
        else:
            b.partition = self.run_date
            if not dates and suite.optional:
                b.skipped = True
                note = (f"skipped: no {b.table} table under {root} (imported data has none)")
                b.notes.append(note)
                b.check("table_present", True, note, skipped=True)
                return None
            if self.run_date not in dates:
                b.check("partition_present", False, f"partition date={self.run_date} is "
                        f"missing under {root / b.table} (was it ingested?)")
                return None
            b.check("partition_present", True, "present")
        path = partition_dir(root, b.table, b.partition)
        b.paths["raw"] = str(path)
        return path

    def _volume(self, b: _Builder) -> None:
        assert b.partition is not None and b.rows_in is not None
        history = _volume_history(raw_root(self.cfg), b.table, b.partition)
        if len(history) < VOLUME_MIN_HISTORY:
            note = (f"row volume check skipped: {len(history)} previous partition(s), "
                    f"{VOLUME_MIN_HISTORY} needed")
            b.notes.append(note)
            b.check("row_volume", True, note, skipped=True)
            return
        median = _median(history)
        if median <= 0:
            b.check("row_volume", True, "row volume check skipped: trailing median is 0",
                    skipped=True)
            return
        ratio = b.rows_in / median
        lo, hi = VOLUME_BAND
        ok = lo <= ratio <= hi
        b.check("row_volume", ok, f"{b.rows_in} rows = {ratio:.2f} x the median {median:g} of "
                f"the previous {len(history)} partitions (allowed {lo:g}-{hi:g} x)",
                rows=b.rows_in, median=median, ratio=round(ratio, 4), band=[lo, hi])

    def _validate(self, b: _Builder, suite: RawSuite) -> None:
        folder = self._locate(b, suite)
        if folder is None:
            return
        found = _check_files(b, folder, suite.allow_empty)
        if found is None:
            return
        expected = arrow_schema(b.table)
        missing = [f for f in expected if f.name not in found.names]
        for f in missing:
            b.check("columns_present", False, f"column {f.name} ({f.type}) is missing; the "
                    f"file has {', '.join(found.names)}", column=f.name)
        if not missing:
            b.check("columns_present", True, f"all {len(expected)} schema columns present")
        for name in [n for n in found.names if n not in expected.names]:
            msg = (f"extra column {name} ({found.field(name).type}) is not in the schema: "
                   "dropped from clean")
            b.warnings.append(msg)
            b.rules.append(RuleOutcome("extra_columns", name, "table",
                                       TABLE_CHECKS["extra_columns"], True, msg,
                                       details={"warning": msg}))
        if missing:
            return
        if suite.volume_check:
            self._volume(b)
            if b.failed:
                return
        prepared = None
        assert b.rows_in is not None
        if _row_engine(self.cfg, self.row_engine, b.rows_in, len(found)) == "arrow":
            prepared = self._prepare_arrow(b, suite, folder, found)
            if b.failed:
                return
        if prepared is None:
            prepared = self._prepare_spark(b, suite, folder, found)
            if prepared is None:
                return
        ctx, original, ref_values, split = prepared
        try:
            self._split(b, suite, ctx, found, original, ref_values, split)
        finally:
            split.close()

    def _references(self, b: _Builder, suite: RawSuite) -> dict[str, list[Any]]:
        """Reference keys of the known-key rules; a snapshot that cannot be used is a
        failed check."""
        values: dict[str, list[Any]] = {}
        for rule in suite.rules:
            if rule.kind == "known_key" and rule.ref_table not in values:
                assert rule.ref_table is not None
                try:
                    values[rule.ref_table] = self.ref(rule.ref_table)[1]
                except _Unavailable as err:
                    b.check("reference_available", False, f"{rule.name} needs the "
                            f"{rule.ref_table} snapshot in force: {err}", column=rule.column)
        return values

    def _prepare_arrow(self, b: _Builder, suite: RawSuite, folder: Path, found: pa.Schema
                       ) -> tuple[RuleContext, dict[str, str], dict[str, list[Any]],
                                  _Split] | None:
        """Flag the partition locally; None if Spark must do it (nothing recorded then,
        except a reference snapshot that cannot be used)."""
        expected = arrow_schema(b.table)
        plan = _arrow_plan(found, expected)
        if plan is None or not _flat(folder):
            return None
        try:
            data = _read_arrow(folder)
        except Exception:  # let Spark read it and say what is wrong
            return None
        if data.num_rows != b.rows_in:
            return None
        columns: dict[str, pa.ChunkedArray | pa.Array] = {}
        original: dict[str, str] = {}
        lossy: dict[str, np.ndarray] = {}
        for f in expected:
            if f.name in plan:
                raw = f"__raw__{f.name}"
                original[f.name] = raw
                columns[raw] = data.column(f.name)  # as it arrived; rules read its nulls
                columns[f.name], lossy[f.name] = convert(data.column(f.name), f.type)
            else:
                columns[f.name] = data.column(f.name)
        typed = pa.table(list(columns.values()), names=list(columns))
        ref_values = self._references(b, suite)
        if b.failed:
            return None
        ctx = RuleContext(b.partition or self.run_date, MappingProxyType(original))
        hard_lossy = {c: m for c, m in lossy.items() if c not in suite.parse_columns}
        try:
            flagged = flag_table(typed, suite.rules, ctx, ref_values,
                                 data_columns=expected.names)
            split = _ArrowSplit(typed, flagged, expected, original, hard_lossy)
        except Unsupported:
            return None
        return ctx, original, ref_values, split

    def _prepare_spark(self, b: _Builder, suite: RawSuite, folder: Path, found: pa.Schema
                       ) -> tuple[RuleContext, dict[str, str], dict[str, list[Any]],
                                  _Split] | None:
        """Flag the partition on Spark (persisted); None after a failed check."""
        from pyspark.sql import functions as F

        df = _read_spark(self.spark, b, folder)
        if df is None:
            return None
        expected = arrow_schema(b.table)
        names = expected.names
        spark_types = {f.name: f.dataType.simpleString() for f in df.schema.fields}
        cols: list[Column] = []
        original: dict[str, str] = {}
        lossy: dict[str, Column] = {}
        for f in expected:
            want = _SPARK_TYPES[f.type]
            if spark_types[f.name] == want:
                cols.append(F.col(f.name))
                continue
            raw = f"__raw__{f.name}"
            try:
                df.select(F.col(f.name).try_cast(want))
            except Exception as err:
                b.check("column_types", False, f"expected {f.type}, found "
                        f"{found.field(f.name).type}: cannot be converted at all "
                        f"({_first_line(err)})", column=f.name)
                continue
            original[f.name] = raw
            cols += [F.col(f.name).cast("string").alias(raw),
                     F.col(f.name).try_cast(want).alias(f.name)]
            bad = F.col(raw).isNotNull() & F.col(f.name).isNull()
            if want in _INTEGRAL:
                as_double = F.col(raw).try_cast("double")
                bad = F.col(raw).isNotNull() & (F.col(f.name).isNull() | as_double.isNull()
                                                | (as_double != F.col(f.name).cast("double")))
            lossy[f.name] = bad
        if b.failed:
            return None
        ref_values = self._references(b, suite)
        if b.failed:
            return None
        refs: dict[str, DataFrame | list[Any]] = {
            t: keys if len(keys) <= _IN_SET_MAX else self._ref_frame(t)
            for t, keys in ref_values.items()}
        ctx = RuleContext(b.partition or self.run_date, MappingProxyType(original))
        typed = df.select(*cols)
        flagged = flag_rows(typed, suite.rules, ctx, refs, data_columns=names).persist()
        try:
            hard_lossy = {c: e for c, e in lossy.items() if c not in suite.parse_columns}
            counts = count_failures(flagged, suite.rules,
                                    extra={f"lossy:{c}": e for c, e in hard_lossy.items()})
            split = _SparkSplit(flagged, names, original, hard_lossy, counts)
        except BaseException:
            flagged.unpersist()
            raise
        return ctx, original, ref_values, split

    def _split(self, b: _Builder, suite: RawSuite, ctx: RuleContext, found: pa.Schema,
               original: Mapping[str, str], ref_values: Mapping[str, list[Any]],
               split: _Split) -> None:
        """Record the flagged partition: type conversions, rule counts and samples; write
        clean and quarantine; check the quarantined share; run the GE suite."""
        assert b.partition is not None and b.rows_in is not None
        expected = arrow_schema(b.table)
        names = expected.names
        counts = split.counts
        if counts["rows"] != b.rows_in:
            raise RuntimeError(f"{b.table} date={b.partition}: {split.reader} read "
                               f"{counts['rows']} rows but the Parquet footers say {b.rows_in}")
        for c in original:
            src, want = found.field(c).type, expected.field(c).type
            n = counts.get(f"lossy:{c}", 0)
            if n:
                b.check("column_types", False, f"expected {want}, found {src}: {n} of "
                        f"{b.rows_in} values do not convert (a column is converted only when "
                        "every value converts)", column=c,
                        samples=split.lossy_samples(c), values_not_converted=n)
            else:
                msg = f"column {c} arrived as {src} and was converted to {want}"
                if c in suite.parse_columns:
                    msg += " (values that do not parse are quarantined)"
                b.warnings.append(msg)
                b.check("column_types", True, msg, column=c, found=str(src),
                        expected=str(want))
        if not original:
            b.check("column_types", True, "every column has its schema type")
        if b.failed:
            return

        failing = [r.name for r in suite.rules if counts[r.name]]
        samples = split.samples(failing)
        bad = counts["bad"]
        b.rows_accepted, b.rows_quarantined = b.rows_in - bad, bad
        for rule in suite.rules:
            b.rules.append(RuleOutcome(
                rule=rule.name, column=rule.column, level="row", description=rule.description,
                success=counts[rule.name] <= self.cfg.quarantine_max_share * b.rows_in,
                check=rule.check_text(ctx), rows_failed=counts[rule.name], quarantines=True,
                samples=tuple(samples.get(rule.name, ()))))

        clean = split.write_clean(clean_root(self.cfg), b.table, b.partition)
        b.paths["clean"] = str(clean)
        if bad:
            quarantine = split.write_quarantine(quarantine_root(self.cfg), b.table, b.partition,
                                                self.run_date)
            b.paths["quarantine"] = str(quarantine)
        elif _remove_partition(quarantine_root(self.cfg), b.table, b.partition):
            b.notes.append("removed a stale quarantine partition from an earlier run")
        self._check_written(b, clean)

        share = bad / b.rows_in if b.rows_in else 0.0
        limit = self.cfg.quarantine_max_share
        column_of = {r.name: r.column for r in suite.rules}
        ranked = sorted(failing, key=lambda r: (-counts[r], r))
        by_rule = ", ".join(f"{r}({column_of[r]})={counts[r]}" for r in ranked)
        top = [s for r in ranked for s in samples.get(r, [])]
        b.check("quarantine_share", share <= limit,
                f"{bad} of {b.rows_in} rows ({share:.2%}) quarantined; limit {limit:.2%}"
                + (f"; by rule: {by_rule}" if by_rule else ""),
                column=",".join(dict.fromkeys(column_of[r] for r in ranked)) if share > limit
                else "", samples=top[:MAX_SAMPLES] if share > limit else (),
                share=round(share, 6), limit=limit, row_engine=split.engine)
        self._ge(b, suite, clean, ref_values, identical=not (bad or original
                                                             or len(found) > len(names)))

    def _check_written(self, b: _Builder, clean: Path) -> None:
        """Rows in = accepted + quarantined, and clean has exactly the schema's types."""
        assert b.rows_in is not None
        got_clean = _rows_on_disk(clean)
        q = partition_dir(quarantine_root(self.cfg), b.table, b.partition or self.run_date)
        got_q = _rows_on_disk(q) if q.is_dir() else 0
        if (got_clean, got_q) != (b.rows_accepted, b.rows_quarantined) or \
                got_clean + got_q != b.rows_in:
            raise RuntimeError(f"{b.table} date={b.partition}: rows in {b.rows_in} != accepted "
                               f"{got_clean} + quarantined {got_q} on disk (expected "
                               f"{b.rows_accepted} + {b.rows_quarantined})")
        schema = pq.read_schema(_data_files(clean)[0])
        want = arrow_schema(b.table)
        got = [(f.name, f.type) for f in schema]
        if got != [(f.name, f.type) for f in want]:
            raise RuntimeError(f"{b.table}: clean partition schema {got} differs from "
                               f"jobs/schema.py {[(f.name, f.type) for f in want]}")

    def _ge(self, b: _Builder, suite: RawSuite, clean: Path,
            ref_values: Mapping[str, list[Any]], identical: bool) -> None:
        assert b.partition is not None and b.rows_in is not None
        names = arrow_schema(b.table).names
        engine = _engine(self.ge_engine, b.rows_in, len(names))
        clean_ctx = RuleContext(b.partition)
        data: Any = (pq.read_table(clean).to_pandas() if engine == "pandas"
                     else self.spark.read.parquet(str(clean)))
        try:
            result = self.runner.validate(suite.name, "clean", data, engine, suite.rules,
                                          clean_ctx, columns=names, ref_values=ref_values,
                                          run_name=f"run_date={self.run_date}-clean")
        except Exception as err:
            b.check("ge_suite_clean", False, f"BUG: the GE suite crashed on the clean partition: "
                    f"{type(err).__name__}: {_first_line(err)}")
            return
        b.ge.append(result)
        detail: dict[str, Any] = {"engine": engine, "evaluated": result.evaluated,
                  "failed": [f"{o.expectation}({o.column})" for o in result.failures],
                  "not_mapped": list(result.not_mapped)}
        b.check("ge_suite_clean", result.success, result.summary() if result.success else
                "BUG: the rule table accepted every clean row but " + result.summary()
                + " - the suite and the rule table disagree", **detail)
        if identical:
            b.notes.append("raw partition identical to clean (nothing quarantined, converted "
                           "or dropped): the clean GE result stands for it")
            return
        raw_data: Any
        if engine == "pandas":
            raw_data = pq.read_table(partition_dir(raw_root(self.cfg), b.table,
                                                   b.partition)).to_pandas()
        else:
            raw_data = self.spark.read.parquet(b.paths["raw"])
        try:
            raw = self.runner.validate(suite.name, "raw", raw_data, engine, suite.rules,
                                       clean_ctx, columns=names, ref_values=ref_values,
                                       run_name=f"run_date={self.run_date}-raw")
        except Exception as err:  # the raw side is for the report only
            b.notes.append(f"GE on the raw partition failed: {type(err).__name__}: "
                           f"{_first_line(err)}")
            return
        b.ge.append(raw)
        b.rules.append(RuleOutcome("ge_suite_raw", "", "ge", TABLE_CHECKS["ge_suite_raw"], True,
                                   raw.summary(), details={
                                       "engine": engine, "suite_success": raw.success,
                                       "failed": [f"{o.expectation}({o.column})"
                                                  for o in raw.failures]}))


def run_raw(cfg: Config, run_date: dt.date, *, tables: Iterable[str] | None = None,
            ge_engine: str = "auto", row_engine: str = "auto",
            ahead: bool = True) -> ValidationSummary:
    """Validate the raw partitions of ``run_date``; write clean, quarantine, data_quality and
    the report; raise ValidationError if a table failed (see the module docstring).

    ``tables`` restricts the run (e.g. to re-validate one table after a fix); known-key
    rules then use the clean snapshot in force, which an earlier run must have written.
    ``ahead``: with ``promotions``, gate the coming week's promotions too (module docstring;
    a backfill asks it of its last date only, ``jobs.steps``).
    """
    wanted = list(RAW_ORDER) if tables is None else list(tables)
    unknown = sorted(set(wanted) - set(RAW_SUITES))
    if unknown:
        raise ValueError(f"no raw suite for {unknown}; tables are {list(RAW_ORDER)}")
    run = _RawRun(cfg, run_date, ge_engine, row_engine)
    for table in [t for t in RAW_ORDER if t in wanted]:
        run.validate(table)
    run.build_docs()
    outcomes = [b.outcome() for b in run.outcomes.values()]
    gated = _promotions_ahead(cfg, run_date, ge_engine, row_engine) if (
        ahead and "promotions" in wanted) else ()
    return _finish(cfg, run_date, "raw", outcomes, gated)


def _promotions_ahead(cfg: Config, run_date: dt.date, ge_engine: str, row_engine: str
                      ) -> tuple[ValidationSummary, ...]:
    """Validate the promotions partitions ingest brought in ahead, each as its own date's
    run; a failure is returned (its summary), not raised."""
    out = []
    for day in promotions_ahead(run_date):
        if not partition_dir(raw_root(cfg), "promotions", day).is_dir():
            continue
        run = _RawRun(cfg, day, ge_engine, row_engine)
        run.validate("promotions")
        run.build_docs()
        try:
            out.append(_finish(cfg, day, "raw", [b.outcome() for b in run.outcomes.values()]))
        except ValidationError as err:
            out.append(err.summary)
    return tuple(out)


# ----------------------------------------------------------------------------- features


def _load_catalog(catalog: Any) -> Any:
    if catalog is not None:
        return catalog
    try:
        return importlib.import_module("features.catalog")
    except ModuleNotFoundError as err:
        raise RuntimeError("features/catalog.py (FEATURES, KEYS) is needed to validate "
                           "features and does not exist yet") from err


#: Arrow types the local features path reads as Spark would (name -> is it numeric).
_FEATURE_TYPES = {pa.int8(): True, pa.int16(): True, pa.int32(): True, pa.int64(): True,
                  pa.float32(): True, pa.float64(): True, pa.bool_(): False,
                  pa.string(): False, pa.date32(): False, pa.timestamp("us"): False}


@dataclass
class _FeatureRows:
    """The features partition's rule counts and samples, from either engine."""

    counts: dict[str, int]
    samples: dict[str, list[dict[str, Any]]]
    numeric: list[str]
    columns: list[str]
    check_pairs: Callable[[_Builder, list[str]], None]


def _feature_rows_arrow(cfg: Config, folder: Path, found: pa.Schema, rules: Sequence[Any],
                        ctx: RuleContext, cols_for: Callable[[Sequence[str]], list[str]],
                        run_date: dt.date) -> _FeatureRows | None:
    """Flag the features partition locally; None if Spark must do it."""
    if any(f.type not in _FEATURE_TYPES for f in found) or not _flat(folder):
        return None
    try:
        data = _read_arrow(folder)
    except Exception:  # Spark will say what is wrong
        return None
    try:
        flagged = flag_table(data, rules, ctx, data_columns=data.column_names)
        counts = flagged.counts()
        failing = [r.name for r in rules if counts[r.name]]
        cols = cols_for(failing)
        samples: dict[str, list[dict[str, Any]]] = {}
        if failing:
            where = np.flatnonzero(flagged.bad)
            view = pa.table([spark_strings(data.column(c).take(pa.array(where))) for c in cols],
                            names=cols)
            samples = arrow_rules.failure_samples(flagged.take(where), view, cols, MAX_SAMPLES,
                                                  failing)
    except Unsupported:
        return None
    numeric = [f.name for f in data.schema if _FEATURE_TYPES[f.type]]

    def check_pairs(b: _Builder, pair_keys: list[str]) -> None:
        try:
            _check_pairs_arrow(cfg, b, data, pair_keys, run_date)
        except Unsupported:
            from jobs.spark import get_spark

            spark = get_spark(cfg, "replenish-validate")
            _check_pairs(cfg, spark, b, pair_keys, df=spark.read.parquet(str(folder)),
                         run_date=run_date)

    return _FeatureRows(counts, samples, numeric, data.column_names, check_pairs)


def run_features(cfg: Config, run_date: dt.date, *, catalog: Any = None,
                 ge_engine: str = "auto", row_engine: str = "auto") -> ValidationSummary:
    """Validate ``lake/features/date=run_date`` against the feature catalog.

    ``catalog`` defaults to the module ``features.catalog`` (FEATURES, KEYS, LABELS).
    Nothing is quarantined: any failed rule fails the step with a ValidationError.
    """
    _engine(ge_engine, 0, 0)
    _row_engine(cfg, row_engine, 0, 0)
    catalog = _load_catalog(catalog)
    specs = list(catalog.FEATURES)
    b = _Builder("features", "features", run_date, partition=run_date)
    folder = partition_dir(cfg.lake, "features", run_date)
    b.paths["features"] = str(folder)
    found: pa.Schema | None = None
    if not folder.is_dir():
        b.check("partition_present", False, f"partition date={run_date} is missing under "
                f"{folder.parent} (did build_features run?)")
    else:
        b.check("partition_present", True, "present")
        found = _check_files(b, folder, allow_empty=False)
    if found is None:
        return _finish(cfg, run_date, "features", [b.outcome()])

    feature_names = [s.name for s in feature_specs(specs)]
    keys = [k for k in catalog.KEYS if k in found.names or k != "date"]
    labels = list(getattr(catalog, "LABELS", ()))
    required = list(dict.fromkeys(keys + [HISTORY_COLUMN] + feature_names))
    missing = [c for c in required if c not in found.names]
    for c in missing:
        b.check("columns_present", False, f"column {c} is missing from the features "
                f"partition; it has {', '.join(found.names)}", column=c)
    if missing:
        return _finish(cfg, run_date, "features", [b.outcome()])
    b.check("columns_present", True, f"{len(required)} catalog columns present")
    known = set(required) | set(labels)
    for name in [n for n in found.names if n not in known]:
        b.warnings.append(f"column {name} is not in the feature catalog")

    rules = feature_rules(specs, keys, history_max=getattr(catalog, "MAX_WINDOW", None))
    ctx = RuleContext(run_date)
    shown = keys + [HISTORY_COLUMN]

    def cols_for(failing: Sequence[str]) -> list[str]:
        broken = [r for r in rules if r.name in failing]
        return list(dict.fromkeys(shown + [c for r in broken for c in r.columns]))

    assert b.rows_in is not None
    rows: _FeatureRows | None = None
    if _row_engine(cfg, row_engine, b.rows_in, len(found)) == "arrow":
        rows = _feature_rows_arrow(cfg, folder, found, rules, ctx, cols_for, run_date)
    flagged: DataFrame | None = None
    if rows is None:
        from jobs.spark import get_spark

        spark = get_spark(cfg, "replenish-validate")
        df = _read_spark(spark, b, folder)
        if df is None:
            return _finish(cfg, run_date, "features", [b.outcome()])
        flagged = flag_rows(df, rules, ctx, data_columns=df.columns).persist()
        counts = count_failures(flagged, rules)
        failing = [r.name for r in rules if counts[r.name]]
        samples = failure_samples(flagged, cols_for(failing), MAX_SAMPLES, failing) \
            if failing else {}
        numeric = [f.name for f in df.schema.fields if f.dataType.typeName() in (
            "integer", "long", "short", "byte", "double", "float", "decimal")]
        rows = _FeatureRows(counts, samples, numeric, df.columns,
                            partial(_check_pairs, cfg, spark, df=df, run_date=run_date))
    try:
        _record_features(cfg, b, rows, rules, ctx, keys, cols_for, folder, ge_engine,
                         run_date)
    finally:
        if flagged is not None:
            flagged.unpersist()
    return _finish(cfg, run_date, "features", [b.outcome()])


def _record_features(cfg: Config, b: _Builder, rows: _FeatureRows, rules: Sequence[Any],
                     ctx: RuleContext, keys: list[str],
                     cols_for: Callable[[Sequence[str]], list[str]], folder: Path,
                     ge_engine: str, run_date: dt.date) -> None:
    """Record the rule outcomes, the active pairs and the GE suite of the features."""
    counts, samples = rows.counts, rows.samples
    shown = keys + [HISTORY_COLUMN]
    failing = [r.name for r in rules if counts[r.name]]
    cols = cols_for(failing)
    for rule in rules:
        n = counts[rule.name]
        # Each rule's samples show the keys, the history and the rule's own columns.
        mine = [c for c in cols if c in shown or c in rule.columns]
        shown_samples = tuple({c: s[c] for c in mine} for s in samples.get(rule.name, ()))
        b.rules.append(RuleOutcome(rule.name, rule.column, "row", rule.description, n == 0,
                                   rule.check_text(ctx), rows_failed=n,
                                   samples=shown_samples))
        if n:
            b.findings.append(Finding("features", run_date, rule.column, rule.name,
                                      f"{n} of {counts['rows']} rows break it: "
                                      f"{rule.description}", shown_samples))
    # Nothing is quarantined from features: the partition passes or fails as a whole.
    b.rows_in, b.rows_accepted, b.rows_quarantined = counts["rows"], counts["rows"], 0
    rows.check_pairs(b, [k for k in keys if k != "date"])
    engine = _engine(ge_engine, b.rows_in, len(rows.columns))
    from expectations.suites import GXRunner

    data: Any
    if engine == "pandas":
        data = pq.read_table(folder).to_pandas()
    else:
        from jobs.spark import get_spark

        data = get_spark(cfg, "replenish-validate").read.parquet(str(folder))
    try:
        runner = GXRunner(cfg.reports / "data_docs")
        result = runner.validate("features", "features", data, engine, rules, ctx,
                                 numeric=rows.numeric, run_name=f"run_date={run_date}-features")
        result = runner.with_docs([result], runner.build_docs())[0]
        b.ge.append(result)
        rules_ok = not failing
        agree = result.success or not rules_ok
        b.check("ge_suite_clean", agree, result.summary() if agree else
                "BUG: every features rule passed in Spark but " + result.summary(),
                engine=engine, evaluated=result.evaluated, suite_success=result.success)
    except Exception as err:
        b.check("ge_suite_clean", False, f"BUG: the GE features suite crashed: "
                f"{type(err).__name__}: {_first_line(err)}")


def _check_pairs_arrow(cfg: Config, b: _Builder, data: pa.Table, pair_keys: list[str],
                       run_date: dt.date) -> None:
    """:func:`_check_pairs` locally: SQL semantics (a null key matches nothing)."""
    folder = partition_dir(cfg.lake, "demand_daily", run_date)
    column = ",".join(pair_keys)
    if not folder.is_dir():
        b.check("active_pairs", False, f"demand_daily partition date={run_date} is missing "
                f"under {folder.parent}: cannot check which pairs the features must cover",
                column=column)
        return
    if not _flat(folder):
        raise Unsupported("demand_daily has sub-folders")
    try:
        demand = _read_arrow(folder)
    except Exception as err:
        raise Unsupported(f"demand_daily: {err}") from None
    for flag in ("is_active", "active"):
        if flag in demand.column_names:
            if demand.schema.field(flag).type != pa.bool_():
                raise Unsupported(f"demand_daily.{flag} is not boolean")
            demand = demand.filter(pc.fill_null(demand.column(flag), False))
            break
    for k in pair_keys:
        if k not in demand.column_names:
            raise Unsupported(f"demand_daily has no column {k}")
        kinds = {"int" if pa.types.is_integer(t) else str(t)
                 for t in (data.schema.field(k).type, demand.schema.field(k).type)}
        if len(kinds) != 1 or not kinds <= {"int", "string"}:
            raise Unsupported(f"key {k}: {kinds}")
    features = list(zip(*[data.column(k).to_pylist() for k in pair_keys], strict=True)) \
        if data.num_rows else []
    pairs_in = set(zip(*[demand.column(k).to_pylist() for k in pair_keys], strict=True)) \
        if demand.num_rows else set()
    matchable = {p for p in pairs_in if None not in p}
    used: dict[tuple[Any, ...], int] = {}
    odd: list[dict[str, Any]] = []
    for p in features:
        if None not in p and p in matchable:
            used[p] = used.get(p, 0) + 1
        else:
            odd.append({**dict(zip(pair_keys, p, strict=True)), "problem": "not in demand_daily"})
    unmatched = [p for p in pairs_in if None in p or p not in used]
    odd += [{**dict(zip(pair_keys, p, strict=True)), "problem": "missing from features"}
            for p in unmatched]
    n_features = len(features)
    n_pairs = sum(used.values()) + len(unmatched)
    extra = n_features - sum(used.values())
    missing = len(unmatched)
    ok = n_features == n_pairs and not extra and not missing
    samples = sorted(odd, key=lambda r: tuple((r[k] is not None, r[k]) for k in pair_keys)
                     )[:MAX_SAMPLES] if not ok else []
    b.check("active_pairs", ok, f"{n_features} feature rows for {n_pairs} active "
            f"pairs in demand_daily; {missing} pair(s) missing from features, {extra} row(s) "
            "for pairs not in demand_daily", column=column, samples=samples,
            features=n_features, pairs=n_pairs, missing=missing, extra=extra)


def _check_pairs(cfg: Config, spark: SparkSession, b: _Builder, pair_keys: list[str], *,
                 df: DataFrame, run_date: dt.date) -> None:
    """Features have exactly the active pairs of demand_daily for the day."""
    from pyspark.sql import functions as F

    folder = partition_dir(cfg.lake, "demand_daily", run_date)
    column = ",".join(pair_keys)
    if not folder.is_dir():
        b.check("active_pairs", False, f"demand_daily partition date={run_date} is missing "
                f"under {folder.parent}: cannot check which pairs the features must cover",
                column=column)
        return
    demand = spark.read.parquet(str(folder))
    for flag in ("is_active", "active"):
        if flag in demand.columns:
            demand = demand.where(F.col(flag))
            break
    left = df.select(*pair_keys).withColumn("__f", F.lit(1))
    right = demand.select(*pair_keys).distinct().withColumn("__d", F.lit(1))
    joined = left.join(right, pair_keys, "full_outer")
    row = joined.agg(
        F.count("__f").alias("features"), F.count("__d").alias("pairs"),
        F.sum(F.when(F.col("__d").isNull(), 1).otherwise(0)).alias("extra"),
        F.sum(F.when(F.col("__f").isNull(), 1).otherwise(0)).alias("missing")).collect()[0]
    extra, missing = int(row["extra"] or 0), int(row["missing"] or 0)
    ok = row["features"] == row["pairs"] and not extra and not missing
    samples: list[dict[str, Any]] = []
    if not ok:
        odd = joined.where(F.col("__d").isNull() | F.col("__f").isNull()).select(
            *pair_keys, F.when(F.col("__d").isNull(), "not in demand_daily")
            .otherwise("missing from features").alias("problem"))
        samples = [r.asDict() for r in odd.orderBy(*pair_keys).limit(MAX_SAMPLES).collect()]
    b.check("active_pairs", ok, f"{row['features']} feature rows for {row['pairs']} active "
            f"pairs in demand_daily; {missing} pair(s) missing from features, {extra} row(s) "
            "for pairs not in demand_daily", column=column, samples=samples,
            features=row["features"], pairs=row["pairs"], missing=missing, extra=extra)


# ----------------------------------------------------------------------------- finish


def _finish(cfg: Config, run_date: dt.date, suite: str, outcomes: Sequence[TableOutcome],
            ahead: tuple[ValidationSummary, ...] = ()) -> ValidationSummary:
    """Record data_quality, write the reports, then raise if anything failed."""
    reports = _write_reports(cfg, run_date, outcomes)
    _record(cfg, run_date, outcomes)
    index = report_dir(cfg, run_date) / "index.html"
    summary = ValidationSummary(run_date, suite, MappingProxyType({
        o.table: TableSummary(o.table, o.partition, o.status, o.rows_in, o.rows_accepted,
                              o.rows_quarantined, o.warnings, o.notes, reports.get(o.table))
        for o in outcomes}), index, ahead)
    findings = [f for o in outcomes for f in o.findings]
    if findings:
        raise ValidationError(findings, report=index, summary=summary)
    return summary


def _report_name(o: TableOutcome) -> str:
    return o.suite.replace(".", "_")


def _write_reports(cfg: Config, run_date: dt.date,
                   outcomes: Sequence[TableOutcome]) -> dict[str, Path]:
    folder = report_dir(cfg, run_date)
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for o in outcomes:
        name = _report_name(o)
        path = folder / f"{name}.html"
        path.write_text(render_table(o, cfg.quarantine_max_share), encoding="utf-8")
        text = (f"{o.rows_in} in, {o.rows_accepted} accepted, {o.rows_quarantined} "
                f"quarantined" if o.rows_in is not None else "") + "".join(
            f"; {f.rule}({f.column or '-'})" for f in o.findings)
        (folder / f"{name}.json").write_text(json.dumps(
            {"suite": o.suite, "status": o.status, "summary": text}), encoding="utf-8")
        written[o.table] = path
    entries = []
    for side in sorted(folder.glob("*.json")):
        info = json.loads(side.read_text(encoding="utf-8"))
        entries.append((info["suite"], f"{side.stem}.html", info["status"], info["summary"]))
    (folder / "index.html").write_text(render_index(run_date, entries), encoding="utf-8")
    return written


def _dq_rows(run_date: dt.date, o: TableOutcome) -> list[tuple[Any, ...]]:
    from psycopg2.extras import Json

    dumps = partial(json.dumps, default=str)
    rows, seen = [], set()
    for r in o.rules:
        key = (r.rule, r.column)
        rule = r.rule
        n = 2
        while key in seen:  # keep the primary key unique should a rule repeat
            rule, n = f"{r.rule}#{n}", n + 1
            key = (rule, r.column)
        seen.add(key)
        accepted = quarantined = None
        if r.quarantines and o.rows_in is not None and r.rows_failed is not None:
            accepted, quarantined = o.rows_in - r.rows_failed, r.rows_failed
        if r.rule == "quarantine_share" and o.rows_accepted is not None:
            accepted, quarantined = o.rows_accepted, o.rows_quarantined
        details = {"level": r.level, "description": r.description, "check": r.check,
                   **({"rows_failed": r.rows_failed} if r.rows_failed is not None else {}),
                   **({"samples": list(r.samples[:MAX_SAMPLES])} if r.samples else {}),
                   **dict(r.details)}
        rows.append((run_date, o.table, o.partition or run_date, o.suite, rule, r.column,
                     o.rows_in, accepted, quarantined, r.success, Json(details, dumps=dumps)))
    return rows


def _record(cfg: Config, run_date: dt.date, outcomes: Sequence[TableOutcome]) -> None:
    """Replace this run's data_quality rows of these tables, in one transaction."""
    from jobs import warehouse

    warehouse.ensure_partitions(cfg, run_date, run_date)
    rows = [row for o in outcomes for row in _dq_rows(run_date, o)]
    warehouse.replace_rows(
        cfg, "data_quality",
        [("run_date = %s AND table_name = %s AND suite = %s", (run_date, o.table, o.suite))
         for o in outcomes],
        ("run_date", "table_name", "partition_date", "suite", "rule", "column_name", "rows_in",
         "rows_accepted", "rows_quarantined", "success", "details"), rows)
