"""``replenish run plan --date D``: tonight's order for every active store x SKU pair.

Reads, for run date D:

- ``lake/forecasts/date=D`` (``jobs/score.py``: days D+1..D+7 per pair, mean and quantiles);
- ``lake/clean/inventory/date=D``: the closing stock; its rows are the active pairs, and
  every one of them gets a plan line (zero orders included);
- the ``skus`` and ``stores`` snapshots in force on D (``lake/clean``): case pack, MOQ,
  supplier, lead time, shelf life, volume, cost, price; zone capacities and daily budget;
- ``lake/clean/inventory`` of the :data:`LATE_WINDOW_DAYS` days up to D: each supplier's
  share of late deliveries (``late_prob`` on its lines, learnt as the simulator's ``plan``
  policy learns it; ``optimize/lateness.py`` says what counts as late: lead-time-1 pairs only).
  Without history (the first night) it is 0 and the plan is as before;
- optionally a ``suppliers`` snapshot (``lake/clean/suppliers``: ``supplier_id``,
  ``min_order_value`` in INR per delivery). It is not a raw table yet; without it no supplier
  has a minimum order value.

Joins them into one row per pair x forecast day and solves every store in parallel with
``groupBy("store_id").applyInPandas`` (``optimize.runner.plan_store``: the MILP of
``optimize/milp.py``, its greedy fallback, and ``check_plan`` on every store, every night;
a plan that breaks a constraint is never written: the store falls back to the greedy plan,
then to ordering nothing, each time with the reason on every line).

Writes, each partition replaced whole (a re-run of D gives the same rows, provided no store
hits the solver's time limit):

- ``lake/plans/date=D``: one row per active pair, ``optimize.runner.PLAN_TABLE`` (the first
  20 columns are those of the warehouse table ``replenish.reorder_plan``);
- ``lake/purchase_orders/date=D``: the lines with order_units > 0 grouped by store, supplier
  and delivery date (:data:`PO_COLUMNS`).

With ``cfg.stores`` set (``REPLENISH_STORES``, the nightly DAG's ``stores`` param) only those
stores are planned again; the other stores' rows of the existing partitions are kept, so the
date stays complete for publish.
"""
from __future__ import annotations

import datetime as dt
import logging
import shutil
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from jobs.config import Config
from jobs.lake import list_dates, partition_dir, read_partition, read_snapshot, replace_dir
from optimize.inputs import EXPIRY_COLUMNS, QUANTILE_COLUMNS, PlanConfig
from optimize.lateness import DELIVERY_COLUMNS, LATE_PRIOR, count_deliveries, late_prob
from optimize.runner import PLAN_TABLE, STORE_COLUMNS, plan_store

__all__ = ["run", "PlanResult", "plan_config", "plan_schema", "PO_COLUMNS", "po_id",
           "LATE_WINDOW_DAYS", "Lateness", "supplier_lateness"]

log = logging.getLogger(__name__)

#: Columns of ``lake/purchase_orders`` -> meaning.
PO_COLUMNS: dict[str, str] = {
    "po_id": "PO-<run date>-<store>-<supplier>-<delivery date>: the same keys, the same id",
    "run_date": "Logical date of the planning run",
    "store_id": "Dark store the delivery goes to",
    "supplier_id": "Supplier",
    "delivery_date": "Day the delivery is expected at the store",
    "n_lines": "SKUs ordered",
    "order_cases": "Cases ordered",
    "order_units": "Units ordered",
    "order_value": "Purchase value, INR",
    "order_volume_l": "Volume, litres",
    "min_order_value": "The supplier's minimum order value, INR (0 if none)",
    "min_order_met": "order_value >= min_order_value",
}
_SKU_ATTRS = ("category", "zone", "volume_l", "unit_cost", "price", "case_pack", "moq_cases",
              "supplier_id", "lead_time_days", "shelf_life_days", "is_perishable")
_SOLVED = ("optimal", "feasible", "heuristic")
#: Days of deliveries (D - 27 .. D, each against the close of the day before) that a
#: supplier's ``late_prob`` is learnt from.
LATE_WINDOW_DAYS = 28


