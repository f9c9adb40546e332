#!/usr/bin/env python
"""Benchmark the decision half of the nightly run: the per-store MILP, the ``plan`` job and the
policy simulator (issue 5).

Three parts, each on its own temporary ``REPLENISH_HOME`` (deleted afterwards):

1. **One store, 8,000 SKUs** (``--store-skus``): a synthetic store with the world's SKU mix
   (``tests/optimize/helpers.synthetic_store``: long-tailed demand, perishables with 2-7 days
   of shelf life, case packs, MOQs, stock by days to expiry, a 14-day forecast), planned by
   ``optimize.solve_store`` with CBC and with HiGHS, one after the other in the same run
   (median of ``--repeat``): economics + greedy start + model build, solve, report and
   ``check_plan``. Target: built and solved in <= 10 s.
2. **``replenish run plan`` on ``medium``** (100 stores x 1,000 SKUs): a generated medium
   world of ``--medium-days`` days (default 35: a night in the world's steady state, after
   the 28 days the moving average reads); the last day's inventory and the
   snapshots are ingested and copied raw -> clean (the stand-in for ``validate_raw``, as
   ``bench_features.py`` does); the forecasts for that night are a moving average of the
   observed sales (``models.baselines.MovingAverage``, quantiles from its residuals) written
   as ``lake/forecasts/date=D`` in ``jobs/score.py``'s layout, so no feature build or
   training is needed. Then the Spark job (``groupBy(store).applyInPandas``) with CBC and
   with HiGHS in one Spark session (started, and its Python workers warmed, untimed), each
   timed from the call to the written partitions. Target: <= 5 minutes.
3. **Policy simulation on ``small``** (``replenish generate --scenario small --days 120``,
   seed 42): ``plan``, ``minmax`` and ``oracle`` over the last 28 days, twice: from the
   stock the generator left (the cold start; the MILP spends the window draining the min-max
   rule's overstock) and after a ``--warmup``-day warm-up that is replayed but not measured
   (every policy in its own steady state). The plan forecasts with ``--sim-forecasts``
   (default ``weekday_moving_average``: a 28-day moving average with each store's weekday
   shape, ``models.baselines.WeekdayProfile``, festival days left out of its history,
   promoted days scaled by a price elasticity per category learnt from the history,
   negative-binomial quantiles from each pair's recent dispersion; or
   ``moving_average``, flat, every day; both re-fitted
   nightly on the simulated sales, stock-out days imputed; ``lake`` / ``champion`` use the
   pipeline's forecasts of a prepared ``--sim-home``, or, for ``champion`` without one, of
   a model the bench trains the night before the replay and, with ``--sim-retrain weekly``
   (default), retrains through the nightly train step as the replay goes); the min-max
   baseline trims its orders to the same zone room as the
   MILP. ``--penalties`` adds plan and oracle runs with other service penalties (what a
   higher fill rate costs). Targets: fill rate
   >= 97%, perishable waste <= 4% of units received, turnover >= 30x, total cost <= 1.05x
   the oracle's and >= 25% below min-max's.

``--sim-decompose`` re-runs the plan of the longer replay twice more, its forecasts with the
truth's mean, then the truth's spread, swapped in (``replenish simulate --swap``), and
tabulates what of its cost gap to the oracle is the forecasts' level and what their spread.

``--quick`` (a couple of minutes): 8,000 SKUs once per solver, ``run plan`` on ``small``
instead of medium, and the simulation over 7 days (warm-up 7).

Results go to the "Plan" section of ``bench/RESULTS.md``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import logging
import math
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import (  # noqa: E402
    RESULTS,
    LoadSampler,
    command,
    machine,
    machine_line,
    md_table,
    update_results,
)

SECTION = "## Plan (`replenish run plan`) and policy simulation"
TARGETS = {"store_s": 10.0, "medium_s": 300.0, "fill_rate": 0.97, "waste_pct": 4.0,
           "turnover": 30.0, "oracle_ratio": 1.05, "minmax_gain": 0.25}
START = dt.date(2025, 1, 1)
SEED = 42

log = logging.getLogger("bench_plan")


def _say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _pf(ok: bool, note: str = "") -> str:
    return "PASS" if ok else f"MISS{f' ({note})' if note else ''}"


@dataclass
class Report:
    """What the parts measured, as markdown lines, and the verdicts."""

    lines: list[str] = field(default_factory=list)
    verdicts: list[list[str]] = field(default_factory=list)

    def verdict(self, check: str, measured: str, target: str, ok: bool, note: str = "") -> None:
        self.verdicts.append([check, measured, target, _pf(ok, note)])


# ------------------------------------------------------------------------ part 1: a store
def part_store(rep: Report, n_skus: int, repeat: int) -> None:
    from optimize import PlanConfig, solve_store
    from tests.optimize.helpers import synthetic_store

    lines, store = synthetic_store(n_skus, seed=1)
    n_perish = int(lines.drop_duplicates("sku_id")["is_perishable"].sum())
    rows = []
    _say(f"store: {n_skus:,} SKUs, load {os.getloadavg()[0]:.1f}")
    for solver in ("cbc", "highs"):
        runs = []
        for _ in range(repeat):
            load = os.getloadavg()[0]
            t0 = time.perf_counter()
            plan = solve_store(lines, store, PlanConfig(solver=solver))
            runs.append((time.perf_counter() - t0, plan, load))
        runs.sort(key=lambda r: r[0])
        total, plan, load = runs[len(runs) // 2]
        _say(f"store: {solver} {total:.2f} s ({plan.status}/{plan.method})")
        gap = "-" if plan.gap is None else f"{plan.gap:.2%}"
        rows.append([solver, f"{total:.2f}", f"{plan.build_seconds:.2f}",
                     f"{plan.solve_seconds:.2f}", f"{min(r[0] for r in runs):.2f}",
                     f"{plan.status} / {plan.method}", gap, f"₹{plan.objective:,.0f}",
                     f"{plan.n_ordered:,}", f"₹{plan.order_value:,.0f}", f"{load:.1f}"])
        rep.verdict(f"one store, {n_skus:,} SKUs, built + solved ({solver})",
                    f"{total:.2f} s", f"<= {TARGETS['store_s']:.0f} s",
                    total <= TARGETS["store_s"] and plan.method == "milp",
                    f"{total / TARGETS['store_s'] - 1:+.0%}" if plan.method == "milp"
                    else f"{plan.method}: {plan.fallback_reason}")
    rep.lines += [
        f"### One store, {n_skus:,} SKUs (`optimize.solve_store`)", "",
        f"`tests/optimize/helpers.synthetic_store({n_skus}, seed=1)`: {n_perish:,} perishable "
        f"SKUs, a 14-day forecast, budget {store.daily_budget:,.0f} INR, zones "
        f"{store.capacity_ambient_l:,.0f} / {store.capacity_chilled_l:,.0f} / "
        f"{store.capacity_frozen_l:,.0f} L. Default `PlanConfig` (8 breakpoints, chords, one "
        "combined epigraph per line, mip_gap 0.5%, 1 thread, time limit 8 s). *total* = the "
        "whole `solve_store` (economics, greedy start, model build, solve, report, "
        f"check_plan), median of {repeat}; *build* is everything before the solver starts. "
        "CBC's gap is the configured stop gap (PuLP reports no bound).", ""]
    rep.lines += md_table(["solver", "total s", "build s", "solve s", "min total s", "status",
                      "gap", "objective", "lines ordered", "order value", "load at start"],
                     rows) + [""]


# ------------------------------------------------------------------ part 2: run plan
def _cfg(home: Path, solver: str = "cbc"):
    import socket

    from jobs.config import Config

    with socket.socket() as sock:  # a free port: never touch another home's PostgreSQL
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return Config(home=home, spark_driver_memory="3g", spark_shuffle_partitions=4,
                  plan_solver=solver, pg_port=port, model_profile="quick", max_series=2000)


def _stop_spark() -> None:
    try:
        from pyspark.sql import SparkSession
    except ImportError:  # pragma: no cover
        return
    spark = SparkSession.getActiveSession()
    if spark is not None:
        spark.stop()


def _ingest_night(cfg, day: dt.date) -> None:
    """The night's inventory and the snapshots in force: ingest, then raw -> clean."""
    from jobs import ingest
    from jobs.ingest import DIMENSIONS, raw_root
    from jobs.lake import list_dates, read_partition, write_partition

    for table in DIMENSIONS:
        for snap in list_dates(cfg.landing, table):
            if snap <= day:
                ingest.run(cfg, snap, tables=(table,))
    ingest.run(cfg, day, tables=("inventory",))
    raw, clean = raw_root(cfg), cfg.lake / "clean"
    for table in (*DIMENSIONS, "inventory"):
        for snap in list_dates(raw, table):
            write_partition(clean, table, snap, read_partition(raw, table, snap))


