"""cluster -> train -> score on a tiny generated world, with a real MLflow store in a temp dir.

Covers: the registered pyfunc ensemble (all five members) and what the run logs; the
champion/challenger gate (a worse version does not take the alias); promote and rollback;
scoring every active pair with the champion; the scoring fallbacks (a broken champion, then no
model at all) and their flags.
"""
from __future__ import annotations

import datetime as dt
import shutil

import numpy as np
import pandas as pd
import pytest

from jobs import build_features, cluster, generate, ingest, score, train
from jobs.config import Config
from jobs.lake import list_dates, read_partition, write_partition
from models import registry
from models.baselines import CrostonTSB
from models.ensemble_model import MEMBER_FACTORIES, EnsembleConfig

START = dt.date(2025, 3, 1)
DAYS = 64
RUN = START + dt.timedelta(days=DAYS - 1)


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory) -> Config:
    """A tiny world ingested and featurised (validation is tested elsewhere: raw is copied to
    clean), with the store clusters of RUN."""
    cfg = Config(home=tmp_path_factory.mktemp("train-score"), model_profile="quick")
    generate.run(cfg, "tiny", START, DAYS, seed=5, progress=False)
    dates = list_dates(cfg.landing, "sales")
    for day in dates:
        ingest.run(cfg, day)
    raw = ingest.raw_root(cfg)
    for table in ("stores", "skus", "sales", "inventory", "promotions", "weather", "calendar"):
        for day in list_dates(raw, table):
            write_partition(build_features.clean_root(cfg), table, day,
                            read_partition(raw, table, day))
    build_features.run(cfg, start=dates[0], end=dates[-1])
    cluster.run(cfg, RUN)
    return cfg


def _cfg(lake: Config, tmp_path) -> Config:
    """The shared lake with this test's own MLflow store."""
    return lake.replace(mlflow_tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")


def tiny_ensemble(members=("tsb",), **kw) -> EnsembleConfig:
    return EnsembleConfig.quick(members=members, threads=1, train_days=35, lstm_max_windows=800,
                                lstm_epochs=3, xgb_rounds=20, max_aggregates=4, **kw)


class Inflated(CrostonTSB):
    """TSB whose forecasts are multiplied: a deliberately worse model (pickles by reference
    to this module, like any member class)."""

    factor = 4.0

    def forecast_from(self, *args, **kwargs):
        return self._scale(super().forecast_from(*args, **kwargs))

    def predict(self, *args, **kwargs):
        return self._scale(super().predict(*args, **kwargs))

    def _scale(self, fc: pd.DataFrame) -> pd.DataFrame:
        cols = [c for c in fc.columns if c == "mean" or c.startswith("q")]
        fc[cols] = fc[cols] * self.factor
        return fc


def test_cluster_writes_labels_and_plots(lake):
    labels = read_partition(lake.lake, "clusters", RUN).to_pandas()
    stores = read_partition(lake.lake / "clean", "stores",
                            list_dates(lake.lake / "clean", "stores")[-1]).to_pandas()
    assert sorted(labels["store_id"]) == sorted(stores["store_id"])
    assert labels["cluster"].between(0, labels["k"].iloc[0] - 1).all()
    folder = lake.reports / "clusters" / RUN.isoformat()
    assert (folder / "elbow.png").stat().st_size > 1000
    assert (folder / "clusters.png").stat().st_size > 1000


def test_train_registers_the_full_ensemble_and_logs_the_run(lake, tmp_path, monkeypatch):
    import mlflow

    cfg = _cfg(lake, tmp_path)
    monkeypatch.setenv("AIRFLOW_CTX_DAG_ID", "replenish_nightly")
    result = train.run(cfg, RUN, ens=tiny_ensemble(
        members=("xgboost", "lstm", "prophet", "arima", "tsb")))
    assert (result.version, result.alias) == (1, registry.CHAMPION)
    models = set(result.overall["model"])
    assert {"xgboost", "lstm", "prophet", "arima", "tsb", "seasonal_naive", "moving_average",
            "ensemble", "oracle"} <= models
    client = registry.client(cfg.mlflow_uri)
    run = client.get_run(result.run_id)
    assert run.data.tags["dag_id"] == "replenish_nightly"
    assert run.data.params["data_end"] == RUN.isoformat()
    assert "wape_ensemble" in run.data.metrics
    assert "wape_q50_ensemble" in run.data.metrics and "wape_q50_oracle" in run.data.metrics
    # the learnt weights of all rows are logged, one set per forecast column, on the simplex
    for column in ("mean", "q50", "q80", "q95"):
        w = [run.data.metrics[f"weight_{column}_{m}"]
             for m in ("xgboost", "lstm", "prophet", "arima", "tsb")]
        assert min(w) >= 0 and sum(w) == pytest.approx(1.0)
    children = client.search_runs([run.info.experiment_id],
                                  f"tags.mlflow.parentRunId = '{result.run_id}'")
    assert {c.data.tags["model"] for c in children} == models
    names = {a.path for a in client.list_artifacts(result.run_id, "report")}
    for expected in ("report/backtest_overall.csv", "report/calibration.png",
                     "report/forecast_vs_actual.png", "report/feature_importance.png",
                     "report/weights.png"):
        assert expected in names
    # the registered pyfunc forecasts from its input frame
    loaded = mlflow.pyfunc.load_model(f"models:/{registry.REGISTERED_MODEL}@champion")
    model = loaded.unwrap_python_model().model
    assert set(model.members) == {"xgboost", "lstm", "prophet", "arima", "tsb"}
    assert list(read_partition(lake.lake, "backtest_metrics", RUN).column("grouping")
                .unique().to_pylist()) == ["overall", "horizon", "cluster", "cutoff"]


def test_a_worse_version_becomes_challenger_then_promote_and_rollback(lake, tmp_path,
                                                                       monkeypatch):
    cfg = _cfg(lake, tmp_path)
    first = train.run(cfg, RUN, ens=tiny_ensemble())
    assert first.alias == registry.CHAMPION
    monkeypatch.setitem(MEMBER_FACTORIES, "tsb", lambda c, cal, costs: Inflated(method="tsb"))
    worse = train.run(cfg, RUN, ens=tiny_ensemble())
    assert worse.alias == registry.CHALLENGER
    assert "vs champion" in worse.gate
    assert registry.champion_version(cfg.mlflow_uri) == first.version
    table = registry.list_versions(cfg.mlflow_uri)
    assert table.set_index("version").loc[worse.version, "aliases"] == registry.CHALLENGER
    assert table.set_index("version").loc[worse.version, "gate"].startswith("challenger")

    assert registry.promote(cfg.mlflow_uri, worse.version) == first.version
    assert registry.champion_version(cfg.mlflow_uri) == worse.version
    assert registry.rollback(cfg.mlflow_uri) == (worse.version, first.version)
    assert registry.champion_version(cfg.mlflow_uri) == first.version
    with pytest.raises(registry.RegistryError, match="nothing to roll back"):
        registry.rollback(cfg.mlflow_uri)


def test_score_forecasts_every_active_pair_with_the_champion(lake, tmp_path):
    cfg = _cfg(lake, tmp_path)
    trained = train.run(cfg, RUN, ens=tiny_ensemble(members=("tsb", "xgboost")))
    result = score.run(cfg, RUN)
    assert (result.model, result.version, result.fallback) == ("ensemble", trained.version, "")
    assert result.member_flags == ()  # XGBoost got its target-day feature rows
    fc = read_partition(lake.lake, "forecasts", RUN).to_pandas()
    active = read_partition(lake.lake, "features", RUN, columns=["store_id", "sku_id"])
    assert len(fc) == active.num_rows * 7 == result.rows
    assert sorted(fc["horizon"].unique()) == list(range(1, 8))
    assert (pd.to_datetime(fc["target_date"]) - pd.to_datetime(fc["run_date"])).dt.days.eq(
        fc["horizon"]).all()
    q = fc[["q50", "q80", "q90", "q95", "q99"]].to_numpy()
    assert (np.diff(q, axis=1) >= 0).all() and (q >= 0).all()
    assert (fc["model_version"] == str(trained.version)).all()
    assert fc["evening_mean"].le(fc["mean"] + 1e-9).all()
    again = score.run(cfg, RUN)  # idempotent for the date
    pd.testing.assert_frame_equal(fc, read_partition(lake.lake, "forecasts", RUN).to_pandas())
    assert again.rows == result.rows


def test_the_target_days_know_their_promotions_brought_in_ahead(lake):
    """Ingest of RUN brought in the promotion plan of RUN+1..RUN+7: the target rows the
    scoring builds carry exactly those promotions (flag and discount), and a day whose plan
    has not arrived has none."""
    active = read_partition(lake.lake, "features", RUN,
                            columns=["store_id", "sku_id"]).to_pandas()
    days = [RUN + dt.timedelta(days=h) for h in range(1, 8)]
    planned = pd.concat([read_partition(lake.lake / "clean", "promotions", d).to_pandas()
                         .assign(date=d) for d in days])
    planned = planned.merge(active, on=["store_id", "sku_id"])
    assert planned["date"].nunique() >= 3, "the tiny world promotes something every week"
    rows = score.future_rows(lake, RUN, active, 7)
    rows["date"] = rows["date"].dt.date
    got = rows.loc[rows["on_promotion"] > 0, ["store_id", "sku_id", "date", "discount_pct"]]
    want = planned.groupby(["store_id", "sku_id", "date"], as_index=False)["discount_pct"].max()
    pd.testing.assert_frame_equal(
        got.sort_values(["store_id", "sku_id", "date"]).reset_index(drop=True),
        want.sort_values(["store_id", "sku_id", "date"]).reset_index(drop=True),
        check_dtype=False)
    # Without the plan in the lake, the same rows have no promotion.
    moved = lake.lake / "clean" / "promotions-ahead-hidden"
    moved.mkdir()
    try:
        for d in days:
            (lake.lake / "clean" / "promotions" / f"date={d}").rename(moved / f"date={d}")
        assert score.future_rows(lake, RUN, active, 7)["on_promotion"].eq(0).all()
    finally:
        for d in days:
            (moved / f"date={d}").rename(lake.lake / "clean" / "promotions" / f"date={d}")
        moved.rmdir()


def test_score_falls_back_when_the_champion_cannot_be_loaded(lake, tmp_path):
    cfg = _cfg(lake, tmp_path)
    first = train.run(cfg, RUN, ens=tiny_ensemble())
    second = train.run(cfg, RUN, ens=tiny_ensemble(members=("tsb", "arima")))
    registry.promote(cfg.mlflow_uri, second.version)
    # break the champion's artifacts on disk (MLflow 3 keeps a logged model's files in a
    # folder named by its model id)
    client = registry.client(cfg.mlflow_uri)
    source = client.get_model_version(registry.REGISTERED_MODEL, str(second.version)).source
    model_id = source.rsplit("/", 1)[-1]  # models:/m-<id>
    broken = [p for p in (tmp_path / "artifacts").rglob("ensemble.pkl") if model_id in str(p)]
    assert broken, f"no ensemble.pkl of model {model_id} under {tmp_path / 'artifacts'}"
    for p in broken:
        p.write_bytes(b"not a pickle")
    result = score.run(cfg, RUN)
    assert result.model == "ensemble" and result.version == first.version
    assert f"champion version {second.version} failed to load" in result.fallback
    fc = read_partition(lake.lake, "forecasts", RUN).to_pandas()
    assert fc["flags"].str.contains("failed to load").all()


def test_score_without_any_model_uses_seasonal_naive_and_says_so(lake, tmp_path):
    cfg = _cfg(lake, tmp_path)
    result = score.run(cfg, RUN)
    assert result.model == "seasonal_naive" and result.version is None
    assert "no model could be loaded" in result.fallback
    fc = read_partition(lake.lake, "forecasts", RUN).to_pandas()
    active = read_partition(lake.lake, "features", RUN, columns=["store_id", "sku_id"])
    assert len(fc) == active.num_rows * 7
    assert (fc["model"] == "seasonal_naive").all()
    assert fc["flags"].str.contains("seasonal naive").all()
    assert fc["model_version"].isna().all()


def test_train_without_features_is_a_clear_error(tmp_path):
    cfg = Config(home=tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="features.*build_features"):
        train.run(cfg, RUN, ens=tiny_ensemble())
    shutil.rmtree(tmp_path / "empty", ignore_errors=True)


def test_retraining_is_due_weekly_and_a_replay_never_scores_with_a_later_champion(
        lake, tmp_path, monkeypatch):
    """``due`` counts the week from the last training, champion or not: a version the gate
    kept as challenger is not retrained the next night although the champion is older.
    The simulator's champion forecasts run the train step before scoring a missing night,
    and refuse a night older than the champion (it was trained on the days it would
    forecast)."""
    from jobs.simulate import LakeForecast

    cfg = _cfg(lake, tmp_path)
    assert train.champion_trained(cfg) == (None, None)
    week_ago = RUN - dt.timedelta(days=7)
    first = train.run(cfg, week_ago, ens=tiny_ensemble(n_cutoffs=2))  # 7 days less history
    assert train.champion_trained(cfg) == (first.version, week_ago)
    assert not train.due(cfg, week_ago + dt.timedelta(days=6))[0]
    go, why = train.due(cfg, RUN)
    assert go and "champion version 1, is 7 days old" in why
    monkeypatch.setitem(MEMBER_FACTORIES, "tsb", lambda c, cal, costs: Inflated(method="tsb"))
    worse = train.run(cfg, RUN, ens=tiny_ensemble(n_cutoffs=2))
    assert worse.alias == registry.CHALLENGER
    assert train.champion_trained(cfg) == (first.version, week_ago)
    assert train.last_trained(cfg, RUN + dt.timedelta(days=3)) == (worse.version, RUN)
    assert train.last_trained(cfg, RUN - dt.timedelta(days=1)) == (first.version, week_ago)
    go, why = train.due(cfg, RUN + dt.timedelta(days=3))  # the champion is 10 days old
    assert not go and "kept as challenger" in why
    assert train.due(cfg, RUN + dt.timedelta(days=7))[0]

    calls: list[tuple[str, dt.date]] = []
    later = RUN + dt.timedelta(days=1)  # no forecasts partition (nor features): a stand-in
    fc = LakeForecast(cfg, [later], score=lambda c, d: calls.append(("score", d)),
                      train=lambda c, d: calls.append(("train", d)) or "skipped")
    night = lambda d: type("N", (), {"date": d})()  # noqa: E731 - only .date is read
    earlier = week_ago - dt.timedelta(days=1)
    with pytest.raises(ValueError, match=f"trained on {week_ago}, after the night {earlier}"):
        fc(night(earlier))
    assert calls == [("train", earlier)]  # the train step ran, the scoring did not
    with pytest.raises(FileNotFoundError):  # the stand-in scorer wrote no partition
        fc(night(later))
    assert calls[1:] == [("train", later), ("score", later)]
    assert fc.trained == ["skipped", "skipped"]