def plan_config(cfg: Config) -> PlanConfig:
    """The planner's settings from the job configuration (one thread per store: Spark
    parallelises over stores)."""
    return PlanConfig(solver=cfg.plan_solver, time_limit_s=cfg.plan_time_limit_s,
                      mip_gap=cfg.plan_mip_gap, threads=1)


def plan_schema() -> pa.Schema:
    return pa.schema([pa.field(name, pa.type_for_alias(kind)) for name, kind, _ in PLAN_TABLE])


def po_id(run_date: dt.date, store_id: int, supplier_id: int, delivery_date: dt.date) -> str:
    """The purchase order id of its keys (the Spark job builds the same string)."""
    return f"PO-{run_date:%Y%m%d}-{store_id}-{supplier_id}-{delivery_date:%Y%m%d}"


@dataclass(frozen=True)
class Lateness:
    """Each supplier's ``late_prob`` (index supplier_id; suppliers not seen are absent = 0)
    and what it was learnt from."""
    late_prob: pd.Series
    #: Days whose deliveries were counted (a day needs the close of the day before).
    days: int = 0
    deliveries: int = 0
    late: int = 0

    @property
    def suppliers(self) -> int:
        return int(len(self.late_prob))

    @property
    def mean(self) -> float:
        """Mean ``late_prob`` over the suppliers seen (0 without any)."""
        return float(self.late_prob.mean()) if len(self.late_prob) else 0.0


@dataclass(frozen=True)
class PlanResult:
    run_date: dt.date
    solver: str
    stores: int
    optimal: int
    feasible: int
    heuristic: int
    skipped: int
    lines: int
    lines_ordered: int
    lines_with_reason: int
    units: int
    value: float
    purchase_orders: int
    po_below_min: int
    solve_seconds: float
    slowest_store_seconds: float
    seconds: float
    fallbacks: tuple[str, ...]
    #: Stores whose rows of the date were kept from the previous run (``cfg.stores`` set).
    kept_stores: int = 0
    #: Suppliers whose ``late_prob`` was learnt, the due deliveries seen (lead-1 pairs, last
    #: LATE_WINDOW_DAYS days), those of them that came late, and the mean ``late_prob``.
    late_suppliers: int = 0
    late_deliveries: int = 0
    late_late: int = 0
    late_prob_mean: float = 0.0

    def summary(self) -> str:
        text = (f"plan {self.run_date} ({self.solver}): {self.stores} stores ({self.optimal} "
                f"optimal, {self.feasible} feasible at the time limit, "
                f"{self.heuristic + self.skipped} fallback: {self.heuristic} greedy, "
                f"{self.skipped} nothing ordered); {self.lines:,} lines, "
                f"{self.lines_ordered:,} ordered, {self.units:,} units, {self.value:,.0f} INR; "
                f"{self.purchase_orders:,} purchase orders"
                f"{f' ({self.po_below_min} below the supplier minimum)' if self.po_below_min else ''}"
                f"; {self.seconds:.1f} s wall (solving {self.solve_seconds:.1f} s over all "
                f"stores, slowest store {self.slowest_store_seconds:.1f} s)")
        if self.late_deliveries:
            text += (f"\nlate deliveries: {self.late_late:,} of {self.late_deliveries:,} due "
                     f"(lead-1 pairs, last {LATE_WINDOW_DAYS} days); late_prob learnt for "
                     f"{self.late_suppliers} supplier(s), mean {self.late_prob_mean:.3f}")
        else:
            text += "\nlate deliveries: no history, late_prob 0"
        if self.kept_stores:
            text += (f"\nonly these stores were re-planned; the rows of {self.kept_stores} "
                     "other store(s) were kept from the previous run of the date")
        if self.lines_with_reason:
            text += f"\n{self.lines_with_reason:,} line(s) carry a fallback_reason"
        return text + "".join(f"\nFALLBACK {f}" for f in self.fallbacks)


