"""Evaluate a rule table on a pyarrow Table, exactly as ``spark_rules`` does on Spark.

A day partition holds thousands of rows: evaluating its rules locally, vectorised with
pyarrow and numpy, takes milliseconds where Spark needs several jobs. ``jobs/validate.py``
uses this for small partitions and keeps Spark for large ones, so both must agree row for
row; ``tests/expectations/test_arrow_rules.py`` checks this module against Spark.

The semantics are those of the Spark SQL that :meth:`RowRule.bad_sql` produces: a NULL
makes a rule pass (SQL three-valued logic, as ``coalesce(flag, false)``), NaN breaks
``between`` and ``finite``, numbers compare as Spark compares them, and of the copies of a
repeated key the first ordered ascending with nulls last is kept; NaN is above every number
(``NaN > x`` holds), as Spark orders it.
Whatever cannot be evaluated exactly like Spark here (a ``sql`` rule, a float key, a float32
comparison, a comparison Spark would coerce, a value whose text Spark renders differently)
raises :class:`Unsupported`, and the caller uses Spark instead.

:func:`spark_strings` renders values as Spark's ``CAST(x AS STRING)`` does (quarantined
rows and samples show the values as text); :func:`convert` is Spark's ``try_cast`` for the
lossless numeric conversions, with the rows that would lose information.
"""
from __future__ import annotations

import datetime as dt
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from expectations.rules import RowRule, RuleContext, day_bounds

__all__ = ["Unsupported", "Flagged", "flag_table", "failure_samples", "spark_strings",
           "convert", "can_convert"]

#: Integers above this do not survive a round trip through a double.
_EXACT_INT = 2 ** 53
#: Doubles whose text Python and Spark (Java 17's Double.toString) are checked to agree on;
#: outside (besides 0, NaN and the infinities) Spark renders them itself.
_TEXT_RANGE = (1e-12, 1e15)
_INT_RANGES = {pa.int8(): (-2 ** 7, 2 ** 7 - 1), pa.int16(): (-2 ** 15, 2 ** 15 - 1),
               pa.int32(): (-2 ** 31, 2 ** 31 - 1), pa.int64(): (-2 ** 63, 2 ** 63 - 1)}


class Unsupported(Exception):
    """This evaluation cannot be made exactly as Spark makes it: use Spark."""


# ----------------------------------------------------------------------------- helpers


def _array(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    return values


def _valid(values: pa.Array) -> np.ndarray:
    if values.null_count == 0:
        return np.ones(len(values), dtype=bool)
    return np.asarray(values.is_valid().to_numpy(zero_copy_only=False), dtype=bool)


def _is_int(t: pa.DataType) -> bool:
    return t in _INT_RANGES


def _numbers(values: pa.Array, what: str) -> np.ndarray:
    """Integers (int64) or doubles of a numeric column, nulls as 0 (mask them apart)."""
    t = values.type
    if _is_int(t):
        return np.asarray(values.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
    if t == pa.float64():
        return np.asarray(values.fill_null(0.0).to_numpy(zero_copy_only=False),
                          dtype=np.float64)
    raise Unsupported(f"{what}: Spark compares a {t} column with its own coercion rules")


def _compare(values: np.ndarray, op: str, bound: Any, what: str) -> np.ndarray:
    """``values <op> bound`` as Spark compares a column with a numeric literal."""
    if isinstance(bound, bool) or not isinstance(bound, int | float) or \
            (isinstance(bound, float) and math.isnan(bound)):
        raise Unsupported(f"{what}: bound {bound!r} is not a number")
    if values.dtype.kind == "i":
        if isinstance(bound, float):  # an int column against a decimal/double literal
            if len(values) and int(np.abs(values).max()) >= _EXACT_INT:
                raise Unsupported(f"{what}: integers beyond 2^53 against a fractional bound")
            values = values.astype(np.float64)
        elif not -2 ** 63 <= bound < 2 ** 63:
            raise Unsupported(f"{what}: bound {bound} is outside the 64-bit range")
    ops = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal}
    with np.errstate(invalid="ignore"):
        out = np.asarray(ops[op](values, bound), dtype=bool)
    if values.dtype.kind == "f" and op.startswith(">"):
        out |= np.isnan(values)  # Spark orders NaN above every number
    return out


def _nan(values: np.ndarray) -> np.ndarray:
    return np.isnan(values) if values.dtype.kind == "f" else np.zeros(len(values), bool)


def _members(values: pa.Array, allowed: Sequence[Any], what: str) -> np.ndarray:
    """``values IN (allowed)`` for the non-null values (nulls come out False)."""
    t = values.type
    if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in allowed):
        raise Unsupported(f"{what}: a NULL or NaN among the values")
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        if not all(isinstance(v, str) for v in allowed):
            raise Unsupported(f"{what}: non-text values for a text column")
        found = pc.is_in(values, value_set=pa.array(list(allowed), t))
        return np.asarray(found.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)
    if t == pa.bool_():
        if not all(isinstance(v, bool) for v in allowed):
            raise Unsupported(f"{what}: non-boolean values for a boolean column")
        found = pc.is_in(values, value_set=pa.array(list(allowed), t))
        return np.asarray(found.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)
    if _is_int(t) or t == pa.float64():
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in allowed):
            raise Unsupported(f"{what}: non-numeric values for a numeric column")
        nums = _numbers(values, what)
        if nums.dtype.kind == "i" and all(isinstance(v, int) for v in allowed):
            if any(not -2 ** 63 <= v < 2 ** 63 for v in allowed):
                raise Unsupported(f"{what}: a value outside the 64-bit range")
            return np.isin(nums, np.array(list(allowed), dtype=np.int64)) & _valid(values)
        if nums.dtype.kind == "i" and len(nums) and int(np.abs(nums).max()) >= _EXACT_INT:
            raise Unsupported(f"{what}: integers beyond 2^53 against fractional values")
        wanted = np.array([float(v) for v in allowed], dtype=np.float64)
        return np.isin(nums.astype(np.float64), wanted) & _valid(values)  # -0.0 == 0.0
    raise Unsupported(f"{what}: a set of values on a {t} column")


