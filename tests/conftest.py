"""Shared fixtures: one SparkSession for the whole run, tiny generated worlds on disk."""
from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path

import pytest

from jobs.config import Config

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)

TINY_START = dt.date(2025, 10, 1)  # covers Durga Puja, Diwali and monsoon's end
TINY_DAYS = 60


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    """One local[2] SparkSession, UI off, few shuffle partitions."""
    from jobs.spark import get_spark

    home = tmp_path_factory.mktemp("spark-home")
    cfg = Config(home=home, spark_master="local[2]", spark_shuffle_partitions=2,
                 spark_driver_memory="2g")
    session = get_spark(cfg, "replenish-tests")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory) -> Config:
    """A tiny generated world shared by read-only tests."""
    from jobs import generate

    cfg = Config(home=tmp_path_factory.mktemp("tiny-world"))
    generate.run(cfg, "tiny", TINY_START, TINY_DAYS, seed=7, progress=False)
    return cfg


@pytest.fixture()
def home(tmp_path: Path) -> Config:
    return Config(home=tmp_path / "home")
