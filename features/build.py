"""The feature table: one row per (date D, store, SKU) of ``demand`` in [start, end].

History features of a row at D read only the pair's days in [D-k, D-1]; covariates
(calendar, weather, promotion, price, store, SKU attributes) are known in advance for D.
``features.catalog`` documents every column.

How it stays exact and fast:

- One shuffle. The daily ``demand`` rows and the ``promotions`` rows are unioned and
  partitioned once by (store_id, sku_id), ordered by day number. A first window over the
  same day (``rangeBetween(0, 0)``) attaches the day's promotion to its demand row; the
  second computes every history feature with ``rangeBetween(-k, -1)`` frames on day
  numbers, one frame per window size, all in a single pass over the same sort. Missing
  days stay missing: a lag landing on a day the pair was not active is null, rolling
  windows use the days present.
- Incremental == full. Every frame is bounded by ``lookback`` days (>= 30) and every
  unbounded quantity is capped (days since the last sale or festival: ``lookback + 1``;
  festival look-ahead: 60 days; ages: 365), so building D alone from [D-lookback, D] gives
  the same numbers as a backfill over years.
- Censored days. A stock-out day without any sale has ``demand`` null (unknown). For a row
  at D such a day counts, in lags and windows, as the pair's mean demand over its
  non-censored days in [D-30, D-1] (else its mean corrected demand there, else 0). The
  imputation is relative to the row, which is what keeps it incremental. On the ``tiny``
  world it is 7% below the true demand of those days on average (mean absolute error
  1.3 units; taking them as 0 would be 2.1).

Inputs must cover [start - lookback, end] (``demand``, ``promotions``, ``weather``,
``calendar``) and the calendar should reach end + 60 days for the festival look-ahead.
``weather``, ``promotions`` and ``calendar`` may be None (their features are null, or "no
promotion").
"""
from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from pyspark.sql import Window
from pyspark.sql import functions as F

from features.catalog import (
    AGE_CAP_DAYS,
    CATEGORY_CODES,
    FEATURES,
    FESTIVAL_HORIZON_DAYS,
    KEYS,
    LABELS,
    LAGS,
    MAX_WINDOW,
    NEW_SKU_DAYS,
    PROMO_TYPES,
    RAINY_MM,
    REGION_CODES,
    ROLL_WINDOWS,
    SAME_WEEKDAY_LAGS,
    ZONE_CODES,
)

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import Column, DataFrame
    from pyspark.sql.window import WindowSpec

__all__ = ["build_features", "day_number"]

_EPOCH = dt.date(1970, 1, 1)
_PAIR = ["store_id", "sku_id"]
_STORE_ATTRS = ("customer_density", "competitor_proximity_km", "demographic_index",
                "capacity_ambient_l", "capacity_chilled_l", "capacity_frozen_l", "daily_budget")


def day_number(date: Column | str) -> Column:
    """Days since 1970-01-01: the ordering key of every range window."""
    return F.datediff(F.col(date) if isinstance(date, str) else date, F.lit(_EPOCH))


def _dn(day: dt.date) -> int:
    return (day - _EPOCH).days


def _div(num: Column, den: Column) -> Column:
    """num / den, null when den is 0 or null (also under ANSI mode)."""
    return F.try_divide(num, den)


def _code(col: Column, mapping: dict[str, int]) -> Column:
    """The fixed integer code of a string column (0 when unknown)."""
    items = list(mapping.items())
    expr = F.when(col == items[0][0], F.lit(items[0][1]))
    for key, value in items[1:]:
        expr = expr.when(col == key, F.lit(value))
    return expr.otherwise(F.lit(0))


# Promotion flags of a day, as bits: any promotion, then one bit per type in PROMO_TYPES.
_PROMO_ANY = 1


def _promo_bit(i: int) -> int:
    return 1 << (i + 1)


def _end_codegen_stage(df: DataFrame) -> DataFrame:
    """End Spark's whole-stage code generation here, without moving any data.

    Fused together, the history derivations, the covariate joins and the final projection
    generate one Java method above HotSpot's 8 KB JIT limit (``DontCompileHugeMethods``),
    which then runs interpreted, about twice as slow. Coalescing to more partitions than
    exist keeps every partition as it is, but coalesce is not code-generated, so each side
    compiles on its own.
    """
    return df.coalesce(1 << 30)


def _history_rows(demand: DataFrame, promotions: DataFrame | None, first: dt.date,
                  end: dt.date) -> DataFrame:
    """Demand rows in [first, end] with the day's promotion attached (one shuffle)."""
    rows = (demand.where(F.col("date").between(F.lit(first), F.lit(end)))
            .select(*KEYS, day_number("date").alias("dn"),
                    F.col("units_sold").cast("int").alias("units_sold"),
                    F.col("demand").cast("double").alias("demand"),
                    F.col("censored").cast("boolean").alias("censored"),
                    F.col("stockout").cast("boolean").alias("stockout"),
                    F.col("evening_units").cast("int").alias("evening_units"),
                    F.col("revenue").cast("double").alias("revenue")))
    if promotions is None:
        return rows.select("*", F.lit(0.0).alias("discount_pct"), F.lit(0).alias("promo_bits"))
    bits = F.lit(_PROMO_ANY)
    for i, t in enumerate(PROMO_TYPES):
        bits = bits.bitwiseOR(F.when(F.col("promo_type") == t, _promo_bit(i)).otherwise(0))
    promo = (promotions.where(F.col("date").between(F.lit(first), F.lit(end)))
             .select(*KEYS, day_number("date").alias("dn"),
                     F.col("discount_pct").cast("double").alias("_disc"),
                     bits.alias("_bits")))
    # Union, not join: the window below needs the (store, sku) partitioning anyway, so the
    # promotions ride along in the same shuffle instead of a join shuffling demand twice.
    both = rows.select("*", F.lit(True).alias("_is_row")).unionByName(
        promo.select("*", F.lit(False).alias("_is_row")), allowMissingColumns=True)
    same_day = Window.partitionBy(*_PAIR).orderBy("dn").rangeBetween(0, 0)
    return (both.select(
        "*",
        F.coalesce(F.max("_disc").over(same_day), F.lit(0.0)).alias("discount_pct"),
        F.coalesce(F.bit_or("_bits").over(same_day), F.lit(0)).alias("promo_bits"))
        .where(F.col("_is_row"))
        .drop("_disc", "_bits", "_is_row"))


# Small per-day counts (0/1 each) are packed into 8-bit fields of one long, so a window sums
# six counters with one aggregate; a window holds at most 30 days, far below 255.
_BITS = 8
_PRESENT, _UNKNOWN, _ZERO, _STOCKOUT, _PROMO, _PROMO_UNKNOWN = range(6)


def _pack(flags: list[Column]) -> Column:
    out: Column = F.lit(0).cast("long")
    for i, flag in enumerate(flags):
        out = out + F.shiftleft(F.coalesce(flag, F.lit(False)).cast("long"), _BITS * i)
    return out


def _count(k: int, field: int) -> Column:
    """One counter over the k-day window, unpacked from the window's packed sum."""
    return F.shiftright(F.col(f"_c{k}"), _BITS * field).bitwiseAND((1 << _BITS) - 1)


