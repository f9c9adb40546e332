"""The features suite, driven by the feature catalog (``features/catalog.py``).

The catalog is passed in (this package imports nothing from the pipeline): ``FEATURES`` is
a sequence of objects or mappings with ``name``, ``window_days`` and ``nullable``, and
optionally ``history_needed`` (or ``min_history``: days of history after which the feature
is never null; default ``window_days``), ``dtype`` (Spark type name) and ``min_value`` /
``max_value``; ``KEYS`` names the keys. Without explicit bounds a feature's range follows
its name (:func:`default_range`): lags and rolling statistics >= 0, shares in [0, 1],
``day_of_week`` in [0, 6] (0 = Monday, as the catalog says; a catalog counting 1-7 gives
bounds), month, day of month and ISO week in their calendar ranges.

Rules
    keys not null and unique; ``history_days`` not null, in [0, max window];
    a feature may be null only where ``history_days < history_needed`` (or if nullable);
    numbers are not NaN or infinite; values lie in the feature's range.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from expectations.rules import RowRule, between, finite, not_null, unique

__all__ = ["FeatureSpec", "HISTORY_COLUMN", "feature_specs", "default_range", "feature_rules"]

HISTORY_COLUMN = "history_days"
_FLOATS = {"double", "float", "decimal"}
_NUMBERS = _FLOATS | {"int", "integer", "bigint", "long", "smallint", "short", "tinyint",
                      "byte"}
_UNIT = (0.0, 1.0)
_NAMED: dict[str, tuple[float | None, float | None]] = {
    "day_of_week": (0, 6), "month": (1, 12), "day_of_month": (1, 31), "week_of_year": (1, 53),
    "discount_pct": _UNIT, "humidity": _UNIT, "demographic_index": _UNIT,
    "festival_intensity": _UNIT, "price_ratio": (0, None),
}


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    history_needed: int = 0
    nullable: bool = False
    dtype: str | None = None
    min_value: float | None = None
    max_value: float | None = None

    @property
    def numeric(self) -> bool:
        return self.dtype is None or self.dtype.lower() in _NUMBERS

    @property
    def floating(self) -> bool:
        return self.dtype is None or self.dtype.lower() in _FLOATS


def _get(item: Any, key: str, default: Any = None) -> Any:
    if isinstance(item, Mapping):
        return item.get(key, default)
    return getattr(item, key, default)


def default_range(name: str) -> tuple[float | None, float | None]:
    """Bounds implied by a feature's name (see the module docstring)."""
    n = name.lower()
    if n in _NAMED:
        return _NAMED[n]
    if "share" in n:
        return _UNIT
    if n.startswith(("lag_", "units_lag_", "roll_", "rolling_", "same_weekday_")):
        return 0, None
    if n.startswith("days_") or n.endswith("_days"):
        return 0, None
    return None, None


def feature_specs(features: Iterable[Any]) -> tuple[FeatureSpec, ...]:
    """Normalise catalog entries (dataclasses, named tuples, mappings or names)."""
    specs = []
    for item in features:
        if isinstance(item, str):
            lo, hi = default_range(item)
            specs.append(FeatureSpec(item, min_value=lo, max_value=hi))
            continue
        name = _get(item, "name")
        if not name:
            raise ValueError(f"feature catalog entry without a name: {item!r}")
        needed = _get(item, "history_needed")
        if needed is None:
            needed = _get(item, "min_history")
        if needed is None:
            needed = _get(item, "window_days") or 0
        lo, hi = default_range(name)
        specs.append(FeatureSpec(
            name=name, history_needed=int(needed), nullable=bool(_get(item, "nullable", False)),
            dtype=_get(item, "dtype"), min_value=_get(item, "min_value", lo),
            max_value=_get(item, "max_value", hi)))
    return tuple(specs)


def feature_rules(features: Iterable[Any], keys: Sequence[str],
                  history_column: str = HISTORY_COLUMN,
                  history_max: int | None = None) -> tuple[RowRule, ...]:
    """Every rule of the features suite, in report order."""
    rules: list[RowRule] = [not_null(k) for k in keys]
    rules.append(unique(*keys, name="keys_unique",
                        description=f"one row per ({', '.join(keys)})"))
    rules.append(not_null(history_column))
    rules.append(between(history_column, 0, history_max))
    for spec in feature_specs(features):
        if spec.name == history_column:
            continue
        if not spec.nullable:
            if spec.history_needed > 0:
                rules.append(not_null(
                    spec.name, name=f"{spec.name}_null_with_history",
                    when=(history_column, spec.history_needed),
                    description=f"{spec.name} may be null only while {history_column} < "
                                f"{spec.history_needed}"))
            else:
                rules.append(not_null(spec.name))
        if spec.floating:
            rules.append(finite(spec.name))
        if spec.numeric and (spec.min_value is not None or spec.max_value is not None):
            rules.append(between(spec.name, spec.min_value, spec.max_value))
    return tuple(rules)