def _ma_forecasts(cfg, day: dt.date, window: int = 28) -> int:
    """lake/forecasts/date=day: a moving average of the last ``window`` days' sales of every
    active pair (``models.baselines.MovingAverage``), 7 days ahead, q50..q99."""
    import pandas as pd
    import pyarrow as pa

    from jobs.lake import read_partition, write_partition
    from models.baselines import MovingAverage
    from models.protocol import QUANTILES

    inv = read_partition(cfg.lake / "clean", "inventory", day, ["store_id", "sku_id"]
                         ).to_pandas()
    parts = []
    for k in range(window):
        d = day - dt.timedelta(days=k)
        sales = read_partition(cfg.landing, "sales", d, ["store_id", "sku_id", "quantity"])
        agg = sales.group_by(["store_id", "sku_id"]).aggregate([("quantity", "sum")])
        parts.append(agg.to_pandas().rename(columns={"quantity_sum": "y"}).assign(
            date=pd.Timestamp(d)))
    sold = pd.concat(parts, ignore_index=True)
    grid = inv.merge(pd.DataFrame({"date": [pd.Timestamp(day - dt.timedelta(days=k))
                                            for k in range(window)]}), how="cross")
    train = grid.merge(sold, on=["store_id", "sku_id", "date"], how="left").fillna({"y": 0.0})
    fc = MovingAverage(window).fit(train).predict(7, QUANTILES)
    target = pd.to_datetime(fc["target_date"])
    fc["horizon"] = (target - pd.Timestamp(day)).dt.days.astype("int32")
    fc["target_date"] = target.dt.date  # a Parquet date, as jobs/score.py writes
    fc["run_date"] = day
    fc["model"] = "moving_average"
    fc["flags"] = pd.Series([None] * len(fc), dtype=object)
    table = pa.Table.from_pandas(fc, preserve_index=False)
    table = table.cast(table.schema.set(table.schema.get_field_index("flags"),
                                        pa.field("flags", pa.string())))
    write_partition(cfg.lake, "forecasts", day, table, schema=table.schema)
    return len(fc)


