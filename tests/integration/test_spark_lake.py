"""The generated lake is what Spark expects: partitioned by date, typed as the schema says."""
from __future__ import annotations

import os
import sys

from jobs.config import Config
from jobs.schema import RAW_TABLES
from jobs.spark import get_spark, spark_conf


def test_spark_reads_every_raw_table_with_the_declared_columns(spark, tiny_world):
    for name, table in RAW_TABLES.items():
        df = spark.read.parquet(str(tiny_world.landing / name))
        assert df.columns == table.names + ["date"], name
    sales = spark.read.parquet(str(tiny_world.landing / "sales"))
    types = dict(sales.dtypes)
    assert types["quantity"] == "int" and types["date"] == "date"
    assert types["ts"].startswith("timestamp")
    # Spark's partition pruning sees one day's rows only.
    one_day = sales.where("date = '2025-10-05'").select("txn_id").count()
    assert 0 < one_day < sales.count()
    assert sales.select("txn_id").distinct().count() == sales.count()


def test_session_factory_settings(spark):
    assert os.environ["PYSPARK_PYTHON"] == sys.executable
    assert spark.conf.get("spark.sql.shuffle.partitions") == "2"
    assert spark.conf.get("spark.ui.enabled") == "false"
    assert get_spark(Config()) is spark, "jobs reuse the active session"
    conf = spark_conf(Config(spark_master="spark://h:7077"), "x")
    assert "spark.driver.memory" not in conf, "cluster mode leaves memory to the cluster"
