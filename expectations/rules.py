"""Row rules as data: one declaration drives the Spark split, the GE suite and the report.

A :class:`RowRule` says what makes a row bad. Most kinds compile to a Spark SQL boolean
expression that is TRUE for a bad row (:meth:`RowRule.bad_sql`); two are relational and are
evaluated with a window or a join (``unique``, ``known_key``). The same declaration maps to
a native Great Expectations expectation (``expectations/suites.py``) and is shown, with its
SQL, in the HTML report, so the three can never drift apart.

Kinds
    ``not_null``    the value is missing (optionally only where ``when_column >= when_min``)
    ``between``     the value lies outside [min, max] (strict bounds optional) or is NaN
    ``in_set``      the value is not one of ``values``
    ``finite``      the value is NaN or +-infinity
    ``parseable``   the value arrived in another type and does not convert to the schema type
    ``within_day``  the timestamp does not fall on the partition day (future or another day)
    ``sql``         any Spark SQL predicate, TRUE for a bad row
    ``unique``      a repeated key: every copy but the first (see ``order_by``) is bad
    ``known_key``   the key is absent from a reference table (a dimension snapshot)
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["RowRule", "RuleContext", "RELATIONAL_KINDS", "not_null", "between", "in_set",
           "finite", "parseable", "within_day", "sql_rule", "unique", "known_key"]

#: Kinds evaluated with a window or a join rather than a per-row expression.
RELATIONAL_KINDS = frozenset({"unique", "known_key"})
_KINDS = frozenset({"not_null", "between", "in_set", "finite", "parseable", "within_day",
                    "sql"}) | RELATIONAL_KINDS


@dataclass(frozen=True)
class RuleContext:
    """What a rule needs to know about the partition it checks.

    ``original`` maps a column that was converted to its schema type to the column holding
    its original value as a string (so ``not_null`` and ``parseable`` look at what arrived,
    not at the converted value).
    """

    partition_date: dt.date
    original: Mapping[str, str] = field(default_factory=dict)

    def source(self, column: str) -> str:
        return self.original.get(column, column)


@dataclass(frozen=True)
class RowRule:
    """One row-level rule; build it with the helpers below rather than by hand."""

    name: str
    kind: str
    columns: tuple[str, ...]
    description: str
    min_value: float | None = None
    max_value: float | None = None
    strict_min: bool = False
    strict_max: bool = False
    values: tuple[Any, ...] = ()
    ref_table: str | None = None
    ref_column: str | None = None
    order_by: tuple[str, ...] = ()
    sql: str | None = None
    when_column: str | None = None
    when_min: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"rule {self.name!r}: unknown kind {self.kind!r}")
        if not self.columns:
            raise ValueError(f"rule {self.name!r}: names no column")

    @property
    def column(self) -> str:
        """The column name recorded in data_quality ("a,b" for a compound key)."""
        return ",".join(self.columns)

    @property
    def relational(self) -> bool:
        return self.kind in RELATIONAL_KINDS

    def bad_sql(self, ctx: RuleContext) -> str | None:
        """Spark SQL that is TRUE for a bad row; None for the relational kinds."""
        c = _q(self.columns[0])
        if self.kind == "not_null":
            text = f"{_q(ctx.source(self.columns[0]))} IS NULL"
            if self.when_column is not None:
                text += f" AND {_q(self.when_column)} >= {_lit(self.when_min)}"
            return text
        if self.kind == "between":
            parts = [f"isnan({c})"]
            if self.min_value is not None:
                parts.append(f"{c} {'<=' if self.strict_min else '<'} {_lit(self.min_value)}")
            if self.max_value is not None:
                parts.append(f"{c} {'>=' if self.strict_max else '>'} {_lit(self.max_value)}")
            return f"{c} IS NOT NULL AND ({' OR '.join(parts)})"
        if self.kind == "in_set":
            return f"{c} NOT IN ({', '.join(_lit(v) for v in self.values)})"
        if self.kind == "finite":
            d = f"try_cast({c} AS DOUBLE)"
            return f"isnan({d}) OR abs({d}) = double('Infinity')"
        if self.kind == "parseable":
            src = ctx.source(self.columns[0])
            if src == self.columns[0]:
                return "false"  # arrived in the schema type: nothing to parse
            return f"{_q(src)} IS NOT NULL AND {c} IS NULL"
        if self.kind == "within_day":
            start, end = day_bounds(ctx.partition_date)
            return (f"{c} < TIMESTAMP_NTZ '{start:%Y-%m-%d %H:%M:%S}' OR "
                    f"{c} >= TIMESTAMP_NTZ '{end:%Y-%m-%d %H:%M:%S}'")
        if self.kind == "sql":
            assert self.sql is not None
            start, end = day_bounds(ctx.partition_date)
            return self.sql.format(day=start.date().isoformat(), next_day=end.date().isoformat())
        return None

    def check_text(self, ctx: RuleContext | None = None) -> str:
        """How the rule is checked, for people: the SQL, or the relational rule in words."""
        if self.kind == "unique":
            order = ", ".join(self.order_by) or "the other columns in schema order"
            return (f"duplicate ({self.column}): every copy but the first ordered by {order} "
                    "(ascending, nulls last) is bad")
        if self.kind == "known_key":
            return f"{self.column} not found in {self.ref_table}.{self.ref_column} (snapshot in force)"
        ctx = ctx or RuleContext(dt.date(2000, 1, 1))
        return self.bad_sql(ctx) or ""


def day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of a partition day as naive local datetimes."""
    start = dt.datetime.combine(day, dt.time())
    return start, start + dt.timedelta(days=1)


