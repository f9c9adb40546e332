"""Tiny hand-made inputs for the feature tests, as pandas frames, plus comparison helpers.

Two stores (north / east), three SKUs, 42 days from Saturday 2025-03-01 ("day 0"). What is
special, by (store, sku):

- (1, 1) dairy, sells every day; day 30 is a stock-out with sales (demand corrected up),
  day 35 is missing (a gap), day 36 is a stock-out without any sale (demand unknown), days
  37-39 are on promotion (day 38 twice: a discount and a festival offer).
- (1, 2) snacks, intermittent: every third day sells nothing.
- (2, 1) dairy in the east store; on promotion on days 10-12, which lie in the history.
- (1, 3) a new SKU, launched on day 33: short history.

The north calendar has a festival on days 38-40 and a holiday on day 40; the east one a
festival on day 5. The east city has no weather row on day 39.
"""
from __future__ import annotations

import datetime as dt
import math

import pandas as pd

DAY0 = dt.date(2025, 3, 1)
N_DAYS = 42


def day(i: int) -> dt.date:
    return DAY0 + dt.timedelta(days=i)


SCHEMAS = {
    "stores": "store_id int, store_name string, city string, region string, "
              "customer_density double, competitor_proximity_km double, "
              "demographic_index double, capacity_ambient_l double, capacity_chilled_l double, "
              "capacity_frozen_l double, daily_budget double, opened_on date",
    "skus": "sku_id int, sku_name string, category string, zone string, is_perishable boolean, "
            "shelf_life_days int, unit_cost double, price double, case_pack int, moq_cases int, "
            "supplier_id int, lead_time_days int, volume_l double, launched_on date",
    "sales": "txn_id string, store_id int, sku_id int, ts timestamp_ntz, quantity int, "
             "unit_price double, on_promotion boolean, date date",
    "inventory": "store_id int, sku_id int, on_hand int, on_order int, received int, "
                 "wasted int, date date",
    "demand": "date date, store_id int, sku_id int, units_sold int, revenue double, "
              "avg_unit_price double, promo_units int, evening_units int, n_lines int, "
              "last_sale_hour int, on_hand_close int, stockout boolean, demand double, "
              "censored boolean",
    "calendar": "region string, is_holiday boolean, festival string, "
                "festival_intensity double, is_payday boolean, date date",
    "weather": "city string, temp_max_c double, rain_mm double, humidity double, date date",
    "promotions": "promo_id string, store_id int, sku_id int, discount_pct double, "
                  "promo_type string, date date",
}


def py(v):
    """A plain Python value: numpy scalars unwrapped, NaN/NaT/NA as None."""
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, pd.Timestamp):
        return v.to_pydatetime()
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def stores() -> pd.DataFrame:
    return pd.DataFrame([
        (1, "North DS-1", "Delhi", "north", 12.5, 1.2, 0.7, 900.0, 300.0, 200.0, 15000.0,
         dt.date(2024, 6, 1)),
        (2, "East DS-2", "Kolkata", "east", 8.0, 3.1, 0.4, 600.0, 200.0, 200.0, 9000.0,
         day(-100)),
    ], columns=SCHEMAS["stores"].replace(",", "").split()[0::2])


def skus() -> pd.DataFrame:
    return pd.DataFrame([
        (1, "Milk", "dairy", "chilled", True, 3, 40.0, 50.0, 6, 1, 1, 1, 0.5, day(-400)),
        (2, "Chips", "snacks", "ambient", False, 120, 15.0, 20.0, 12, 1, 2, 2, 0.3, day(-40)),
        (3, "New bar", "mystery_goods", "shelf", False, 200, 60.0, 80.0, 4, 2, 3, 3, 0.1,
         day(33)),
    ], columns=SCHEMAS["skus"].replace(",", "").split()[0::2])


def _demand_row(i: int, store: int, sku: int, units: int, price: float, *,
                stockout: bool = False, demand: float | None = None,
                evening: int | None = None) -> dict:
    if not stockout:
        demand = float(units)
    return {"date": day(i), "store_id": store, "sku_id": sku, "units_sold": units,
            "revenue": units * price, "avg_unit_price": price if units else None,
            "promo_units": 0, "evening_units": units * 3 // 5 if evening is None else evening,
            "n_lines": units, "last_sale_hour": 20 if units else None,
            "on_hand_close": 0 if stockout else 5, "stockout": stockout, "demand": demand,
            "censored": stockout}


