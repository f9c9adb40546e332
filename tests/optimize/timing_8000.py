"""Time one store with 8,000 SKUs, built and solved, for CBC and HiGHS (not a test).

    .venv/bin/python -m tests.optimize.timing_8000 [--skus 8000] [--repeat 3] [--separate]

Prints one line per solver: median wall seconds for the whole ``solve_store`` (economics,
greedy start, model build, solve, report, check_plan), its build and solve parts, status,
gap and objective. The issue's target is <= 10 s.
"""
from __future__ import annotations

import argparse
import os
import time

from optimize import PlanConfig, solve_store
from tests.optimize.helpers import synthetic_store


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skus", type=int, default=8000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--budget-share", type=float, default=1.0,
                    help="scale the store's budget (below ~0.7 it binds)")
    ap.add_argument("--separate", action="store_true", help="epigraph='separate'")
    args = ap.parse_args()
    lines, st = synthetic_store(args.skus, seed=args.seed)
    st = type(st)(st.store_id, st.capacity_ambient_l, st.capacity_chilled_l,
                  st.capacity_frozen_l, st.daily_budget * args.budget_share)
    epigraph = "separate" if args.separate else "combined"
    print(f"{args.skus} SKUs, epigraph={epigraph}, budget x{args.budget_share}, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    for solver in ("cbc", "highs"):
        cfg = PlanConfig(solver=solver, epigraph=epigraph)
        runs = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            plan = solve_store(lines, st, cfg)
            runs.append((time.perf_counter() - t0, plan))
        runs.sort(key=lambda r: r[0])
        total, plan = runs[len(runs) // 2]
        print(f"{solver:6s} total {total:5.2f} s (median of {args.repeat}; "
              f"min {runs[0][0]:.2f})  of which build {plan.build_seconds:4.2f} s, "
              f"solve {plan.solve_seconds:4.2f} s  {plan.status}/{plan.method}  "
              f"gap {plan.gap}  objective {plan.objective:,.0f} INR  "
              f"ordered {plan.n_ordered} lines, {plan.order_value:,.0f} INR")


if __name__ == "__main__":
    main()
