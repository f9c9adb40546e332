"""``replenish run cluster --date D``: k-means++ store clusters from the last weeks of demand.

Reads ``lake/demand_daily`` for the ``CLUSTER_DAYS`` days up to D and the store snapshot of D,
computes the six store features (``models.clustering``), picks k in 2..12 by silhouette and
writes ``lake/clusters/date=D`` (store_id, cluster, k, silhouette and the features), with the
elbow and cluster plots under ``$REPLENISH_HOME/reports/clusters/D/`` (``train`` logs them to
MLflow). Cluster numbers are ordered by size of store (0 = the smallest), so they mean the same
from night to night; ``train`` uses them as a feature and as the segment of the ensemble
weights.
"""
from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from jobs.config import Config
from jobs.lake import list_dates, read_partition, read_range, read_snapshot, write_partition

__all__ = ["run", "ClusterStepResult", "CLUSTER_DAYS", "read_clusters", "clean_root"]

CLUSTER_DAYS = 56


@dataclass(frozen=True)
class ClusterStepResult:
    run_date: dt.date
    stores: int
    k: int
    silhouette: float
    plots: tuple[Path, ...]
    seconds: float

    def summary(self) -> str:
        return (f"cluster {self.run_date}: {self.stores} stores in k={self.k} clusters "
                f"(silhouette {self.silhouette:.3f}) in {self.seconds:.1f} s; plots in "
                f"{self.plots[0].parent if self.plots else '-'}")


def store_totals(day: pa.Table) -> pa.Table:
    """One partition of ``demand_daily`` summed to (store_id, demand) over its known values.

    The clustering reads only each store's daily total, so a partition is reduced as it is
    read (a blinkit world's 56 days of every pair would be 170 M rows). A store whose demand
    is unknown on every SKU that day gets no row: the same gap ``store_features`` sees in
    the pair-level rows, which it interpolates."""
    known = day.filter(pc.and_(pc.is_valid(day["demand"]),
                               pc.invert(pc.is_nan(day["demand"].cast(pa.float64())))))
    out = known.group_by("store_id").aggregate([("demand", "sum")])
    return out.rename_columns(["store_id", "demand"]).select(["store_id", "demand"])


def clean_root(cfg: Config) -> Path:
    return cfg.lake / "clean"


def run(cfg: Config, run_date: dt.date) -> ClusterStepResult:
    import matplotlib

    matplotlib.use("Agg")
    from models.clustering import cluster_plot, cluster_stores, elbow_plot, store_features

    t0 = time.perf_counter()
    start = run_date - dt.timedelta(days=CLUSTER_DAYS - 1)
    if not [d for d in list_dates(cfg.lake, "demand_daily") if start <= d <= run_date]:
        raise FileNotFoundError(f"table 'demand_daily': no partitions between {start} and "
                                f"{run_date}; run build_features first")
    demand = read_range(cfg.lake, "demand_daily", start, run_date,
                        columns=["store_id", "demand"], where=store_totals).to_pandas()
    stores = read_snapshot(clean_root(cfg), "stores", run_date).to_pandas()
    feats = store_features(demand, stores)
    result = cluster_stores(feats)
    silhouette = float(result.silhouette_by_k.get(result.k, float("nan")))
    out = feats.merge(result.labels, on="store_id")
    out["k"] = result.k
    out["silhouette"] = silhouette
    table = pa.Table.from_pandas(out, preserve_index=False)
    write_partition(cfg.lake, "clusters", run_date, table, schema=table.schema)
    folder = cfg.reports / "clusters" / run_date.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    plots = []
    for name, fig in (("elbow.png", elbow_plot(result)), ("clusters.png",
                                                          cluster_plot(feats, result))):
        fig.savefig(folder / name, dpi=100, bbox_inches="tight")
        plots.append(folder / name)
    return ClusterStepResult(run_date, len(out), result.k, silhouette, tuple(plots),
                             round(time.perf_counter() - t0, 1))


def read_clusters(cfg: Config, day: dt.date) -> pa.Table:
    """The clusters in force on ``day`` (the latest partition on or before it)."""
    dates = [d for d in list_dates(cfg.lake, "clusters") if d <= day]
    if not dates:
        raise FileNotFoundError(f"table 'clusters': no partition on or before {day}; run "
                                f"`replenish run cluster --date {day}` first")
    return read_partition(cfg.lake, "clusters", dates[-1])
