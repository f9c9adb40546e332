"""The per-store replenishment MILP (PuLP; CBC by default, HiGHS by option).

Decisions per line i: integer cases x_i in [0, M_i] and binary y_i (ordering at all) with
MOQ  moq_i * y_i <= x_i <= M_i * y_i; binary z_s per supplier when it has a minimum order
value or a fixed cost (y_i <= z_s; order value of s >= minimum_s * z_s).

Each convex function f of ``optimize/economics.py`` (LOST, WASTE, HOLD, SHORT) has an
auxiliary variable v >= 0 with one epigraph row per line a + b x of its piecewise view, in
perspective form  v >= f(0) + (a - f(0)) y + b x  (the line itself when y = 1, f(0) when
x = y = 0), plus v >= f(0) (1 - y). With chords this is the convex hull of the line's
breakpoint costs, so the LP relaxation is tight and the solver stops at the root node.
``PlanConfig.epigraph="combined"`` (default) uses one variable per line for the weighted
sum of the functions, which on chords through common breakpoints is the same function with
the same LP bound and a third of the rows; "separate" keeps one variable per function.

Constraints: budget (sum of order value <= daily_budget), zone room (order volume <=
capacity - volume on hand and on order, per zone). Objective: fixed costs + the weighted
functions (INR). M_i is the smallest of: the cases that lift usable stock to the
``max_fill_quantile`` of coverage demand, the budget and the zone's room; lines with
M_i = 0 are not in the model. A zone already over capacity gets no orders (and a warning)
instead of making the whole store infeasible. The greedy plan is the MIP start.

If the solver proves infeasibility, stops without a solution or fails, or its plan fails
``check_plan``, the greedy fallback (``optimize/greedy.py``) plans the store and the reason
is recorded. A time-limited incumbent is kept only if it beats the greedy plan.
"""
from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import pulp

from optimize.checks import check_plan
from optimize.economics import FUNCTIONS, Economics, build_economics
from optimize.greedy import greedy_cases
from optimize.inputs import ZONES, PlanConfig, StoreInputs

__all__ = ["solve_store", "StorePlan", "SolveResult", "PLAN_COLUMNS", "BINDING_VALUES",
           "STATUSES", "binding_constraints"]

#: Columns of ``StorePlan.lines``.
PLAN_COLUMNS = (
    "store_id", "sku_id", "supplier_id", "category", "zone", "order_cases", "order_units",
    "order_value", "order_volume_l", "coverage_days", "forecast_coverage", "safety_stock",
    "order_up_to", "service_target", "expected_service_level", "expected_lost_units",
    "expected_waste_units", "binding_constraint", "solver_status", "gap", "fallback_reason")
#: What stopped a line from ordering more (or forced it to order more: moq).
BINDING_VALUES = ("budget", *(f"capacity_{z}" for z in ZONES), "shelf_life", "moq",
                  "supplier_min", "none")
#: Solver outcomes: optimal (within mip_gap), feasible (time limit with a solution),
#: infeasible, not_solved (time limit without a solution), unbounded, error.
STATUSES = ("optimal", "feasible", "infeasible", "not_solved", "unbounded", "error")
_TOL = 1e-6


@dataclass(frozen=True)
class SolveResult:
    """What the solver said."""

    status: str
    cases: np.ndarray | None
    objective: float | None
    gap: float | None
    seconds: float
    message: str = ""


