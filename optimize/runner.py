"""One store's night, end to end: screen its rows, solve, check, and turn the plan into the
rows of the ``plans`` table (:data:`PLAN_TABLE`), one per active pair, zero orders included.

``plan_store`` is the pandas function the ``plan`` job runs per store with Spark's
``applyInPandas``. Its input is the store's *joined* rows: one per active pair x forecast
day (``LINE_COLUMNS``, i.e. inventory + SKU attributes + forecast), plus the store's limits
(:data:`STORE_COLUMNS`, repeated on every row) and the forecast's ``forecast_model`` and
``forecast_flags``. Left joins leave nulls where a dimension row or a forecast is missing.

What can go wrong, and what the rows then say (a plan is never empty without a reason):

- the store is not in the stores snapshot (no capacities or budget): every line orders
  nothing, ``solver_status`` ``skipped``, ``fallback_reason`` says why;
- a pair's inputs break the ``lines`` contract (SKU not in the skus snapshot, a value out of
  range, expiry buckets that do not sum to on_hand, duplicate rows, a negative forecast):
  that line orders nothing (``skipped``, with the reason) and the others are planned; its
  stock still takes its zone's room when its volume is known;
- a pair without a forecast: the planner orders nothing for it, and says so;
- the MILP fails (infeasible, time limit, solver error) or its plan breaks a constraint:
  ``solve_store`` falls back to the greedy plan (``solver_status`` ``heuristic``, reason);
- the plan returned still fails ``check_plan`` (re-run here on every store, every night),
  or the planner raises: the store orders nothing (``skipped``) and the reason names the
  violations or the error. A zero plan that still fails ``check_plan`` (which would mean
  the inputs contradict themselves) raises: that is a bug to fix, not a plan to publish.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping

import numpy as np
import pandas as pd

from optimize.checks import check_plan
from optimize.inputs import (
    EXPIRY_COLUMNS,
    FORECAST_COLUMNS,
    LINE_COLUMNS,
    OPTIONAL_COLUMNS,
    QUANTILE_COLUMNS,
    SKU_COLUMNS,
    ZONES,
    PlanConfig,
    StoreInputs,
)
from optimize.milp import PLAN_COLUMNS, StorePlan, solve_store

__all__ = ["PLAN_TABLE", "PLAN_TABLE_COLUMNS", "WAREHOUSE_COLUMNS", "STORE_COLUMNS",
           "INPUT_COLUMNS", "plan_store", "SOLVER_STATUSES"]

#: The store's limits, repeated on every input row (the ``stores`` snapshot's names).
STORE_COLUMNS = ("capacity_ambient_l", "capacity_chilled_l", "capacity_frozen_l",
                 "daily_budget")
#: Every column ``plan_store`` reads.
INPUT_COLUMNS = (*LINE_COLUMNS, *STORE_COLUMNS, "forecast_model", "forecast_flags")
#: ``solver_status`` of a line: the MILP's plan (optimal, or feasible at the time limit), the
#: greedy fallback's (heuristic), or no plan at all (skipped: nothing ordered, see the reason).
SOLVER_STATUSES = ("optimal", "feasible", "heuristic", "skipped")

#: The ``plans`` table: (column, Arrow type, meaning). The first 20 columns are those of the
#: warehouse table ``replenish.reorder_plan`` (sql/001_schema.sql), in its order.
PLAN_TABLE: tuple[tuple[str, str, str], ...] = (
    ("run_date", "date32", "Logical date of the planning run"),
    ("store_id", "int32", "Dark store"),
    ("sku_id", "int32", "Product"),
    ("supplier_id", "int32", "Supplier the order goes to (-1: SKU unknown to the snapshot)"),
    ("delivery_date", "date32", "run_date + lead time (at least 1 day)"),
    ("order_cases", "int32", "Cases to order (0 = do not order)"),
    ("order_units", "int32", "order_cases x case_pack"),
    ("case_pack", "int32", "Units per case (0: SKU unknown)"),
    ("unit_cost", "float64", "Purchase cost per unit, INR"),
    ("order_value", "float64", "order_units x unit_cost, INR"),
    ("on_hand", "int32", "Units on the shelf at the close of run_date"),
    ("on_order", "int32", "Units ordered earlier and not yet received"),
    ("forecast_coverage", "float64", "Expected demand over the coverage window, units"),
    ("safety_stock", "float64", "order_up_to - forecast_coverage, units"),
    ("order_up_to", "float64", "Usable stock after the order: usable on hand + on order + "
     "order_units, units"),
    ("expected_service_level", "float64", "Expected fill rate of the order's cycle (0-1); "
     "null without a forecast or a plan"),
    ("expected_waste_units", "float64", "Units of this order expected to expire unsold"),
    ("binding_constraint", "string", "What stopped the line from ordering more (budget, "
     "capacity_<zone>, shelf_life, moq, supplier_min); null when nothing bound"),
    ("solver_status", "string", "optimal | feasible (MILP) | heuristic (greedy fallback) | "
     "skipped (no plan: nothing ordered)"),
    ("fallback_reason", "string", "Why this line did not come from the MILP, or why it "
     "orders nothing for lack of inputs; null otherwise"),
    ("category", "string", "SKU category"),
    ("zone", "string", "Storage zone"),
    ("lead_time_days", "int32", "Supplier lead time, days"),
    ("order_volume_l", "float64", "Litres of the order"),
    ("coverage_days", "int32", "Days (from tomorrow) the order must cover"),
    ("service_target", "float64", "Category fill-rate target (soft constraint)"),
    ("expected_lost_units", "float64", "Expected lost sales in the order's cycle, units"),
    ("gap", "float64", "Relative MIP gap of the store's solve (see StorePlan.gap)"),
    ("solver", "string", "cbc | highs"),
    ("solver_result", "string", "The MILP's own outcome (optimal, feasible, infeasible, "
     "not_solved, unbounded, error) or not_run"),
    ("method", "string", "milp | greedy | none"),
    ("forecast_model", "string", "Model that produced the pair's forecast"),
    ("forecast_flags", "string", "The forecast's flags (fallbacks of the score step)"),
    ("store_note", "string", "The store plan's note and warnings (why nothing was ordered, "
     "zones over capacity, lines without a forecast)"),
)
PLAN_TABLE_COLUMNS: tuple[str, ...] = tuple(c for c, _, _ in PLAN_TABLE)
WAREHOUSE_COLUMNS: tuple[str, ...] = PLAN_TABLE_COLUMNS[:20]

_INT_SKU = ("case_pack", "moq_cases", "supplier_id", "lead_time_days", "shelf_life_days")
_INT_STOCK = ("on_hand", "on_order", *EXPIRY_COLUMNS)
_RULES = {"case_pack": (1, "case_pack < 1"), "moq_cases": (0, "moq_cases < 0"),
          "shelf_life_days": (1, "shelf_life_days < 1"),
          "lead_time_days": (0, "lead_time_days < 0"), "volume_l": (0, "volume_l < 0"),
          "unit_cost": (0, "unit_cost < 0"), "price": (0, "price < 0"),
          "on_hand": (0, "on_hand < 0"), "on_order": (0, "on_order < 0"),
          **{c: (0, f"{c} < 0") for c in EXPIRY_COLUMNS}}


def plan_store(rows: pd.DataFrame, cfg: PlanConfig, run_date: dt.date,
               supplier_min_order_value: Mapping[int, float] | None = None) -> pd.DataFrame:
    """The ``plans`` rows (:data:`PLAN_TABLE_COLUMNS`, sorted by sku_id) of the one store in
    ``rows`` (see the module docstring)."""
    missing = [c for c in INPUT_COLUMNS if c not in rows.columns]
    if missing:
        raise ValueError(f"plan_store: input rows lack columns {missing}")
    if rows.empty:
        return pd.DataFrame({c: [] for c in PLAN_TABLE_COLUMNS})
    if rows["store_id"].nunique() != 1:
        raise ValueError("plan_store: one store per call")
    rows = rows.sort_values(["sku_id", "horizon"], kind="stable", ignore_index=True)
    store_id = int(rows["store_id"].iloc[0])
    skus = rows.drop_duplicates("sku_id", ignore_index=True)

    limits = skus[list(STORE_COLUMNS)].iloc[0]
    if limits.isna().any():
        reason = (f"store {store_id} is not in the stores snapshot in force on {run_date} "
                  f"(no {', '.join(limits.index[limits.isna()])}): nothing ordered")
        return _cast(_zero_rows(skus, rows, cfg, run_date,
                                pd.Series(reason, index=skus["sku_id"]), note=reason))

    bad = _screen(rows, skus)
    good = rows[~rows["sku_id"].isin(bad.index)]
    lines = _typed_lines(good)
    store = _store_inputs(store_id, limits, skus[skus["sku_id"].isin(bad.index)],
                          supplier_min_order_value)
    parts = []
    if len(bad):
        parts.append(_zero_rows(skus[skus["sku_id"].isin(bad.index)], rows, cfg, run_date,
                                bad))
    if len(lines):
        parts.append(_solve(lines, store, cfg, run_date,
                            skus[~skus["sku_id"].isin(bad.index)], rows))
    out = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    return _cast(out.sort_values("sku_id", ignore_index=True))


def _cast(out: pd.DataFrame) -> pd.DataFrame:
    """The :data:`PLAN_TABLE` column order and types (ints without nulls, None for missing
    text), so Spark and Arrow convert without guessing."""
    cols = {}
    for name, kind, _ in PLAN_TABLE:
        col = out[name]
        if kind == "int32":
            cols[name] = col.astype(np.int64)
        elif kind == "float64":
            cols[name] = pd.to_numeric(col, errors="coerce").astype(float)
        elif kind == "string":
            cols[name] = col.astype(object).where(col.notna(), None)
        else:
            cols[name] = col
    return pd.DataFrame(cols)


# ------------------------------------------------------------------------------ screening
def _screen(rows: pd.DataFrame, skus: pd.DataFrame) -> pd.Series:
    """Reason per sku_id whose rows break the ``lines`` contract (index: sku_id)."""
    reasons: dict[int, list[str]] = {}

    def add(mask: pd.Series | np.ndarray, text: str, frame: pd.DataFrame = skus) -> None:
        for s in frame.loc[mask, "sku_id"].unique().tolist():
            reasons.setdefault(int(s), []).append(text)

    attrs = [c for c in SKU_COLUMNS if c not in ("store_id", "sku_id", "on_hand", "on_order",
                                                 *EXPIRY_COLUMNS)]
    unknown = skus[attrs].isna().all(axis=1)
    add(unknown, "sku_id is not in the skus snapshot")
    nulls = skus[attrs].isna().any(axis=1) & ~unknown
    for s in skus.loc[nulls, "sku_id"].tolist():
        cols = [c for c in attrs if pd.isna(skus.loc[skus["sku_id"] == s, c].iloc[0])]
        reasons.setdefault(int(s), []).append(f"null SKU attribute(s) {cols}")
    stock_null = skus[list(_INT_STOCK)].isna().any(axis=1)
    add(stock_null, "null inventory column(s)")
    known = ~unknown & ~nulls & ~stock_null
    add(known & ~skus["zone"].isin(ZONES), f"zone not one of {ZONES}")
    for col, (low, text) in _RULES.items():
        add(known & (pd.to_numeric(skus[col], errors="coerce") < low), text)
    expiry = skus[list(EXPIRY_COLUMNS)].sum(axis=1)
    add(known & ((expiry - skus["on_hand"]).abs() > 1e-6),
        "inventory exp_1d..exp_later do not sum to on_hand")
    dup = rows.dropna(subset=["horizon"]).duplicated(["sku_id", "horizon"], keep=False)
    add(dup, "duplicate rows for a forecast day (duplicate inventory or forecast rows)",
        rows.dropna(subset=["horizon"]))
    fc = rows[["mean", *QUANTILE_COLUMNS]]
    add(fc.lt(0).any(axis=1), "negative forecast", rows)
    add(rows["horizon"].notna() & (rows["horizon"] < 1), "forecast horizon < 1", rows)
    return pd.Series({s: "invalid inputs: " + "; ".join(r) + ": nothing ordered"
                      for s, r in reasons.items()}, dtype=object)


def _typed_lines(rows: pd.DataFrame) -> pd.DataFrame:
    """The ``lines`` frame of ``optimize/inputs.py`` with the contract's types (left joins
    turn integer columns into floats)."""
    optional = [c for c in OPTIONAL_COLUMNS if c in rows.columns]
    lines = rows[[*LINE_COLUMNS, *optional]].copy()
    for c in ("store_id", "sku_id", *_INT_SKU, *_INT_STOCK):
        lines[c] = lines[c].astype(np.int64)
    for c in ("volume_l", "unit_cost", "price", *FORECAST_COLUMNS):
        lines[c] = lines[c].astype(float)
    lines["is_perishable"] = lines["is_perishable"].astype(bool)
    lines["category"] = lines["category"].astype(str)
    lines["zone"] = lines["zone"].astype(str)
    for c in optional:  # absent (a left join's null) = 0, as if the column were not there
        lines[c] = lines[c].astype(float).fillna(0.0)
    return lines.reset_index(drop=True)


def _store_inputs(store_id: int, limits: pd.Series, skipped: pd.DataFrame,
                  supplier_min: Mapping[int, float] | None) -> StoreInputs:
    """The store's limits; stock of skipped lines with a known zone and volume still takes
    its zone's room."""
    cap = {z: float(limits[f"capacity_{z}_l"]) for z in ZONES}
    if len(skipped):
        vol = (pd.to_numeric(skipped["on_hand"], errors="coerce").fillna(0).clip(lower=0)
               + pd.to_numeric(skipped["on_order"], errors="coerce").fillna(0).clip(lower=0)
               ) * pd.to_numeric(skipped["volume_l"], errors="coerce").fillna(0).clip(lower=0)
        for z in ZONES:
            cap[z] -= float(vol[skipped["zone"] == z].sum())
    return StoreInputs(store_id, cap["ambient"], cap["chilled"], cap["frozen"],
                       float(limits["daily_budget"]),
                       {int(k): float(v) for k, v in (supplier_min or {}).items()})