def _micros(values: pa.Array, what: str) -> np.ndarray:
    t = values.type
    if not pa.types.is_timestamp(t) or t.tz is not None or t.unit == "ns":
        raise Unsupported(f"{what}: {t} is not a timestamp without time zone")
    as_us = values.cast(pa.timestamp("us")).cast(pa.int64())
    return np.asarray(as_us.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)


def _epoch_micros(moment: dt.datetime) -> int:
    return (moment - dt.datetime(1970, 1, 1)) // dt.timedelta(microseconds=1)


# ----------------------------------------------------------------------------- flags


@dataclass(frozen=True)
class Flagged:
    """One boolean mask per rule (True: the row breaks it), in rule order."""

    names: tuple[str, ...]
    masks: tuple[np.ndarray, ...]
    rows: int

    @property
    def bad(self) -> np.ndarray:
        out = np.zeros(self.rows, dtype=bool)
        for mask in self.masks:
            out |= mask
        return out

    def mask(self, rule: str) -> np.ndarray:
        return self.masks[self.names.index(rule)]

    def counts(self, extra: Mapping[str, np.ndarray] | None = None) -> dict[str, int]:
        """As ``spark_rules.count_failures``: rows, bad, one count per rule and extra mask."""
        counts = {"rows": self.rows, "bad": int(self.bad.sum())}
        counts.update({n: int(m.sum()) for n, m in zip(self.names, self.masks, strict=True)})
        counts.update({k: int(np.asarray(m, dtype=bool).sum()) for k, m in (extra or {}).items()})
        return counts

    def take(self, index: np.ndarray) -> Flagged:
        return Flagged(self.names, tuple(m[index] for m in self.masks), len(index))

    def failed_rules(self) -> list[list[str]]:
        """The names of the rules each row breaks, in rule order (``spark_rules.FAILED``)."""
        out: list[list[str]] = [[] for _ in range(self.rows)]
        for name, mask in zip(self.names, self.masks, strict=True):
            for i in np.flatnonzero(mask):
                out[i].append(name)
        return out


def _unique(table: pa.Table, rule: RowRule, data_columns: Sequence[str]) -> np.ndarray:
    """Every copy of a repeated key but the first in order (row_number() > 1)."""
    keys = list(rule.columns)
    for k in keys:
        t = table.schema.field(k).type
        if pa.types.is_floating(t) or not (_is_int(t) or pa.types.is_string(t)
                                           or pa.types.is_large_string(t)
                                           or t == pa.bool_() or pa.types.is_date32(t)
                                           or pa.types.is_timestamp(t)):
            raise Unsupported(f"{rule.name}: key column {k} of type {t}")
    order = list(rule.order_by) or [c for c in data_columns if c not in rule.columns]
    extra = [c for c in table.column_names if c.startswith("__")]
    order += extra
    present = np.ones(table.num_rows, dtype=bool)
    for k in keys:
        present &= _valid(_array(table.column(k)))
    candidates = np.flatnonzero(present)
    bad = np.zeros(table.num_rows, dtype=bool)
    if len(candidates) < 2:
        return bad
    names = [f"k{i}" for i in range(len(keys))] + [f"o{i}" for i in range(len(order))]
    sub = pa.table([_array(table.column(c)).take(pa.array(candidates)) for c in keys + order],
                   names=names)
    for f in sub.schema:
        if pa.types.is_float32(f.type) or not (pa.types.is_primitive(f.type)
                                               or pa.types.is_string(f.type)
                                               or pa.types.is_large_string(f.type)):
            raise Unsupported(f"{rule.name}: ordering by a {f.type} column")
    # Stable: ties (copies identical in every ordering column) keep the file order.
    idx = pc.sort_indices(sub, sort_keys=[(n, "ascending", "at_end") for n in names])
    ordered = sub.take(idx)
    same = np.ones(len(candidates) - 1, dtype=bool)
    for i in range(len(keys)):
        col = _array(ordered.column(f"k{i}"))
        eq = pc.equal(col.slice(1), col.slice(0, len(col) - 1))
        same &= np.asarray(eq.to_numpy(zero_copy_only=False), dtype=bool)
    positions = np.asarray(idx.to_numpy(zero_copy_only=False))[1:][same]
    bad[candidates[positions]] = True
    return bad