def _warm_workers(spark) -> None:
    """Start Spark's Python workers and import the planner in them, so neither solver's
    run pays for it (workers are reused between jobs)."""
    from pyspark.sql import functions as F

    def touch(pdf):
        import optimize.runner  # noqa: F401
        return pdf.head(1)

    df = spark.range(0, 256, numPartitions=spark.sparkContext.defaultParallelism)
    (df.withColumn("store_id", F.col("id") % 16).repartition(8, "store_id")
     .groupBy("store_id").applyInPandas(touch, "id long, store_id long").collect())


def part_medium(rep: Report, scenario: str, days: int, home: Path, solvers: list[str]
                ) -> None:
    import dataclasses

    from jobs import generate, plan

    cfg = _cfg(home)
    stages = []
    t0 = time.perf_counter()
    res = generate.run(cfg, scenario, START, days, seed=SEED, progress=False)
    stages.append([f"generate {scenario} {days} days", f"{time.perf_counter() - t0:.1f}",
                   f"{res.stores} stores x {res.skus:,} SKUs"])
    day = START + dt.timedelta(days=days - 1)
    t0 = time.perf_counter()
    _ingest_night(cfg, day)
    stages.append([f"ingest {day} (inventory + snapshots), raw -> clean",
                   f"{time.perf_counter() - t0:.1f}", ""])
    t0 = time.perf_counter()
    window = min(28, days)
    n_fc = _ma_forecasts(cfg, day, window)
    stages.append([f"forecasts: {window}-day moving average of sales, 7 days",
                   f"{time.perf_counter() - t0:.1f}", f"{n_fc:,} rows"])
    _stop_spark()
    from jobs.spark import get_spark

    t0 = time.perf_counter()
    _warm_workers(get_spark(cfg, "replenish-plan"))
    stages.append(["Spark session start + Python workers importing the planner (untimed)",
                   f"{time.perf_counter() - t0:.1f}", ""])
    for s in stages:
        _say(f"{scenario}: {s[0]}: {s[1]} s {s[2]}")
    rows = []
    for solver in solvers:
        c = dataclasses.replace(cfg, plan_solver=solver)
        load = os.getloadavg()[0]
        _say(f"{scenario}: run plan {day} with {solver}, load {load:.1f}")
        t0 = time.perf_counter()
        r = plan.run(c, day)
        wall = time.perf_counter() - t0
        _say(f"{scenario}: {solver}: {wall:.1f} s; {r.summary().splitlines()[0]}")
        rows.append([solver, f"{wall:.1f}", f"{r.stores}", f"{r.optimal}", f"{r.feasible}",
                     f"{r.heuristic}", f"{r.skipped}", f"{r.lines:,}", f"{r.lines_ordered:,}",
                     f"₹{r.value:,.0f}", f"{r.solve_seconds:.1f}",
                     f"{r.slowest_store_seconds:.1f}", f"{load:.1f}"])
        if scenario == "medium":
            rep.verdict(f"`run plan`, all {r.stores} stores of medium ({solver})",
                        f"{wall:.0f} s", f"<= {TARGETS['medium_s']:.0f} s",
                        wall <= TARGETS["medium_s"] and r.heuristic + r.skipped == 0,
                        f"{wall / TARGETS['medium_s'] - 1:+.0%}; {r.heuristic} greedy, "
                        f"{r.skipped} skipped")
    rep.lines += [
        f"### `replenish run plan` on `{scenario}`, one night ({day})", "",
        f"`replenish generate --scenario {scenario} --days {days} --seed {SEED}` from "
        f"{START}; the night's inventory and the stores/skus snapshots ingested and copied "
        "raw -> clean; forecasts for the night from a moving average of the observed sales "
        "(`models.baselines.MovingAverage`, quantiles from its residuals; no feature build or "
        "training needed for a speed test); the generator's min-max rule keeps every zone "
        "within its capacity, so any night has room in every zone. Then "
        "`jobs.plan.run` (Spark local[*], "
        "`groupBy(store_id).applyInPandas`, one single-threaded MILP per store, 8 s time "
        "limit per store) with each solver in turn in one Spark session; *wall s* from the "
        "call to both partitions written; *solve s* = the stores' "
        "`plan_store` seconds summed; *slowest* = the slowest store.", ""]
    rep.lines += md_table(["stage", "wall s", "note"], stages, ":---|---:|:---") + [""]
    rep.lines += md_table(["solver", "wall s", "stores", "optimal", "feasible", "greedy",
                      "skipped", "lines", "ordered", "order value", "solve s (sum)",
                      "slowest s", "load at start"], rows) + [""]