@dataclass(frozen=True)
class StorePlan:
    """Tonight's order for one store, line by line (``lines``, :data:`PLAN_COLUMNS`), with
    how it was found and the store totals.

    ``method`` is ``milp`` or ``greedy``; ``status`` the solver's outcome; ``objective`` the
    model's cost of the plan (INR, the same function for both methods, so they compare);
    ``gap`` HiGHS's relative MIP gap; CBC (through PuLP) reports no bound, so an optimal CBC
    solve shows the configured ``mip_gap`` (it stopped because the gap fell below it) and a
    time-limited one None. ``note`` says why a plan orders nothing. ``violations`` is
    ``check_plan``'s verdict: non-empty means do not publish.
    """

    store_id: int
    lines: pd.DataFrame
    method: str
    solver: str
    status: str
    objective: float
    solver_objective: float | None
    gap: float | None
    build_seconds: float
    solve_seconds: float
    fallback_reason: str
    note: str
    budget: float
    order_value: float
    zone_room_l: Mapping[str, float] = field(default_factory=dict)
    zone_order_l: Mapping[str, float] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    violations: tuple[str, ...] = ()

    @property
    def n_ordered(self) -> int:
        return int((self.lines["order_cases"] > 0).sum()) if len(self.lines) else 0

    def totals(self) -> pd.DataFrame:
        """One row of store-level figures (for the plans table and logs)."""
        ln = self.lines
        demand = ln["forecast_coverage"].sum() if len(ln) else 0.0
        row = {
            "store_id": self.store_id, "method": self.method, "solver": self.solver,
            "status": self.status, "objective": self.objective,
            "solver_objective": self.solver_objective, "gap": self.gap,
            "build_seconds": self.build_seconds, "solve_seconds": self.solve_seconds,
            "n_lines": len(ln), "n_ordered": self.n_ordered,
            "order_units": int(ln["order_units"].sum()) if len(ln) else 0,
            "order_value": self.order_value, "budget": self.budget,
            **{f"order_{z}_l": self.zone_order_l.get(z, 0.0) for z in ZONES},
            **{f"room_{z}_l": self.zone_room_l.get(z, 0.0) for z in ZONES},
            "expected_service_level": float(
                (ln["expected_service_level"] * ln["forecast_coverage"]).sum() / demand)
            if demand > 0 else 1.0,
            "expected_waste_units": float(ln["expected_waste_units"].sum()) if len(ln) else 0.0,
            "fallback_reason": self.fallback_reason, "note": self.note,
            "warnings": "; ".join(self.warnings), "violations": "; ".join(self.violations),
        }
        return pd.DataFrame([row])


# -------------------------------------------------------------------------------- public
def solve_store(lines: pd.DataFrame, store: StoreInputs, cfg: PlanConfig) -> StorePlan:
    """Plan tonight's order for one store (see the module docstring). ``lines`` follows the
    contract of ``optimize/inputs.py``; the plan is checked with ``check_plan`` before it is
    returned."""
    t0 = time.perf_counter()
    econ = build_economics(lines, store, cfg)
    greedy: np.ndarray | None = None
    if econ.budget < 0:
        build_s = time.perf_counter() - t0
        result = SolveResult("infeasible", None, None, None, 0.0,
                             f"budget: daily_budget {econ.budget:,.2f} INR < 0, so even "
                             "ordering nothing breaks it")
    elif not (econ.max_cases > 0).any():
        build_s = time.perf_counter() - t0
        result = SolveResult("optimal", np.zeros(econ.n, int), 0.0, 0.0, 0.0,
                             "no line can or needs to order: nothing to optimise")
    else:
        greedy = greedy_cases(econ)
        prob, xvars = _build_problem(econ, cfg, start=greedy)
        build_s = time.perf_counter() - t0
        result = _run_solver(prob, xvars, econ, cfg)

    if result.status in ("optimal", "feasible") and result.cases is not None:
        plan = _assemble(econ, result.cases, "milp", result, cfg, "", build_s)
        bad = check_plan(plan, lines, store, cfg)
        if not bad and result.status == "feasible" and greedy is not None:
            g_obj = econ.total_cost(greedy)
            if g_obj < plan.objective - _TOL:
                return _greedy_plan(econ, greedy, result, cfg, build_s, lines, store, (
                    f"time limit {cfg.time_limit_s:g} s: the greedy plan ({g_obj:,.0f} INR) "
                    f"beat the MILP incumbent ({plan.objective:,.0f} INR)"))
        if not bad:
            return plan
        reason = "MILP plan failed check_plan: " + "; ".join(bad[:3])
    else:
        reason = _fallback_reason(result, cfg)
    return _greedy_plan(econ, greedy if greedy is not None else greedy_cases(econ), result,
                        cfg, build_s, lines, store, reason)