def _flag(table: pa.Table, rule: RowRule, ctx: RuleContext,
          refs: Mapping[str, Collection[Any]], data_columns: Sequence[str]) -> np.ndarray:
    what = rule.name

    def column(name: str) -> pa.Array:
        if name not in table.column_names:
            raise Unsupported(f"{what}: column {name} is not in the table")
        return _array(table.column(name))

    if rule.kind == "unique":
        return _unique(table, rule, data_columns)
    values = column(rule.columns[0])
    valid = _valid(values)
    if rule.kind == "known_key":
        if rule.ref_table is None or rule.ref_table not in refs:
            raise KeyError(f"rule {rule.name}: reference table {rule.ref_table!r} not given")
        return valid & ~_members(values, list(refs[rule.ref_table]), what)
    if rule.kind == "not_null":
        bad = ~_valid(column(ctx.source(rule.columns[0])))
        if rule.when_column is not None:
            when = column(rule.when_column)
            bad &= _valid(when) & _compare(_numbers(when, what), ">=", rule.when_min, what)
        return bad
    if rule.kind == "between":
        nums = _numbers(values, what)
        out = _nan(nums)
        if rule.min_value is not None:
            out |= _compare(nums, "<=" if rule.strict_min else "<", rule.min_value, what)
        if rule.max_value is not None:
            out |= _compare(nums, ">=" if rule.strict_max else ">", rule.max_value, what)
        return valid & out
    if rule.kind == "in_set":
        return valid & ~_members(values, list(rule.values), what)
    if rule.kind == "finite":
        t = values.type
        if _is_int(t) or t == pa.bool_():
            return np.zeros(len(values), dtype=bool)
        nums = _numbers(values, what)
        return valid & ~np.isfinite(nums)
    if rule.kind == "parseable":
        source = ctx.source(rule.columns[0])
        if source == rule.columns[0]:
            return np.zeros(len(values), dtype=bool)
        return _valid(column(source)) & ~valid
    if rule.kind == "within_day":
        start, end = day_bounds(ctx.partition_date)
        micros = _micros(values, what)
        return valid & ((micros < _epoch_micros(start)) | (micros >= _epoch_micros(end)))
    raise Unsupported(f"{what}: a {rule.kind} rule is evaluated by Spark")


def flag_table(table: pa.Table, rules: Sequence[RowRule], ctx: RuleContext,
               refs: Mapping[str, Collection[Any]] | None = None,
               data_columns: Sequence[str] | None = None) -> Flagged:
    """The rules each row of ``table`` breaks (``spark_rules.flag_rows``, locally).

    ``refs`` maps a reference table to its key values (known-key rules); ``data_columns``
    order duplicate copies when a ``unique`` rule names no ``order_by``. Columns named
    ``__...`` hold what converted columns held before conversion (see ``ctx.original``).
    """
    refs = refs or {}
    data_columns = list(data_columns or [c for c in table.column_names
                                         if not c.startswith("__")])
    masks = tuple(np.asarray(_flag(table, r, ctx, refs, data_columns), dtype=bool)
                  for r in rules)
    return Flagged(tuple(r.name for r in rules), masks, table.num_rows)


def failure_samples(flagged: Flagged, view: pa.Table, columns: Sequence[str], n: int = 5,
                    rules: Sequence[str] | None = None) -> dict[str, list[dict[str, Any]]]:
    """Up to ``n`` rows per rule from ``view`` (text columns aligned with ``flagged``),
    ordered by ``columns`` ascending with nulls first (``spark_rules.failure_samples``)."""
    wanted = sorted(set(rules) if rules is not None else set(flagged.names))
    out: dict[str, list[dict[str, Any]]] = {}
    shown = view.select(list(columns))
    for rule in wanted:
        if rule not in flagged.names:
            continue
        rows = shown.filter(pa.array(flagged.mask(rule)))
        if not rows.num_rows:
            continue
        idx = pc.sort_indices(rows, sort_keys=[(c, "ascending", "at_start") for c in columns])
        out[rule] = rows.take(idx.slice(0, n)).to_pylist()
    return out


