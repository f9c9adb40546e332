"""``score`` in chunks of stores (``Config.score_chunk_pairs``) writes the same ``forecasts``
partition as in one chunk, with a champion of every member: the aggregate members (Prophet,
ARIMA) forecast each chunk from the aggregates of every store. Real Spark features, a real
MLflow store in a temp dir."""
from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from jobs import build_features, cluster, generate, score, train
from jobs.config import Config
from jobs.lake import partition_dir, read_partition
from models.ensemble_model import EnsembleConfig, EnsembleModel
from tests.worlds import ingest_as_clean

START = dt.date(2025, 3, 1)
DAYS = 64
RUN = START + dt.timedelta(days=DAYS - 1)
MEMBERS = ("xgboost", "lstm", "prophet", "arima", "tsb", "weekday_ma")


@pytest.fixture(scope="module")
def world(spark, tmp_path_factory) -> Config:
    """A tiny world (4 stores x 40 SKUs) with features, clusters and a registered champion
    of all six members."""
    cfg = Config(home=tmp_path_factory.mktemp("score-chunks"), model_profile="quick")
    cfg = cfg.replace(mlflow_tracking_uri=f"sqlite:///{cfg.home / 'mlflow.db'}")
    generate.run(cfg, "tiny", START, DAYS, seed=11, progress=False)
    days = ingest_as_clean(cfg)
    build_features.run(cfg, start=days[0], end=days[-1])
    cluster.run(cfg, RUN)
    ens = EnsembleConfig.quick(members=MEMBERS, threads=1, train_days=35,
                               lstm_max_windows=800, lstm_epochs=3, xgb_rounds=20,
                               max_aggregates=4, n_cutoffs=1, validation_origins=1)
    train.run(cfg, RUN, ens=ens)
    return cfg


def _scored(cfg: Config, pairs: int) -> tuple[pd.DataFrame, int, score.ScoreResult]:
    result = score.run(cfg.replace(score_chunk_pairs=pairs), RUN, progress=False)
    files = len(list(partition_dir(cfg.lake, "forecasts", RUN).glob("*.parquet")))
    return read_partition(cfg.lake, "forecasts", RUN).to_pandas(), files, result


def test_chunks_of_stores_give_the_partition_of_one_chunk(world):
    stores = read_partition(world.lake, "features", RUN, columns=["store_id"]).column(
        "store_id").unique().to_pylist()
    assert len(stores) >= 3
    whole, files, res = _scored(world, 10**9)
    assert files == 1 and res.model == "ensemble" and res.member_flags == ()
    assert set(whole["model"]) == {"ensemble"}
    per_store, files, _ = _scored(world, 1)  # every store its own chunk
    assert files == len(stores)
    pd.testing.assert_frame_equal(per_store, whole, check_exact=True)
    two, files, _ = _scored(world, 80)  # 40 pairs a store: two stores a chunk
    assert files == (len(stores) + 1) // 2
    pd.testing.assert_frame_equal(two, whole, check_exact=True)


def test_without_the_population_the_aggregate_members_would_depend_on_the_chunks(
        world, monkeypatch):
    """The negative case: each chunk's own aggregates change Prophet's and ARIMA's shares,
    hence the ensemble's forecast (so the test above can fail)."""
    whole, _, _ = _scored(world, 10**9)
    monkeypatch.setattr(EnsembleModel, "population", lambda self, start, end: {})
    per_store, _, _ = _scored(world, 1)
    keys = ["store_id", "sku_id", "horizon"]
    assert (whole[keys] == per_store[keys]).all().all()
    assert not (whole["mean"].to_numpy() == per_store["mean"].to_numpy()).all()


def test_store_chunks_are_whole_stores_in_order():
    active = pd.DataFrame({"store_id": [3, 3, 1, 1, 1, 2, 7], "sku_id": range(7)})
    assert score.store_chunks(active, 3) == [[1], [2, 3], [7]]
    assert score.store_chunks(active, 1) == [[1], [2], [3], [7]]
    assert score.store_chunks(active, 100) == [[1, 2, 3, 7]]
    with pytest.raises(ValueError, match="score_chunk_pairs"):
        score.store_chunks(active, 0)
