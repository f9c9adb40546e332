"""What the planner needs for one store: the ``lines`` frame contract, the store's limits and
the planning configuration.

``lines`` is a *long* pandas DataFrame for ONE store: one row per SKU x forecast day
(``horizon`` 1..H, H >= 1, the same H for every SKU). The SKU, price and inventory columns
(:data:`SKU_COLUMNS`) repeat on every horizon row of a SKU; the forecast columns
(:data:`FORECAST_COLUMNS`) vary. The caller builds it by joining the long forecast
(``sku_id, horizon, mean, q50..q99``) onto one row per SKU, e.g. with :func:`join_forecast`;
in Spark that is a join on (store_id, sku_id) before ``applyInPandas``.

Timeline (the one of ``jobs/world.py``): the plan runs at night after the store closed on
the run date. Horizon day h is run date + h. Inventory is the closing snapshot: ``exp_kd``
units can be sold on days 1..k and are written off at the end of day k; ``exp_later`` units
last longer than the forecast. An order placed tonight with lead time L arrives on the
morning of day L, before that day's sales, and can be sold on days L..L + shelf_life - 1.
``on_order`` is assumed to arrive on day 1 with its full shelf life. Optional per-SKU
columns (:data:`OPTIONAL_COLUMNS`, e.g. a supplier's ``late_prob``) refine the plan where
the caller knows them; absent, they are 0.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

__all__ = ["ZONES", "EXPIRY_COLUMNS", "QUANTILE_LEVELS", "QUANTILE_COLUMNS", "SKU_COLUMNS",
           "FORECAST_COLUMNS", "LINE_COLUMNS", "OPTIONAL_COLUMNS", "SOLVERS", "StoreInputs",
           "PlanConfig", "join_forecast", "validate_lines"]

#: Storage zones; the same as ``jobs.schema.ZONES`` (optimize/ imports nothing of the project).
ZONES = ("ambient", "chilled", "frozen")
#: On-hand units by days to expiry; they sum to ``on_hand``.
EXPIRY_COLUMNS = tuple(f"exp_{d}d" for d in range(1, 8)) + ("exp_later",)
#: Forecast quantile levels and their columns (daily demand, units).
QUANTILE_LEVELS = (0.5, 0.8, 0.9, 0.95, 0.99)
QUANTILE_COLUMNS = ("q50", "q80", "q90", "q95", "q99")

#: Per-SKU columns (constant over a SKU's horizon rows) -> meaning.
SKU_COLUMNS: dict[str, str] = {
    "store_id": "Store (one store per call)",
    "sku_id": "Product",
    "category": "Category, e.g. dairy; picks the service target",
    "zone": "Storage zone: ambient | chilled | frozen",
    "volume_l": "Shelf volume per unit, litres (>= 0)",
    "unit_cost": "Purchase cost per unit, INR (>= 0)",
    "price": "Selling price per unit, INR (>= 0)",
    "case_pack": "Units per case (>= 1); orders are whole cases",
    "moq_cases": "Minimum order in cases when ordering at all (>= 0)",
    "supplier_id": "Supplier",
    "lead_time_days": "Days from tonight's order to delivery (>= 1; 0 is read as 1)",
    "shelf_life_days": "Days a received unit can be sold (>= 1)",
    "is_perishable": "Fresh goods: waste is modelled only for these",
    "on_hand": "Units on the shelf at close",
    **{c: "On-hand units sellable for " + (c[4:-1] + " more day(s)" if c != "exp_later"
                                           else "more than 7 days") for c in EXPIRY_COLUMNS},
    "on_order": "Units ordered earlier that arrive within the lead time",
}
#: Per-SKU x day forecast columns -> meaning.
FORECAST_COLUMNS: dict[str, str] = {
    "horizon": "Forecast day, 1 = the day after the run date",
    "mean": "Expected demand that day, units",
    **{c: f"{lvl:.0%} quantile of that day's demand, units"
       for c, lvl in zip(QUANTILE_COLUMNS, QUANTILE_LEVELS, strict=True)},
}
LINE_COLUMNS: tuple[str, ...] = tuple(SKU_COLUMNS) + tuple(FORECAST_COLUMNS)
#: Optional per-SKU columns (constant over a SKU's horizon rows) -> meaning; absent = 0.
OPTIONAL_COLUMNS: dict[str, str] = {
    "late_prob": "Probability that a delivery of the SKU's supplier comes a day late (0..1): "
                 "tonight's order then also serves the day the next one misses",
}
SOLVERS = ("cbc", "highs")

_DEFAULT_TARGETS = {"dairy": 0.98, "fruits_vegetables": 0.98, "bakery": 0.98}
_DEFAULT_STORAGE = {"ambient": 0.02, "chilled": 0.06, "frozen": 0.08}


@dataclass(frozen=True)
class StoreInputs:
    """A store's limits for tonight's order.

    Capacities are the litres of stock that may be on hand after delivery per zone; the
    budget is the INR value of tonight's purchases. ``supplier_min_order_value`` maps a
    supplier to the smallest order value it accepts (order nothing or at least that much).
    """

    store_id: int
    capacity_ambient_l: float
    capacity_chilled_l: float
    capacity_frozen_l: float
    daily_budget: float
    supplier_min_order_value: Mapping[int, float] = field(default_factory=dict, hash=False)

    def capacity(self, zone: str) -> float:
        return float(getattr(self, f"capacity_{zone}_l"))

    @classmethod
    def from_row(cls, row: Mapping[str, Any],
                 supplier_min_order_value: Mapping[int, float] | None = None) -> StoreInputs:
        """From a ``stores`` row (raw schema names)."""
        return cls(int(row["store_id"]), float(row["capacity_ambient_l"]),
                   float(row["capacity_chilled_l"]), float(row["capacity_frozen_l"]),
                   float(row["daily_budget"]), dict(supplier_min_order_value or {}))


@dataclass(frozen=True)
class PlanConfig:
    """How to plan. Money in INR, time in days, volume in litres.

    Costs (see ``optimize/economics.py`` for how they enter the objective):

    - lost sale, per unit: ``price - unit_cost + goodwill_frac * price`` (the margin and the
      customer's goodwill);
    - waste, per unit: ``unit_cost + disposal_cost_per_unit``;
    - holding, per unit and day: ``holding_rate_per_day * unit_cost`` (capital, shrink,
      obsolescence: 0.0008/day is about 29% a year) + ``storage_cost_per_litre_day[zone] *
      volume_l`` (space and cooling);
    - fixed: ``fixed_cost_per_line`` for every SKU ordered (receiving, put-away) and
      ``fixed_cost_per_supplier`` for every supplier ordered from (one delivery);
    - service: ``service_penalty * price`` per unit of expected lost sales beyond what the
      category's fill-rate target allows (a soft constraint).
    """

    review_days: int = 1
    #: True when orders arrive in the morning before the day's sales (jobs/world.py): an order
    #: then covers lead + review - 1 days of demand; False: lead + review days.
    deliveries_before_sales: bool = True
    #: A perishable sold in lots (MOQ x case pack) bigger than a review period's demand is
    #: planned over the days its lot lasts, up to its shelf life (economics._lot_cycle).
    lot_cycle: bool = True
    default_service_target: float = 0.95
    service_targets: Mapping[str, float] = field(
        default_factory=lambda: dict(_DEFAULT_TARGETS), hash=False)
    service_penalty: float = 1.0
    goodwill_frac: float = 0.25
    disposal_cost_per_unit: float = 1.0
    holding_rate_per_day: float = 0.0008
    storage_cost_per_litre_day: Mapping[str, float] = field(
        default_factory=lambda: dict(_DEFAULT_STORAGE), hash=False)
    #: Holding of a unit is charged for at most this many days (and never past shelf life).
    max_holding_days: float = 60.0
    fixed_cost_per_line: float = 5.0
    fixed_cost_per_supplier: float = 50.0
    #: Orders never lift the usable stock above this quantile of coverage demand.
    max_fill_quantile: float = 0.999
    solver: str = "cbc"
    time_limit_s: float = 8.0
    mip_gap: float = 0.005
    threads: int = 1
    #: Breakpoints per line (the piecewise-linear resolution) and how the convex functions
    #: are cut: "secant" (chords through the breakpoints) or "tangent" (tangent lines at them).
    n_breakpoints: int = 8
    pwl: str = "secant"
    #: "combined": one epigraph variable per line for the weighted sum of lost sales, waste,
    #: holding and service shortfall (secant only: the same function on every feasible
    #: case count and the same LP bound, a third of the rows); "separate": one per function.
    epigraph: str = "combined"

    def __post_init__(self) -> None:
        if self.solver not in SOLVERS:
            raise ValueError(f"PlanConfig.solver must be one of {SOLVERS}, not {self.solver!r}")
        if self.review_days < 1:
            raise ValueError("PlanConfig.review_days must be >= 1")
        if self.pwl not in ("secant", "tangent"):
            raise ValueError(f"PlanConfig.pwl must be 'secant' or 'tangent', not {self.pwl!r}")
        if self.epigraph not in ("separate", "combined"):
            raise ValueError("PlanConfig.epigraph must be 'separate' or 'combined', not "
                             f"{self.epigraph!r}")
        if self.epigraph == "combined" and self.pwl != "secant":
            raise ValueError("PlanConfig.epigraph='combined' needs pwl='secant' (the sum of "
                             "the tangent envelopes is not the envelope of the sum)")
        if self.n_breakpoints < 3:
            raise ValueError("PlanConfig.n_breakpoints must be >= 3")
        if not 0 < self.max_fill_quantile < 1:
            raise ValueError("PlanConfig.max_fill_quantile must be in (0, 1)")

    def service_target(self, category: str) -> float:
        return float(self.service_targets.get(category, self.default_service_target))


def join_forecast(skus: pd.DataFrame, forecast: pd.DataFrame) -> pd.DataFrame:
    """One row per SKU (``SKU_COLUMNS``) x the long forecast (``sku_id`` + ``FORECAST_COLUMNS``)
    -> the long ``lines`` frame. SKUs without a forecast keep one row with null forecast
    columns (the planner orders nothing for them and says so)."""
    fc = forecast[["sku_id", *FORECAST_COLUMNS]]
    return skus.merge(fc, on="sku_id", how="left", validate="one_to_many").sort_values(
        ["sku_id", "horizon"], kind="stable", ignore_index=True)


def validate_lines(lines: pd.DataFrame) -> None:
    """Raise ValueError naming what breaks the ``lines`` contract (columns, one store, zones,
    value ranges, constant SKU attributes, a consistent horizon)."""
    missing = [c for c in LINE_COLUMNS if c not in lines.columns]
    if missing:
        raise ValueError(f"lines: missing columns {missing}; the contract is "
                         "optimize.inputs.LINE_COLUMNS (one row per SKU x horizon day)")
    if lines.empty:
        return
    stores = lines["store_id"].unique()
    if len(stores) != 1:
        raise ValueError(f"lines: one store per call, got store_id {sorted(stores)[:5]}")
    bad_zone = ~lines["zone"].isin(ZONES)
    if bad_zone.any():
        raise ValueError(f"lines: zone must be one of {ZONES}; sku_id "
                         f"{lines.loc[bad_zone, 'sku_id'].unique()[:5].tolist()}")
    rules = {"case_pack": lines["case_pack"] >= 1, "moq_cases": lines["moq_cases"] >= 0,
             "shelf_life_days": lines["shelf_life_days"] >= 1,
             "lead_time_days": lines["lead_time_days"] >= 0,
             "volume_l": lines["volume_l"] >= 0, "unit_cost": lines["unit_cost"] >= 0,
             "price": lines["price"] >= 0, "on_hand": lines["on_hand"] >= 0,
             "on_order": lines["on_order"] >= 0}
    if "late_prob" in lines.columns:
        rules["late_prob"] = lines["late_prob"].between(0.0, 1.0)
    for col, ok in rules.items():
        if not ok.all():
            raise ValueError(f"lines: {col} out of range for sku_id "
                             f"{lines.loc[~ok, 'sku_id'].unique()[:5].tolist()}")
    expiry = lines[list(EXPIRY_COLUMNS)].sum(axis=1)
    off = (expiry - lines["on_hand"]).abs() > 1e-6
    if off.any():
        raise ValueError("lines: exp_1d..exp_later must sum to on_hand; sku_id "
                         f"{lines.loc[off, 'sku_id'].unique()[:5].tolist()}")
    per_sku = [*SKU_COLUMNS, *(c for c in OPTIONAL_COLUMNS if c in lines.columns)]
    varying = lines.groupby("sku_id", sort=False)[per_sku].nunique(dropna=False)
    varying = varying.columns[(varying > 1).any()].tolist()
    if varying:
        raise ValueError(f"lines: SKU columns {varying} differ between horizon rows of a SKU")
    fc = lines.dropna(subset=["horizon"])
    if fc[["sku_id", "horizon"]].duplicated().any():
        raise ValueError("lines: duplicate (sku_id, horizon) rows")
    if (fc["horizon"] < 1).any():
        raise ValueError("lines: horizon starts at 1 (the day after the run date)")
    if fc[["mean", *QUANTILE_COLUMNS]].lt(0).any().any():
        raise ValueError("lines: forecast mean and quantiles must be >= 0")
