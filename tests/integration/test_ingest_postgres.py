"""Ingest from a PostgreSQL source system over JDBC, with real Spark and a real server."""
from __future__ import annotations

import datetime as dt

import pytest

from jobs import ingest, warehouse
from jobs.lake import list_dates, read_partition

DAY = dt.date(2025, 4, 2)


@pytest.fixture(scope="module")
def source(pg):
    with warehouse.connect(pg) as conn, conn.cursor() as cur:
        cur.execute("""
            drop schema if exists src cascade;
            create schema src;
            create table src.sales (txn_id text, store_id int, sku_id int, ts timestamp,
                                    quantity int, unit_price double precision,
                                    on_promotion boolean);
            insert into src.sales values
              ('a', 1, 1, '2025-04-01 20:00', 1, 10.0, false),
              ('b', 1, 2, '2025-04-02 19:30', 3, 12.5, true),
              ('c', 2, 1, '2025-04-02 21:10', 2, 10.0, false);
            create table src.weather (date date, city text, temp_max_c double precision,
                                      rain_mm double precision, humidity double precision);
            insert into src.weather values ('2025-04-02', 'Delhi', 35.0, 0, 0.3),
                                           ('2025-04-03', 'Delhi', 36.0, 0, 0.3);
            create table src.promotions (date date, promo_id text, store_id int, sku_id int,
                                         discount_pct double precision, promo_type text);
            insert into src.promotions values
              ('2025-04-02', 'P1', 1, 1, 0.2, 'discount'),
              ('2025-04-04', 'P2', 1, 2, 0.1, 'discount'),
              ('2025-04-04', 'P2', 2, 2, 0.1, 'discount'),
              ('2025-04-10', 'P3', 1, 1, 0.3, 'festival');
            create table src.stores (store_id int, store_name text);
            insert into src.stores values (1, 'A'), (2, 'B');
        """)
    return pg.replace(ingest_source="postgres", source_url=warehouse.url(pg),
                      source_schema="src")


def test_ingest_reads_one_date_over_jdbc(spark, source):
    result = ingest.run(source, DAY, tables=("sales", "weather", "stores"))
    raw = ingest.raw_root(source)
    sales = read_partition(raw, "sales", DAY).to_pandas().sort_values("txn_id")
    assert list(sales.txn_id) == ["b", "c"], "only the day's rows, chosen by ts"
    assert result.rows == {"sales": 2, "weather": 1, "stores": 2}
    weather = read_partition(raw, "weather", DAY).to_pandas()
    assert "date" not in weather.columns and list(weather.temp_max_c) == [35.0]
    assert list_dates(raw, "stores") == [DAY]


def test_missing_source_url_is_explained(source):
    with pytest.raises(ingest.IngestError, match="needs REPLENISH_SOURCE_URL"):
        ingest.run(source.replace(source_url=None), DAY, tables=("sales",))


def test_empty_source_day_is_an_error(spark, source):
    with pytest.raises(ingest.IngestError, match="has no rows for that date"):
        ingest.run(source, dt.date(2025, 5, 1), tables=("sales",))


def test_the_promotion_plan_of_the_coming_week_comes_in_ahead(spark, source):
    """The run of 2 April reads 3-9 April's promotions too: only the days the source has
    rows for become partitions (4 April), the 10th is beyond the week."""
    result = ingest.run(source, DAY, tables=("promotions",))
    raw = ingest.raw_root(source)
    assert result.rows == {"promotions": 1}
    assert result.promotions_ahead == {dt.date(2025, 4, 4): 2}
    assert list_dates(raw, "promotions") == [DAY, dt.date(2025, 4, 4)]
    ahead = read_partition(raw, "promotions", dt.date(2025, 4, 4)).to_pandas()
    assert sorted(ahead.store_id) == [1, 2] and "date" not in ahead.columns
