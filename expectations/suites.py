"""Great Expectations suites built from the rule tables, and a runner that builds Data Docs.

Every :class:`~expectations.rules.RowRule` maps to a native GE expectation (tagged with
``meta.rule``), so the suite checks the same contract as the Spark split, independently:

    not_null    -> expect_column_values_to_not_be_null (a row_condition for "when", in the
                   engine's own syntax: pandas query / Spark SQL)
    between     -> expect_column_values_to_be_between
    in_set      -> expect_column_values_to_be_in_set
    known_key   -> expect_column_values_to_be_in_set (the reference keys)
    unique      -> expect_column_values_to_be_unique / expect_compound_columns_to_be_unique
    finite      -> expect_column_values_to_be_between(-max float, +max float), numeric only;
                   folded into the column's range expectation when it has one
                   (meta.rule then names both rules, comma-separated)
    within_day  -> pandas: expect_column_values_to_be_between(day start, day end);
                   Spark: unexpected_rows_expectation with the rule's SQL (GE converts a
                   Python datetime bound with the *process* time zone, not Spark's session
                   time zone, so a between on a Spark timestamp is off by the offset)
    sql         -> Spark: unexpected_rows_expectation; pandas: not mapped (noted)
    parseable   -> not mapped: conversion happens before the suite runs, and the clean
                   partition's exact schema is asserted by the job

GE runs on Spark (``engine="spark"``: works with pyspark 4.3 although GE 1.24 declares
``pyspark<4.2``) or on pandas (``engine="pandas"``). Great Expectations is imported lazily:
it takes seconds to import.
"""
from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from expectations.rules import RowRule, RuleContext, day_bounds

__all__ = ["ExpectationOutcome", "SuiteResult", "GXRunner", "build_expectations"]

_FLOAT_MAX = 1.7976931348623157e308
_SITE = "replenish"


@dataclass(frozen=True)
class ExpectationOutcome:
    """One expectation's result, reduced to what the report and data_quality need."""

    expectation: str
    column: str
    rule: str
    success: bool
    unexpected_count: int | None = None
    sample: tuple[str, ...] = ()
    error: str | None = None


@dataclass(frozen=True)
class SuiteResult:
    suite: str
    target: str
    engine: str
    success: bool
    outcomes: tuple[ExpectationOutcome, ...]
    not_mapped: tuple[str, ...] = ()
    docs_url: str | None = None
    key: str = ""

    @property
    def evaluated(self) -> int:
        return len(self.outcomes)

    @property
    def failures(self) -> tuple[ExpectationOutcome, ...]:
        return tuple(o for o in self.outcomes if not o.success)

    def summary(self) -> str:
        bad = ", ".join(f"{o.expectation}({o.column or '-'})" for o in self.failures)
        return (f"GE suite {self.suite} on {self.target} ({self.engine}): "
                f"{self.evaluated - len(self.failures)}/{self.evaluated} expectations passed"
                + (f"; failed: {bad}" if bad else ""))


@dataclass(frozen=True)
class _Mapped:
    expectations: list[Any]
    not_mapped: list[str] = field(default_factory=list)


def _sql_expectation(gxe: Any, rule: Any, ctx: Any, meta: dict) -> Any:
    """A rule checked by its own SQL: the batch's rows that break it must be none."""
    return gxe.UnexpectedRowsExpectation(
        unexpected_rows_query=f"SELECT * FROM {{batch}} WHERE {rule.bad_sql(ctx)}",
        meta=meta, description=rule.description)