def _require(root: Path, table: str, day: dt.date, label: str, hint: str) -> Path:
    path = partition_dir(root, table, day)
    if not path.is_dir():
        raise FileNotFoundError(f"table {label}: partition date={day} does not exist under "
                                f"{path.parent}; {hint}")
    return path


def _supplier_minimums(cfg: Config, run_date: dt.date) -> dict[int, float]:
    clean = cfg.lake / "clean"
    if not any(d <= run_date for d in list_dates(clean, "suppliers")):
        return {}
    t = read_snapshot(clean, "suppliers", run_date).to_pandas()
    missing = {"supplier_id", "min_order_value"} - set(t.columns)
    if missing:
        raise ValueError(f"table 'suppliers' (clean): missing columns {sorted(missing)}")
    t = t.dropna(subset=["supplier_id", "min_order_value"])
    return {int(s): float(v) for s, v in zip(t["supplier_id"], t["min_order_value"],
                                             strict=True) if v > 0}


def supplier_lateness(cfg: Config, run_date: dt.date) -> Lateness:
    """Each supplier's ``late_prob`` from the deliveries of the last :data:`LATE_WINDOW_DAYS`
    days of ``lake/clean/inventory`` (all stores; ``optimize.lateness`` counts them). Reads
    four columns of the lead-1 pairs of two partitions at a time and keeps only per-supplier
    counts, so memory does not grow with the window."""
    clean = cfg.lake / "clean"
    first = run_date - dt.timedelta(days=LATE_WINDOW_DAYS)
    days = [d for d in list_dates(clean, "inventory") if first <= d <= run_date]
    if len(days) < 2:
        return Lateness(pd.Series(dtype=float, name="late_prob"))
    skus = read_snapshot(clean, "skus", run_date).select(
        ["sku_id", "supplier_id", "lead_time_days"]).to_pandas()
    skus = skus.dropna()
    one_day = pa.array(skus.loc[skus["lead_time_days"] <= 1, "sku_id"].astype("int64"))
    counts: list[pd.DataFrame] = []
    before, before_day = None, None
    for day in days:
        t = read_partition(clean, "inventory", day, columns=DELIVERY_COLUMNS)
        t = t.filter(pc.is_in(pc.cast(t["sku_id"], pa.int64()), value_set=one_day)).to_pandas()
        if before is not None and before_day == day - dt.timedelta(days=1):
            counts.append(count_deliveries(before, t, skus))
        before, before_day = t, day
    total = pd.concat(counts, ignore_index=True) if counts else pd.DataFrame(
        {"supplier_id": [], "due": [], "late": []})
    return Lateness(late_prob(total, LATE_PRIOR), days=len(counts),
                    deliveries=int(total["due"].sum()), late=int(total["late"].sum()))


def _solver_fn(pcfg: PlanConfig, run_date: dt.date, minimums: Mapping[int, float]):
    def solve(rows: pd.DataFrame) -> pd.DataFrame:
        t0 = time.perf_counter()
        out = plan_store(rows, pcfg, run_date, minimums)
        out["_seconds"] = time.perf_counter() - t0
        return out
    return solve


