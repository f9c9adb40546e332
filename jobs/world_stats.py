"""Read a generated world back and measure it: the calibration evidence.

These figures are what the min-max rule achieved in the generated world (the case study's
"before"): fill rate, waste of perishables, inventory turnover, naive forecast MAPE, and the
shape of demand (evening share, festival uplift, weekly pattern, monsoon effect).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow.compute as pc

from jobs.config import Config
from jobs.lake import list_dates, read_range, read_snapshot

__all__ = ["WorldStats", "measure"]


@dataclass(frozen=True)
class WorldStats:
    days: int
    pairs: int
    fill_rate: float
    stockout_pair_day_share: float
    perishable_waste_pct: float
    turnover: float
    naive_mape: float
    naive_mape_store_category: float
    evening_share: float
    festival_uplift: float
    weekend_ratio: float
    monsoon_rain_effect: float
    daily_swing: float


def measure(cfg: Config, start: dt.date | None = None, end: dt.date | None = None,
            warmup_days: int = 28) -> WorldStats:
    """Measure the world between ``start`` and ``end``, skipping the rule's warm-up days."""
    dates = list_dates(cfg.truth, "demand")
    start = start or dates[0] + dt.timedelta(days=warmup_days)
    end = end or dates[-1]
    truth = read_range(cfg.truth, "demand", start, end).to_pandas()
    inv = read_range(cfg.landing, "inventory", start, end,
                     ["store_id", "sku_id", "on_hand", "received", "wasted"]).to_pandas()
    skus = read_snapshot(cfg.landing, "skus", end).to_pandas().set_index("sku_id")
    stores = read_snapshot(cfg.landing, "stores", end).to_pandas().set_index("store_id")
    n_days = (end - start).days + 1

    fill = truth.sold.sum() / max(truth.demand.sum(), 1)
    stockout = float(((truth.available == 0) | (truth.lost > 0)).mean())
    per = inv.sku_id.map(skus.is_perishable)
    waste = inv.wasted[per].sum() / max(inv.received[per].sum(), 1)
    cost = inv.sku_id.map(skus.unit_cost)
    cogs = (truth.sold * truth.sku_id.map(skus.unit_cost)).sum() * 365.0 / n_days
    avg_inv = (inv.on_hand * cost).sum() / n_days
    turnover = cogs / max(avg_inv, 1e-9)

    # Naive forecast (same weekday last week) MAPE on non-zero days of sold units.
    s = truth.pivot_table(index="date", columns=["store_id", "sku_id"], values="sold")
    naive = s.shift(7)
    sv, nv = s.to_numpy(), naive.to_numpy()
    mask = (sv > 0) & ~np.isnan(nv)
    mape = float(np.mean(np.abs(sv[mask] - nv[mask]) / sv[mask]))
    # The same at store x category x day, the level the case study's MAPE refers to.
    cat_sold = truth.assign(category=truth.sku_id.map(skus.category)).pivot_table(
        index="date", columns=["store_id", "category"], values="sold", aggfunc="sum")
    cv, cn = cat_sold.to_numpy(), cat_sold.shift(7).to_numpy()
    cmask = (cv > 0) & ~np.isnan(cn)
    cat_mape = float(np.mean(np.abs(cv[cmask] - cn[cmask]) / cv[cmask]))
    # Daily swing: the median absolute day-over-day change of a store-category's units.
    cat = truth.assign(category=truth.sku_id.map(skus.category)).groupby(
        ["store_id", "category", "date"]).demand.sum().unstack("date")
    swing = float(np.nanmedian(np.abs(cat.pct_change(axis=1, fill_method=None)).to_numpy()))

    sales = read_range(cfg.landing, "sales", start, end, ["ts", "quantity", "store_id"])
    hour = pc.hour(sales["ts"]).to_numpy()
    qty = sales["quantity"].to_numpy()
    evening = qty[(hour >= 18) & (hour < 22)].sum() / max(qty.sum(), 1)

    cal = read_range(cfg.landing, "calendar", start, end).to_pandas()
    region_of = truth.store_id.map(stores.region)
    fest = cal.set_index(["date", "region"]).festival_intensity
    key = pd.MultiIndex.from_arrays([truth.date, region_of])
    inten = fest.reindex(key).to_numpy()
    ratio = truth.demand / truth.expected_demand.where(truth.expected_demand > 0)
    per_day = truth.assign(inten=inten).groupby(["date"]).agg(
        demand=("demand", "sum"), inten=("inten", "max"))
    base = per_day.demand[per_day.inten == 0].mean()
    uplift = per_day.demand[per_day.inten >= 0.9].mean() / base if base else float("nan")
    dow = pd.to_datetime(per_day.index).dayofweek
    weekend = per_day.demand[dow >= 5].mean() / per_day.demand[dow < 5].mean()

    weather = read_range(cfg.landing, "weather", start, end).to_pandas()
    rain = weather.set_index(["date", "city"]).rain_mm
    rain_k = rain.reindex(pd.MultiIndex.from_arrays(
        [truth.date, truth.store_id.map(stores.city)])).to_numpy()
    moved = truth.sku_id.map(skus.category).isin(["instant_food", "snacks"]).to_numpy()
    wet = truth.expected_demand[moved & (rain_k > 15)].mean()
    dry = truth.expected_demand[moved & (rain_k == 0)].mean()
    del ratio
    return WorldStats(
        days=n_days, pairs=int(truth.groupby(["store_id", "sku_id"]).ngroups),
        fill_rate=round(float(fill), 4), stockout_pair_day_share=round(stockout, 4),
        perishable_waste_pct=round(float(waste) * 100, 2), turnover=round(float(turnover), 2),
        naive_mape=round(mape * 100, 2), naive_mape_store_category=round(cat_mape * 100, 2), evening_share=round(float(evening), 4),
        festival_uplift=round(float(uplift), 3), weekend_ratio=round(float(weekend), 3),
        monsoon_rain_effect=round(float(wet / dry - 1), 3) if dry else float("nan"),
        daily_swing=round(swing, 3))
