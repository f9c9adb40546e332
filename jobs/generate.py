"""``replenish generate``: write a synthetic world into the lake, day by day.

Raw tables go to the landing area ``$REPLENISH_HOME/landing/<table>/date=YYYY-MM-DD/``, where
upstream systems would drop their daily extracts (``replenish run ingest`` brings them into
the lake); the ground truth goes to
``$REPLENISH_HOME/truth/demand/date=YYYY-MM-DD/`` and is never read for training. Each day is
written as soon as it is simulated, so memory stays bounded whatever the scenario. The
``promotions`` partitions of the ``PROMOTIONS_AHEAD_DAYS`` days after the window are written too:
promotions are planned, and the last nights' forecasts read them ahead (``jobs.schema``).
"""
from __future__ import annotations

import datetime as dt
import json
import resource
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from jobs.config import Config
from jobs.lake import write_partition
from jobs.schema import EXPIRY_COLUMNS, PROMOTIONS_AHEAD_DAYS, arrow_schema
from jobs.world import SCENARIOS, DayResult, World

__all__ = ["run", "GenerateResult"]


@dataclass(frozen=True)
class GenerateResult:
    scenario: str
    seed: int
    start: dt.date
    days: int
    stores: int
    skus: int
    rows: dict[str, int]
    seconds: float
    peak_rss_mb: float

    @property
    def rows_per_second(self) -> float:
        return sum(self.rows.values()) / max(self.seconds, 1e-9)


def _table(name: str, columns: dict) -> pa.Table:
    schema = arrow_schema(name)
    return pa.table({f.name: pa.array(columns[f.name] if len(columns[f.name]) else [], f.type)
                     for f in schema}, schema=schema)


def _txn_ids(day: dt.date, n: int) -> pa.Array:
    seq = pc.cast(pa.array(np.arange(n, dtype=np.int64)), pa.string())
    return pc.binary_join_element_wise(pa.scalar(f"T{day:%Y%m%d}"), seq, "-")


def _write_day(cfg: Config, r: DayResult) -> dict[str, int]:
    lines = r.lines
    sales = _table("sales", {
        "txn_id": _txn_ids(r.day, len(lines)), "store_id": lines.store_id.to_numpy(),
        "sku_id": lines.sku_id.to_numpy(), "ts": lines.ts.to_numpy(),
        "quantity": lines.quantity.to_numpy(), "unit_price": lines.unit_price.to_numpy(),
        "on_promotion": lines.on_promotion.to_numpy()})
    inv_cols = {"store_id": r.pair_store.astype(np.int32), "sku_id": r.pair_sku.astype(np.int32),
                "on_hand": r.on_hand, "on_order": r.on_order, "received": r.received,
                "wasted": r.wasted}
    inv_cols.update({c: r.expiry[:, i] for i, c in enumerate(EXPIRY_COLUMNS)})
    inventory = _table("inventory", {k: np.asarray(v).astype(np.int32) if k not in (
        "store_id", "sku_id") else v for k, v in inv_cols.items()})
    truth = _table("demand", {
        "store_id": r.pair_store.astype(np.int32), "sku_id": r.pair_sku.astype(np.int32),
        "expected_demand": np.round(r.expected, 4), "nb_dispersion": np.round(r.dispersion, 4),
        "demand": r.demand.astype(np.int32), "available": r.available.astype(np.int32),
        "sold": r.sold.astype(np.int32), "lost": (r.demand - r.sold).astype(np.int32)})
    out = {
        "sales": sales, "inventory": inventory,
        "promotions": _table("promotions", {c: r.promotions[c].to_numpy()
                                            for c in r.promotions.columns}),
        "weather": _table("weather", {c: r.weather[c].to_numpy() for c in r.weather.columns}),
        "calendar": _table("calendar", {c: r.calendar[c].to_numpy()
                                        for c in r.calendar.columns}),
    }
    for name, t in out.items():
        write_partition(cfg.landing, name, r.day, t)
    write_partition(cfg.truth, "demand", r.day, truth)
    return {**{k: v.num_rows for k, v in out.items()}, "truth_demand": truth.num_rows}


def _write_planned_promotions(cfg: Config, world: World) -> int:
    """The promotions partitions of the ``PROMOTIONS_AHEAD_DAYS`` days after the window:
    the promotion plan published ahead, which the last nights' forecasts read."""
    n = 0
    for d in range(world.days, world.days + PROMOTIONS_AHEAD_DAYS):
        promos = world.promotion_discount(d)[1]
        t = _table("promotions", {c: promos[c].to_numpy() for c in promos.columns})
        write_partition(cfg.landing, "promotions", world.start + dt.timedelta(days=d), t)
        n += t.num_rows
    return n


def _write_dimensions(cfg: Config, world: World) -> dict[str, int]:
    rows = {}
    for name, frame in (("stores", world.stores), ("skus", world.skus)):
        schema = arrow_schema(name)
        t = pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)
        write_partition(cfg.landing, name, world.start, t)
        rows[name] = t.num_rows
    return rows


def _progress(total: int, label: str, enabled: bool):
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return None
    return tqdm(total=total, desc=label, unit="day", disable=not enabled, file=sys.stderr)


def run(cfg: Config, scenario: str = "tiny", start: dt.date = dt.date(2025, 1, 1),
        days: int | None = None, seed: int = 42, progress: bool = True) -> GenerateResult:
    """Generate ``days`` days of the ``scenario`` world from ``start``, deterministically."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; choose one of {sorted(SCENARIOS)}")
    sc = SCENARIOS[scenario]
    days = days or sc.default_days
    if days < 1:
        raise ValueError(f"--days must be at least 1, got {days}")
    t0 = time.perf_counter()
    world = World(sc, seed=seed, start=start, days=days)
    rows = _write_dimensions(cfg, world)
    bar = _progress(days, f"generate {scenario}", progress)
    for d in range(days):
        for k, v in _write_day(cfg, world.day(d)).items():
            rows[k] = rows.get(k, 0) + v
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    rows["promotions_ahead"] = _write_planned_promotions(cfg, world)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    result = GenerateResult(scenario, seed, start, days, len(world.stores), len(world.skus),
                            rows, round(seconds, 2), round(peak, 1))
    _write_manifest(cfg, result)
    return result


def _write_manifest(cfg: Config, result: GenerateResult) -> None:
    """Record what was generated so later steps and people know the world's window."""
    path = Path(cfg.home) / "world.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    data = asdict(result)
    data["start"] = result.start.isoformat()
    data["end"] = (result.start + dt.timedelta(days=result.days - 1)).isoformat()
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
