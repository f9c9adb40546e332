"""Test worlds built through the real jobs, shared by the integration tests."""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from jobs import ingest
from jobs.build_features import clean_root
from jobs.config import Config
from jobs.lake import list_dates, read_partition, write_partition

#: Every table ingest lands in raw.
RAW_TABLES = ("stores", "skus", "sales", "inventory", "promotions", "weather", "calendar")


def ingest_as_clean(cfg: Config, days: Iterable[dt.date] | None = None,
                    tables: Iterable[str] = RAW_TABLES) -> list[dt.date]:
    """Ingest ``days`` of the landing zone (all of them by default) and copy ``tables`` from
    raw to clean as they are, for tests that exercise a later step (validation has tests of
    its own). Returns the ingested days."""
    days = list(days) if days is not None else list_dates(cfg.landing, "sales")
    for day in days:
        ingest.run(cfg, day)
    raw = ingest.raw_root(cfg)
    for table in tables:
        for day in list_dates(raw, table):
            write_partition(clean_root(cfg), table, day, read_partition(raw, table, day))
    return days
