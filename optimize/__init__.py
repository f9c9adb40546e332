"""Replenishment planning: the per-store MILP, its greedy fallback and the plan checks.

Pure pandas/numpy/PuLP: no I/O, no Spark. ``solve_store(lines, store, cfg)`` is the entry
point; ``optimize/inputs.py`` documents the frame contract.
"""
from optimize.checks import check_plan
from optimize.economics import Economics, build_economics
from optimize.greedy import greedy_cases
from optimize.inputs import LINE_COLUMNS, PlanConfig, StoreInputs, join_forecast
from optimize.milp import PLAN_COLUMNS, StorePlan, solve_store

__all__ = ["solve_store", "StorePlan", "PLAN_COLUMNS", "PlanConfig", "StoreInputs",
           "LINE_COLUMNS", "join_forecast", "check_plan", "Economics", "build_economics",
           "greedy_cases"]
