"""The business-aware asymmetric objective for XGBoost, and the per-unit costs it weighs.

Under-forecasting loses the margin of the sale that found an empty shelf; over-forecasting
pays for holding the extra unit and, for perishables, for the share of it that expires. With
e = y - f (e > 0: under-forecast) and per-row weights

    w(e) = under_cost                          if e > 0, over_cost if e < 0   (smooth = 0)
    w(e) = over_cost + (under_cost - over_cost) * sigmoid(e / smooth)       (smooth > 0)

the loss of a row is L(e) = integral from 0 to e of w(t) * rho'(t) dt, with rho the squared
error t^2 / 2 (``loss="squared"``) or the pseudo-Huber error delta^2 (sqrt(1 + (t/delta)^2) - 1)
(``loss="pseudo_huber"``, robust to festival spikes). For smooth = 0 that is simply
w(e) * rho(e): the minimiser of the squared version is the expectile at
tau = under_cost / (under_cost + over_cost), above the mean when margin outweighs holding and
waste. XGBoost gets

    grad = dL/df = -w(e) * rho'(e),   hess = w(e) * rho''(e)

The hessian leaves out the term in w'(e) that appears when smooth > 0: it can be negative
when under_cost >> over_cost, and Newton steps need a positive curvature. Costs are divided
by their mean (``normalize=True``) so that XGBoost's ``lambda``, ``min_child_weight`` and
learning rate mean what they mean for ``reg:squarederror``; only their ratio moves the
optimum. Sample weights of the DMatrix multiply grad and hess, as XGBoost expects.

Per-unit costs (``unit_costs``), INR, from the ``skus`` table:

    under_cost = max(price - unit_cost, 0)                           lost margin
    over_cost  = unit_cost * holding_rate_per_day * cover_days      holding
               + [perishable] (1 - salvage_rate) * unit_cost
                   * min(1, cover_days / shelf_life_days)            expected waste

``cover_days`` is how long an extra unit waits for the next demand (the review period: one
night's plan covers a day); the waste share assumes a unit left over for ``cover_days`` of a
``shelf_life_days`` life expires with that probability (a 2-day product loses half of it, a
7-day one a seventh).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.special import expit

__all__ = ["asymmetric_objective", "asymmetric_grad_hess", "unit_costs", "costs_for_rows",
           "LOSSES"]

LOSSES = ("squared", "pseudo_huber")
_SKU_COLUMNS = ("sku_id", "price", "unit_cost", "is_perishable", "shelf_life_days")


class _Labelled(Protocol):
    """What the objective needs of an ``xgboost.DMatrix``."""

    def get_label(self) -> np.ndarray: ...

    def get_weight(self) -> np.ndarray: ...


Objective = Callable[[np.ndarray, _Labelled], tuple[np.ndarray, np.ndarray]]


def _check_shape(smooth: float, loss: str, delta: float) -> None:
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    if not smooth >= 0 or not delta > 0:
        raise ValueError(f"need smooth >= 0 and delta > 0, got smooth={smooth}, delta={delta}")


def _weights(e: np.ndarray, under: np.ndarray, over: np.ndarray, smooth: float) -> np.ndarray:
    if smooth > 0:
        return over + (under - over) * expit(e / smooth)
    return np.where(e > 0, under, np.where(e < 0, over, 0.5 * (under + over)))


def asymmetric_grad_hess(y: npt.ArrayLike, f: npt.ArrayLike, under_cost: npt.ArrayLike,
                         over_cost: npt.ArrayLike, smooth: float = 0.0,
                         loss: str = "squared",
                         delta: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Gradient and hessian of the asymmetric loss with respect to the forecast ``f``."""
    _check_shape(smooth, loss, delta)
    y_arr = np.asarray(y, dtype="float64")
    e = y_arr - np.asarray(f, dtype="float64")
    w = _weights(e, np.asarray(under_cost, dtype="float64"),
                 np.asarray(over_cost, dtype="float64"), smooth)
    if loss == "squared":
        return -w * e, w.copy()
    root = np.sqrt(1.0 + (e / delta) ** 2)
    return -w * e / root, w / root ** 3


