"""features.build against the pandas reference, plus the properties the pipeline relies on."""
from __future__ import annotations

import datetime as dt
import math

import pandas as pd
import pyarrow as pa
import pytest

from features.build import FEATURE_SCHEMA, build_features, feature_tables
from features.catalog import FEATURES, KEYS, LABELS, feature, feature_names
from tests.features import frames, reference
from tests.features.frames import assert_frames_match, day, plain

START, END = day(31), day(41)
LOOKBACK = 30


@pytest.fixture(scope="module")
def inputs():
    pdf = {"demand": frames.demand(), "calendar": frames.calendar(),
           "weather": frames.weather(), "promotions": frames.promotions(),
           "stores": frames.stores(), "skus": frames.skus()}
    return pdf, pdf


def _build(tables: dict, start: dt.date, end: dt.date, **override):
    t = {**tables, **override}
    return build_features(t["demand"], t["calendar"], t["weather"], t["promotions"],
                          t["stores"], t["skus"], start, end, LOOKBACK)


@pytest.fixture(scope="module")
def full(inputs):
    df = _build(inputs[1], START, END)
    return df, plain(df)


def _rows(df: pd.DataFrame, store: int, sku: int) -> pd.DataFrame:
    out = df[(df.store_id == store) & (df.sku_id == sku)].sort_values("date")
    return out.set_index(out.date.map(lambda d: (d - frames.DAY0).days))


def test_matches_reference(inputs, full):
    pdf, _ = inputs
    expected = reference.build_features(pdf["demand"], pdf["calendar"], pdf["weather"],
                                        pdf["promotions"], pdf["stores"], pdf["skus"],
                                        START, END, LOOKBACK)
    assert_frames_match(full[1], expected, list(KEYS))


def test_columns_and_types_follow_the_catalog(inputs, full):
    df, _ = full
    assert list(df.columns) == list(KEYS) + list(LABELS) + feature_names()
    arrow = {"double": pa.float64(), "int": pa.int32(), "boolean": pa.bool_()}
    assert FEATURE_SCHEMA.names == list(df.columns)
    wrong = {f.name for f in FEATURES if FEATURE_SCHEMA.field(f.name).type != arrow[f.dtype]}
    assert not wrong
    pandas = {"double": "float64", "int": "Int32", "boolean": "boolean"}
    assert not {f.name for f in FEATURES if str(df.dtypes[f.name]) != pandas[f.dtype]}
    t = inputs[1]
    by_day = {d: rows for d, rows in t["demand"].groupby("date")}
    for d, table in feature_tables(by_day, t["calendar"], t["weather"], t["promotions"],
                                   t["stores"], t["skus"], START, END, LOOKBACK):
        assert table.schema == FEATURE_SCHEMA
        keys = list(zip(table["store_id"].to_pylist(), table["sku_id"].to_pylist(),
                        strict=True))
        assert keys == sorted(keys) and set(table["date"].to_pylist()) == {d}


def test_a_day_without_rows_gives_an_empty_table(inputs):
    t = inputs[1]
    d = t["demand"]
    demand = {k: rows for k, rows in d[d.date != day(40)].groupby("date")}
    tables = dict(feature_tables(demand, None, None, None, t["stores"], t["skus"], day(39),
                                 day(41), LOOKBACK))
    assert list(tables) == [day(39), day(40), day(41)]
    assert tables[day(40)].num_rows == 0 and tables[day(40)].schema == FEATURE_SCHEMA
    assert tables[day(41)].num_rows > 0
    assert tables[day(41)].to_pandas().lag_1.isna().all()  # day 40 is missing for every pair


def test_duplicate_demand_rows_are_refused(inputs):
    t = inputs[1]
    d = t["demand"]
    with pytest.raises(ValueError, match="more than one row"):
        _build(t, START, END, demand=pd.concat([d, d.iloc[-1:]]))


def test_one_row_per_demand_row_in_the_window(inputs, full):
    pdf, _ = inputs
    d = pdf["demand"]
    assert len(full[1]) == len(d[(d.date >= START) & (d.date <= END)])
    assert full[1].date.min() == START and full[1].date.max() == END


def test_history_days_count_the_lookback_only(full):
    r = _rows(full[1], 2, 1)  # present every day from day 0; day 0 is 31 days before day 31
    assert r.loc[31, "history_days"] == LOOKBACK


def test_zero_sale_days(full):
    r = _rows(full[1], 1, 2)  # sells nothing on every third day (30, 33, 36, 39)
    assert r.loc[33, "units_sold"] == 0 and r.loc[33, "demand"] == 0.0
    assert r.loc[34, "lag_1"] == 0.0 and r.loc[34, "days_since_last_sale"] == 2
    assert r.loc[34, "zero_sale_share_7"] == pytest.approx(3 / 7)
    assert r.loc[34, "zero_sale_share_30"] == pytest.approx(10 / 30)


def test_lags_do_not_cross_a_gap(full):
    r = _rows(full[1], 1, 1)  # day 35 is missing
    assert 35 not in r.index
    assert r.loc[36, "lag_1"] is None and r.loc[37, "lag_2"] is None
    assert r.loc[36, "lag_2"] == 3 + (34 * 7) % 6
    assert r.loc[36, "history_days"] == LOOKBACK - 1
    assert r.loc[36, "roll_mean_3"] == pytest.approx((3 + (33 * 7) % 6 + 3 + (34 * 7) % 6) / 2)


def test_stockout_with_sales_feeds_corrected_demand(full):
    r = _rows(full[1], 1, 1)
    assert r.loc[31, "lag_1"] == 6.5 and r.loc[31, "units_lag_1"] == 4
    assert r.loc[31, "stockout_share_7"] == pytest.approx(1 / 7)
    # negative case: a normal day's lag is exactly its units sold
    assert r.loc[32, "lag_1"] == r.loc[32, "units_lag_1"] == 3 + (31 * 7) % 6


def test_stockout_without_sales_is_imputed_from_clean_days(inputs, full):
    d = inputs[0]["demand"]
    r = _rows(full[1], 1, 1)
    assert r.loc[36, "demand"] is None and r.loc[36, "censored"]
    window = d[(d.store_id == 1) & (d.sku_id == 1) & (d.date >= day(7)) & (d.date <= day(36))]
    clean = window[~window.stockout.astype(bool)].demand.mean()
    assert r.loc[37, "lag_1"] == pytest.approx(clean)
    assert r.loc[37, "units_lag_1"] == 0


def test_new_sku_has_nulls_only_where_history_is_short(full):
    r = _rows(full[1], 1, 3)
    assert list(r.history_days) == list(range(len(r)))
    assert r.loc[33, "lag_1"] is None and r.loc[33, "roll_mean_7"] is None
    assert r.loc[34, "lag_1"] == 0.0 and r.loc[34, "lag_2"] is None
    assert r.loc[40, "lag_7"] == 0.0 and r.loc[40, "lag_14"] is None
    assert r.loc[33, "days_since_last_sale"] == LOOKBACK + 1
    assert r.loc[33, "is_new_sku"] and r.loc[33, "sku_age_days"] == 0
    assert r.loc[33, "category_code"] == 0 and r.loc[33, "zone_code"] == 0  # unknown strings


def test_gap_free_series_are_null_only_where_the_catalog_allows(full):
    df = full[1]
    gap_free = df[~((df.store_id == 1) & (df.sku_id == 1))]
    bad = []
    for row in gap_free.itertuples(index=False):
        for f in FEATURES:
            if getattr(row, f.name) is None and not f.may_be_null(row.history_days):
                bad.append((row.date, row.store_id, row.sku_id, f.name))
    assert not bad
    # and the nullable ones do show up as null here: no weather in Kolkata on day 39
    east = _rows(df, 2, 1)
    assert east.loc[39, "rain_mm"] is None and feature("rain_mm").nullable


def test_promotion_day(full):
    r = _rows(full[1], 1, 1)
    day38 = r.loc[38]
    assert day38.on_promotion and day38.discount_pct == 0.2
    assert day38.promo_type_discount and day38.promo_type_festival
    assert not day38.promo_type_bundle
    assert day38.price_on_day == pytest.approx(40.0) and day38.price_ratio == pytest.approx(0.8)
    assert r.loc[37, "price_vs_avg_30"] == pytest.approx(40.0 / 50.0)  # history at 50.0
    assert not r.loc[36, "on_promotion"] and r.loc[36, "discount_pct"] == 0.0
    assert r.loc[41, "promo_share_30"] == pytest.approx(3 / 29)
    other = _rows(full[1], 1, 3).loc[40]  # a promotion type without its own column
    assert other.on_promotion and not (other.promo_type_discount or other.promo_type_bundle
                                       or other.promo_type_festival)