def run(cfg: Config, run_date: dt.date) -> PlanResult:
    from pyspark import StorageLevel
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema
    from pyspark.sql.types import DoubleType, StructField

    from jobs.lake_spark import read_snapshot as spark_snapshot
    from jobs.spark import get_spark

    t0 = time.perf_counter()
    clean = cfg.lake / "clean"
    fc_path = _require(cfg.lake, "forecasts", run_date, "'forecasts'",
                       f"run score --date {run_date} first")
    inv_path = _require(clean, "inventory", run_date, "'inventory' (clean)",
                        f"run ingest and validate_raw for {run_date} first")
    store_ids = read_partition(clean, "inventory", run_date, columns=["store_id"])
    present = set(pd.unique(store_ids.column("store_id").to_numpy()).tolist())
    if not present:
        raise ValueError(f"table 'inventory' (clean): partition date={run_date} has no rows, "
                         "so there is no active pair to plan")
    subset = tuple(cfg.stores)
    absent = sorted(set(subset) - present)
    if absent:
        raise ValueError(f"stores {absent} (REPLENISH_STORES / the DAG's stores param) have no "
                         f"rows in table 'inventory' (clean), partition date={run_date}")
    n_stores = len(subset) if subset else len(present)
    pcfg = plan_config(cfg)
    minimums = _supplier_minimums(cfg, run_date)
    lateness = supplier_lateness(cfg, run_date)
    log.info("plan %s: late_prob of %d supplier(s) from %d due deliveries over %d day(s) "
             "(%d late), mean %.3f", run_date, lateness.suppliers, lateness.deliveries,
             lateness.days, lateness.late, lateness.mean)

    spark = get_spark(cfg, "replenish-plan")
    inv = spark.read.parquet(str(inv_path)).select(
        "store_id", "sku_id", "on_hand", "on_order", *EXPIRY_COLUMNS)
    if subset:
        inv = inv.where(F.col("store_id").isin(list(subset)))
    skus = spark_snapshot(spark, clean, "skus", run_date).select("sku_id", *_SKU_ATTRS)
    skus = skus.withColumn("late_prob", _by_supplier(lateness.late_prob.to_dict()))
    stores = spark_snapshot(spark, clean, "stores", run_date).select("store_id",
                                                                      *STORE_COLUMNS)
    fc = spark.read.parquet(str(fc_path)).select(
        "store_id", "sku_id", F.col("horizon").cast("int").alias("horizon"), "mean",
        *QUANTILE_COLUMNS, F.col("model").alias("forecast_model"),
        F.col("flags").alias("forecast_flags"))
    rows = (inv.join(F.broadcast(skus), "sku_id", "left")
            .join(F.broadcast(stores), "store_id", "left")
            .join(fc, ["store_id", "sku_id"], "left"))
    # An explicit partition count: adaptive execution must not coalesce the stores into
    # one task (the data is small, the solving is not).
    parts = max(1, min(n_stores, 4 * spark.sparkContext.defaultParallelism))
    schema = from_arrow_schema(plan_schema()).add(StructField("_seconds", DoubleType()))
    plan = (rows.repartition(parts, "store_id").groupBy("store_id")
            .applyInPandas(_solver_fn(pcfg, run_date, minimums), schema)
            .persist(StorageLevel.MEMORY_AND_DISK))
    staging = cfg.lake / f".staging-plan-{uuid.uuid4().hex[:8]}"
    try:
        per_store = _store_stats(plan).toPandas()  # solves every store (and caches)
        po = _purchase_orders(plan, minimums)
        po_stats = po.agg(F.count("*").alias("n"),
                          F.sum(F.when(~F.col("min_order_met"), 1).otherwise(0))
                          .alias("below")).first()
        kept = 0
        out_plan, out_po = plan.drop("_seconds"), po
        if subset:
            out_plan, kept = _with_other_stores(spark, cfg, "plans", run_date, subset, out_plan)
            out_po, _ = _with_other_stores(spark, cfg, "purchase_orders", run_date, subset,
                                           out_po)
        out_plan.orderBy("store_id", "sku_id").write.parquet(
            str(partition_dir(staging, "plans", run_date)))
        out_po.orderBy("po_id").write.parquet(
            str(partition_dir(staging, "purchase_orders", run_date)))
        for table in ("plans", "purchase_orders"):
            final = partition_dir(cfg.lake, table, run_date)
            final.parent.mkdir(parents=True, exist_ok=True)
            replace_dir(partition_dir(staging, table, run_date), final)
    finally:
        plan.unpersist()
        shutil.rmtree(staging, ignore_errors=True)

    status = per_store["status"]
    fallbacks = tuple(f"store {int(r.store_id)}: {r.reason}" for r in per_store.itertuples()
                      if r.status in ("heuristic", "skipped"))
    result = PlanResult(
        run_date=run_date, solver=pcfg.solver, stores=len(per_store),
        optimal=int((status == "optimal").sum()), feasible=int((status == "feasible").sum()),
        heuristic=int((status == "heuristic").sum()), skipped=int((status == "skipped").sum()),
        lines=int(per_store["lines"].sum()), lines_ordered=int(per_store["ordered"].sum()),
        lines_with_reason=int(per_store["with_reason"].sum()),
        units=int(per_store["units"].sum()), value=float(per_store["value"].sum()),
        purchase_orders=int(po_stats["n"]), po_below_min=int(po_stats["below"] or 0),
        solve_seconds=float(per_store["seconds"].sum()),
        slowest_store_seconds=float(per_store["seconds"].max()),
        seconds=round(time.perf_counter() - t0, 1), fallbacks=fallbacks, kept_stores=kept,
        late_suppliers=lateness.suppliers, late_deliveries=lateness.deliveries,
        late_late=lateness.late, late_prob_mean=round(lateness.mean, 4))
    for line in fallbacks:
        log.warning("plan %s: fallback %s", run_date, line)
    return result