def _q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _lit(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(float(value)) if isinstance(value, float) else str(value)
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


# ----------------------------------------------------------------------------- helpers


def not_null(column: str, *, name: str | None = None, when: tuple[str, float] | None = None,
             description: str | None = None) -> RowRule:
    """Missing value; with ``when=(col, v)`` only a miss where ``col >= v`` is bad."""
    text = description or f"{column} is required"
    return RowRule(name or f"{column}_not_null", "not_null", (column,), text,
                   when_column=when[0] if when else None, when_min=when[1] if when else None)


def between(column: str, min_value: float | None = None, max_value: float | None = None, *,
            strict_min: bool = False, strict_max: bool = False, name: str | None = None,
            description: str | None = None) -> RowRule:
    """Outside [min, max] (``strict_*`` make a bound exclusive), or NaN."""
    lo = "" if min_value is None else f"{column} {'>' if strict_min else '>='} {min_value:g}"
    hi = "" if max_value is None else f"{column} {'<' if strict_max else '<='} {max_value:g}"
    text = description or " and ".join(p for p in (lo, hi) if p)
    return RowRule(name or f"{column}_range", "between", (column,), text,
                   min_value=min_value, max_value=max_value,
                   strict_min=strict_min, strict_max=strict_max)


def in_set(column: str, values: Sequence[Any], *, name: str | None = None,
           description: str | None = None) -> RowRule:
    text = description or f"{column} is one of {', '.join(map(str, values))}"
    return RowRule(name or f"{column}_valid", "in_set", (column,), text, values=tuple(values))


def finite(column: str, *, name: str | None = None) -> RowRule:
    return RowRule(name or f"{column}_finite", "finite", (column,),
                   f"{column} is a number, not NaN or infinite")


def parseable(column: str, type_name: str, *, name: str | None = None) -> RowRule:
    """A value that arrived as text (or another type) must convert to ``type_name``."""
    return RowRule(name or f"{column}_parseable", "parseable", (column,),
                   f"{column} converts to {type_name} (unparseable values are quarantined)")


def within_day(column: str, *, name: str | None = None) -> RowRule:
    return RowRule(name or f"{column}_within_partition_day", "within_day", (column,),
                   f"{column} falls on the partition day: a later time is future-dated, an "
                   "earlier one belongs to another partition")


def sql_rule(name: str, columns: Sequence[str], sql: str, description: str) -> RowRule:
    """Any Spark SQL predicate TRUE for a bad row; ``{day}``/``{next_day}`` are filled in."""
    return RowRule(name, "sql", tuple(columns), description, sql=sql)


def unique(*columns: str, order_by: Sequence[str] = (), name: str | None = None,
           description: str | None = None) -> RowRule:
    """Duplicate keys: every copy but the first in ``order_by`` order is bad."""
    text = description or (f"({', '.join(columns)}) is unique; of repeated copies the first "
                           f"ordered by ({', '.join(order_by) or 'all other columns'}) is kept")
    return RowRule(name or f"{'_'.join(columns)}_unique", "unique", tuple(columns), text,
                   order_by=tuple(order_by))


def known_key(column: str, ref_table: str, ref_column: str | None = None, *,
              name: str | None = None) -> RowRule:
    ref_column = ref_column or column
    return RowRule(name or f"{column}_known", "known_key", (column,),
                   f"{column} exists in the {ref_table} snapshot in force",
                   ref_table=ref_table, ref_column=ref_column)