def _greedy_plan(econ: Economics, cases: np.ndarray, result: SolveResult, cfg: PlanConfig,
                 build_s: float, lines: pd.DataFrame, store: StoreInputs, reason: str
                 ) -> StorePlan:
    plan = _assemble(econ, cases, "greedy", result, cfg, reason, build_s)
    return replace(plan, violations=tuple(check_plan(plan, lines, store, cfg)))


def binding_constraints(econ: Economics, cases: np.ndarray) -> np.ndarray:
    """What stopped each line from ordering more, decided after the solve from the exact
    line costs (``Economics.exact_cost``) and the slack left in budget and room:

    - budget / capacity_<zone> / supplier_min: the line would save money with its next step
      (one more case, or its first order of at least the MOQ) but the remaining budget /
      zone room cannot pay for it / its supplier is not ordered from because of its minimum
      order value;
    - moq: the line orders nothing although fewer cases than the MOQ would pay, or orders
      exactly the MOQ although one case less would be cheaper;
    - shelf_life: a perishable line that would order more if nothing expired, or whose
      order cannot cover the whole review period because it expires first;
    - none: nothing binds (the line has what it needs, or a MIP gap is left).
    """
    n = econ.n
    cases = np.asarray(cases, int)
    need = np.maximum(econ.max_cases_need, cases)
    offsets, table = econ.cost_table(need + 1, exact=True)
    idx = np.arange(n)
    now = table[offsets[:-1] + cases]
    # Would the next step pay? First order: the best case count in [moq, need].
    best = np.full(n, np.inf)
    for i in np.nonzero((cases == 0) & (need >= econ.moq1))[0]:
        best[i] = table[offsets[i] + econ.moq1[i]:offsets[i] + need[i] + 1].min()
    up = np.where(cases + 1 <= need, table[offsets[:-1] + cases + 1], np.inf)
    wants = np.where(cases == 0, best < now - _TOL, up < now - _TOL)
    step = np.where(cases == 0, econ.moq1, 1)

    spent = float((cases * econ.case_value).sum())
    budget_short = econ.budget - spent < step * econ.case_value - _TOL
    room_left = {z: econ.room(z) - float((cases * econ.case_volume)[econ.zone == z].sum())
                 for z in ZONES}
    room_short = np.array([room_left[z] for z in econ.zone]) < step * econ.case_volume - _TOL
    value = cases * econ.case_value
    blocked = np.zeros(n, bool)
    for s in econ.supplier_min:
        on = econ.supplier_id == s
        blocked |= on & (float(value[on].sum()) == 0.0)

    out = np.full(n, "none", dtype=object)
    out[wants & blocked] = "supplier_min"
    cap = np.array([f"capacity_{z}" for z in econ.zone], dtype=object)
    out = np.where(wants & room_short, cap, out)
    out = np.where(wants & budget_short, "budget", out)

    # MOQ: fewer cases than the MOQ would pay (ordering 0) or one case less would (at MOQ).
    moq_bind = np.zeros(n, bool)
    for j in range(1, int(econ.moq.max(initial=1))):
        sel = (cases == 0) & (econ.moq > j)
        if sel.any():
            c = econ.exact_cost(np.full(int(sel.sum()), j), idx[sel])
            moq_bind[sel] |= c < now[sel] - _TOL
    at = (cases == econ.moq) & (econ.moq > 1)
    if at.any():
        moq_bind[at] |= econ.exact_cost(cases[at] - 1, idx[at]) < now[at] - _TOL
    out = np.where(~wants & moq_bind, "moq", out)

    # Shelf life: without the cost of waste the next step would pay.
    per = econ.perishable & ~wants & ~moq_bind
    if per.any():
        a = econ.exact_cost(cases[per], idx[per], with_waste=False)
        b = econ.exact_cost(cases[per] + step[per], idx[per], with_waste=False)
        shelf = econ.coverage_cut & per
        shelf[per] |= b < a - _TOL
        out = np.where(shelf, "shelf_life", out)
    return out.astype(str)


