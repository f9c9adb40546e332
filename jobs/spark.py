"""The one place a SparkSession is made, so every job runs with the same settings.

Local mode is sized for a small machine (few shuffle partitions, bounded driver memory);
``SPARK_MASTER`` points the same code at a cluster. ``PYSPARK_PYTHON`` is set to this
interpreter, otherwise ``applyInPandas`` workers start a Python without our packages.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from jobs.config import Config

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession

__all__ = ["get_spark", "spark_conf"]


def spark_conf(cfg: Config, app_name: str) -> dict[str, str]:
    """The Spark settings every replenish job uses (exposed for tests and the README)."""
    conf = {
        "spark.app.name": app_name,
        "spark.master": cfg.spark_master,
        "spark.sql.shuffle.partitions": str(cfg.spark_shuffle_partitions),
        "spark.default.parallelism": str(max(2, cfg.spark_shuffle_partitions)),
        "spark.sql.session.timeZone": "Asia/Kolkata",
        "spark.sql.sources.partitionOverwriteMode": "dynamic",
        "spark.sql.adaptive.enabled": "true",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.parquet.compression.codec": "zstd",
        "spark.ui.enabled": "true" if cfg.spark_ui else "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.warehouse.dir": str((cfg.home / "spark-warehouse").resolve()),
        "spark.local.dir": str((cfg.home / "spark-tmp").resolve()),
        "spark.driver.extraJavaOptions": "-Dlog4j2.level=WARN -XX:-DontCompileHugeMethods",
        "spark.executor.extraJavaOptions": "-XX:-DontCompileHugeMethods",
    }
    if Path(cfg.jdbc_jar).is_file():
        conf["spark.jars"] = cfg.jdbc_jar
    if cfg.spark_master.startswith("local"):
        conf["spark.driver.memory"] = cfg.spark_driver_memory
    return conf


def get_spark(cfg: Config, app_name: str = "replenish") -> SparkSession:
    """Return the active SparkSession or build one from ``cfg``."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    builder = SparkSession.builder
    for key, value in spark_conf(cfg, app_name).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark
