"""A plain pandas reference for ``features.demand`` and ``features.build``.

Loops over rows and days, written to be obviously correct rather than fast: the Spark code is
tested against it on tiny frames. It shares only constants (codes, caps, the intraday
profile) with the code under test, never logic.
"""
from __future__ import annotations

import datetime as dt
import math

import pandas as pd

from features.catalog import (
    AGE_CAP_DAYS,
    CATEGORY_CODES,
    FESTIVAL_HORIZON_DAYS,
    KEYS,
    LABELS,
    NEW_SKU_DAYS,
    PROMO_TYPES,
    RAINY_MM,
    REGION_CODES,
    ZONE_CODES,
    feature_names,
)
from features.demand import DEFAULT_HOURLY_PROFILE, MAX_CORRECTION

DAY = dt.timedelta(days=1)


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den == 0:
        return None
    return num / den


# ----------------------------------------------------------------------------- demand
def demand_daily(sales: pd.DataFrame, inventory: pd.DataFrame | None, pairs: pd.DataFrame,
                 profile=DEFAULT_HOURLY_PROFILE) -> pd.DataFrame:
    rows = []
    for p in pairs.itertuples(index=False):
        lines = sales[(sales.date == p.date) & (sales.store_id == p.store_id)
                      & (sales.sku_id == p.sku_id)]
        qty = [int(q) for q in lines.quantity]
        hours = [t.hour for t in lines.ts]
        units = sum(qty)
        revenue = float(sum(q * u for q, u in zip(qty, lines.unit_price, strict=True)))
        sold_hours = [h for h, q in zip(hours, qty, strict=True) if q > 0]
        last = max(sold_hours) if sold_hours else None
        on_hand = wasted = None
        if inventory is not None:
            inv = inventory[(inventory.date == p.date) & (inventory.store_id == p.store_id)
                            & (inventory.sku_id == p.sku_id)]
            on_hand = int(inv.on_hand.iloc[0]) if len(inv) else None
            wasted = int(inv.wasted.iloc[0]) if len(inv) and "wasted" in inv else 0
        # the shelf emptied by selling: nothing left before the close's write-off
        stockout = on_hand is not None and on_hand + wasted == 0
        if not stockout:
            demand = float(units)
        elif units == 0:
            demand = None
        else:
            share = sum(profile[:last + 1]) / sum(profile)  # sold through hour `last`
            cap = MAX_CORRECTION * units
            demand = min(units / share, cap) if share > 0 else cap
        rows.append({
            "date": p.date, "store_id": p.store_id, "sku_id": p.sku_id,
            "units_sold": units, "revenue": revenue,
            "avg_unit_price": revenue / units if units else None,
            "promo_units": sum(q for q, pr in zip(qty, lines.on_promotion, strict=True) if pr),
            "evening_units": sum(q for q, h in zip(qty, hours, strict=True) if 18 <= h < 22),
            "n_lines": len(qty), "last_sale_hour": last, "on_hand_close": on_hand,
            "stockout": stockout, "demand": demand, "censored": stockout})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- features
def _code(mapping: dict[str, int], key) -> int:
    return mapping.get(key, 0)


def build_features(demand: pd.DataFrame, calendar: pd.DataFrame | None,
                   weather: pd.DataFrame | None, promotions: pd.DataFrame | None,
                   stores: pd.DataFrame, skus: pd.DataFrame, start: dt.date, end: dt.date,
                   lookback: int = 30) -> pd.DataFrame:
    first = start - lookback * DAY
    series: dict[tuple[int, int], dict[dt.date, dict]] = {}
    for r in demand.to_dict("records"):
        if first <= r["date"] <= end:
            series.setdefault((r["store_id"], r["sku_id"]), {})[r["date"]] = r
    promos: dict[tuple[int, int, dt.date], list[dict]] = {}
    if promotions is not None:
        for r in promotions.to_dict("records"):
            promos.setdefault((r["store_id"], r["sku_id"], r["date"]), []).append(r)
    cal = {} if calendar is None else {(r["region"], r["date"]): r
                                       for r in calendar.to_dict("records")}
    wx = {} if weather is None else {(r["city"], r["date"]): r
                                     for r in weather.to_dict("records")}
    st = {r["store_id"]: r for r in stores.to_dict("records")}
    sk = {r["sku_id"]: r for r in skus.to_dict("records")}

    out = []
    for (store, sku), days in sorted(series.items()):
        for day in sorted(days):
            if not start <= day <= end:
                continue
            out.append(_row(day, store, sku, days, promos, cal, wx, st[store], sk[sku],
                            lookback))
    return pd.DataFrame(out, columns=list(KEYS) + list(LABELS) + feature_names())


