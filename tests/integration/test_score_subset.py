"""``score`` with a store subset (REPLENISH_STORES / the nightly DAG's ``stores`` param):
only those stores' rows of the date are replaced, the others kept; real Spark features."""
from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from jobs import build_features, generate, score
from jobs.config import Config
from jobs.lake import list_dates, read_partition, write_partition
from tests.worlds import ingest_as_clean

START = dt.date(2025, 6, 1)
DAYS = 30
RUN = START + dt.timedelta(days=DAYS - 1)


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory) -> Config:
    cfg = Config(home=tmp_path_factory.mktemp("score-subset"))
    cfg = cfg.replace(mlflow_tracking_uri=f"sqlite:///{cfg.home / 'mlflow.db'}")
    generate.run(cfg, "tiny", START, DAYS, seed=21, progress=False)
    days = ingest_as_clean(cfg)
    build_features.run(cfg, start=days[0], end=days[-1])
    return cfg


def test_only_the_asked_stores_are_rescored(lake):
    full = score.run(lake, RUN)  # no model registered: the flagged seasonal naive
    assert full.model == "seasonal_naive"
    first = read_partition(lake.lake, "forecasts", RUN).to_pandas()
    stores = sorted(first["store_id"].unique())
    assert len(stores) >= 2
    mine, other = stores[0], stores[1]
    # mark the other stores' rows, so that a kept row can be told from a re-scored one
    marked = first.copy()
    marked.loc[marked["store_id"] != mine, "mean"] = -1.0
    marked.loc[marked["store_id"] == mine, "mean"] = -2.0
    t = pa.Table.from_pandas(marked, preserve_index=False)
    write_partition(lake.lake, "forecasts", RUN, t, schema=t.schema)

    score.run(lake.replace(stores=(mine,)), RUN)
    after = read_partition(lake.lake, "forecasts", RUN).to_pandas()
    assert len(after) == len(first)
    assert (after.loc[after["store_id"] != mine, "mean"] == -1.0).all()
    keys = ["store_id", "sku_id", "horizon"]
    fresh = after.loc[after["store_id"] == mine].sort_values(keys, ignore_index=True)
    want = first.loc[first["store_id"] == mine].sort_values(keys, ignore_index=True)
    assert (fresh["mean"].to_numpy() == want["mean"].to_numpy()).all()
    assert other in set(after["store_id"])

    with pytest.raises(ValueError, match=r"stores \[999\].*'features'.*" + str(RUN)):
        score.run(lake.replace(stores=(mine, 999)), RUN)
    assert RUN in list_dates(lake.lake, "forecasts")