def build_expectations(rules: Sequence[RowRule], ctx: RuleContext, engine: str,
                       columns: Sequence[str] | None = None,
                       ref_values: Mapping[str, Sequence[Any]] | None = None,
                       numeric: Sequence[str] | None = None) -> _Mapped:
    """The GE expectations for ``rules`` (see the module docstring for the mapping)."""
    import great_expectations.expectations as gxe

    ref_values = ref_values or {}
    numeric_set = set(numeric) if numeric is not None else None
    out: list[Any] = []
    skipped: list[str] = []
    # A finite rule on a column that also has a range folds into the range's expectation
    # (GE costs tens of milliseconds per expectation; the features suite has ~160 rules).
    ranged = {r.columns[0] for r in rules if r.kind == "between"}
    finite_cols = {r.columns[0]: r.name for r in rules if r.kind == "finite"
                   and r.columns[0] in ranged
                   and (numeric_set is None or r.columns[0] in numeric_set)}
    if columns is not None:
        out.append(gxe.ExpectTableColumnsToMatchOrderedList(
            column_list=list(columns), meta={"rule": "columns_present"}))
    for rule in rules:
        meta = {"rule": rule.name}
        col = rule.columns[0]
        if rule.kind == "not_null":
            kwargs: dict[str, Any] = {}
            if rule.when_column is not None:  # the engine's own condition syntax is faster
                kwargs = {"row_condition": f"`{rule.when_column}` >= {rule.when_min:g}",
                          "condition_parser": "pandas" if engine == "pandas" else "spark"}
            out.append(gxe.ExpectColumnValuesToNotBeNull(column=col, meta=meta, **kwargs))
        elif rule.kind == "between":
            lo, hi = rule.min_value, rule.max_value
            names = [rule.name]
            if col in finite_cols:  # one expectation checks the range and finiteness
                lo = -_FLOAT_MAX if lo is None else lo
                hi = _FLOAT_MAX if hi is None else hi
                names.append(finite_cols[col])
            out.append(gxe.ExpectColumnValuesToBeBetween(
                column=col, min_value=lo, max_value=hi, strict_min=rule.strict_min,
                strict_max=rule.strict_max, meta={"rule": ",".join(names)}))
        elif rule.kind == "in_set":
            out.append(gxe.ExpectColumnValuesToBeInSet(column=col, value_set=list(rule.values),
                                                       meta=meta))
        elif rule.kind == "known_key":
            if rule.ref_table is not None and rule.ref_table in ref_values:
                out.append(gxe.ExpectColumnValuesToBeInSet(
                    column=col, value_set=sorted(ref_values[rule.ref_table]), meta=meta))
            else:
                skipped.append(f"{rule.name}: reference keys of {rule.ref_table} not given")
        elif rule.kind == "unique":
            if len(rule.columns) == 1:
                out.append(gxe.ExpectColumnValuesToBeUnique(column=col, meta=meta))
            else:
                out.append(gxe.ExpectCompoundColumnsToBeUnique(column_list=list(rule.columns),
                                                               meta=meta))
        elif rule.kind == "finite":
            if (numeric_set is None or col in numeric_set) and col not in ranged:
                out.append(gxe.ExpectColumnValuesToBeBetween(
                    column=col, min_value=-_FLOAT_MAX, max_value=_FLOAT_MAX, meta=meta))
        elif rule.kind == "within_day":
            if engine == "spark":
                out.append(_sql_expectation(gxe, rule, ctx, meta))
            else:
                start, end = day_bounds(ctx.partition_date)
                out.append(gxe.ExpectColumnValuesToBeBetween(
                    column=col, min_value=start, max_value=end - dt.timedelta(microseconds=1),
                    meta=meta))
        elif rule.kind == "sql":
            if engine == "spark":
                out.append(_sql_expectation(gxe, rule, ctx, meta))
            else:
                skipped.append(f"{rule.name}: SQL rule, checked in Spark only")
        elif rule.kind == "parseable":
            skipped.append(f"{rule.name}: checked while converting types (Spark)")
    return _Mapped(out, skipped)


def _distinct(expectations: Sequence[Any]) -> list[Any]:
    """Drop an expectation equal to an earlier one but for its meta, as
    ``ExpectationSuite.add_expectation`` does (a suite is set-like)."""
    exclude = {"id", "rendered_content", "notes", "meta"}
    kept: list[Any] = []
    seen: list[tuple[str, dict]] = []
    for expectation in expectations:
        key = (expectation.expectation_type, expectation.dict(exclude=exclude))
        if key not in seen:
            seen.append(key)
            kept.append(expectation)
    return kept


def _exception_message(info: Any) -> str | None:
    if not info:
        return None
    if isinstance(info, Mapping) and "raised_exception" in info:
        return str(info.get("exception_message")) if info.get("raised_exception") else None
    if isinstance(info, Mapping):  # keyed by metric
        for value in info.values():
            msg = _exception_message(value)
            if msg:
                return msg
    return None


def _outcome(result: Any) -> ExpectationOutcome:
    config = result.expectation_config
    kwargs = dict(config.kwargs or {})
    column = kwargs.get("column") or ",".join(kwargs.get("column_list") or [])
    res = dict(result.result or {})
    count = res.get("unexpected_count")
    if count is None and config.type == "unexpected_rows_expectation":
        count = res.get("observed_value")
    sample = tuple(str(v) for v in (res.get("partial_unexpected_list") or [])[:5])
    return ExpectationOutcome(
        expectation=config.type, column=str(column), rule=str((config.meta or {}).get("rule", "")),
        success=bool(result.success), unexpected_count=None if count is None else int(count),
        sample=sample, error=_exception_message(result.exception_info))