def test_promotion_lift_from_history(full):
    r = _rows(full[1], 2, 1)
    lift = r.loc[31, "promo_lift_30"]
    others = [2 + i % 3 for i in range(1, 31) if not 10 <= i <= 12]
    assert lift == pytest.approx(9 / (sum(others) / len(others)))
    assert _rows(full[1], 1, 2).loc[31, "promo_lift_30"] is None  # never on promotion


def test_festival_calendar(full):
    north = _rows(full[1], 1, 2)
    assert north.loc[36, "days_to_next_festival"] == 2 and not north.loc[36, "is_festival"]
    assert north.loc[39, "is_festival"] and north.loc[39, "festival_intensity"] == 1.0
    assert north.loc[39, "days_to_next_festival"] == 0
    assert north.loc[40, "is_holiday"] and north.loc[41, "days_since_last_festival"] == 1
    assert north.loc[31, "days_since_last_festival"] == LOOKBACK + 1
    east = _rows(full[1], 2, 1)
    assert east.loc[31, "days_since_last_festival"] == 26   # day 5
    assert east.loc[35, "days_since_last_festival"] == 30
    assert east.loc[36, "days_since_last_festival"] == LOOKBACK + 1
    assert east.loc[41, "days_to_next_festival"] == 60      # none ahead in the calendar


def test_incremental_equals_full(inputs, full):
    _, tables = inputs
    demand = tables["demand"]
    nights = [day(36), day(37), day(41)]  # after the gap, after the unknown day, the end
    parts = []
    for night in nights:
        window = demand[(demand.date >= night - dt.timedelta(days=LOOKBACK))
                        & (demand.date <= night)]
        parts.append(_build(tables, night, night, demand=window))
    got = plain(pd.concat(parts, ignore_index=True))
    expected = full[1][full[1].date.isin(nights)]
    assert len(got) == len(expected) > 0
    assert_frames_match(got, expected, list(KEYS), rel=0.0, abs_=0.0)  # bit for bit


def test_without_optional_tables(inputs):
    pdf, tables = inputs
    got = plain(_build(tables, day(38), END, calendar=None, weather=None, promotions=None))
    expected = reference.build_features(pdf["demand"], None, None, None, pdf["stores"],
                                        pdf["skus"], day(38), END, LOOKBACK)
    assert_frames_match(got, expected, list(KEYS))
    assert got.temp_max_c.isna().all() and not got.on_promotion.astype(bool).any()


def test_lookback_shorter_than_the_windows_is_refused(inputs):
    with pytest.raises(ValueError, match="lookback"):
        build_features(*[inputs[1][n] for n in ("demand", "calendar", "weather", "promotions",
                                                "stores", "skus")], START, END, lookback=14)
    with pytest.raises(ValueError, match="before"):
        _build(inputs[1], END, START)


def test_rolling_std_is_population_std(full):
    r = _rows(full[1], 2, 1).loc[41]
    vals = [2 + i % 3 for i in range(38, 41)]
    m = sum(vals) / 3
    assert r.roll_std_3 == pytest.approx(math.sqrt(sum((v - m) ** 2 for v in vals) / 3))


def test_longer_lookback_matches_reference(inputs):
    pdf, t = inputs
    start, lookback = day(36), 35
    got = build_features(t["demand"], t["calendar"], t["weather"], t["promotions"], t["stores"],
                         t["skus"], start, END, lookback=lookback)
    expected = reference.build_features(pdf["demand"], pdf["calendar"], pdf["weather"],
                                        pdf["promotions"], pdf["stores"], pdf["skus"], start,
                                        END, lookback)
    assert_frames_match(plain(got), expected, list(KEYS))
    assert expected.history_days.max() == lookback


def test_a_store_missing_from_the_snapshot(inputs):
    """Its attributes and covariates are null (left join); its age is 0, as before."""
    t = inputs[1]
    got = plain(_build(t, day(40), day(40), stores=t["stores"][t["stores"].store_id == 1]))
    east = got[got.store_id == 2].iloc[0]
    assert east.region_code is None and east.customer_density is None
    assert east.is_holiday is None and east.temp_max_c is None
    assert east.store_age_days == 0 and east.lag_1 is not None  # history does not need it
    north = got[got.store_id == 1].iloc[0]
    assert north.region_code == 1 and north.store_age_days == (day(40) - dt.date(2024, 6, 1)).days