def _history_features(rows: DataFrame, lookback: int) -> DataFrame:
    """Window aggregates over the pair's days in [D-k, D-1], one frame per size."""
    order = Window.partitionBy(*_PAIR).orderBy("dn")

    def past(k: int) -> WindowSpec:
        return order.rangeBetween(-k, -1)

    def on_day(k: int) -> WindowSpec:
        return order.rangeBetween(-k, -k)

    x, u = F.col("demand"), F.col("units_sold")
    promo = F.col("promo_bits").bitwiseAND(_PROMO_ANY) > 0
    counts = _pack([F.lit(True), x.isNull(), u == 0, F.col("stockout"), promo,
                    promo & x.isNull()])
    aggs: list[Column] = []
    for k in ROLL_WINDOWS:
        w = past(k)
        aggs += [F.coalesce(F.sum(counts).over(w), F.lit(0)).alias(f"_c{k}"),
                 F.sum(x).over(w).alias(f"_s{k}"),
                 F.sum(x * x).over(w).alias(f"_q{k}")]
    for k in (7, 30):
        aggs += [F.sum(u).over(past(k)).alias(f"_u{k}"),
                 F.sum("evening_units").over(past(k)).alias(f"_ev{k}")]
    w30 = past(MAX_WINDOW)
    aggs += [F.max(x).over(past(7)).alias("_mx7"), F.min(x).over(past(7)).alias("_mn7"),
             F.sum(F.when(~F.col("stockout"), x)).over(w30).alias("_snc30"),
             F.sum(F.when(promo, x)).over(w30).alias("_sp30"),
             F.sum("revenue").over(w30).alias("_rev30"),
             # exact (integer) and O(1) per row; the cap keeps it within the lookback
             F.max(F.when(u > 0, F.col("dn"))).over(
                 order.rangeBetween(Window.unboundedPreceding, -1)).alias("_last_sale")]
    if lookback != MAX_WINDOW:
        aggs.append(F.count(F.lit(1)).over(past(lookback)).alias("_hist"))
    # -1 marks "active but demand unknown"; null means "not active that day".
    marked = F.coalesce(x, F.lit(-1.0))
    aggs += [F.max(marked).over(on_day(k)).alias(f"_lag{k}") for k in LAGS]
    aggs += [F.max(u).over(on_day(k)).alias(f"_ulag{k}") for k in (1, 7)]
    return rows.select("*", *aggs)


def _fill_and_history(lookback: int) -> list[Column]:
    """history_days, and ``_fill``: the value a censored day without sales stands for."""
    n30, z30, so30 = _count(30, _PRESENT), _count(30, _UNKNOWN), _count(30, _STOCKOUT)
    mean_clean = _div(F.col("_snc30"), n30 - so30)  # stock-out days are the censored ones
    mean_known = _div(F.col("_s30"), n30 - z30)
    fill = F.coalesce(mean_clean, mean_known, F.lit(0.0))
    hist = n30 if lookback == MAX_WINDOW else F.col("_hist")
    return [hist.alias("history_days"), fill.alias("_fill")]