def asymmetric_objective(under_cost: npt.ArrayLike, over_cost: npt.ArrayLike,
                         smooth: float = 0.0, loss: str = "squared", delta: float = 1.0,
                         normalize: bool = True) -> Objective:
    """A custom objective for ``xgboost.train(..., obj=...)`` weighing each training row by
    its own costs (arrays aligned with the DMatrix rows; see the module docstring).

    For the scikit-learn API use ``asymmetric_grad_hess`` in a ``(y_true, y_pred)`` lambda.
    """
    under = np.asarray(under_cost, dtype="float64").reshape(-1)
    over = np.asarray(over_cost, dtype="float64").reshape(-1)
    if under.shape != over.shape:
        raise ValueError(f"under_cost has {under.size} rows, over_cost {over.size}")
    if under.size == 0:
        raise ValueError("asymmetric_objective: no rows")
    bad = ~np.isfinite(under) | ~np.isfinite(over) | (under < 0) | (over < 0)
    if bad.any():
        raise ValueError(f"asymmetric_objective: {int(bad.sum())} row(s) with a negative, null "
                         f"or infinite cost (first at row {int(np.argmax(bad))})")
    if (under + over <= 0).any():
        raise ValueError("asymmetric_objective: a row with under_cost + over_cost = 0 has no "
                         "loss; drop it or give it a cost")
    _check_shape(smooth, loss, delta)
    if normalize:
        mean = float(np.mean(0.5 * (under + over)))
        under, over = under / mean, over / mean

    def objective(predt: np.ndarray, dtrain: _Labelled) -> tuple[np.ndarray, np.ndarray]:
        label = np.asarray(dtrain.get_label(), dtype="float64").reshape(-1)
        pred = np.asarray(predt, dtype="float64").reshape(-1)
        if label.size != under.size or pred.size != under.size:
            raise ValueError(f"asymmetric_objective: costs were given for {under.size} rows, "
                             f"the DMatrix has {label.size} labels and {pred.size} predictions")
        grad, hess = asymmetric_grad_hess(label, pred, under, over, smooth, loss, delta)
        weight = np.asarray(dtrain.get_weight(), dtype="float64").reshape(-1)
        if weight.size == grad.size:
            grad, hess = grad * weight, hess * weight
        return grad, hess

    return objective


def unit_costs(skus: pd.DataFrame, holding_rate_per_day: float, cover_days: float = 1.0,
               salvage_rate: float = 0.0) -> pd.DataFrame:
    """Per-SKU ``under_cost`` and ``over_cost`` (INR per unit) and the implied
    ``critical_ratio`` = under / (under + over), one row per row of ``skus`` (same index).

    ``holding_rate_per_day``: holding cost per unit-day as a fraction of unit cost (e.g.
    0.25 / 365 for 25% a year). ``salvage_rate``: share of a wasted unit's cost recovered.
    """
    missing = [c for c in _SKU_COLUMNS if c not in skus.columns]
    if missing:
        raise ValueError(f"unit_costs: skus lacks column(s) {missing}; need {list(_SKU_COLUMNS)}")
    if not holding_rate_per_day >= 0 or not cover_days > 0 or not 0 <= salvage_rate <= 1:
        raise ValueError("unit_costs: need holding_rate_per_day >= 0, cover_days > 0 and "
                         f"0 <= salvage_rate <= 1, got {holding_rate_per_day}, {cover_days}, "
                         f"{salvage_rate}")
    price = skus["price"].to_numpy(dtype="float64")
    cost = skus["unit_cost"].to_numpy(dtype="float64")
    perishable = skus["is_perishable"].astype("bool").to_numpy()
    shelf = skus["shelf_life_days"].to_numpy(dtype="float64")
    bad = (~np.isfinite(price) | ~np.isfinite(cost) | (price < 0) | (cost < 0)
           | (perishable & ~(shelf > 0)))
    if bad.any():
        sample = skus.loc[bad, list(_SKU_COLUMNS)].head(5).to_string(index=False)
        raise ValueError(f"unit_costs: {int(bad.sum())} SKU(s) with a null or negative price "
                         f"or unit_cost, or a perishable without shelf_life_days > 0, e.g.\n"
                         f"{sample}")
    under = np.maximum(price - cost, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        waste_share = np.where(perishable, np.minimum(1.0, cover_days / shelf), 0.0)
    over = cost * holding_rate_per_day * cover_days + (1 - salvage_rate) * cost * waste_share
    total = under + over
    ratio = np.divide(under, total, out=np.full(len(total), np.nan), where=total > 0)
    return pd.DataFrame({"sku_id": skus["sku_id"].to_numpy(), "under_cost": under,
                         "over_cost": over, "critical_ratio": ratio}, index=skus.index)


def costs_for_rows(rows: pd.DataFrame, costs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(under_cost, over_cost) arrays aligned with ``rows`` (any frame with ``sku_id``), by
    ``sku_id`` from ``unit_costs``; raises if a row's SKU has no cost."""
    if "sku_id" not in rows.columns:
        raise ValueError("costs_for_rows: rows need a sku_id column")
    if costs["sku_id"].duplicated().any():
        raise ValueError("costs_for_rows: costs must have one row per sku_id")
    table = costs.set_index("sku_id")
    under = rows["sku_id"].map(table["under_cost"]).to_numpy(dtype="float64")
    over = rows["sku_id"].map(table["over_cost"]).to_numpy(dtype="float64")
    lost = np.isnan(under) | np.isnan(over)
    if lost.any():
        skus = pd.unique(rows.loc[lost, "sku_id"])[:5]
        raise ValueError(f"costs_for_rows: {int(lost.sum())} row(s) whose sku_id has no cost, "
                         f"e.g. sku_id {list(skus)}")
    return under, over