# -------------------------------------------------------------- part 3: the simulator
_METRICS = (("fill_rate", "service level (fill rate)", "pct"),
            ("stockout_freq", "stock-out frequency (pair-days)", "pct"),
            ("waste_pct", "waste, % of units received (perishables)", "num"),
            ("waste_pct_all", "waste, % of units received (all SKUs)", "num"),
            ("turnover", "inventory turnover (annualised)", "x"),
            ("working_capital", "average working capital", "inr"),
            ("ordering_cost", "ordering cost", "inr"),
            ("holding_cost", "holding cost", "inr"),
            ("lost_margin", "lost margin", "inr"),
            ("waste_cost", "waste cost", "inr"),
            ("total_cost", "total cost", "inr"))


def _fmt(v: float, kind: str) -> str:
    if v is None or not math.isfinite(v):
        return "-"
    return {"pct": f"{100 * v:.1f}%", "num": f"{v:.1f}%", "x": f"{v:.1f}x",
            "inr": f"₹{v:,.0f}"}[kind]


def _sim_table(results: dict) -> list[str]:
    names = list(results)
    rows = [[label, *(_fmt(results[p].metrics[k], kind) for p in names)]
            for k, label, kind in _METRICS]
    for ref in ("oracle", "minmax"):
        base = results[ref].metrics["total_cost"]
        row = [f"total cost vs {ref}"]
        for p in names:
            diff = results[p].metrics["total_cost"] - base
            row.append(f"{'+' if diff >= 0 else '-'}₹{abs(diff):,.0f} ({diff / base:+.1%})")
        rows.append(row)
    return md_table(["metric", *names], rows)


def _sim_verdicts(rep: Report, label: str, results: dict) -> None:
    m = {p: r.metrics for p, r in results.items()}
    p = m["plan"]
    rep.verdict(f"{label}: plan fill rate", f"{p['fill_rate']:.1%} (oracle "
                f"{m['oracle']['fill_rate']:.1%})", ">= 97%",
                p["fill_rate"] >= TARGETS["fill_rate"],
                f"{100 * (TARGETS['fill_rate'] - p['fill_rate']):.1f} points short")
    rep.verdict(f"{label}: plan waste (perishables)", f"{p['waste_pct']:.1f}%", "<= 4%",
                p["waste_pct"] <= TARGETS["waste_pct"])
    rep.verdict(f"{label}: plan turnover", f"{p['turnover']:.1f}x (oracle "
                f"{m['oracle']['turnover']:.1f}x)", ">= 30x",
                p["turnover"] >= TARGETS["turnover"])
    r = p["total_cost"] / m["oracle"]["total_cost"]
    rep.verdict(f"{label}: plan total cost vs oracle", f"{r:.3f}x", "<= 1.05x",
                r <= TARGETS["oracle_ratio"])
    g = 1 - p["total_cost"] / m["minmax"]["total_cost"]
    rep.verdict(f"{label}: plan total cost below min-max", f"{g:.1%}", ">= 25%",
                g >= TARGETS["minmax_gain"])