def _history_columns(lookback: int) -> list[Column]:
    """The history features, from the window aggregates and ``_fill``."""
    fill = F.col("_fill")
    out: list[Column] = [F.col("history_days")]
    for k in LAGS:
        raw = F.col(f"_lag{k}")
        out.append(F.when(raw == -1.0, fill).otherwise(raw).alias(f"lag_{k}"))
    same = [F.col(f"lag_{k}") for k in SAME_WEEKDAY_LAGS]
    present = sum((c.isNotNull().cast("int") for c in same), F.lit(0))
    total = sum((F.coalesce(c, F.lit(0.0)) for c in same), F.lit(0.0))
    out.append(_div(total, present).alias("same_weekday_mean_4"))
    out += [F.col(f"_ulag{k}").alias(f"units_lag_{k}") for k in (1, 7)]

    means, stds = [], []
    for k in ROLL_WINDOWS:
        n, z = _count(k, _PRESENT), _count(k, _UNKNOWN)
        s = F.coalesce(F.col(f"_s{k}"), F.lit(0.0)) + z * fill
        q = F.coalesce(F.col(f"_q{k}"), F.lit(0.0)) + z * fill * fill
        mean = _div(s, n)
        means.append(mean.alias(f"roll_mean_{k}"))
        var = F.greatest(_div(q, n) - mean * mean, F.lit(0.0))  # rounding can dip below 0
        stds.append(F.when(n > 0, F.sqrt(var)).alias(f"roll_std_{k}"))
    out += means + stds
    n7 = _count(7, _PRESENT)
    unknown7 = F.when(_count(7, _UNKNOWN) > 0, fill)
    out += [F.when(n7 > 0, F.greatest(F.col("_mx7"), unknown7)).alias("roll_max_7"),
            F.when(n7 > 0, F.least(F.col("_mn7"), unknown7)).alias("roll_min_7")]

    since = F.col("dn") - F.col("_last_sale")
    out.append(F.when(since <= lookback, since).otherwise(F.lit(lookback + 1))
               .alias("days_since_last_sale"))
    out += [_div(_count(k, _ZERO), _count(k, _PRESENT)).alias(f"zero_sale_share_{k}")
            for k in (7, 30)]
    out += [_div(_count(k, _STOCKOUT), _count(k, _PRESENT)).alias(f"stockout_share_{k}")
            for k in (7, 30)]
    out += [_div(F.col(f"_ev{k}"), F.col(f"_u{k}")).alias(f"evening_share_{k}")
            for k in (7, 30)]

    n30, z30 = _count(30, _PRESENT), _count(30, _UNKNOWN)
    n_promo, z_promo = _count(30, _PROMO), _count(30, _PROMO_UNKNOWN)
    s_promo = F.coalesce(F.col("_sp30"), F.lit(0.0))
    s_other = F.coalesce(F.col("_s30"), F.lit(0.0)) - s_promo
    mean_promo = _div(s_promo + z_promo * fill, n_promo)
    mean_other = _div(s_other + (z30 - z_promo) * fill, n30 - n_promo)
    out += [_div(n_promo, n30).alias("promo_share_30"),
            F.when((n_promo > 0) & (mean_other > 0), mean_promo / mean_other)
            .alias("promo_lift_30"),
            _div(F.col("_rev30"), F.col("_u30")).alias("avg_price_30")]
    return out


def _calendar_features(calendar: DataFrame, first: dt.date, last: dt.date,
                       lookback: int) -> DataFrame:
    """Per (region, date): flags of the day and distances to festival days."""
    cal = (calendar.where(F.col("date").between(F.lit(first), F.lit(last)))
           .select("region", "date", day_number("date").alias("dn"), "is_holiday", "is_payday",
                   F.col("festival").isNotNull().alias("is_festival"),
                   F.col("festival_intensity").cast("double").alias("festival_intensity")))
    order = Window.partitionBy("region").orderBy("dn")
    fest_dn = F.when(F.col("is_festival"), F.col("dn"))
    nxt = F.min(fest_dn).over(order.rangeBetween(0, FESTIVAL_HORIZON_DAYS))
    prev = F.max(fest_dn).over(order.rangeBetween(-lookback, -1))
    return cal.select(
        "region", "date", "is_holiday", "is_payday", "is_festival", "festival_intensity",
        F.coalesce(nxt - F.col("dn"), F.lit(FESTIVAL_HORIZON_DAYS)).alias(
            "days_to_next_festival"),
        F.coalesce(F.col("dn") - prev, F.lit(lookback + 1)).alias("days_since_last_festival"))


def _weather_features(weather: DataFrame, first: dt.date, end: dt.date) -> DataFrame:
    w = (weather.where(F.col("date").between(F.lit(first), F.lit(end)))
         .select("city", "date", day_number("date").alias("dn"),
                 F.col("temp_max_c").cast("double").alias("temp_max_c"),
                 F.col("rain_mm").cast("double").alias("rain_mm"),
                 F.col("humidity").cast("double").alias("humidity")))
    three = Window.partitionBy("city").orderBy("dn").rangeBetween(-2, 0)
    return w.select("city", "date", "temp_max_c", "rain_mm", "humidity",
                    (F.col("rain_mm") >= RAINY_MM).alias("is_rainy"),
                    F.sum("rain_mm").over(three).alias("rain_3d_mm"))


def _age(date: Column, since: Column) -> Column:
    return F.least(F.greatest(F.datediff(date, since), F.lit(0)), F.lit(AGE_CAP_DAYS))