def _with_other_stores(spark, cfg: Config, table: str, run_date: dt.date,
                       subset: tuple[int, ...], rows):
    """``rows`` (the re-planned ``subset`` of stores) plus the other stores' rows of the
    date's existing partition, if there is one; (frame, number of stores kept)."""
    from pyspark.sql import functions as F

    path = partition_dir(cfg.lake, table, run_date)
    if not path.is_dir():
        return rows, 0
    old = spark.read.parquet(str(path)).where(~F.col("store_id").isin(list(subset)))
    kept = old.select("store_id").distinct().count()
    # read while writing the staging copy, before the partition is replaced
    return rows.unionByName(old.select(*rows.columns)), kept


def _store_stats(plan):
    """One row per store: its status (optimal | feasible | heuristic, or skipped when no line
    was planned), line counts, units, value, seconds and the first fallback reason."""
    from pyspark.sql import functions as F

    st = F.col("solver_status")
    return (plan.groupBy("store_id").agg(
        F.max(F.when(st.isin(*_SOLVED), st)).alias("status"),
        F.count("*").alias("lines"),
        F.sum(F.when(F.col("order_units") > 0, 1).otherwise(0)).alias("ordered"),
        F.sum(F.when(F.col("fallback_reason").isNotNull(), 1).otherwise(0)).alias(
            "with_reason"),
        F.sum("order_units").alias("units"), F.sum("order_value").alias("value"),
        F.max("_seconds").alias("seconds"),
        F.min(F.when(st.isin("heuristic", "skipped"), F.col("fallback_reason")))
        .alias("reason"))
        .fillna({"status": "skipped"}))


def _by_supplier(values: Mapping[int, float]):
    """A column of ``values[supplier_id]``, 0.0 for a supplier not in ``values``."""
    from pyspark.sql import functions as F

    if not values:
        return F.lit(0.0)
    lookup = F.create_map(*[F.lit(x) for kv in sorted(values.items()) for x in
                            (int(kv[0]), float(kv[1]))])
    return F.coalesce(lookup[F.col("supplier_id")], F.lit(0.0)).cast("double")


def _purchase_orders(plan, minimums: Mapping[int, float]):
    """Lines with order_units > 0 grouped by (store, supplier, delivery date)."""
    from pyspark.sql import functions as F

    po = (plan.where(F.col("order_units") > 0)
          .groupBy("run_date", "store_id", "supplier_id", "delivery_date")
          .agg(F.count("*").cast("int").alias("n_lines"),
               F.sum("order_cases").cast("long").alias("order_cases"),
               F.sum("order_units").cast("long").alias("order_units"),
               F.sum("order_value").alias("order_value"),
               F.sum("order_volume_l").alias("order_volume_l")))
    po = (po.withColumn("min_order_value", _by_supplier(minimums))
          .withColumn("min_order_met", F.col("order_value") >= F.col("min_order_value") - 1e-6)
          .withColumn("po_id", F.format_string(
              "PO-%s-%d-%d-%s", F.date_format("run_date", "yyyyMMdd"), F.col("store_id"),
              F.col("supplier_id"), F.date_format("delivery_date", "yyyyMMdd"))))
    return po.select(*PO_COLUMNS)
