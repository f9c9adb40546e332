"""Every hard constraint of a plan, re-checked from the raw inputs (not from the model), on
every run: ``solve_store`` attaches the verdict to the plan and falls back to the greedy
plan when the MILP's fails. An empty list means the plan may be published."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from optimize.inputs import ZONES, PlanConfig, StoreInputs

if TYPE_CHECKING:  # pragma: no cover
    from optimize.milp import StorePlan

__all__ = ["check_plan"]

_TOL = 1e-6


def _ids(frame: pd.DataFrame, mask: pd.Series | np.ndarray) -> list[int]:
    return frame.loc[mask, "sku_id"].head(5).tolist()


def check_plan(plan: StorePlan, lines: pd.DataFrame, store: StoreInputs,
               cfg: PlanConfig) -> list[str]:
    """Violations of budget, zone capacity, case pack, MOQ, supplier minimum order value,
    non-negative whole cases, one line per input SKU, and an explained empty plan; each
    message names the constraint and sample SKUs."""
    out: list[str] = []
    need = ("sku_id", "order_cases", "order_units")
    missing = [c for c in need if c not in plan.lines.columns]
    if missing:
        return [f"plan: missing columns {missing}"]
    skus = lines.drop_duplicates("sku_id").set_index("sku_id")
    p = plan.lines
    if p["sku_id"].duplicated().any():
        out.append(f"lines: sku_id {p.loc[p['sku_id'].duplicated(), 'sku_id'].head(5).tolist()}"
                   " appear more than once")
    extra = sorted(set(p["sku_id"]) - set(skus.index))
    absent = sorted(set(skus.index) - set(p["sku_id"]))
    if extra:
        out.append(f"lines: sku_id {extra[:5]} are not in the input")
    if absent:
        out.append(f"lines: input sku_id {absent[:5]} have no plan line")
    if int(plan.store_id) != int(store.store_id):
        out.append(f"store: plan is for store {plan.store_id}, inputs for {store.store_id}")
    p = p[p["sku_id"].isin(skus.index)].drop_duplicates("sku_id")
    sku = skus.loc[p["sku_id"]]
    cases = pd.to_numeric(p["order_cases"], errors="coerce").to_numpy(float)
    units = pd.to_numeric(p["order_units"], errors="coerce").to_numpy(float)

    bad = ~np.isfinite(cases) | (cases < 0) | (np.abs(cases - np.round(cases)) > _TOL)
    if bad.any():
        out.append(f"non_negative: order_cases must be whole and >= 0; sku_id {_ids(p, bad)}")
    cases = np.where(np.isfinite(cases), cases, 0.0)
    pack = sku["case_pack"].to_numpy(float)
    bad = ~np.isfinite(units) | (np.abs(units - cases * pack) > _TOL)
    if bad.any():
        out.append(f"case_pack: order_units != order_cases x case_pack; sku_id {_ids(p, bad)}")
    moq = sku["moq_cases"].to_numpy(float)
    bad = (cases > 0) & (cases < moq - _TOL)
    if bad.any():
        out.append(f"moq: ordering fewer cases than moq_cases; sku_id {_ids(p, bad)}")

    real_units = cases * pack
    value = real_units * sku["unit_cost"].to_numpy(float)
    spent = float(value.sum())
    budget = float(store.daily_budget)
    if spent > max(budget, 0.0) + _TOL * max(1.0, abs(budget)):
        out.append(f"budget: orders cost {spent:,.2f} INR > daily_budget {budget:,.2f} INR")

    vol = sku["volume_l"].to_numpy(float)
    stock_vol = ((skus["on_hand"] + skus["on_order"]) * skus["volume_l"]).groupby(
        skus["zone"]).sum()
    zone = sku["zone"].to_numpy()
    for z in ZONES:
        ordered = float((real_units * vol)[zone == z].sum())
        room = store.capacity(z) - float(stock_vol.get(z, 0.0))
        if ordered > max(room, 0.0) + _TOL * max(1.0, store.capacity(z)):
            out.append(f"capacity_{z}: orders take {ordered:,.2f} L but only "
                       f"{max(room, 0.0):,.2f} L of {store.capacity(z):,.2f} L are free")

    supplier = sku["supplier_id"].to_numpy()
    for s, minimum in store.supplier_min_order_value.items():
        total = float(value[supplier == s].sum())
        if 0 < total < minimum - _TOL:
            out.append(f"supplier_min: supplier {s} gets {total:,.2f} INR, below its minimum "
                       f"order value {minimum:,.2f} INR")

    if len(p) and not (cases > 0).any() and not getattr(plan, "note", ""):
        out.append("empty plan without a reason (StorePlan.note is blank)")
    numeric = [c for c in ("expected_service_level", "expected_waste_units", "order_up_to")
               if c in p.columns]
    nan = p[numeric].isna().any(axis=1).to_numpy() if numeric else np.zeros(len(p), bool)
    if nan.any():
        out.append(f"report: NaN in {numeric}; sku_id {_ids(p, nan)}")
    return out
