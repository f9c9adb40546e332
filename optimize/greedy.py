"""The greedy fallback: a plan that respects every hard constraint when the MILP has none
(it is also the MILP's start solution).

Starting from nothing, it repeatedly adds the step with the best marginal value per unit of
scarce resource, where a step is a line's first order (a jump to the case count in
[MOQ, max] with the best average saving per case, so MOQ and the fixed line cost are paid
once) or one more case after that, the value is the drop in the line's cost
(``Economics.line_cost``, the MILP's own objective), and the resource used is

    case value / budget  [if the budget binds] + case volume / room  [if the zone binds]

(rupees and litres as shares of what the store has tonight; a resource binds when the
lines' own optima together would overrun it). Steps that no longer fit the remaining budget
or room are skipped; a first order that does not fit shrinks to what fits if that still
pays. Suppliers left below their
minimum order value are dropped whole and the pass is rerun without them. The fixed cost
per supplier is ignored (a fallback need not be optimal, only sound).
"""
from __future__ import annotations

import heapq

import numpy as np

from optimize.economics import Economics
from optimize.inputs import ZONES

__all__ = ["greedy_cases"]

_TOL = 1e-9


def greedy_cases(econ: Economics) -> np.ndarray:
    """Case counts per line (input order) that fit the budget, the zones' room, case packs,
    MOQ and supplier minimums."""
    blocked: set[int] = set()
    offsets, table = econ.cost_table(econ.max_cases)
    while True:
        cases = _one_pass(econ, offsets, table, blocked)
        below = _suppliers_below_min(econ, cases)
        if not below:
            return cases
        blocked |= below


def _suppliers_below_min(econ: Economics, cases: np.ndarray) -> set[int]:
    value = cases * econ.case_value
    out = set()
    for s, minimum in econ.supplier_min.items():
        total = float(value[econ.supplier_id == s].sum())
        if 0 < total < minimum - _TOL:
            out.add(s)
    return out


def _one_pass(econ: Economics, offsets: np.ndarray, table: np.ndarray,
              blocked: set[int]) -> np.ndarray:
    n = econ.n
    cases = np.zeros(n, int)
    budget = max(econ.budget, 0.0)
    room = {z: max(econ.room(z), 0.0) for z in ZONES}
    left = {"budget": budget, **room}
    value, volume = econ.case_value, econ.case_volume
    scarce = _scarce(econ, offsets, table, budget, room)

    def weight(i: int, steps: int) -> float:
        """Share of the scarce resources the step uses (0 when nothing is scarce)."""
        w = 0.0
        for used, total, key in ((value[i] * steps, budget, "budget"),
                                 (volume[i] * steps, room[econ.zone[i]], econ.zone[i])):
            if used > 0 and scarce[key]:
                w += used / total if total > 0 else np.inf
        return w

    def cost(i: int, x: int) -> float:
        return float(table[offsets[i] + x])

    def first_jump(i: int, upto: int) -> tuple[float, int]:
        lo = int(econ.moq1[i])
        if upto < lo:
            return 0.0, 0
        seg = table[offsets[i] + lo:offsets[i] + upto + 1]
        xs = np.arange(lo, upto + 1)
        avg = (cost(i, 0) - seg) / xs
        j = int(np.argmax(avg))
        return float(cost(i, 0) - seg[j]), int(xs[j])

    heap: list[tuple[float, int, int]] = []

    def push(i: int, gain: float, target: int) -> None:
        if gain <= _TOL:
            return
        steps = target - cases[i]
        w = weight(i, steps)
        if not np.isfinite(w):
            return
        eff = gain / w if w > 0 else gain * 1e12
        heapq.heappush(heap, (-eff, i, target))

    blocked_line = np.isin(econ.supplier_id, list(blocked)) if blocked else np.zeros(n, bool)
    for i in np.nonzero((econ.max_cases > 0) & ~blocked_line)[0].tolist():
        gain, target = first_jump(i, int(econ.max_cases[i]))
        push(i, gain, target)

    while heap:
        _, i, target = heapq.heappop(heap)
        steps = target - int(cases[i])
        z = str(econ.zone[i])
        if steps <= 0:
            continue
        fits = (value[i] * steps <= left["budget"] + _TOL
                and volume[i] * steps <= left[z] + _TOL)
        if not fits:
            if cases[i] == 0:  # shrink the first order to what still fits
                cap = min(int(econ.max_cases[i]), _fit(left["budget"], value[i]),
                          _fit(left[z], volume[i]))
                if cap < target:
                    gain, new = first_jump(i, cap)
                    push(i, gain, new)
            continue
        cases[i] = target
        left["budget"] -= value[i] * steps
        left[z] -= volume[i] * steps
        if target < econ.max_cases[i]:
            push(i, cost(i, target) - cost(i, target + 1), target + 1)
    return cases


def _scarce(econ: Economics, offsets: np.ndarray, table: np.ndarray, budget: float,
            room: dict[str, float]) -> dict[str, bool]:
    """Which resources the lines' own optima (each alone) would overrun: only those weigh in
    the value per resource (per rupee if the budget binds, per litre of a binding zone)."""
    best = np.zeros(econ.n, int)
    for i in np.nonzero(econ.max_cases > 0)[0].tolist():
        seg = table[offsets[i]:offsets[i + 1]]
        lo = int(econ.moq1[i])
        j = lo + int(np.argmin(seg[lo:]))
        best[i] = j if seg[j] < seg[0] else 0
    out = {"budget": float((best * econ.case_value).sum()) > budget}
    for z in ZONES:
        out[z] = float((best * econ.case_volume)[econ.zone == z].sum()) > room[z]
    return out


def _fit(left: float, per_case: float) -> int:
    if per_case <= 0:
        return 1 << 30
    return int(np.floor(max(left, 0.0) / per_case + _TOL))