class GXRunner:
    """An ephemeral GE context whose Data Docs site lives in ``docs_dir`` (None: no docs).

    Validations are stored in the context; :meth:`build_docs` renders them all at once
    (building the site after every validation costs a few tenths of a second each).
    """

    def __init__(self, docs_dir: Path | None = None) -> None:
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
        import great_expectations as gx

        self._gx = gx
        self.context = gx.get_context(mode="ephemeral")
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self.context.variables.progress_bars = ProgressBarsConfig(
            globally=False, metric_calculations=False)
        self.docs_dir = docs_dir
        if docs_dir is not None:
            docs_dir.mkdir(parents=True, exist_ok=True)
            self.context.add_data_docs_site(site_name=_SITE, site_config={
                "class_name": "SiteBuilder",
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                                  "base_directory": str(docs_dir)},
            })
        self._sources: dict[str, Any] = {}
        self._used: dict[str, int] = {}
        self._keys: dict[str, Any] = {}

    def _source(self, engine: str) -> Any:
        if engine not in self._sources:
            sources = self.context.data_sources
            self._sources[engine] = (sources.add_spark(name="spark") if engine == "spark"
                                     else sources.add_pandas(name="pandas"))
        return self._sources[engine]

    def validate(self, suite_name: str, target: str, data: Any, engine: str,
                 rules: Sequence[RowRule], ctx: RuleContext,
                 columns: Sequence[str] | None = None,
                 ref_values: Mapping[str, Sequence[Any]] | None = None,
                 numeric: Sequence[str] | None = None,
                 run_name: str | None = None) -> SuiteResult:
        """Run the suite for ``rules`` on ``data`` (a pandas or Spark DataFrame)."""
        if engine not in ("spark", "pandas"):
            raise ValueError(f"engine must be 'spark' or 'pandas', got {engine!r}")
        gx = self._gx
        from great_expectations.core.run_identifier import RunIdentifier

        name = f"{suite_name}.{target}"
        self._used[name] = self._used.get(name, 0) + 1
        if self._used[name] > 1:  # validated twice by one runner: keep names unique
            name = f"{name}.{self._used[name]}"
        mapped = build_expectations(rules, ctx, engine, columns, ref_values, numeric)
        suites = self.context.suites
        try:
            suites.delete(suite_name)
        except Exception:  # not there yet
            pass
        # One write to the store: adding expectations one by one to a saved suite
        # re-serialises the whole suite each time (seconds for a day's seven suites).
        suite = suites.add(gx.ExpectationSuite(name=suite_name,
                                               expectations=_distinct(mapped.expectations)))
        asset = self._source(engine).add_dataframe_asset(name=name)
        batch = asset.add_batch_definition_whole_dataframe(target)
        vd = self.context.validation_definitions.add(gx.ValidationDefinition(
            name=name, data=batch, suite=suite))
        checkpoint = self.context.checkpoints.add(gx.Checkpoint(
            name=name, validation_definitions=[vd], actions=[],
            result_format={"result_format": "SUMMARY", "partial_unexpected_count": 5}))
        run_time = dt.datetime.combine(ctx.partition_date, dt.time(), tzinfo=dt.UTC)
        try:
            result = checkpoint.run(batch_parameters={"dataframe": data}, run_id=RunIdentifier(
                run_name=run_name or f"{ctx.partition_date}-{target}", run_time=run_time))
        finally:
            if engine == "spark":  # GE persists the batch; do not leave it in the cache
                data.unpersist()
        (key, run), = result.run_results.items()
        self._keys[name] = key
        return SuiteResult(suite=suite_name, target=target, engine=engine,
                           success=bool(run.success),
                           outcomes=tuple(_outcome(r) for r in run.results),
                           not_mapped=tuple(mapped.not_mapped), key=name)

    def build_docs(self) -> dict[str, str]:
        """Render the Data Docs site; returns each validation's page URL by result key."""
        if self.docs_dir is None or not self._keys:
            return {}
        self.context.build_data_docs(site_names=[_SITE])
        urls = {}
        for name, key in self._keys.items():
            found = self.context.get_docs_sites_urls(resource_identifier=key, site_name=_SITE)
            if found and found[0].get("site_url"):
                urls[name] = str(found[0]["site_url"])
        return urls

    @staticmethod
    def with_docs(results: Sequence[SuiteResult], urls: Mapping[str, str]) -> list[SuiteResult]:
        return [replace(r, docs_url=urls.get(r.key, r.docs_url)) for r in results]