# ------------------------------------------------------------------------------- planning
def _solve(lines: pd.DataFrame, store: StoreInputs, cfg: PlanConfig, run_date: dt.date,
           skus: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    try:
        plan = solve_store(lines, store, cfg)
    except Exception as exc:  # one store's failure must not lose the other stores' plans
        reason = f"planner error ({type(exc).__name__}: {exc}): nothing ordered"[:500]
        return _zero_rows(skus, rows, cfg, run_date, pd.Series(reason, index=skus["sku_id"]),
                          note=reason, result="error")
    violations = check_plan(plan, lines, store, cfg)
    if violations:
        reason = ("plan failed check_plan (" + "; ".join(violations[:3]) + f"); {plan.method} "
                  "plan discarded: nothing ordered")[:500]
        zero = _zero_rows(skus, rows, cfg, run_date, pd.Series(reason, index=skus["sku_id"]),
                          note=reason, result=plan.status)
        zero_plan = dataclasses.replace(plan, lines=_as_plan_columns(zero), note=reason)
        still = check_plan(zero_plan, lines, store, cfg)
        if still:
            raise RuntimeError(f"store {store.store_id}: even ordering nothing fails "
                               f"check_plan: {still}")
        return zero
    return _plan_rows(plan, skus, rows, cfg, run_date)


def _plan_rows(plan: StorePlan, skus: pd.DataFrame, rows: pd.DataFrame, cfg: PlanConfig,
               run_date: dt.date) -> pd.DataFrame:
    p = plan.lines.copy()
    info = skus.set_index("sku_id")
    sku_ids = p["sku_id"].to_numpy()
    out = pd.DataFrame({c: p[c].to_numpy() for c in PLAN_COLUMNS if c in PLAN_TABLE_COLUMNS})
    for c in ("case_pack", "unit_cost", "on_hand", "on_order", "lead_time_days",
              "forecast_model", "forecast_flags"):
        out[c] = info.loc[sku_ids, c].to_numpy()
    out["run_date"] = run_date
    out["delivery_date"] = _delivery(run_date, out["lead_time_days"])
    greedy = plan.method != "milp"
    out["solver_status"] = "heuristic" if greedy else plan.status
    out["solver_result"] = plan.status
    out["method"] = plan.method
    out["solver"] = plan.solver
    out["binding_constraint"] = p["binding_constraint"].where(
        p["binding_constraint"] != "none", None).to_numpy()
    out["fallback_reason"] = plan.fallback_reason or None
    with_fc = set(rows.loc[rows["mean"].notna(), "sku_id"].tolist())
    no_fc = np.array([s not in with_fc for s in sku_ids], bool)
    if no_fc.any():
        text = f"no forecast for this pair in forecasts date={run_date}: nothing ordered"
        out["fallback_reason"] = out["fallback_reason"].astype(object)
        out.loc[no_fc, "fallback_reason"] = [f"{r}; {text}" if r else text
                                             for r in out.loc[no_fc, "fallback_reason"]]
        out.loc[no_fc, ["expected_service_level", "expected_waste_units",
                        "expected_lost_units"]] = np.nan
    notes = [n for n in (plan.note, *plan.warnings) if n]
    out["store_note"] = "; ".join(notes)[:1000] if notes else None
    return out


def _zero_rows(skus: pd.DataFrame, rows: pd.DataFrame, cfg: PlanConfig, run_date: dt.date,
               reasons: pd.Series, note: str | None = None, result: str = "not_run"
               ) -> pd.DataFrame:
    """Nothing ordered for ``skus``, with the reason per sku_id and what is known of the
    inputs (the forecast over the coverage window from the means, the stock position)."""
    s = skus.reset_index(drop=True)
    lead = pd.to_numeric(s["lead_time_days"], errors="coerce")
    arrival = lead.fillna(1).clip(lower=1) + (0 if cfg.deliveries_before_sales else 1)
    cover = arrival + cfg.review_days - 1
    shelf = pd.to_numeric(s["shelf_life_days"], errors="coerce")
    perish = s["is_perishable"].fillna(False).astype(bool) & shelf.notna()
    cover = np.where(perish, np.minimum(cover, arrival + shelf.fillna(1).clip(lower=1) - 1),
                     cover).astype(int)
    coverage = _coverage_demand(rows, s["sku_id"].to_numpy(), cover)
    position = (pd.to_numeric(s["on_hand"], errors="coerce").fillna(0)
                + pd.to_numeric(s["on_order"], errors="coerce").fillna(0)).to_numpy(float)
    cat = s["category"].where(s["category"].notna(), None)
    out = pd.DataFrame({
        "run_date": run_date, "store_id": s["store_id"].astype(np.int64),
        "sku_id": s["sku_id"].astype(np.int64),
        "supplier_id": pd.to_numeric(s["supplier_id"], errors="coerce").fillna(-1),
        "delivery_date": _delivery(run_date, lead), "order_cases": 0, "order_units": 0,
        "case_pack": pd.to_numeric(s["case_pack"], errors="coerce").fillna(0),
        "unit_cost": pd.to_numeric(s["unit_cost"], errors="coerce").fillna(0.0),
        "order_value": 0.0,
        "on_hand": pd.to_numeric(s["on_hand"], errors="coerce").fillna(0),
        "on_order": pd.to_numeric(s["on_order"], errors="coerce").fillna(0),
        "forecast_coverage": coverage, "safety_stock": position - coverage,
        "order_up_to": position, "expected_service_level": np.nan,
        "expected_waste_units": np.nan, "binding_constraint": None,
        "solver_status": "skipped",
        "fallback_reason": reasons.reindex(s["sku_id"]).to_numpy(),
        "category": cat, "zone": s["zone"].where(s["zone"].notna(), None),
        "lead_time_days": lead.fillna(-1), "order_volume_l": 0.0, "coverage_days": cover,
        "service_target": [cfg.service_target(c) if c is not None else
                           cfg.default_service_target for c in cat],
        "expected_lost_units": np.nan, "gap": np.nan, "solver": cfg.solver,
        "solver_result": result, "method": "none",
        "forecast_model": s["forecast_model"], "forecast_flags": s["forecast_flags"],
        "store_note": note,
    })
    return out[list(PLAN_TABLE_COLUMNS)]


def _coverage_demand(rows: pd.DataFrame, sku_ids: np.ndarray, cover: np.ndarray
                     ) -> np.ndarray:
    """Sum of the mean forecast over days 1..cover (the last day repeated beyond the
    horizon); 0 without a forecast."""
    fc = rows.dropna(subset=["horizon", "mean"]).drop_duplicates(["sku_id", "horizon"])
    out = np.zeros(len(sku_ids))
    by = dict(tuple(fc.groupby("sku_id")))
    for i, s in enumerate(sku_ids):
        f = by.get(s)
        if f is None:
            continue
        f = f.sort_values("horizon")
        h = f["horizon"].to_numpy(int)
        m = f["mean"].to_numpy(float)
        total = float(m[h <= cover[i]].sum())
        if cover[i] > h.max():
            total += float(m[-1]) * (cover[i] - h.max())
        out[i] = total
    return out


def _delivery(run_date: dt.date, lead: pd.Series) -> list[dt.date]:
    days = pd.to_numeric(lead, errors="coerce").fillna(1).clip(lower=1).astype(int)
    return [run_date + dt.timedelta(days=int(d)) for d in days]


def _as_plan_columns(rows: pd.DataFrame) -> pd.DataFrame:
    """A zero plan in ``StorePlan.lines`` shape, for ``check_plan``."""
    out = rows.copy()
    for c in PLAN_COLUMNS:
        if c not in out.columns:
            out[c] = np.nan
    report = ["expected_service_level", "expected_waste_units", "expected_lost_units"]
    out[report] = out[report].fillna(0.0)
    return out[list(PLAN_COLUMNS)]
