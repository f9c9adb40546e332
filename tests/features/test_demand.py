"""features.demand against the pandas reference, on a handful of hand-written lines."""
from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa
import pytest

from features.demand import (
    DEFAULT_HOURLY_PROFILE,
    DEMAND_COLUMNS,
    DEMAND_SCHEMA,
    MAX_CORRECTION,
    active_pairs,
    demand_daily,
    demand_for_day,
    pairs_for_day,
    share_before_hour,
)
from tests.features import reference
from tests.features.frames import SCHEMAS, assert_frames_match, day, plain, skus, stores

KEYS = ["date", "store_id", "sku_id"]


def _line(i: int, store: int, sku: int, hh_mm: str, qty: int, price: float = 50.0,
          promo: bool = False) -> tuple:
    hh, mm = map(int, hh_mm.split(":"))
    ts = dt.datetime.combine(day(i), dt.time(hh, mm))
    return (f"T{i}-{store}-{sku}-{hh_mm}", store, sku, ts, qty, price, promo, day(i))


def _sales() -> pd.DataFrame:
    rows = [
        # day 1: (1, 1) a normal day, with a promotion line in the morning
        _line(1, 1, 1, "08:10", 2, 40.0, True), _line(1, 1, 1, "19:30", 3),
        _line(1, 1, 1, "20:05", 1),
        # day 1: (2, 1) stock-out after a sale at 13:40: the 3x cap binds
        _line(1, 2, 1, "09:00", 1), _line(1, 2, 1, "13:40", 2),
        # day 1: (2, 2) has no stock row, so it is not an active pair
        _line(1, 2, 2, "12:00", 5, 20.0),
        # day 2: (2, 1) stock-out in the evening peak: corrected, below the cap
        _line(2, 2, 1, "18:15", 4), _line(2, 2, 1, "19:50", 2),
        # day 2: (1, 2) a zero-quantity line at 21:00 is not a sale
        _line(2, 1, 2, "10:00", 1, 20.0), _line(2, 1, 2, "21:00", 0, 20.0),
        # day 3 is not in the pairs' dates
        _line(3, 1, 1, "11:00", 1),
    ]
    return pd.DataFrame(rows, columns=SCHEMAS["sales"].replace(",", "").split()[0::2])


def _inventory() -> pd.DataFrame:
    rows = [(1, 1, 1, 5), (1, 1, 2, 4), (1, 2, 1, 0),          # day, store, sku, on hand
            (2, 1, 1, 0), (2, 1, 2, 3), (2, 2, 1, 0)]
    return pd.DataFrame([(s, k, oh, 0, 0, 0, day(i)) for i, s, k, oh in rows],
                        columns=["store_id", "sku_id", "on_hand", "on_order", "received",
                                 "wasted", "date"])


@pytest.fixture(scope="module")
def with_stock():
    sales, inv = _sales(), _inventory()
    got = plain(demand_daily(sales, inv, active_pairs(inv, stores(), skus(), [day(1), day(2)])))
    pairs = inv[inv.date.isin([day(1), day(2)])][KEYS]
    return got, reference.demand_daily(sales, inv, pairs)


def _row(df: pd.DataFrame, i: int, store: int, sku: int) -> pd.Series:
    hit = df[(df.date == day(i)) & (df.store_id == store) & (df.sku_id == sku)]
    assert len(hit) == 1
    return hit.iloc[0]


def test_matches_reference_with_inventory(with_stock):
    got, expected = with_stock
    assert tuple(got.columns) == DEMAND_COLUMNS
    assert_frames_match(got, expected, KEYS)


def test_one_row_per_active_pair_and_day(with_stock):
    got, _ = with_stock
    assert len(got) == 6
    assert not ((got.store_id == 2) & (got.sku_id == 2)).any()  # sold, but no stock row
    assert set(got.date) == {day(1), day(2)}                    # day 3's sale left out


def test_normal_day_aggregates(with_stock):
    r = _row(with_stock[0], 1, 1, 1)
    assert (r.units_sold, r.promo_units, r.evening_units, r.n_lines) == (6, 2, 4, 3)
    assert r.revenue == pytest.approx(2 * 40.0 + 4 * 50.0)
    assert r.avg_unit_price == pytest.approx(280.0 / 6)
    assert r.last_sale_hour == 20 and r.on_hand_close == 5
    # negative case: without a stock-out, demand is exactly the units sold
    assert not r.stockout and not r.censored and r.demand == 6.0


def test_zero_sale_day(with_stock):
    r = _row(with_stock[0], 1, 1, 2)
    assert r.units_sold == 0 and r.n_lines == 0 and r.revenue == 0.0
    assert r.avg_unit_price is None and r.last_sale_hour is None
    assert r.demand == 0.0 and not r.censored


def test_zero_quantity_line_is_not_the_last_sale(with_stock):
    r = _row(with_stock[0], 2, 1, 2)
    assert r.units_sold == 1 and r.n_lines == 2 and r.last_sale_hour == 10


def test_stockout_correction_in_the_evening(with_stock):
    r = _row(with_stock[0], 2, 2, 1)
    share = share_before_hour()[19]
    assert r.stockout and r.censored and r.last_sale_hour == 19
    assert r.demand == pytest.approx(6 / share)
    assert 6 < r.demand < MAX_CORRECTION * 6