def _row(day, store, sku, days, promos, cal, wx, s, k, lookback) -> dict:
    row = days[day]

    def past(n: int) -> list[tuple[dt.date, dict]]:
        return [(day - j * DAY, days[day - j * DAY]) for j in range(1, n + 1)
                if day - j * DAY in days]

    def on_promo(d: dt.date) -> bool:
        return (store, sku, d) in promos

    w30 = past(30)
    clean = [r["demand"] for _, r in w30 if not r["stockout"]]
    known = [r["demand"] for _, r in w30 if not _missing(r["demand"])]
    fill = _mean(clean) if clean else (_mean(known) if known else 0.0)

    def value(r: dict) -> float:
        return fill if _missing(r["demand"]) else r["demand"]

    f: dict = {"date": day, "store_id": store, "sku_id": sku, "units_sold": row["units_sold"],
               "demand": None if _missing(row["demand"]) else row["demand"],
               "censored": row["censored"], "history_days": len(past(lookback))}
    for lag in (1, 2, 3, 7, 14, 21, 28, 30):
        r = days.get(day - lag * DAY)
        f[f"lag_{lag}"] = None if r is None else value(r)
    same = [f[f"lag_{lag}"] for lag in (7, 14, 21, 28) if f[f"lag_{lag}"] is not None]
    f["same_weekday_mean_4"] = _mean(same)
    for lag in (1, 7):
        r = days.get(day - lag * DAY)
        f[f"units_lag_{lag}"] = None if r is None else r["units_sold"]
    for n in (3, 7, 14, 30):
        vals = [value(r) for _, r in past(n)]
        m = _mean(vals)
        f[f"roll_mean_{n}"] = m
        f[f"roll_std_{n}"] = (None if m is None
                              else math.sqrt(sum((v - m) ** 2 for v in vals) / len(vals)))
    v7 = [value(r) for _, r in past(7)]
    f["roll_max_7"] = max(v7) if v7 else None
    f["roll_min_7"] = min(v7) if v7 else None

    sold_days = [d for d, r in past(lookback) if r["units_sold"] > 0]
    f["days_since_last_sale"] = (day - max(sold_days)).days if sold_days else lookback + 1
    for n in (7, 30):
        w = [r for _, r in past(n)]
        f[f"zero_sale_share_{n}"] = _ratio(sum(r["units_sold"] == 0 for r in w), len(w))
        f[f"stockout_share_{n}"] = _ratio(sum(bool(r["stockout"]) for r in w), len(w))
    for n in (7, 30):
        w = [r for _, r in past(n)]
        f[f"evening_share_{n}"] = _ratio(sum(r["evening_units"] for r in w),
                                         sum(r["units_sold"] for r in w))
    promo_vals = [value(r) for d, r in w30 if on_promo(d)]
    other_vals = [value(r) for d, r in w30 if not on_promo(d)]
    f["promo_share_30"] = _ratio(len(promo_vals), len(w30))
    mean_other = _mean(other_vals)
    f["promo_lift_30"] = (_mean(promo_vals) / mean_other
                          if promo_vals and mean_other else None)
    f["avg_price_30"] = _ratio(sum(r["revenue"] for _, r in w30),
                               sum(r["units_sold"] for _, r in w30))

    # calendar of the store's region
    c = cal.get((s["region"], day))
    f["day_of_week"] = day.weekday()
    f["is_weekend"] = day.weekday() >= 5
    f["day_of_month"] = day.day
    f["month"] = day.month
    f["week_of_year"] = day.isocalendar()[1]
    f["is_payday"] = None if c is None else bool(c["is_payday"])
    f["is_holiday"] = None if c is None else bool(c["is_holiday"])
    f["is_festival"] = None if c is None else not _missing(c["festival"])
    f["festival_intensity"] = None if c is None else c["festival_intensity"]

    def festival(d: dt.date) -> bool:
        r = cal.get((s["region"], d))
        return r is not None and not _missing(r["festival"])

    if c is None:
        f["days_to_next_festival"] = f["days_since_last_festival"] = None
    else:
        ahead = [e for e in range(FESTIVAL_HORIZON_DAYS + 1) if festival(day + e * DAY)]
        f["days_to_next_festival"] = ahead[0] if ahead else FESTIVAL_HORIZON_DAYS
        back = [j for j in range(1, lookback + 1) if festival(day - j * DAY)]
        f["days_since_last_festival"] = back[0] if back else lookback + 1

    w = wx.get((s["city"], day))
    for col in ("temp_max_c", "rain_mm", "humidity"):
        f[col] = None if w is None else w[col]
    f["is_rainy"] = None if w is None else w["rain_mm"] >= RAINY_MM
    rains = [wx[(s["city"], day - j * DAY)]["rain_mm"] for j in range(3)
             if (s["city"], day - j * DAY) in wx]
    f["rain_3d_mm"] = None if w is None else sum(rains)

    today = promos.get((store, sku, day), [])
    disc = max((p["discount_pct"] for p in today), default=0.0)
    f["on_promotion"] = bool(today)
    f["discount_pct"] = disc
    for t in PROMO_TYPES:
        f[f"promo_type_{t}"] = any(p["promo_type"] == t for p in today)
    f["price_on_day"] = k["price"] * (1 - disc)
    f["price_ratio"] = 1 - disc
    f["price_vs_avg_30"] = _ratio(f["price_on_day"], f["avg_price_30"])

    f["region_code"] = _code(REGION_CODES, s["region"])
    for col in ("customer_density", "competitor_proximity_km", "demographic_index",
                "capacity_ambient_l", "capacity_chilled_l", "capacity_frozen_l",
                "daily_budget"):
        f[col] = s[col]
    f["store_age_days"] = min(max((day - s["opened_on"]).days, 0), AGE_CAP_DAYS)

    f["category_code"] = _code(CATEGORY_CODES, k["category"])
    f["zone_code"] = _code(ZONE_CODES, k["zone"])
    for col in ("is_perishable", "shelf_life_days", "unit_cost", "price", "case_pack",
                "moq_cases", "lead_time_days", "volume_l"):
        f[col] = k[col]
    f["margin"] = (k["price"] - k["unit_cost"]) / k["price"]
    age = (day - k["launched_on"]).days
    f["sku_age_days"] = min(max(age, 0), AGE_CAP_DAYS)
    f["is_new_sku"] = age < NEW_SKU_DAYS
    return f