# ----------------------------------------------------------------------------- text, casts


def _java_double(d: float) -> str:
    """``Double.toString`` (Spark's double-to-string cast) inside the checked range."""
    if math.isnan(d):
        return "NaN"
    if math.isinf(d):
        return "Infinity" if d > 0 else "-Infinity"
    if d == 0:
        return "-0.0" if math.copysign(1.0, d) < 0 else "0.0"
    a = abs(d)
    if not _TEXT_RANGE[0] <= a < _TEXT_RANGE[1]:
        raise Unsupported(f"the value {d!r} is rendered as text by Spark")
    mantissa, _, exponent = repr(a).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = (whole + fraction).lstrip("0")
    # Position of the first significant digit: 10^exp.
    exp = (int(exponent) if exponent else 0) + len(whole) - 1 \
        - (len(whole + fraction) - len(digits))
    digits = digits.rstrip("0") or "0"
    sign = "-" if d < 0 else ""
    if 1e-3 <= a < 1e7:
        point = exp + 1
        if point <= 0:
            return f"{sign}0.{'0' * -point}{digits}"
        if point >= len(digits):
            return f"{sign}{digits}{'0' * (point - len(digits))}.0"
        return f"{sign}{digits[:point]}.{digits[point:]}"
    return f"{sign}{digits[0]}.{digits[1:] or '0'}E{exp}"


def _timestamp_text(t: dt.datetime) -> str:
    text = (f"{t.year:04d}-{t.month:02d}-{t.day:02d} "
            f"{t.hour:02d}:{t.minute:02d}:{t.second:02d}")
    return text + (f".{t.microsecond:06d}".rstrip("0") if t.microsecond else "")


def spark_strings(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """The values as Spark's ``CAST(x AS STRING)`` renders them (nulls stay null)."""
    arr = _array(values)
    t = arr.type
    if pa.types.is_string(t):
        return arr
    if pa.types.is_large_string(t) or _is_int(t):
        return arr.cast(pa.string())
    if t == pa.bool_():
        return pa.array([None if v is None else ("true" if v else "false")
                         for v in arr.to_pylist()], pa.string())
    if t == pa.float64():
        return pa.array([None if v is None else _java_double(v) for v in arr.to_pylist()],
                        pa.string())
    if pa.types.is_date32(t):
        return pa.array([None if v is None else v.isoformat() for v in arr.to_pylist()],
                        pa.string())
    if pa.types.is_timestamp(t) and t.tz is None and t.unit != "ns":
        return pa.array([None if v is None else _timestamp_text(v) for v in arr.to_pylist()],
                        pa.string())
    raise Unsupported(f"Spark renders {t} values as text itself")


def can_convert(source: pa.DataType, target: pa.DataType) -> bool:
    """Whether :func:`convert` handles ``source`` -> ``target``."""
    return (_is_int(source) and (_is_int(target) or target == pa.float64())) or \
        (source == pa.float64() and _is_int(target))


def convert(values: pa.Array | pa.ChunkedArray,
            target: pa.DataType) -> tuple[pa.Array, np.ndarray]:
    """Spark's ``try_cast`` to ``target`` and the rows that lose information (a value that
    does not convert, or converts to another number), as ``jobs/validate.py`` checks them."""
    arr = _array(values)
    if not can_convert(arr.type, target):
        raise Unsupported(f"converting {arr.type} to {target} is done by Spark")
    valid = _valid(arr)
    if target == pa.float64():  # rounds to the nearest double, as Java does
        doubles = _numbers(arr, "conversion").astype(np.float64)
        return pa.array(doubles, pa.float64(), mask=~valid), np.zeros(len(arr), dtype=bool)
    lo, hi = _INT_RANGES[target]
    nums = _numbers(arr, "conversion")
    if nums.dtype.kind == "i":
        ok = valid & (nums >= lo) & (nums <= hi)
    else:
        with np.errstate(invalid="ignore"):
            ok = valid & np.isfinite(nums) & (np.trunc(nums) == nums) & (nums >= lo) \
                & (nums <= hi)
    ints = np.where(ok, nums, 0).astype(np.int64)
    converted = pa.array(ints, pa.int64(), mask=~ok).cast(target)
    return converted, valid & ~ok
