"""Event days imputed from plain days, and members that only see such a history."""
from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from models.baselines import CrostonTSB, WeekdayProfile
from models.ensemble_model import EnsembleConfig, make_members
from models.events import (
    POOLED,
    EventFree,
    impute_event_days,
    learn_elasticity,
    lift_promoted_days,
)
from models.protocol import ModelConfig

START = pd.Timestamp("2025-03-03")  # a Monday


def frame(values: list[float], festival: list[float] | None = None,
          promo: list[bool] | None = None, store: int = 1, sku: int = 1) -> pd.DataFrame:
    n = len(values)
    out = pd.DataFrame({"store_id": store, "sku_id": sku,
                        "date": pd.date_range(START, periods=n), "y": values,
                        "festival_intensity": festival or [0.0] * n})
    if promo is not None:
        out["on_promotion"] = promo
    return out


def test_festival_day_takes_the_same_weekday_a_week_earlier():
    values = [float(10 + i) for i in range(14)]
    fest = [0.0] * 14
    values[12], fest[12] = 99.0, 0.7
    out = impute_event_days(frame(values, fest))
    assert out["y"].tolist()[12] == values[5]  # 12 - 7
    assert out["event_imputed"].tolist() == [i == 12 for i in range(14)]
    # every other row, the dates and the row count untouched
    assert out["y"].tolist()[:12] + out["y"].tolist()[13:] == values[:12] + values[13:]
    assert out["date"].tolist() == list(pd.date_range(START, periods=14))


def test_looks_further_back_past_other_event_days_then_falls_back_to_the_mean():
    values = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0] * 3
    fest = [0.0] * 21
    for d in (13, 20):  # two Sundays running: the festival and a week later
        values[d], fest[d] = 50.0, 1.0
    fest[2] = 0.3  # a Wednesday with no plain Wednesday before it
    values[2] = 40.0
    out = impute_event_days(frame(values, fest))["y"].tolist()
    assert out[20] == 7.0 and out[13] == 7.0  # from day 6, two and one weeks back
    plain = [v for v, f in zip(values, fest, strict=True) if f == 0]
    assert out[2] == pytest.approx(np.mean(plain))


def test_a_series_of_only_event_days_and_frames_without_the_column_are_left_alone():
    only = frame([5.0, 9.0], [1.0, 1.0])
    out = impute_event_days(only)
    assert out["y"].tolist() == [5.0, 9.0] and not out["event_imputed"].any()
    bare = frame([1.0, 2.0]).drop(columns="festival_intensity")
    assert impute_event_days(bare)["y"].tolist() == [1.0, 2.0]


def test_series_are_imputed_from_their_own_days_and_promotions_on_request():
    a = frame([2.0] * 7 + [30.0], [0.0] * 7 + [1.0], promo=[False] * 8, sku=1)
    b = frame([8.0] * 7 + [20.0], [0.0] * 8, promo=[False] * 7 + [True], sku=2)
    both = pd.concat([a, b], ignore_index=True)
    fest_only = impute_event_days(both)
    assert fest_only["y"].tolist()[7] == 2.0 and fest_only["y"].tolist()[15] == 20.0
    with_promo = impute_event_days(both, ("festival", "promotion"))
    assert with_promo["y"].tolist()[15] == 8.0
    with pytest.raises(ValueError, match="unknown event"):
        impute_event_days(both, ("eclipse",))


def test_event_free_tsb_is_not_lifted_by_a_festival_it_has_seen():
    rng = np.random.default_rng(0)
    base = list(rng.poisson(5, 42).astype(float))
    fest = [0.0] * 42
    raw = base.copy()
    for d in range(35, 40):  # a five-day festival at three times the level, just before
        raw[d], fest[d] = 3 * base[d], 1.0
    spiked = frame(raw, fest)
    plain = frame(base, fest)
    plain.loc[35:39, "y"] = [base[d - 7] for d in range(35, 40)]
    cfg = ModelConfig()
    wrapped = EventFree(CrostonTSB(method="tsb")).fit(spiked, cfg)
    bare = CrostonTSB(method="tsb").fit(spiked, cfg)
    reference = CrostonTSB(method="tsb").fit(plain, cfg)
    fc = wrapped.predict(7, (0.5, 0.9))
    assert fc["mean"].to_numpy() == pytest.approx(reference.predict(7, (0.5, 0.9))["mean"])
    assert bare.predict(7, (0.5, 0.9))["mean"].iloc[0] > 1.2 * fc["mean"].iloc[0]
    # scoring from new history is cleaned too, and the wrapper pickles
    again = pickle.loads(pickle.dumps(wrapped))
    out = again.forecast_from(spiked, 7, (0.5, 0.9))
    assert out["mean"].to_numpy() == pytest.approx(fc["mean"].to_numpy())
    assert again.name == "tsb" and again.cutoff == bare.cutoff


