"""The feature table: one row per (date D, store, SKU) of ``demand`` in [start, end].

History features of a row at D read only the pair's days in [D-k, D-1]; covariates
(calendar, weather, promotion, price, store, SKU attributes) are known in advance for D.
``features.catalog`` documents every column.

How it stays exact and fast:

- Dense days. The daily ``demand`` rows of [start - lookback, end] are laid out as arrays
  with one row per day and one column per (store, SKU) pair, the day's promotions beside
  them; ``features.kernel`` computes the history features of a block of days at once with
  numpy. Missing days stay missing: a lag landing on a day the pair was not active is null,
  rolling windows use the days present.
- Incremental == full. Every window is bounded by ``lookback`` days (>= 30), float window
  sums add the days in a fixed order (D-1, D-2, ...), and every unbounded quantity is
  capped (days since the last sale or festival: ``lookback + 1``; festival look-ahead: 60
  days; ages: 365), so building D alone from [D-lookback, D] gives the same numbers, bit for
  bit, as a backfill over years.
- Censored days. A stock-out day without any sale has ``demand`` null (unknown). For a row
  at D such a day counts, in lags and windows, as the pair's mean demand over its
  non-censored days in [D-30, D-1] (else its mean corrected demand there, else 0). The
  imputation is relative to the row, which is what keeps it incremental. On the ``tiny``
  world it is 7% below the true demand of those days on average (mean absolute error
  1.3 units; taking them as 0 would be 2.1).
- Day by day out. ``feature_tables`` yields one Arrow table per day, rows sorted by
  (store_id, sku_id), so the job writes each date's partition straight away.

Inputs must cover [start - lookback, end] (``demand``, ``promotions``, ``weather``,
``calendar``) and the calendar should reach end + 60 days for the festival look-ahead.
``weather``, ``promotions`` and ``calendar`` may be None (their features are null, or "no
promotion"). Frames are pandas; a ``date`` column may hold ``datetime.date`` objects or
datetime64 values.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from features.catalog import (
    AGE_CAP_DAYS,
    CATEGORY_CODES,
    FEATURES,
    FESTIVAL_HORIZON_DAYS,
    KEYS,
    LABELS,
    MAX_WINDOW,
    NEW_SKU_DAYS,
    PROMO_TYPES,
    RAINY_MM,
    REGION_CODES,
    ZONE_CODES,
)
from features.kernel import Days, history_features

__all__ = ["build_features", "feature_tables", "FEATURE_SCHEMA"]

_ARROW = {"double": pa.float64(), "int": pa.int32(), "boolean": pa.bool_()}
_LABEL_TYPES = {"units_sold": "int", "demand": "double", "censored": "boolean"}
# Never null, whatever the inputs; marked required in the files, as Spark wrote them before,
# so partitions written before and after read together.
_REQUIRED = frozenset({"history_days", "on_promotion", "discount_pct", "price_ratio",
                       "store_age_days", "sku_age_days",
                       *(f"promo_type_{t}" for t in PROMO_TYPES)})
#: The feature table's columns and types: KEYS + LABELS + FEATURES (catalog ``dtype``).
FEATURE_SCHEMA = pa.schema(
    list(zip(KEYS, (pa.date32(), pa.int32(), pa.int32()), strict=True))
    + [(name, _ARROW[_LABEL_TYPES[name]]) for name in LABELS]
    + [pa.field(f.name, _ARROW[f.dtype], nullable=f.name not in _REQUIRED) for f in FEATURES])
_TYPES = {**_LABEL_TYPES, **{f.name: f.dtype for f in FEATURES}}

_STORE_ATTRS = ("customer_density", "competitor_proximity_km", "demographic_index",
                "capacity_ambient_l", "capacity_chilled_l", "capacity_frozen_l", "daily_budget")
_SKU_INTS = ("shelf_life_days", "case_pack", "moq_cases", "lead_time_days")
_SKU_DOUBLES = ("unit_cost", "price", "volume_l")
_CALENDAR = ("is_payday", "is_holiday", "is_festival", "festival_intensity",
             "days_to_next_festival", "days_since_last_festival")
_WEATHER = ("temp_max_c", "rain_mm", "humidity", "is_rainy", "rain_3d_mm")
# Promotion flags of a day, as bits: any promotion, then one bit per type in PROMO_TYPES.
_PROMO_ANY = 1
# History arrays of one block: about this many (day, pair) cells, to bound memory.
_BLOCK_CELLS = 1_000_000
_EPOCH = np.datetime64("1970-01-01", "D")


def build_features(demand: pd.DataFrame, calendar: pd.DataFrame | None,
                   weather: pd.DataFrame | None, promotions: pd.DataFrame | None,
                   stores: pd.DataFrame, skus: pd.DataFrame, start: dt.date, end: dt.date,
                   lookback: int = MAX_WINDOW) -> pd.DataFrame:
    """Features for every row of ``demand`` dated in [start, end]: KEYS + LABELS + FEATURES.

    ``demand`` (``features.demand.demand_daily`` rows) must also hold the ``lookback`` days
    before ``start``; rows outside [start - lookback, end] are ignored. Nulls are NaN
    (floats) or ``pd.NA`` (nullable Int32 and boolean columns); ``date`` holds dates.
    """
    first = _first_day(start, end, lookback)
    by_day = _split_days(demand, first, end)
    tables = [t for _, t in feature_tables(by_day, calendar, weather, promotions, stores,
                                           skus, start, end, lookback)]
    table = pa.concat_tables(tables) if tables else FEATURE_SCHEMA.empty_table()
    mapper = {pa.int32(): pd.Int32Dtype(), pa.bool_(): pd.BooleanDtype()}
    return table.to_pandas(types_mapper=mapper.get)


def feature_tables(demand: Mapping[dt.date, pd.DataFrame], calendar: pd.DataFrame | None,
                   weather: pd.DataFrame | None, promotions: pd.DataFrame | None,
                   stores: pd.DataFrame, skus: pd.DataFrame, start: dt.date, end: dt.date,
                   lookback: int = MAX_WINDOW) -> Iterator[tuple[dt.date, pa.Table]]:
    """The feature rows of each day in [start, end], as (day, Arrow table in
    ``FEATURE_SCHEMA``), rows sorted by (store_id, sku_id); a day without rows gives an
    empty table.

    ``demand`` maps each day to that day's ``demand_daily`` rows (its ``date`` column, if
    any, is ignored); days outside [start - lookback, end] are ignored.
    """
    first = _first_day(start, end, lookback)
    lay = _layout(demand, first, start, end)
    if promotions is not None:
        _add_promotions(lay, promotions, first)
    static = _Static(lay.keys, stores, skus)
    covariates = _Covariates(static, calendar, weather, start, end, lookback)
    days = Days(lay.present, lay.demand, lay.units, lay.evening, lay.revenue, lay.stockout,
                (lay.bits & _PROMO_ANY) > 0)
    n_out = (end - start).days + 1
    block = max(1, min(n_out, _BLOCK_CELLS // max(1, len(lay.keys))))
    for b0 in range(0, n_out, block):
        b1 = min(n_out, b0 + block)
        hist = history_features(days, lookback + b0, lookback + b1, lookback)
        for i in range(b0, b1):
            day = start + dt.timedelta(days=i)
            t = lookback + i
            pairs = np.flatnonzero(lay.present[t])
            cols = {name: values[i - b0, pairs] for name, values in hist.items()}
            cols.update({name: values[i, pairs] for name, values in lay.labels.items()})
            cols.update(static.columns(pairs))
            cols.update(covariates.columns(i, pairs))
            cols.update(_day_columns(day, lay, static, t, pairs, cols))
            yield day, _table(day, lay.keys[pairs], cols)


# ----------------------------------------------------------------------------- layout


@dataclass
class _Layout:
    """The demand rows of [first, end] as arrays [day, pair], pairs sorted by key."""

    keys: np.ndarray      # int64 pair keys, sorted
    present: np.ndarray
    demand: np.ndarray
    units: np.ndarray
    evening: np.ndarray
    revenue: np.ndarray
    stockout: np.ndarray
    labels: dict[str, np.ndarray]  # [day of [start, end], pair], float64, NaN for null
    discount: np.ndarray  # max discount of the day, NaN without promotion
    bits: np.ndarray      # promotion bits of the day


def _layout(demand: Mapping[dt.date, pd.DataFrame], first: dt.date, start: dt.date,
            end: dt.date) -> _Layout:
    n_days, skip = (end - first).days + 1, (start - first).days
    items = sorted(((day, df) for day, df in demand.items() if first <= day <= end and len(df)),
                   key=lambda item: item[0])
    day_keys = [_pair_key(df) for _, df in items]
    keys = (np.sort(pd.unique(np.concatenate(day_keys))) if items
            else np.empty(0, dtype=np.int64))
    shape = (n_days, len(keys))
    lay = _Layout(keys, np.zeros(shape, dtype=bool), np.full(shape, np.nan),
                  np.zeros(shape, dtype=np.int32), np.zeros(shape, dtype=np.int32),
                  np.zeros(shape), np.zeros(shape, dtype=bool),
                  {name: np.full((n_days - skip, len(keys)), np.nan) for name in LABELS},
                  np.full(shape, np.nan), np.zeros(shape, dtype=np.int16))
    for (day, df), key in zip(items, day_keys, strict=True):
        t = (day - first).days
        p = np.searchsorted(keys, key)
        if not (np.diff(p) > 0).all() and len(np.unique(p)) != len(p):
            raise ValueError(f"demand has more than one row for a (store_id, sku_id) on {day}")
        units = _floats(df["units_sold"])
        if np.isnan(units).any():
            raise ValueError(f"demand has rows without units_sold on {day}")
        lay.present[t, p] = True
        lay.demand[t, p] = _floats(df["demand"])
        lay.units[t, p] = units
        lay.evening[t, p] = np.nan_to_num(_floats(df["evening_units"]))
        lay.revenue[t, p] = np.nan_to_num(_floats(df["revenue"]))
        lay.stockout[t, p] = np.nan_to_num(_floats(df["stockout"])) != 0
        if t >= skip:
            for name in LABELS:
                lay.labels[name][t - skip, p] = _floats(df[name])
    return lay


def _add_promotions(lay: _Layout, promotions: pd.DataFrame, first: dt.date) -> None:
    """The day's largest discount and promotion bits of each pair (promotions of pairs
    without demand rows are irrelevant)."""
    t = _day_numbers(promotions["date"]) - _dn(first)
    p = np.searchsorted(lay.keys, _pair_key(promotions)).clip(0, max(0, len(lay.keys) - 1))
    n_days = lay.present.shape[0]
    hit = (t >= 0) & (t < n_days) & (len(lay.keys) > 0)
    if len(lay.keys):
        hit &= lay.keys[p] == _pair_key(promotions)
    flat = t[hit] * len(lay.keys) + p[hit]
    kind = promotions["promo_type"].to_numpy()[hit]
    bits = np.full(len(flat), _PROMO_ANY, dtype=np.int16)
    for i, name in enumerate(PROMO_TYPES):
        bits |= np.where(kind == name, 1 << (i + 1), 0).astype(np.int16)
    np.fmax.at(lay.discount.reshape(-1), flat, _floats(promotions["discount_pct"])[hit])
    np.bitwise_or.at(lay.bits.reshape(-1), flat, bits)


# ----------------------------------------------------------------------------- covariates


class _Static:
    """Store and SKU attributes of every pair (index -1: not in the snapshot: null)."""

    def __init__(self, keys: np.ndarray, stores: pd.DataFrame, skus: pd.DataFrame) -> None:
        self.stores, self.skus = stores.reset_index(drop=True), skus.reset_index(drop=True)
        store, sku = _unpack(keys)
        self.store = _index_of(self.stores, "store_id", store)
        self.sku = _index_of(self.skus, "sku_id", sku)
        st, sk = self.stores, self.skus
        by_store = {"region_code": _codes(st["region"], REGION_CODES),
                    **{c: _floats(st[c]) for c in _STORE_ATTRS}}
        price, cost = _floats(sk["price"]), _floats(sk["unit_cost"])
        by_sku = {"category_code": _codes(sk["category"], CATEGORY_CODES),
                  "zone_code": _codes(sk["zone"], ZONE_CODES),
                  "is_perishable": _floats(sk["is_perishable"]),
                  **{c: np.trunc(_floats(sk[c])) for c in _SKU_INTS},
                  **{c: _floats(sk[c]) for c in _SKU_DOUBLES},
                  "margin": _div(price - cost, price)}
        self.per_pair = {name: _take(values, self.store) for name, values in by_store.items()}
        self.per_pair.update({name: _take(values, self.sku) for name, values in by_sku.items()})
        self.opened = _take(_day_numbers(st["opened_on"], nat=np.nan), self.store)
        self.launched = _take(_day_numbers(sk["launched_on"], nat=np.nan), self.sku)

    def columns(self, pairs: np.ndarray) -> dict[str, np.ndarray]:
        return {name: values[pairs] for name, values in self.per_pair.items()}


class _Covariates:
    """Calendar and weather of each store's region and city, for each day of [start, end]."""

    def __init__(self, static: _Static, calendar: pd.DataFrame | None,
                 weather: pd.DataFrame | None, start: dt.date, end: dt.date,
                 lookback: int) -> None:
        st = static.stores
        self.store = static.store
        n_out = (end - start).days + 1
        self.values: dict[str, np.ndarray] = {}  # [store, day], NaN for null
        nothing = np.full((len(st), n_out), np.nan)
        if calendar is not None:
            grid, regions = _calendar_grid(calendar, start, end, lookback)
            at = _positions(st["region"], regions)
            self.values.update({name: _take(grid[name], at) for name in _CALENDAR})
        else:
            self.values.update({name: nothing for name in _CALENDAR})
        if weather is not None:
            grid, cities = _weather_grid(weather, start - dt.timedelta(days=lookback), start,
                                         end)
            at = _positions(st["city"], cities)
            self.values.update({name: _take(grid[name], at) for name in _WEATHER})
        else:
            self.values.update({name: nothing for name in _WEATHER})

    def columns(self, i: int, pairs: np.ndarray) -> dict[str, np.ndarray]:
        store = self.store[pairs]
        out = {}
        for name, grid in self.values.items():
            day = np.append(grid[:, i], np.nan)  # index -1: a store not in the snapshot
            out[name] = day[store]
        return out


