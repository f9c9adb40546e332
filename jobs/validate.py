"""Validate the raw lake and the features with the suites in ``expectations/``.

``run_raw(cfg, D)`` checks every raw table's partition for D (for ``stores``/``skus``: the
snapshot in force on D) under ``lake/raw``:

1. table checks (``expectations.raw.TABLE_CHECKS``): partition present, files are Parquet,
   not empty, every schema column present, types equal or losslessly convertible, row
   volume within a band of the trailing median. A failure stops the table: nothing is
   written for it (a stale clean/quarantine partition of that date is removed);
2. row rules (``expectations.raw.RAW_SUITES``) in one Spark pass: good rows, converted to
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

``run_features(cfg, D)`` checks ``lake/features/date=D`` against the feature catalog
(``expectations.features``) and the active pairs of ``lake/demand_daily/date=D``.

GE engine: ``"auto"`` (default) validates partitions of at most ``GE_PANDAS_MAX_CELLS``
cells with GE's pandas engine (from the written Parquet) and larger ones with GE's Spark
engine; ``"spark"`` or ``"pandas"`` force one. GE on Spark works with pyspark 4.3 but costs
a few seconds of Spark jobs per suite whatever the size, which dominates a day partition.
"""
from __future__ import annotations

import datetime as dt
import importlib
import json
import shutil
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

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
from jobs.lake import latest_snapshot_date, list_dates, partition_dir, replace_dir
from jobs.schema import RAW_TABLES, arrow_schema

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import Column, DataFrame, SparkSession

    from expectations.suites import GXRunner, SuiteResult

__all__ = ["ValidationSummary", "TableSummary", "ValidationError", "run_raw", "run_features",
           "RAW_ORDER", "GE_PANDAS_MAX_CELLS", "raw_root", "clean_root", "quarantine_root",
           "report_dir"]

#: Validation order: dimensions first, since facts check their keys against them.
RAW_ORDER = ("stores", "skus", "sales", "inventory", "promotions", "weather", "calendar")
#: ``ge_engine="auto"`` uses GE's pandas engine up to this many cells (rows x columns).
GE_PANDAS_MAX_CELLS = 20_000_000

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


# ----------------------------------------------------------------------------- raw