class Spy:
    """A member that records the ``y`` it is fitted and scored on."""

    name = "spy"

    def __init__(self) -> None:
        self.seen: dict[str, list[float]] = {}

    def fit(self, train, cfg=None):
        self.seen["fit"] = train["y"].tolist()
        return self

    def forecast_from(self, history, horizon, quantiles, future=None):
        self.seen["scored"] = history["y"].tolist()


def test_on_fit_false_fits_on_the_raw_days():
    raw = frame([1.0] * 7 + [9.0], [0.0] * 7 + [1.0])
    spy = Spy()
    member = EventFree(spy, on_fit=False).fit(raw)
    member.forecast_from(raw, 7, (0.5,))
    seen = spy.seen
    assert seen["fit"][-1] == 9.0 and seen["scored"][-1] == 1.0


def test_the_ensemble_config_wraps_the_history_members_only():
    members = make_members(EnsembleConfig.quick(members=("arima", "tsb", "prophet", "lstm")))
    assert isinstance(members["arima"], EventFree) and members["arima"].on_fit
    assert isinstance(members["tsb"], EventFree)
    assert isinstance(members["prophet"], EventFree) and not members["prophet"].on_fit
    assert not isinstance(members["lstm"], EventFree)
    raw = make_members(EnsembleConfig.quick(members=("tsb",), imputed_events=()))
    assert isinstance(raw["tsb"], CrostonTSB)
    with pytest.raises(ValueError, match="imputed_events"):
        EnsembleConfig(imputed_events=("eclipse",))


def test_the_weekday_member_is_in_the_default_ensemble_and_blind_to_festivals():
    assert "weekday_ma" in EnsembleConfig().members
    member = make_members(EnsembleConfig.quick(members=("weekday_ma",)))["weekday_ma"]
    assert isinstance(member, EventFree) and member.on_fit
    assert isinstance(member.member, WeekdayProfile) and member.name == "weekday_ma"
    rng = np.random.default_rng(1)
    base = list(rng.poisson(8, 42).astype(float))
    fest = [0.0] * 42
    raw = base.copy()
    for d in range(30, 35):  # a five-day festival at three times the level
        raw[d], fest[d] = 3 * base[d], 1.0
    plain = frame(base, fest)
    plain.loc[30:34, "y"] = [base[d - 7] for d in range(30, 35)]
    cfg = ModelConfig()
    fc = member.fit(frame(raw, fest), cfg).predict(7, (0.5, 0.9))
    reference = WeekdayProfile().fit(plain, cfg).predict(7, (0.5, 0.9))
    bare = WeekdayProfile().fit(frame(raw, fest), cfg).predict(7, (0.5, 0.9))
    assert fc["mean"].to_numpy() == pytest.approx(reference["mean"].to_numpy())
    assert bare["mean"].sum() > 1.2 * fc["mean"].sum()


def test_the_ensemble_imputes_a_chunk_once_for_all_its_wrapped_members(monkeypatch):
    import models.events as events
    from models.ensemble_model import EnsembleModel

    calls = []
    real = events.impute_event_days
    monkeypatch.setattr(events, "impute_event_days",
                        lambda frame, ev=("festival",): calls.append(len(frame)) or real(frame, ev))
    rng = np.random.default_rng(1)
    history = frame(list(rng.poisson(5, 28).astype(float)), [0.0] * 27 + [1.0])
    members = {"a": EventFree(CrostonTSB(method="tsb")).fit(history, ModelConfig()),
               "b": EventFree(CrostonTSB(method="croston")).fit(history, ModelConfig())}
    calls.clear()
    model = EnsembleModel(members=members, weights=pd.DataFrame(
        {"segment": "*", "model": ["a", "b"], "weight": [0.5, 0.5]}),
        clusters=pd.DataFrame({"store_id": [1], "cluster": [0]}),
        config=EnsembleConfig.quick(members=("tsb",)), cutoff=history["date"].max())
    out, flags = model.member_forecasts(history, None, 7)
    assert not flags and set(out) == {"a", "b"}
    assert calls == [len(history)]