def demand() -> pd.DataFrame:
    rows = []
    for i in range(N_DAYS):
        # (1, 1): a gap on day 35, stock-outs on days 30 (with sales) and 36 (without)
        if i == 30:
            rows.append(_demand_row(i, 1, 1, 4, 50.0, stockout=True, demand=6.5))
        elif i == 36:
            rows.append(_demand_row(i, 1, 1, 0, 50.0, stockout=True, demand=None))
        elif i != 35:
            price = 40.0 if 37 <= i <= 39 else 50.0
            rows.append(_demand_row(i, 1, 1, 3 + (i * 7) % 6, price))
        # (1, 2): intermittent
        rows.append(_demand_row(i, 1, 2, 0 if i % 3 == 0 else 1 + i % 4, 20.0,
                                evening=(i % 2)))
        # (2, 1): promotion on days 10-12 sells more
        rows.append(_demand_row(i, 2, 1, 9 if 10 <= i <= 12 else 2 + i % 3,
                                42.5 if 10 <= i <= 12 else 50.0))
        # (1, 3): new from day 33
        if i >= 33:
            rows.append(_demand_row(i, 1, 3, (i - 33) % 3, 80.0))
    return pd.DataFrame(rows)


def promotions() -> pd.DataFrame:
    rows = [(f"D-{i}", 1, 1, 0.2, "discount", day(i)) for i in (37, 38, 39)]
    rows.append(("F-38", 1, 1, 0.1, "festival", day(38)))
    rows += [(f"B-{i}", 2, 1, 0.15, "bundle", day(i)) for i in (10, 11, 12)]
    rows.append(("X-3", 1, 3, 0.05, "clearance", day(40)))  # a type without a column
    return pd.DataFrame(rows, columns=SCHEMAS["promotions"].replace(",", "").split()[0::2])


def calendar(n_days: int = N_DAYS + 60) -> pd.DataFrame:
    rows = []
    for i in range(n_days):
        d = day(i)
        north = {38: 0.4, 39: 1.0, 40: 0.8}
        rows.append(("north", i == 40, "Holi" if i in north else None, north.get(i, 0.0),
                     d.day <= 3, d))
        rows.append(("east", False, "Durga Puja" if i == 5 else None,
                     0.9 if i == 5 else 0.0, d.day <= 3, d))
    return pd.DataFrame(rows, columns=SCHEMAS["calendar"].replace(",", "").split()[0::2])


def weather() -> pd.DataFrame:
    rows = []
    for i in range(N_DAYS):
        rows.append(("Delhi", 30.0 + i % 5, [0.0, 4.2, 12.5, 0.0, 1.0][i % 5], 0.5, day(i)))
        if i != 39:
            rows.append(("Kolkata", 31.5, 2.5 if i % 4 == 0 else 0.0, 0.8, day(i)))
    return pd.DataFrame(rows, columns=SCHEMAS["weather"].replace(",", "").split()[0::2])


def assert_frames_match(actual: pd.DataFrame, expected: pd.DataFrame, keys: list[str],
                        rel: float = 1e-9, abs_: float = 1e-9) -> None:
    """Same columns, same rows by key, and column by column the same values and nulls."""
    assert list(actual.columns) == list(expected.columns)
    a = actual.sort_values(keys).reset_index(drop=True)
    e = expected.sort_values(keys).reset_index(drop=True)
    assert len(a) == len(e), f"{len(a)} rows, expected {len(e)}"
    for k in keys:
        assert list(a[k]) == list(e[k]), f"key column {k} differs"
    problems = []
    for col in a.columns:
        for i, (x, y) in enumerate(zip(map(py, a[col]), map(py, e[col]), strict=True)):
            if x is None or y is None:
                ok = x is None and y is None
            elif isinstance(y, bool) or isinstance(x, bool):
                ok = isinstance(x, bool) and isinstance(y, bool) and x == y
            elif isinstance(y, (int, float)):
                ok = math.isclose(float(x), float(y), rel_tol=rel, abs_tol=abs_)
            else:
                ok = x == y
            if not ok:
                problems.append(f"{col} at {dict(e.loc[i, keys])}: got {x!r}, expected {y!r}")
    assert not problems, f"{len(problems)} differences:\n" + "\n".join(problems[:25])


def plain(df: pd.DataFrame) -> pd.DataFrame:
    """A frame of plain Python values (None for every kind of null), for ``is None`` checks."""
    rows = [tuple(py(v) for v in r) for r in df.itertuples(index=False)]
    return pd.DataFrame(rows, columns=df.columns, dtype=object)