def build_features(demand: DataFrame, calendar: DataFrame | None, weather: DataFrame | None,
                   promotions: DataFrame | None, stores: DataFrame, skus: DataFrame,
                   start: dt.date, end: dt.date, lookback: int = MAX_WINDOW) -> DataFrame:
    """Features for every row of ``demand`` dated in [start, end]: KEYS + LABELS + FEATURES.

    ``demand`` (``features.demand.demand_daily`` rows) must also hold the ``lookback`` days
    before ``start``; rows outside [start - lookback, end] are ignored.
    """
    if lookback < MAX_WINDOW:
        raise ValueError(f"lookback={lookback}: features read up to {MAX_WINDOW} days back")
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    first = start - dt.timedelta(days=lookback)

    rows = _history_rows(demand, promotions, first, end)
    hist = _history_features(rows, lookback)
    day = F.col("date")
    base = (hist.where(F.col("dn").between(_dn(start), _dn(end)))
            .select("*", *_fill_and_history(lookback))
            .select(*KEYS, *LABELS, "discount_pct", "promo_bits", *_history_columns(lookback)))
    base = _end_codegen_stage(base)

    st = stores.select(
        "store_id", "city", "region",
        _code(F.col("region"), REGION_CODES).alias("region_code"),
        *[F.col(c).cast("double").alias(c) for c in _STORE_ATTRS], "opened_on")
    sk = skus.select(
        "sku_id",
        _code(F.col("category"), CATEGORY_CODES).alias("category_code"),
        _code(F.col("zone"), ZONE_CODES).alias("zone_code"),
        F.col("is_perishable").cast("boolean").alias("is_perishable"),
        *[F.col(c).cast("int").alias(c) for c in (
            "shelf_life_days", "case_pack", "moq_cases", "lead_time_days")],
        *[F.col(c).cast("double").alias(c) for c in ("unit_cost", "price", "volume_l")],
        "launched_on")
    out = (base.join(F.broadcast(st), "store_id", "left")
           .join(F.broadcast(sk), "sku_id", "left"))
    if calendar is not None:
        cal = _calendar_features(calendar, first, end + dt.timedelta(
            days=FESTIVAL_HORIZON_DAYS), lookback)
        out = out.join(F.broadcast(cal), ["region", "date"], "left")
    if weather is not None:
        out = out.join(F.broadcast(_weather_features(weather, first, end)), ["city", "date"],
                       "left")

    price = F.col("price")
    derived: dict[str, Column] = {
        "day_of_week": (F.dayofweek(day) + 5) % 7,
        "is_weekend": F.dayofweek(day).isin(1, 7),
        "day_of_month": F.dayofmonth(day),
        "month": F.month(day),
        "week_of_year": F.weekofyear(day),
        "price_on_day": price * (1 - F.col("discount_pct")),
        "price_ratio": 1 - F.col("discount_pct"),
        "margin": _div(price - F.col("unit_cost"), price),
        "store_age_days": _age(day, F.col("opened_on")),
        "sku_age_days": _age(day, F.col("launched_on")),
        "is_new_sku": F.datediff(day, F.col("launched_on")) < NEW_SKU_DAYS,
    }
    bits = F.col("promo_bits")
    derived["on_promotion"] = bits.bitwiseAND(_PROMO_ANY) > 0
    for i, t in enumerate(PROMO_TYPES):
        derived[f"promo_type_{t}"] = bits.bitwiseAND(_promo_bit(i)) > 0
    derived["price_vs_avg_30"] = _div(derived["price_on_day"], F.col("avg_price_30"))
    present = set(out.columns)
    cols = []
    for f in FEATURES:
        if f.name in derived:
            expr = derived[f.name]
        elif f.name in present:
            expr = F.col(f.name)
        else:  # a table the data set does not have (weather, calendar)
            expr = F.lit(None)
        cols.append(expr.cast(f.dtype).alias(f.name))
    return out.select(*KEYS, *LABELS, *cols)