# ------------------------------------------------------------------------------- the MILP
def _row(terms: list[tuple[pulp.LpVariable, float]], sense: int, rhs: float
         ) -> pulp.LpConstraint:
    return pulp.LpConstraint(pulp.LpAffineExpression(terms), sense, rhs=float(rhs))


def _build_problem(econ: Economics, cfg: PlanConfig, start: np.ndarray | None = None
                   ) -> tuple[pulp.LpProblem, dict[int, pulp.LpVariable]]:
    """The MILP of the module docstring; ``start`` (cases per line) becomes the MIP start."""
    prob = pulp.LpProblem(f"store_{econ.store_id}", pulp.LpMinimize)
    ge, le = pulp.LpConstraintGE, pulp.LpConstraintLE
    rows: list[pulp.LpConstraint] = []
    obj: list[tuple[pulp.LpVariable, float]] = []
    x: dict[int, pulp.LpVariable] = {}
    lines = np.nonzero(econ.max_cases > 0)[0].tolist()
    sup_bin = {s for s in np.unique(econ.supplier_id[lines]).tolist()
               if econ.fixed_supplier > 0 or econ.supplier_min.get(s, 0.0) > 0}
    z = {s: pulp.LpVariable(f"z_{s}", cat="Binary") for s in sup_bin}
    if econ.fixed_supplier > 0:
        obj += [(var, econ.fixed_supplier) for var in z.values()]
    weights = {"lost": econ.lost_cost, "waste": econ.waste_cost, "hold": econ.hold_cost,
               "short": econ.penalty}
    for i in lines:
        m, moq = int(econ.max_cases[i]), int(econ.moq1[i])
        xi = x[i] = pulp.LpVariable(f"x_{i}", 0, m, cat="Integer")
        sup = int(econ.supplier_id[i])
        yi = pulp.LpVariable(f"y_{i}", cat="Binary")
        if econ.fixed_line > 0:
            obj.append((yi, econ.fixed_line))
        rows.append(_row([(xi, 1.0), (yi, -float(m))], le, 0))
        rows.append(_row([(xi, 1.0), (yi, -float(moq))], ge, 0))
        if sup in sup_bin:
            rows.append(_row([(yi, 1.0), (z[sup], -1.0)], le, 0))
        for name, a, b, f0, ok in _epigraphs(econ, cfg, i, weights):
            v = pulp.LpVariable(f"{name}_{i}", 0)
            obj.append((v, 1.0 if name == "cost" else float(weights[name][i])))
            # Perspective form of each line v >= a + b x: v >= f0 + (a - f0) y + b x, i.e. the
            # line when y = 1 and f(0) when x = y = 0, and the convex hull in between.
            rows += [_row([(v, 1.0), (yi, f0 - float(a[k])), (xi, -float(b[k]))], ge, f0)
                     for k in ok]
            if f0 > 0:  # the perspective of v >= 0, part of the convex hull too
                rows.append(_row([(v, 1.0), (yi, f0)], ge, f0))
    value, volume = econ.case_value, econ.case_volume
    rows.append(_row([(x[i], float(value[i])) for i in x if value[i] > 0], le, econ.budget))
    for zone in ZONES:
        terms = [(x[i], float(volume[i])) for i in x if econ.zone[i] == zone and volume[i] > 0]
        if terms:
            rows.append(_row(terms, le, max(econ.room(zone), 0.0)))
    for s in sup_bin:
        minimum = econ.supplier_min.get(s, 0.0)
        if minimum > 0:
            terms = [(x[i], float(value[i])) for i in x if econ.supplier_id[i] == s]
            rows.append(_row(terms + [(z[s], -minimum)], ge, 0))
    prob.setObjective(pulp.LpAffineExpression(obj))
    for r in rows:
        prob.addConstraint(r)
    if start is not None:
        _set_start(econ, prob, start)
    return prob, x