class _RawRun:
    """State of one run_raw call: Spark, the GE runner, validated dimension snapshots."""

    def __init__(self, cfg: Config, run_date: dt.date, ge_engine: str) -> None:
        from jobs.spark import get_spark

        self.cfg = cfg
        self.run_date = run_date
        self.ge_engine = ge_engine
        _engine(ge_engine, 0, 0)  # validate the choice early
        self.spark = get_spark(cfg, "replenish-validate")
        self._runner: GXRunner | None = None
        self.outcomes: dict[str, _Builder] = {}
        self._refs: dict[str, tuple[DataFrame, list[Any]]] = {}

    @property
    def runner(self) -> GXRunner:
        if self._runner is None:
            from expectations.suites import GXRunner

            self._runner = GXRunner(self.cfg.reports / "data_docs")
        return self._runner

    def ref(self, table: str) -> tuple[DataFrame, list[Any]]:
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
        df = self.spark.read.parquet(str(path)).select(key).where(f"{key} IS NOT NULL")
        keys = sorted(r[0] for r in df.distinct().collect())
        self._refs[table] = (df, keys)
        return self._refs[table]

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
        self.spark.sparkContext.setJobDescription(f"validate {table} {self.run_date}")
        try:
            self._validate(b, suite)
        finally:
            self.spark.sparkContext.setJobDescription(None)
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
        df = _read_spark(self.spark, b, folder)
        if df is None:
            return
        self._split(b, suite, df, found)

    def _split(self, b: _Builder, suite: RawSuite, df: DataFrame, found: pa.Schema) -> None:
        from pyspark.sql import functions as F

        assert b.partition is not None and b.rows_in is not None
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
            return
        refs: dict[str, DataFrame | list[Any]] = {}
        ref_values: dict[str, list[Any]] = {}
        for rule in suite.rules:
            if rule.kind == "known_key" and rule.ref_table not in refs:
                assert rule.ref_table is not None
                try:
                    ref_df, ref_values[rule.ref_table] = self.ref(rule.ref_table)
                    keys = ref_values[rule.ref_table]
                    refs[rule.ref_table] = keys if len(keys) <= _IN_SET_MAX else ref_df
                except _Unavailable as err:
                    b.check("reference_available", False, f"{rule.name} needs the "
                            f"{rule.ref_table} snapshot in force: {err}", column=rule.column)
        if b.failed:
            return

        ctx = RuleContext(b.partition, MappingProxyType(original))
        typed = df.select(*cols)
        flagged = flag_rows(typed, suite.rules, ctx, refs, data_columns=names).persist()
        try:
            self._split_flagged(b, suite, flagged, ctx, found, original, lossy, ref_values)
        finally:
            flagged.unpersist()

    def _split_flagged(self, b: _Builder, suite: RawSuite, flagged: DataFrame,
                       ctx: RuleContext, found: pa.Schema, original: Mapping[str, str],
                       lossy: Mapping[str, Column], ref_values: Mapping[str, list[Any]]) -> None:
        from pyspark.sql import functions as F

        assert b.partition is not None and b.rows_in is not None
        expected = arrow_schema(b.table)
        names = expected.names
        hard_lossy = {c: e for c, e in lossy.items() if c not in suite.parse_columns}
        counts = count_failures(flagged, suite.rules,
                                extra={f"lossy:{c}": e for c, e in hard_lossy.items()})
        if counts["rows"] != b.rows_in:
            raise RuntimeError(f"{b.table} date={b.partition}: Spark read {counts['rows']} rows "
                               f"but the Parquet footers say {b.rows_in}")
        for c in original:
            src, want = found.field(c).type, expected.field(c).type
            n = counts.get(f"lossy:{c}", 0)
            if n:
                rows = flagged.where(hard_lossy[c]).select(F.col(original[c]).alias(c)) \
                    .distinct().orderBy(c).limit(MAX_SAMPLES).collect()
                b.check("column_types", False, f"expected {want}, found {src}: {n} of "
                        f"{b.rows_in} values do not convert (a column is converted only when "
                        "every value converts)", column=c,
                        samples=[{c: r[0]} for r in rows], values_not_converted=n)
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

        # Quarantine view: the values as they arrived, as strings.
        shown = [F.col(original.get(c, c)).cast("string").alias(c) for c in names]
        qview = flagged.select(*shown, FAILED)
        failing = [r.name for r in suite.rules if counts[r.name]]
        samples = failure_samples(qview, names, MAX_SAMPLES, failing) if failing else {}
        bad = counts["bad"]
        b.rows_accepted, b.rows_quarantined = b.rows_in - bad, bad
        for rule in suite.rules:
            b.rules.append(RuleOutcome(
                rule=rule.name, column=rule.column, level="row", description=rule.description,
                success=counts[rule.name] <= self.cfg.quarantine_max_share * b.rows_in,
                check=rule.check_text(ctx), rows_failed=counts[rule.name], quarantines=True,
                samples=tuple(samples.get(rule.name, ()))))

        clean = _write_spark(flagged.where(F.size(FAILED) == 0).select(*names),
                             clean_root(self.cfg), b.table, b.partition)
        b.paths["clean"] = str(clean)
        if bad:
            quarantine = _write_spark(
                qview.where(F.size(FAILED) > 0).select(
                    *names, failed_rules_text(), F.lit(self.run_date).alias("run_date")),
                quarantine_root(self.cfg), b.table, b.partition)
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
                share=round(share, 6), limit=limit)
        self._ge(b, suite, ctx, flagged, clean, ref_values, identical=not (bad or original or
                                                                           len(found) > len(names)))

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

    def _ge(self, b: _Builder, suite: RawSuite, ctx: RuleContext, flagged: DataFrame,
            clean: Path, ref_values: Mapping[str, list[Any]], identical: bool) -> None:
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
        detail = {"engine": engine, "evaluated": result.evaluated,
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
            ge_engine: str = "auto") -> ValidationSummary:
    """Validate the raw partitions of ``run_date``; write clean, quarantine, data_quality and
    the report; raise ValidationError if a table failed (see the module docstring).

    ``tables`` restricts the run (e.g. to re-validate one table after a fix); known-key
    rules then use the clean snapshot in force, which an earlier run must have written.
    """
    wanted = list(RAW_ORDER) if tables is None else list(tables)
    unknown = sorted(set(wanted) - set(RAW_SUITES))
    if unknown:
        raise ValueError(f"no raw suite for {unknown}; tables are {list(RAW_ORDER)}")
    run = _RawRun(cfg, run_date, ge_engine)
    for table in [t for t in RAW_ORDER if t in wanted]:
        run.validate(table)
    run.build_docs()
    outcomes = [b.outcome() for b in run.outcomes.values()]
    return _finish(cfg, run_date, "raw", outcomes)