def promoted_history(e_by_category: dict[str, float], days: int = 56) -> pd.DataFrame:
    """Two SKUs per category selling 10 and 20 a day, promoted at 20% off on a few days
    with demand lifted by (1 - 0.2) ** -e; one festival day at 3x, unpromoted."""
    parts = []
    for k, (cat, e) in enumerate(e_by_category.items()):
        for j, level in enumerate((10.0, 20.0)):
            y = np.full(days, level)
            promo = np.zeros(days, dtype=bool)
            promo[[10 + j, 11 + j, 30 + j, 31 + j, 45]] = True
            y[promo] = level * 0.8 ** -e
            fest = np.zeros(days)
            fest[20] = 1.0
            y[20] = 3 * level
            part = frame(list(y), list(fest), list(promo), sku=2 * k + j + 1)
            part["discount_pct"] = np.where(promo, 0.2, np.nan)
            part["category"] = cat
            parts.append(part)
    return pd.concat(parts, ignore_index=True)


def test_the_elasticity_is_learnt_per_category_from_promoted_against_plain_days():
    history = promoted_history({"dairy": 1.5, "snacks": 0.5})
    e = learn_elasticity(history, prior_days=0.0)
    assert e["dairy"] == pytest.approx(1.5, abs=1e-6)
    assert e["snacks"] == pytest.approx(0.5, abs=1e-6)
    assert 0.5 < e[POOLED] < 1.5
    # a category with few promoted days leans on the pooled estimate
    shrunk = learn_elasticity(history, prior_days=30.0)
    assert 0.5 < shrunk["snacks"] < 0.9 and 1.1 < shrunk["dairy"] < 1.5
    assert learn_elasticity(history.drop(columns="discount_pct")) == {}


def test_a_promoted_target_day_is_lifted_by_its_categorys_elasticity():
    history = promoted_history({"dairy": 1.5, "snacks": 0.5})
    cutoff = history["date"].max()
    member = EventFree(WeekdayProfile(), ("festival", "promotion")).fit(history, ModelConfig())
    plain = member.predict(7, (0.5, 0.9))
    day2 = cutoff + pd.Timedelta(days=2)
    future = pd.DataFrame({"store_id": 1, "sku_id": [1, 3, 4], "date": day2,
                           "on_promotion": [1.0, 1.0, 0.0], "discount_pct": [0.3, 0.3, np.nan],
                           "category_code": [0, 1, 1]})
    future["category"] = ["dairy", "snacks", "snacks"]
    lifted = member.predict(7, (0.5, 0.9), future=future)
    ratio = (lifted.set_index(["sku_id", "target_date"])["q90"]
             / plain.set_index(["sku_id", "target_date"])["q90"])
    e = member.elasticity
    assert ratio[(1, day2)] == pytest.approx(0.7 ** -e["dairy"])
    assert ratio[(3, day2)] == pytest.approx(0.7 ** -e["snacks"])
    assert ratio.drop([(1, day2), (3, day2)]).eq(1.0).all()  # every other row as it was
    # The promoted history days are imputed: the plain days' level, not lifted by them.
    assert plain.loc[plain["sku_id"] == 1, "mean"].mean() == pytest.approx(10.0, rel=0.02)
    # The feature rows' category codes when there is no category column; an unknown one
    # takes the pooled elasticity.
    coded = lift_promoted_days(plain, future.drop(columns="category"), {"0": 1.0, POOLED: 2.0})
    got = coded.set_index(["sku_id", "target_date"])["mean"] / plain.set_index(
        ["sku_id", "target_date"])["mean"]
    assert got[(1, day2)] == pytest.approx(0.7 ** -1.0)
    assert got[(3, day2)] == pytest.approx(0.7 ** -2.0)
    # Scoring from history lifts alike; a wrapper pickled before elasticities had none.
    scored = member.forecast_from(history, 7, (0.5, 0.9), future=future)
    pd.testing.assert_frame_equal(scored, lifted)
    old = pickle.loads(pickle.dumps(member))
    del old.__dict__["elasticity"]
    assert old.forecast_from(history, 7, (0.5, 0.9), future=future)["mean"].equals(
        plain["mean"])


def test_the_default_ensemble_knows_promotions_and_prophet_fits_without_them():
    assert EnsembleConfig().imputed_events == ("festival", "promotion")
    raw = frame([1.0] * 7 + [9.0, 5.0], [0.0] * 7 + [1.0, 0.0], promo=[False] * 8 + [True])
    spy = Spy()
    EventFree(spy, ("festival", "promotion"), on_fit=False).fit(raw)
    seen = spy.seen
    assert seen["fit"][-2:] == [9.0, 1.0]  # the festival day kept, the promoted day imputed