def _epigraphs(econ: Economics, cfg: PlanConfig, i: int, weights: dict[str, np.ndarray]
               ) -> list[tuple[str, np.ndarray, np.ndarray, float, list[int]]]:
    """(variable name, line intercepts, slopes, value at 0, lines that matter) of line i's
    epigraph variables: one per function, or one for their weighted sum ("cost", INR)."""
    if cfg.epigraph == "combined":
        a = sum(weights[f][i] * econ.line_a[f][i] for f in FUNCTIONS)
        b = sum(weights[f][i] * econ.line_b[f][i] for f in FUNCTIONS)
        f0 = float(sum(weights[f][i] * econ.at_zero[f][i] for f in FUNCTIONS))
        lo, hi = float(econ.moq1[i]), float(econ.max_cases_need[i])
        ok = econ.line_used[i] & (np.maximum(a + b * lo, a + b * hi) > 1e-12)
        out = [("cost", np.asarray(a), np.asarray(b), f0, np.nonzero(ok)[0].tolist())]
    else:
        out = [(f, econ.line_a[f][i], econ.line_b[f][i], float(econ.at_zero[f][i]),
                np.nonzero(econ.line_ok[f][i])[0].tolist()) for f in FUNCTIONS
               if weights[f][i] > 0]
    return [e for e in out if e[4] or e[3] > 0]


def _set_start(econ: Economics, prob: pulp.LpProblem, start: np.ndarray) -> None:
    """Initial values of every variable for a feasible plan ``start``."""
    value = econ.pwl(start)
    value["cost"] = econ.line_cost(start) - econ.fixed_line * (start > 0)
    ordered = set(np.unique(econ.supplier_id[start > 0]).tolist())
    for var in prob.variables():
        kind, _, key = var.name.partition("_")
        k = int(key)
        if kind == "x":
            var.setInitialValue(int(start[k]))
        elif kind == "y":
            var.setInitialValue(int(start[k] > 0))
        elif kind == "z":
            var.setInitialValue(int(k in ordered))
        else:
            var.setInitialValue(float(value[kind][k]))


class _HiGHS(pulp.HiGHS):
    """``pulp.HiGHS`` (highspy) that passes the variables' initial values as a MIP start."""

    def callSolver(self, lp: pulp.LpProblem) -> None:
        start = [(v.index, v.varValue) for v in lp.variables() if v.varValue is not None]
        if start:
            idx, val = zip(*start, strict=True)
            lp.solverModel.setSolution(len(idx), np.asarray(idx, np.int32),
                                       np.asarray(val, float))
        super().callSolver(lp)


def _solver(cfg: PlanConfig) -> pulp.LpSolver:
    if cfg.solver == "highs":
        return _HiGHS(msg=False, timeLimit=cfg.time_limit_s, gapRel=cfg.mip_gap,
                      threads=cfg.threads)
    return pulp.PULP_CBC_CMD(msg=False, timeLimit=cfg.time_limit_s, gapRel=cfg.mip_gap,
                             threads=cfg.threads, warmStart=True)