# ----------------------------------------------------------------------------- features


def _load_catalog(catalog: Any) -> Any:
    if catalog is not None:
        return catalog
    try:
        return importlib.import_module("features.catalog")
    except ModuleNotFoundError as err:
        raise RuntimeError("features/catalog.py (FEATURES, KEYS) is needed to validate "
                           "features and does not exist yet") from err


def run_features(cfg: Config, run_date: dt.date, *, catalog: Any = None,
                 ge_engine: str = "auto") -> ValidationSummary:
    """Validate ``lake/features/date=run_date`` against the feature catalog.

    ``catalog`` defaults to the module ``features.catalog`` (FEATURES, KEYS, LABELS).
    Nothing is quarantined: any failed rule fails the step with a ValidationError.
    """
    from jobs.spark import get_spark

    _engine(ge_engine, 0, 0)
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

    spark = get_spark(cfg, "replenish-validate")
    df = _read_spark(spark, b, folder)
    if df is None:
        return _finish(cfg, run_date, "features", [b.outcome()])
    rules = feature_rules(specs, keys, history_max=getattr(catalog, "MAX_WINDOW", None))
    ctx = RuleContext(run_date)
    flagged = flag_rows(df, rules, ctx, data_columns=df.columns).persist()
    try:
        counts = count_failures(flagged, rules)
        failing = [r.name for r in rules if counts[r.name]]
        shown = keys + [HISTORY_COLUMN]
        broken = [r for r in rules if r.name in failing]
        cols = list(dict.fromkeys(shown + [c for r in broken for c in r.columns]))
        samples = failure_samples(flagged, cols, MAX_SAMPLES, failing) if failing else {}
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
        _check_pairs(cfg, spark, b, df, [k for k in keys if k != "date"], run_date)
        numeric = [f.name for f in df.schema.fields if f.dataType.typeName() in (
            "integer", "long", "short", "byte", "double", "float", "decimal")]
        engine = _engine(ge_engine, b.rows_in, len(df.columns))
        from expectations.suites import GXRunner

        data: Any = pq.read_table(folder).to_pandas() if engine == "pandas" else df
        try:
            runner = GXRunner(cfg.reports / "data_docs")
            result = runner.validate("features", "features", data, engine, rules, ctx,
                                     numeric=numeric, run_name=f"run_date={run_date}-features")
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
    finally:
        flagged.unpersist()
    return _finish(cfg, run_date, "features", [b.outcome()])


def _check_pairs(cfg: Config, spark: SparkSession, b: _Builder, df: DataFrame,
                 pair_keys: list[str], run_date: dt.date) -> None:
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


def _finish(cfg: Config, run_date: dt.date, suite: str,
            outcomes: Sequence[TableOutcome]) -> ValidationSummary:
    """Record data_quality, write the reports, then raise if anything failed."""
    reports = _write_reports(cfg, run_date, outcomes)
    _record(cfg, run_date, outcomes)
    index = report_dir(cfg, run_date) / "index.html"
    summary = ValidationSummary(run_date, suite, MappingProxyType({
        o.table: TableSummary(o.table, o.partition, o.status, o.rows_in, o.rows_accepted,
                              o.rows_quarantined, o.warnings, o.notes, reports.get(o.table))
        for o in outcomes}), index)
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
    from psycopg2.extras import execute_values

    from jobs import warehouse

    warehouse.ensure_partitions(cfg, run_date, run_date)
    rows = [row for o in outcomes for row in _dq_rows(run_date, o)]
    conn = warehouse.connect(cfg)
    try:
        with conn, conn.cursor() as cur:
            for o in outcomes:
                cur.execute("DELETE FROM replenish.data_quality WHERE run_date = %s "
                            "AND table_name = %s AND suite = %s", (run_date, o.table, o.suite))
            if rows:
                execute_values(cur, """
                    INSERT INTO replenish.data_quality (run_date, table_name, partition_date,
                        suite, rule, column_name, rows_in, rows_accepted, rows_quarantined,
                        success, details)
                    VALUES %s""", rows)
    finally:
        conn.close()