def part_simulate(rep: Report, home: Path | None, days: int, warmup: int, forecasts: str,
                  solver: str, tmp: Path, penalties: list[float], retrain: bool = False,
                  history: str = "simulated", decompose: bool = False) -> None:
    from jobs import generate
    from jobs import simulate as js

    note = ""
    if home is None:
        home = tmp
        t0 = time.perf_counter()
        generate.run(_cfg(home), "small", START, 120, seed=SEED, progress=False)
        note = (f"`replenish generate --scenario small --days 120 --seed {SEED}` from "
                f"{START} ({time.perf_counter() - t0:.1f} s)")
        if forecasts == "champion":
            note += _champion(_cfg(home), START + dt.timedelta(days=120 - days - warmup - 1),
                              retrain)
    else:
        note = f"the world in `{home}`"
    cfg = _cfg(home, solver)
    runs = []
    retrain = retrain and forecasts == "champion"
    # retraining: the longer replay first, so every night is scored in date order by the
    # champion of its week, and the cold start reads the same forecasts
    for warm in ((warmup, 0) if retrain else (0, warmup)):
        sim = js.SimulateConfig(days=days, warmup_days=warm, solver=solver,
                                forecasts=forecasts, retrain=retrain, history=history)
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        out = js.run(cfg, sim, progress=False, write=False)
        wall = time.perf_counter() - t0
        res = out.results
        first = next(iter(res.values()))
        label = ("cold start" if not warm else f"after a {warm}-day warm-up")
        _say(f"simulate {label}: {wall:.0f} s, window {first.start} .. {first.end}")
        runs.append((label, warm, res, wall, load, out.settings))
    runs.sort(key=lambda run: run[1])
    if retrain:
        note += _retrained(cfg, [line for run in runs
                                 for line in run[5].get("retrained", [])])
    source = ("simulated sales" if history == "simulated" else
              "generated world's sales (its min-max rule's; `--history world`), not the plan's")
    rep.lines += [
        f"### Policy simulation on `small` (10 stores x 200 SKUs), {days} days", "",
        f"{note}; `jobs.simulate.run` (what `replenish simulate` runs) over the last {days} "
        f"days of the truth: `plan` = the MILP re-planned nightly on a {forecasts} forecast "
        + ("(`lake/forecasts` of `replenish run score`, made from the world's own history)"
           if forecasts in ("lake", "champion") else
           f"re-fitted nightly on the {source}, a stock-out day read as E[demand | "
           "demand >= sold] under the previous night's forecast, the days of the "
           "`promotions` table (history and the 7 days ahead) scaled by (1 - discount) ^ "
           "-elasticity, one elasticity per category learnt from the history") + "; `minmax` = "
        "the generator's reorder rule, its orders trimmed to the zone room the MILP gets; "
        "`oracle` = the same MILP fed the true demand distribution; both learn each "
        "supplier's share of late deliveries from what arrives and plan for it "
        "(`late_prob`). Suppliers as generated "
        f"(late and short deliveries, the same luck for every policy); solver {solver}; "
        "capacities `observed` (here the declared ones: the generated world keeps within "
        "them). Costs (INR) over the measured days: ordering + holding + "
        "lost margin + waste (definitions: `optimize/simulate.py`).", ""]
    for label, warm, res, wall, load, _settings in runs:
        first = next(iter(res.values()))
        how = ("from the stock the generator left the day before (the plan and the oracle "
               "spend the window draining the min-max rule's overstock)" if not warm else
               f"replayed from {first.start - dt.timedelta(days=warm)}, the first {warm} days "
               "not measured, so every policy is measured in its own steady state")
        rep.lines += [f"**{label.capitalize()}**: {first.start} .. {first.end}, {how}; "
                      f"{wall:.0f} s wall for the three policies, load {load:.1f} at the "
                      "start.", ""]
        rep.lines += _sim_table(res) + [""]
        notes = res["plan"].notes
        rep.lines += [f"Plan: {notes.get('store_nights', 0)} store-nights, "
                      f"{notes.get('milp', 0)} MILP, {notes.get('greedy', 0)} greedy "
                      f"fallbacks, {notes.get('violations', 0)} rejected plans; min-max "
                      f"orders trimmed to the room: "
                      f"{res['minmax'].notes.get('trimmed_to_room', 0)} lines.", ""]
        _sim_verdicts(rep, label, res)
    if penalties:
        _sensitivity(rep, cfg, days, warmup, forecasts, solver, penalties, runs[-1][2])
    if decompose:
        _decompose(rep, cfg, days, runs[-1][1], forecasts, solver, history, runs[-1][2])