def _run_solver(prob: pulp.LpProblem, x: dict[int, pulp.LpVariable], econ: Economics,
                cfg: PlanConfig) -> SolveResult:
    t0 = time.perf_counter()
    try:
        prob.solve(_solver(cfg))
    except Exception as exc:  # a solver crash must not lose the store's plan
        return SolveResult("error", None, None, None, time.perf_counter() - t0,
                           f"{type(exc).__name__}: {exc}")
    seconds = time.perf_counter() - t0
    if prob.sol_status == pulp.LpSolutionOptimal:
        status = "optimal"
    elif prob.sol_status == pulp.LpSolutionIntegerFeasible:
        status = "feasible"
    elif prob.status == pulp.LpStatusInfeasible:
        status = "infeasible"
    elif prob.status == pulp.LpStatusUnbounded:
        status = "unbounded"
    else:
        status = "not_solved"
    if status not in ("optimal", "feasible"):
        return SolveResult(status, None, None, None, seconds, pulp.LpStatus[prob.status])
    cases = np.zeros(econ.n, int)
    for i, var in x.items():
        cases[i] = int(round(var.varValue or 0.0))
    gap: float | None
    if cfg.solver == "highs":
        gap = float(prob.solverModel.getInfo().mip_gap)
        gap = gap if np.isfinite(gap) else None
    else:
        gap = cfg.mip_gap if status == "optimal" else None
    return SolveResult(status, cases, float(pulp.value(prob.objective) or 0.0), gap, seconds)


def _fallback_reason(result: SolveResult, cfg: PlanConfig) -> str:
    what = {"infeasible": "MILP infeasible",
            "not_solved": f"MILP stopped at the time limit ({cfg.time_limit_s:g} s) without "
                          "a feasible solution",
            "unbounded": "MILP unbounded (a cost coefficient is negative?)",
            "error": "solver error"}.get(result.status, f"MILP status {result.status}")
    return f"{what}: {result.message}; greedy fallback" if result.message else \
        f"{what}; greedy fallback"


# ------------------------------------------------------------------------------ the plan
def _assemble(econ: Economics, cases: np.ndarray, method: str, result: SolveResult,
              cfg: PlanConfig, fallback: str, build_s: float) -> StorePlan:
    cases = np.asarray(cases, int)
    units = cases * econ.case
    exact = econ.exact(cases)
    cycle = econ.mu_cycle
    service = np.where(cycle > 0, 1.0 - exact["lost"] / np.where(cycle > 0, cycle, 1.0), 1.0)
    up_to = econ.usable_cover + units
    binding = binding_constraints(econ, cases) if econ.n else np.zeros(0, str)
    status = result.status
    lines = pd.DataFrame({
        "store_id": econ.store_id, "sku_id": econ.sku_id, "supplier_id": econ.supplier_id,
        "category": econ.category, "zone": econ.zone, "order_cases": cases,
        "order_units": units, "order_value": units * econ.unit_cost,
        "order_volume_l": units * econ.volume, "coverage_days": econ.coverage_days,
        "forecast_coverage": econ.mu_cover, "safety_stock": up_to - econ.mu_cover,
        "order_up_to": up_to, "service_target": econ.target,
        "expected_service_level": np.clip(service, 0.0, 1.0),
        "expected_lost_units": exact["lost"], "expected_waste_units": exact["waste"],
        "binding_constraint": binding, "solver_status": status,
        "gap": np.nan if result.gap is None else result.gap, "fallback_reason": fallback,
    }, columns=list(PLAN_COLUMNS))
    order_value = float(lines["order_value"].sum())
    zone_order = {z: float(lines.loc[lines["zone"] == z, "order_volume_l"].sum())
                  for z in ZONES}
    note = ""
    if not (cases > 0).any():
        counts = pd.Series(binding[binding != "none"]).value_counts()
        if fallback:
            note = fallback
        elif len(counts):
            note = "nothing ordered: " + ", ".join(f"{k} binds for {v} line(s)"
                                                  for k, v in counts.items())
        elif result.message:
            note = result.message
        else:
            note = "nothing needed: stock on hand and on order covers every line"
    return StorePlan(
        store_id=econ.store_id, lines=lines, method=method, solver=cfg.solver, status=status,
        objective=econ.total_cost(cases), solver_objective=result.objective, gap=result.gap,
        build_seconds=build_s, solve_seconds=result.seconds, fallback_reason=fallback,
        note=note, budget=econ.budget, order_value=order_value,
        zone_room_l={z: econ.room(z) for z in ZONES}, zone_order_l=zone_order,
        warnings=tuple(econ.warnings))
