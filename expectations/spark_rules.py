"""Evaluate a rule table on a Spark DataFrame: flag each row with the rules it breaks.

Pure PySpark (DataFrame in, DataFrame out). :func:`flag_rows` adds one array column,
``FAILED``, naming the rules a row breaks (empty for a good row); :func:`count_failures`
counts rows per rule in one aggregation; :func:`failure_samples` returns up to ``n``
offending rows per rule in one more job.
"""
from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from expectations.rules import RowRule, RuleContext

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import Column, DataFrame

__all__ = ["FAILED", "flag_rows", "count_failures", "failure_samples", "failed_rules_text"]

#: Array<string> column added by flag_rows: names of the rules a row breaks.
FAILED = "__failed_rules"


def flag_rows(df: DataFrame, rules: Sequence[RowRule], ctx: RuleContext,
              refs: Mapping[str, DataFrame | Collection[Any]] | None = None,
              data_columns: Sequence[str] | None = None) -> DataFrame:
    """``df`` plus ``FAILED``.

    ``refs`` maps a reference table name to its keys for ``known_key`` rules: a DataFrame
    holding the key column (joined, for large dimensions) or the key values themselves
    (an IN-set: no join, no extra Spark job). ``data_columns`` are the table's columns in schema order, used to
    order duplicate copies when a ``unique`` rule names no ``order_by``.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    refs = refs or {}
    data_columns = list(data_columns or [c for c in df.columns if not c.startswith("__")])
    extra = [c for c in df.columns if c.startswith("__") and c != FAILED]
    out = df
    flags: list[tuple[str, Column]] = []
    helpers: list[str] = []
    for i, rule in enumerate(rules):
        if rule.kind == "unique":
            order = list(rule.order_by) or [c for c in data_columns if c not in rule.columns]
            window = Window.partitionBy(*rule.columns).orderBy(
                *[F.col(c).asc_nulls_last() for c in order],
                *[F.col(c).asc_nulls_last() for c in extra])
            name = f"__rn{i}"
            out = out.withColumn(name, F.row_number().over(window))
            helpers.append(name)
            keys_present = F.lit(True)
            for c in rule.columns:
                keys_present = keys_present & F.col(c).isNotNull()
            flags.append((rule.name, keys_present & (F.col(name) > 1)))
        elif rule.kind == "known_key":
            if rule.ref_table is None or rule.ref_table not in refs:
                raise KeyError(f"rule {rule.name}: reference table {rule.ref_table!r} not given")
            ref = refs[rule.ref_table]
            col = F.col(rule.columns[0])
            if not hasattr(ref, "select"):  # the keys themselves: an IN-set, no join
                flags.append((rule.name, col.isNotNull() & ~col.isin(list(ref))))
                continue
            name = f"__ref{i}"
            ref = ref.select(F.col(rule.ref_column or rule.columns[0]).alias(name)) \
                .where(F.col(name).isNotNull())
            out = out.join(F.broadcast(ref.distinct()), col == F.col(name), "left")
            helpers.append(name)
            flags.append((rule.name, col.isNotNull() & F.col(name).isNull()))
        else:
            flags.append((rule.name, F.expr(rule.bad_sql(ctx) or "false")))
    names = F.array(*[F.when(F.coalesce(flag, F.lit(False)), F.lit(name))
                      for name, flag in flags]) if flags else F.array().cast("array<string>")
    out = out.withColumn(FAILED, F.filter(names, lambda x: x.isNotNull()))
    return out.drop(*helpers)


def count_failures(flagged: DataFrame, rules: Sequence[RowRule],
                   extra: Mapping[str, Column] | None = None) -> dict[str, int]:
    """One aggregation: ``rows``, ``bad`` (rows breaking any rule), one count per rule and
    one per ``extra`` named boolean column expression."""
    from pyspark.sql import functions as F

    aggs = [F.count(F.lit(1)).alias("rows"),
            F.sum(F.when(F.size(FAILED) > 0, 1).otherwise(0)).alias("bad")]
    aggs += [F.sum(F.when(F.array_contains(FAILED, r.name), 1).otherwise(0)).alias(f"r{i}")
             for i, r in enumerate(rules)]
    extra = dict(extra or {})
    aggs += [F.sum(F.when(F.coalesce(expr, F.lit(False)), 1).otherwise(0)).alias(f"x{i}")
             for i, expr in enumerate(extra.values())]
    row = flagged.agg(*aggs).collect()[0]
    counts = {"rows": int(row["rows"]), "bad": int(row["bad"] or 0)}
    counts.update({r.name: int(row[f"r{i}"] or 0) for i, r in enumerate(rules)})
    counts.update({k: int(row[f"x{i}"] or 0) for i, k in enumerate(extra)})
    return counts


def failure_samples(flagged: DataFrame, columns: Sequence[str], n: int = 5,
                    rules: Sequence[str] | None = None) -> dict[str, list[dict[str, Any]]]:
    """Up to ``n`` offending rows per rule (values as strings), deterministically ordered."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    bad = flagged.where(F.size(FAILED) > 0)
    if rules is not None:
        wanted = F.array(*[F.lit(r) for r in rules]) if rules else F.array().cast(
            "array<string>")
        bad = bad.where(F.arrays_overlap(F.col(FAILED), wanted))
    shown = [F.col(c).cast("string").alias(c) for c in columns]
    exploded = bad.select(F.explode(FAILED).alias("__rule"), *shown)
    if rules is not None:
        exploded = exploded.where(F.col("__rule").isin(list(rules)))
    window = Window.partitionBy("__rule").orderBy(*[F.col(c).asc_nulls_first() for c in columns])
    rows = (exploded.withColumn("__rn", F.row_number().over(window))
            .where(F.col("__rn") <= n).orderBy("__rule", "__rn").collect())
    out: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        out.setdefault(row["__rule"], []).append({c: row[c] for c in columns})
    return out


def failed_rules_text() -> Column:
    """FAILED as the comma-separated ``failed_rules`` column of a quarantine partition."""
    from pyspark.sql import functions as F

    return F.concat_ws(",", F.col(FAILED)).alias("failed_rules")