def _champion(cfg, train_date: dt.date, retrain: bool = False) -> str:
    """What ``forecasts="champion"`` needs: every day ingested and copied raw -> clean, the
    features, the clusters and an ensemble trained (``quick`` profile) on ``train_date``, the
    night before the replay starts (no look-ahead). The simulator then scores each night with
    it through ``jobs.score.run``; with ``retrain``, after the nightly train step
    (``train.run_if_due``: weekly), else it is never retrained during the replay."""
    from common import clean_from_raw

    from jobs import build_features, cluster, ingest, train
    from jobs.lake import list_dates

    t0 = time.perf_counter()
    dates = list_dates(cfg.landing, "sales")
    for day in dates:
        ingest.run(cfg, day)
    clean_from_raw(cfg, dates)
    build_features.run(cfg, start=dates[0], end=dates[-1])
    _stop_spark()
    t1 = time.perf_counter()
    cluster.run(cfg, train_date)
    res = train.run(cfg, train_date)
    t2 = time.perf_counter()
    _say(f"champion: features {t1 - t0:.0f} s, train {t2 - t1:.0f} s (version {res.version} "
         f"@{res.alias})")
    return (f"; ingest, features, `cluster` and `train` (quick profile, {cfg.max_series:,} "
            f"series) on {train_date}, the night before the replay starts ({t1 - t0:.0f} s + "
            f"{t2 - t1:.0f} s; version {res.version} @{res.alias}); the plan's forecasts are "
            + ("the champion's of each night, scored night by night by `jobs.score.run` after "
               "the nightly train step (`jobs.train.run_if_due`, `--retrain`: a new version "
               "when the champion is 7 days old, promoted only if it beats the champion's "
               "backtest cost)" if retrain else
               "that model's, scored night by night by `jobs.score.run` and never retrained "
               "during the replay"))


def _retrained(cfg, lines: list[str]) -> str:
    """The versions the replay trained, and which became champion (the registry's table)."""
    from models import registry

    _say("retrained: " + "; ".join(lines))
    table = registry.list_versions(cfg.mlflow_uri)
    rows = [f"v{r.version} {r.run_date} {r.aliases or r.gate.split(':')[0]}"
            for r in table.itertuples()]
    return (f"; {len(lines)} retraining(s) during the replay; the registry after it: "
            + ", ".join(rows))


def _decompose(rep: Report, cfg, days: int, warmup: int, forecasts: str, solver: str,
               history: str, base: dict) -> None:
    """The plan again (the longer replay) with the truth's mean, then the truth's spread,
    swapped into its forecasts (``jobs.simulate --swap``): what of its cost gap to the oracle
    is the forecasts' level and what their spread. Champion forecasts are read back from the
    lake the replay scored (``lake``), so every run plans on the same nights' forecasts."""
    from jobs import simulate as js

    source = "lake" if forecasts in ("lake", "champion") else forecasts
    oracle = base["oracle"].metrics["total_cost"]
    runs = [("as they are", base["plan"])]
    for swap, label in (("mean", "the truth's mean, their own spread"),
                        ("spread", "their own mean, the truth's spread")):
        sim = js.SimulateConfig(policies=("plan",), days=days, warmup_days=warmup,
                                solver=solver, forecasts=source, history=history, swap=swap)
        t0 = time.perf_counter()
        runs.append((label, js.run(cfg, sim, progress=False, write=False).results["plan"]))
        _say(f"simulate, swap {swap}: {time.perf_counter() - t0:.0f} s")
    runs.append(("(oracle)", base["oracle"]))
    rows = []
    for label, res in runs:
        m = res.metrics
        rows.append([label, _fmt(m["fill_rate"], "pct"), _fmt(m["waste_pct"], "num"),
                     _fmt(m["lost_margin"], "inr"), _fmt(m["waste_cost"], "inr"),
                     _fmt(m["holding_cost"], "inr"), _fmt(m["total_cost"], "inr"),
                     f"{m['total_cost'] / oracle:.3f}x"])
    when = f"after the {warmup}-day warm-up" if warmup else "from the cold start"
    rep.lines += [f"**What the plan's gap to the oracle is made of** ({when}; `--sim-decompose`: "
                  "`replenish simulate --policy plan --swap mean|spread`): the plan re-run "
                  "with its forecasts' mean replaced by the truth's expected demand (each "
                  "quantile moved with it), then with their spread replaced by the truth's "
                  "(a negative binomial with the truth's dispersion around their own mean).",
                  ""]
    rep.lines += md_table(["plan's forecasts", "fill rate", "waste % (perishables)",
                           "lost margin", "waste cost", "holding cost", "total cost",
                           "vs oracle"], rows, ":---|---:|---:|---:|---:|---:|---:|---:")
    rep.lines += [""]


def _sensitivity(rep: Report, cfg, days: int, warmup: int, forecasts: str, solver: str,
                 penalties: list[float], base: dict) -> None:
    """plan and oracle again (after the warm-up) with other service penalties: what a higher
    fill rate costs, with the true distribution and with the forecast."""
    import dataclasses

    from jobs import simulate as js

    rows = []
    default = js.SimulateConfig().plan_config().service_penalty
    for pen in [default, *penalties]:
        if pen == default:
            res = base
        else:
            sim = js.SimulateConfig(policies=("plan", "oracle"), days=days, warmup_days=warmup,
                                    solver=solver, forecasts=forecasts)
            orig = js.SimulateConfig.plan_config
            js.SimulateConfig.plan_config = (  # type: ignore[method-assign]
                lambda self, o=orig, p=pen: dataclasses.replace(o(self), service_penalty=p))
            try:
                t0 = time.perf_counter()
                res = js.run(cfg, sim, progress=False, write=False).results
                _say(f"simulate, service_penalty {pen:g}: {time.perf_counter() - t0:.0f} s")
            finally:
                js.SimulateConfig.plan_config = orig  # type: ignore[method-assign]
        for p in ("plan", "oracle"):
            m = res[p].metrics
            rows.append([f"{pen:g}", p, _fmt(m["fill_rate"], "pct"), _fmt(m["waste_pct"], "num"),
                         _fmt(m["turnover"], "x"), _fmt(m["lost_margin"], "inr"),
                         _fmt(m["waste_cost"], "inr"), _fmt(m["total_cost"], "inr")])
        r = res["plan"].metrics["total_cost"] / res["oracle"].metrics["total_cost"]
        rows.append([f"{pen:g}", "plan / oracle", "", "", "", "", "", f"{r:.3f}x"])
    rep.lines += [
        f"**Sensitivity to the service penalty** (after the {warmup}-day warm-up; "
        "`PlanConfig.service_penalty` x price per unit of expected lost sales beyond the "
        "category's fill-rate target, the same for plan and oracle; the default is "
        f"{default:g}):", ""]
    rep.lines += md_table(["service_penalty", "policy", "fill rate", "waste %", "turnover",
                      "lost margin", "waste cost", "total cost"], rows) + [""]


