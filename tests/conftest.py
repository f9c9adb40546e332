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


def free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def pg(tmp_path_factory) -> Config:
    """A real, migrated PostgreSQL for the whole run: REPLENISH_WAREHOUSE_URL if set, else an
    embedded server on a free port, stopped at the end."""
    from jobs import warehouse

    home = tmp_path_factory.mktemp("pg-home")
    external = os.environ.get("REPLENISH_WAREHOUSE_URL")
    cfg = Config(home=home, warehouse_url=external) if external else Config(
        home=home, pg_port=free_port())
    warehouse.start(cfg)
    warehouse.migrate(cfg)
    yield cfg
    if not external:
        warehouse.stop(cfg)