def _calendar_grid(calendar: pd.DataFrame, start: dt.date, end: dt.date,
                   lookback: int) -> tuple[dict[str, np.ndarray], list[str]]:
    """Calendar features [region, day of [start, end]]: NaN without a calendar row."""
    first, ahead = _dn(start) - lookback, _dn(end) + FESTIVAL_HORIZON_DAYS
    dn = _day_numbers(calendar["date"])
    cal = calendar.assign(_dn=dn)[(dn >= first) & (dn <= ahead)]
    cal = cal.drop_duplicates(["region", "_dn"])
    regions = sorted(cal["region"].dropna().unique())
    n_out = (end - start).days + 1
    grid = {name: np.full((len(regions), n_out), np.nan) for name in _CALENDAR}
    for r, region in enumerate(regions):
        rows = cal[cal["region"] == region]
        days = rows["_dn"].to_numpy()
        festival = rows["festival"].notna().to_numpy()
        fest = np.sort(days[festival])
        out = (days >= _dn(start)) & (days <= _dn(end))
        d, t = days[out], days[out] - _dn(start)
        grid["is_payday"][r, t] = _floats(rows["is_payday"])[out]
        grid["is_holiday"][r, t] = _floats(rows["is_holiday"])[out]
        grid["is_festival"][r, t] = festival[out]
        grid["festival_intensity"][r, t] = _floats(rows["festival_intensity"])[out]
        # the first festival day on or after D, and the last one before D
        nxt = np.searchsorted(fest, d, side="left")
        padded = np.concatenate([fest, [np.iinfo(np.int64).max // 2]])
        gap = padded[nxt] - d
        grid["days_to_next_festival"][r, t] = np.minimum(gap, FESTIVAL_HORIZON_DAYS)
        padded = np.concatenate([[np.iinfo(np.int64).min // 2], fest])
        since = d - padded[nxt]
        grid["days_since_last_festival"][r, t] = np.where(since <= lookback, since,
                                                          lookback + 1)
    return grid, regions


def _weather_grid(weather: pd.DataFrame, first: dt.date, start: dt.date,
                  end: dt.date) -> tuple[dict[str, np.ndarray], list[str]]:
    """Weather features [city, day of [start, end]]: NaN without a weather row."""
    dn = _day_numbers(weather["date"])
    wx = weather.assign(_dn=dn)[(dn >= _dn(first)) & (dn <= _dn(end))]
    wx = wx.drop_duplicates(["city", "_dn"])
    cities = sorted(wx["city"].dropna().unique())
    n_all = (end - first).days + 1
    has = np.zeros((len(cities), n_all), dtype=bool)
    raw = {c: np.full((len(cities), n_all), np.nan) for c in ("temp_max_c", "rain_mm",
                                                               "humidity")}
    at = _positions(wx["city"], cities)
    t = wx["_dn"].to_numpy() - _dn(first)
    ok = at >= 0
    has[at[ok], t[ok]] = True
    for c in raw:
        raw[c][at[ok], t[ok]] = _floats(wx[c])[ok]
    rain = raw["rain_mm"]
    three = np.full_like(rain, np.nan)  # rain on D-2, D-1 and D, the days present, in order
    for j in (2, 1, 0):
        v = np.full_like(rain, np.nan)
        v[:, j:] = rain[:, :n_all - j]
        three = np.where(np.isnan(v), three, np.where(np.isnan(three), v, three + v))
    out = slice((start - first).days, n_all)
    with np.errstate(invalid="ignore"):
        rainy = np.where(np.isnan(rain), np.nan, rain >= RAINY_MM)
    grid = {**{c: v[:, out] for c, v in raw.items()}, "is_rainy": rainy[:, out],
            "rain_3d_mm": three[:, out]}
    for name in grid:
        grid[name] = np.where(has[:, out], grid[name], np.nan)
    return grid, cities


def _day_columns(day: dt.date, lay: _Layout, static: _Static, t: int, pairs: np.ndarray,
                 cols: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Calendar of the date itself, the day's promotion and price, ages."""
    n = len(pairs)
    dn = _dn(day)
    disc = np.nan_to_num(lay.discount[t, pairs], nan=0.0)
    bits = lay.bits[t, pairs]
    price_on_day = cols["price"] * (1 - disc)
    out = {
        "day_of_week": np.full(n, float(day.weekday())),
        "is_weekend": np.full(n, float(day.weekday() >= 5)),
        "day_of_month": np.full(n, float(day.day)),
        "month": np.full(n, float(day.month)),
        "week_of_year": np.full(n, float(day.isocalendar()[1])),
        "on_promotion": (bits & _PROMO_ANY > 0).astype(np.float64),
        "discount_pct": disc,
        "price_on_day": price_on_day,
        "price_ratio": 1 - disc,
        "price_vs_avg_30": _div(price_on_day, cols["avg_price_30"]),
        # 0 when the date is unknown (a store or SKU missing from its snapshot)
        "store_age_days": np.nan_to_num(np.clip(dn - static.opened[pairs], 0, AGE_CAP_DAYS)),
        "sku_age_days": np.nan_to_num(np.clip(dn - static.launched[pairs], 0, AGE_CAP_DAYS)),
    }
    since_launch = dn - static.launched[pairs]
    with np.errstate(invalid="ignore"):
        out["is_new_sku"] = np.where(np.isnan(since_launch), np.nan,
                                     since_launch < NEW_SKU_DAYS)
    for i, name in enumerate(PROMO_TYPES):
        out[f"promo_type_{name}"] = (bits & (1 << (i + 1)) > 0).astype(np.float64)
    return out


# ----------------------------------------------------------------------------- output


def _table(day: dt.date, keys: np.ndarray, cols: dict[str, np.ndarray]) -> pa.Table:
    n = len(keys)
    store, sku = _unpack(keys)
    arrays = [pa.array(np.full(n, np.datetime64(day, "D"))),
              pa.array(store.astype(np.int32)), pa.array(sku.astype(np.int32))]
    arrays += [_arrow(cols[name], _TYPES[name]) for name in FEATURE_SCHEMA.names[3:]]
    for field, array in zip(FEATURE_SCHEMA, arrays, strict=True):
        if not field.nullable and array.null_count:
            raise AssertionError(f"BUG: feature {field.name} is null on {day}")
    return pa.Table.from_arrays(arrays, schema=FEATURE_SCHEMA)


def _arrow(values: np.ndarray, dtype: str) -> pa.Array:
    """A float64 column (NaN = null) as an Arrow array of the catalog type."""
    null = np.isnan(values)
    mask = null if null.any() else None
    if dtype == "double":
        return pa.array(values, type=pa.float64(), mask=mask)
    whole = np.where(null, 0.0, values)
    if dtype == "int":
        return pa.array(whole.astype(np.int32), type=pa.int32(), mask=mask)
    return pa.array(whole != 0, type=pa.bool_(), mask=mask)


# ----------------------------------------------------------------------------- helpers


def _first_day(start: dt.date, end: dt.date, lookback: int) -> dt.date:
    if lookback < MAX_WINDOW:
        raise ValueError(f"lookback={lookback}: features read up to {MAX_WINDOW} days back")
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    return start - dt.timedelta(days=lookback)


def _split_days(demand: pd.DataFrame, first: dt.date, end: dt.date
                ) -> dict[dt.date, pd.DataFrame]:
    dn = _day_numbers(demand["date"])
    inside = (dn >= _dn(first)) & (dn <= _dn(end))
    rows = demand[inside]
    return {_date(int(d)): part for d, part in rows.groupby(dn[inside], sort=True)}


def _dn(day: dt.date) -> int:
    return int((np.datetime64(day, "D") - _EPOCH).astype(np.int64))


def _date(dn: int) -> dt.date:
    return dt.date(1970, 1, 1) + dt.timedelta(days=dn)


def _day_numbers(col: pd.Series, nat: float | None = None) -> np.ndarray:
    """Days since 1970-01-01 of a date column (dates or datetime64); nulls as ``nat``."""
    days = pd.to_datetime(col).to_numpy().astype("datetime64[D]")
    out = (days - _EPOCH).astype(np.int64)
    if nat is None:
        if np.isnat(days).any():
            raise ValueError(f"column {col.name!r} has null dates")
        return out
    return np.where(np.isnat(days), nat, out.astype(np.float64))


def _pair_key(df: pd.DataFrame) -> np.ndarray:
    """(store_id, sku_id) packed into one int64: store in the high 32 bits."""
    store = df["store_id"].to_numpy().astype(np.int64)
    sku = df["sku_id"].to_numpy().astype(np.int64) & 0xFFFFFFFF
    return (store << 32) | sku


def _unpack(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(store_id, sku_id) of packed pair keys."""
    return keys >> 32, (keys & 0xFFFFFFFF).astype(np.uint32).view(np.int32).astype(np.int64)


def _floats(col: pd.Series) -> np.ndarray:
    """A numeric or boolean column as float64, NaN for null."""
    return col.to_numpy(dtype=np.float64, na_value=np.nan)


def _codes(col: pd.Series, mapping: dict[str, int]) -> np.ndarray:
    """The fixed integer code of a string column (0 when unknown or null)."""
    return col.map(mapping).fillna(0).to_numpy(dtype=np.float64)


def _index_of(frame: pd.DataFrame, key: str, values: np.ndarray) -> np.ndarray:
    """Row of ``frame`` whose ``key`` is each value, -1 if none."""
    index = pd.Index(frame[key].to_numpy().astype(np.int64))
    if not index.is_unique:
        raise ValueError(f"{key} is not unique in its snapshot")
    return index.get_indexer(values)


def _positions(col: pd.Series, names: list[str]) -> np.ndarray:
    """Position of each value of ``col`` in ``names``, -1 if absent or null."""
    return pd.Index(names, dtype=object).get_indexer(col.astype(object))


def _take(values: np.ndarray, at: np.ndarray) -> np.ndarray:
    """values[at] along the first axis, NaN where ``at`` is -1."""
    padded = np.concatenate([values, np.full((1, *values.shape[1:]), np.nan)])
    return padded[at]


def _div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, NaN where den is 0 or either is NaN."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den != 0, num / den, np.nan)