# --------------------------------------------------------------------------- main
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="a couple of minutes: one repeat, run plan on small, a 7-day "
                   "simulation with a 7-day warm-up")
    p.add_argument("--parts", default="store,medium,simulate",
                   help="comma-separated parts (default all: store,medium,simulate)")
    p.add_argument("--store-skus", type=int, default=8000, help="SKUs of the one store")
    p.add_argument("--repeat", type=int, default=3, help="solves per solver (median)")
    p.add_argument("--medium-days", type=int, default=35,
                   help="days of the generated medium world; the plan is for the last one "
                   "(default 35: past the 28 days of sales the moving-average forecast "
                   "reads, with the world's stock in its steady state)")
    p.add_argument("--medium-solvers", default="cbc,highs",
                   help="solvers for run plan, in this order (default cbc,highs)")
    p.add_argument("--sim-days", type=int, default=28, help="measured days (default 28)")
    p.add_argument("--warmup", type=int, default=28,
                   help="unmeasured warm-up days of the second simulation (default 28)")
    p.add_argument("--sim-forecasts", default="weekday_moving_average",
                   choices=["weekday_moving_average", "moving_average", "seasonal_naive",
                            "lake", "champion"],
                   help="the plan policy's forecasts (default weekday_moving_average: a "
                   "28-day moving average with each store's weekday shape, festival days "
                   "left out of its history, promotions scaled by a learnt elasticity, "
                   "negative-binomial quantiles). lake needs "
                   "--sim-home with lake/forecasts for every replayed night; champion scores "
                   "each night with the registered ensemble (--sim-home with features and a "
                   "champion, or, without it, the bench builds the features and trains one "
                   "first: ~20 min more). Other than the default, the results go to a "
                   "section of RESULTS.md of their own")
    p.add_argument("--sim-retrain", choices=["weekly", "never"], default="weekly",
                   help="with --sim-forecasts champion: weekly runs the nightly train step "
                   "before scoring each night (jobs.simulate --retrain: a new version when "
                   "the champion is 7 days old, promoted if it beats it), replaying the "
                   "warm-up run first so nights are scored in date order; never scores every "
                   "night with the model trained before the replay (default weekly)")
    p.add_argument("--sim-history", choices=["simulated", "world"], default="simulated",
                   help="whose sales the history forecasts learn from during the replay: "
                   "simulated (the plan's own, default) or world (the generated world's "
                   "min-max sales, what lake and champion forecasts read; jobs.simulate "
                   "--history world); world's results go to a section of RESULTS.md of "
                   "their own")
    p.add_argument("--sim-home", type=Path, default=None,
                   help="simulate this existing world (default: generate small, 120 days)")
    p.add_argument("--sim-solver", default="cbc", choices=["cbc", "highs"])
    p.add_argument("--penalties", default="",
                   help="comma-separated service penalties to simulate plan and oracle with "
                   "again after the warm-up (a sensitivity table; default none)")
    p.add_argument("--sim-decompose", action="store_true",
                   help="after the simulations, re-run the plan of the longer replay with the "
                   "truth's mean, then the truth's spread, swapped into its forecasts "
                   "(jobs.simulate --swap): what of its cost gap to the oracle is the "
                   "forecasts' level and what their spread (default off)")
    p.add_argument("--keep", action="store_true", help="keep the temporary homes")
    p.add_argument("--out", default=str(RESULTS),
                   help="RESULTS.md to update ('-' to only print); default bench/RESULTS.md")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still delete the temp homes
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("py4j").setLevel(logging.ERROR)
    logging.getLogger("jobs.plan").setLevel(logging.ERROR)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    if args.sim_forecasts == "lake" and args.sim_home is None:
        _parser().error("--sim-forecasts lake needs --sim-home (a world with lake/forecasts)")
    if args.sim_history == "world" and args.sim_forecasts in ("lake", "champion"):
        _parser().error(f"--sim-history world is for the history forecasts; "
                        f"--sim-forecasts {args.sim_forecasts} already reads the world's sales")
    parts = set(args.parts.split(","))
    quick = args.quick
    repeat = 1 if quick else args.repeat
    sim_days, warmup = (7, 7) if quick else (args.sim_days, args.warmup)
    temps: list[Path] = []

    def home(tag: str) -> Path:
        path = Path(tempfile.mkdtemp(prefix=f"bench-plan-{tag}-"))
        temps.append(path)
        return path

    rep = Report()
    started = time.perf_counter()
    load = LoadSampler(every=10).start()
    try:
        if "store" in parts:
            part_store(rep, args.store_skus, repeat)
        if "medium" in parts:
            scenario, days = ("small", 14) if quick else ("medium", args.medium_days)
            part_medium(rep, scenario, days, home(scenario),
                        [s for s in args.medium_solvers.split(",") if s])
        if "simulate" in parts:
            part_simulate(rep, args.sim_home, sim_days, warmup, args.sim_forecasts,
                          args.sim_solver, home("sim"),
                          [float(x) for x in args.penalties.split(",") if x.strip()],
                          retrain=args.sim_retrain == "weekly", history=args.sim_history,
                          decompose=args.sim_decompose)
    finally:
        load.stop()
        _stop_spark()
        if args.keep:
            _say("kept: " + ", ".join(map(str, temps)))
        else:
            for path in temps:
                shutil.rmtree(path, ignore_errors=True)

    total = time.perf_counter() - started
    info = machine()
    section = SECTION if args.sim_forecasts == "weekday_moving_average" else (
        f"## Plan: policy simulation with `{args.sim_forecasts}` forecasts")
    if args.sim_history == "world":
        section = (f"## Plan: policy simulation with `{args.sim_forecasts}` forecasts learnt "
                   "from the world's sales")
    text = [section, "", f"Command: `{command()}` (from the repository root)", "",
            machine_line(info), "",
            f"Total wall time {total / 60:.1f} min. The machine's 1-minute load average during "
            f"the run: {load.text()} on {info['nproc']} CPUs (above {info['nproc']}, other "
            "work competed for the CPUs and wall times are pessimistic).", ""]
    text += rep.lines
    if rep.verdicts:
        text += ["### Targets", ""]
        text += md_table(["check", "measured", "target", "verdict"], rep.verdicts,
                    ":---|---:|---:|:---") + [""]
    out = "\n".join(text)
    print(out)
    if args.out != "-":
        update_results(Path(args.out), out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