def test_stockout_correction_is_capped(with_stock):
    r = _row(with_stock[0], 1, 2, 1)
    assert r.stockout and r.last_sale_hour == 13
    assert share_before_hour()[13] < 1 / MAX_CORRECTION
    assert r.demand == MAX_CORRECTION * 3


def test_stock_written_off_at_close_is_not_a_stockout():
    """A shelf that still held units at close, written off as expired, never ran empty: its
    sales are its demand (a perishable's usual evening), and a zero-sale day is demand 0."""
    sales, inv = _sales(), _inventory()
    # day 1 (2, 1) sold 3 by 13:40, day 2 (1, 1) sold nothing; both closed with 0 on hand
    inv.loc[(inv.date == day(1)) & (inv.store_id == 2) & (inv.sku_id == 1), "wasted"] = 2
    inv.loc[(inv.date == day(2)) & (inv.store_id == 1) & (inv.sku_id == 1), "wasted"] = 4
    got = plain(demand_daily(sales, inv, active_pairs(inv, stores(), skus(), [day(1), day(2)])))
    expired_after_sales = _row(got, 1, 2, 1)
    assert not expired_after_sales.stockout and not expired_after_sales.censored
    assert expired_after_sales.demand == 3.0 and expired_after_sales.on_hand_close == 0
    expired_unsold = _row(got, 2, 1, 1)
    assert expired_unsold.units_sold == 0 and not expired_unsold.stockout
    assert expired_unsold.demand == 0.0
    # negative case: closing empty with nothing written off is still a stock-out
    emptied = _row(got, 2, 2, 1)
    assert emptied.stockout and emptied.demand == pytest.approx(6 / share_before_hour()[19])
    pairs = inv[inv.date.isin([day(1), day(2)])][KEYS]
    assert_frames_match(got, reference.demand_daily(sales, inv, pairs), KEYS)


def test_stockout_without_sales_has_unknown_demand(with_stock):
    r = _row(with_stock[0], 2, 1, 1)
    assert r.units_sold == 0 and r.stockout and r.censored
    assert r.demand is None


def test_without_inventory():
    sales = _sales()
    new_skus = skus().assign(launched_on=[day(0), day(0), day(2)])
    pairs = active_pairs(None, stores(), new_skus, [day(1), day(2)])
    got = plain(demand_daily(sales, None, pairs, stores(), skus()))
    # every store x launched SKU: 2 x 2 on day 1, 2 x 3 on day 2
    assert len(got) == 10
    assert set(got[got.sku_id == 3].date) == {day(2)}
    pairs = got[KEYS]
    assert_frames_match(got, reference.demand_daily(sales, None, pairs), KEYS)
    assert not got.stockout.any() and not got.censored.any()
    assert got.on_hand_close.isna().all()
    assert (got.demand == got.units_sold).all()
    assert _row(got, 1, 2, 2).units_sold == 5  # no stock row needed without inventory


def test_active_pairs_respect_opening_dates():
    late = stores().assign(opened_on=[day(0), day(2)])
    pairs = active_pairs(None, late, skus(), [day(1), day(2)])
    assert set(pairs[pairs.store_id == 2].date) == {day(2)}
    assert len(pairs) == 2 + 4  # sku 3 launches on day 33


def test_share_before_hour():
    shares = share_before_hour()
    assert len(shares) == 24 and shares[0] == 0.0
    assert all(a <= b for a, b in zip(shares, shares[1:], strict=False))
    assert shares[23] == pytest.approx(1.0)
    assert shares[18] == pytest.approx(sum(DEFAULT_HOURLY_PROFILE[:19]) / 1000)
    evening = sum(DEFAULT_HOURLY_PROFILE[18:22]) / sum(DEFAULT_HOURLY_PROFILE)
    assert 0.55 <= evening <= 0.65  # the case study: about 60% between 18:00 and 22:00
    with pytest.raises(ValueError):
        share_before_hour([1.0] * 23)


def test_one_day_is_independent_of_the_others(with_stock):
    """demand_for_day on one day's lines equals that day's rows of demand_daily."""
    sales, inv = _sales(), _inventory()
    one = inv[inv.date == day(2)]
    got = demand_for_day(sales[sales.date == day(2)].drop(columns="date"),
                         one.drop(columns="date"), pairs_for_day(one, stores(), skus(), day(2)),
                         day(2))
    expected = with_stock[0][with_stock[0].date == day(2)]
    assert_frames_match(plain(got), expected, KEYS, rel=0.0, abs_=0.0)
    # the lake table's types
    table = pa.Table.from_pandas(got.drop(columns="date"), schema=DEMAND_SCHEMA,
                                 preserve_index=False)
    assert table.schema == DEMAND_SCHEMA and table.num_rows == 3


def test_pairs_are_sorted_and_unique():
    inv = _inventory()
    one = inv[inv.date == day(1)].iloc[::-1]
    pairs = pairs_for_day(one, stores(), skus(), day(1))
    assert list(zip(pairs.store_id, pairs.sku_id, strict=True)) == [(1, 1), (1, 2), (2, 1)]
    with pytest.raises(ValueError, match="more than one stock row"):
        pairs_for_day(pd.concat([one, one.iloc[:1]]), stores(), skus(), day(1))
