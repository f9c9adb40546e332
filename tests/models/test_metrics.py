"""Vectorised metrics against plain-loop references on tiny hand-written frames."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from models.metrics import business_cost, evaluate, quantile_levels, rmsse_scale

D = pd.Timestamp("2025-01-01")


def day(i: int) -> pd.Timestamp:
    return D + pd.Timedelta(days=i)


# training history: days 0..8 for three series; (1, 30) is constant, so its RMSSE scale is 0
TRAIN = pd.DataFrame(
    [(1, 10, day(i), y) for i, y in enumerate([3, 5, 4, 6, 2, 8, 7, 5, 4])]
    + [(1, 20, day(i), y) for i, y in enumerate([0, 1, 0, 0, 2, 0, 1, 0, 3])]
    + [(1, 30, day(i), 2.0) for i in range(9)],
    columns=["store_id", "sku_id", "date", "y"])

# actual demand on days 9..11 (sku 20 has a zero day: left out of MAPE)
ACTUALS = pd.DataFrame(
    [(1, 10, day(9), 6.0), (1, 10, day(10), 4.0), (1, 10, day(11), 9.0),
     (1, 20, day(9), 0.0), (1, 20, day(10), 2.0), (1, 20, day(11), 1.0),
     (1, 30, day(9), 2.0), (1, 30, day(10), 3.0), (1, 30, day(11), 2.0)],
    columns=["store_id", "sku_id", "date", "y"])

# two models x three series x horizons 1..3: mean, q10, q50, q80, q90, q95
_ROWS = {
    ("a", 10): [(5.0, 3, 5, 7, 8, 9), (5.0, 3, 5, 6, 7, 8), (6.0, 4, 6, 8, 9, 11)],
    ("a", 20): [(0.5, 0, 0, 1, 2, 3), (0.8, 0, 1, 1, 2, 2), (1.0, 0, 1, 2, 2, 4)],
    ("a", 30): [(2.0, 1, 2, 3, 3, 4), (2.0, 1, 2, 2, 3, 3), (2.5, 2, 2, 3, 3, 4)],
    ("b", 10): [(7.0, 5, 7, 9, 10, 12), (6.0, 4, 6, 8, 9, 9), (8.0, 6, 8, 10, 11, 12)],
    ("b", 20): [(1.5, 0, 1, 2, 3, 3), (1.0, 0, 1, 2, 2, 3), (0.5, 0, 0, 1, 1, 2)],
    ("b", 30): [(3.0, 2, 3, 4, 4, 5), (2.0, 1, 2, 3, 3, 4), (2.0, 1, 2, 2, 2, 3)],
}
FORECASTS = pd.DataFrame(
    [(m, 1, sku, day(8 + h), h, *vals) for (m, sku), rows in _ROWS.items()
     for h, vals in enumerate(rows, start=1)],
    columns=["model", "store_id", "sku_id", "target_date", "horizon", "mean", "q10", "q50",
             "q80", "q90", "q95"]).astype({"q10": float, "q50": float, "q80": float,
                                           "q90": float, "q95": float})
TAUS = {"q10": 0.1, "q50": 0.5, "q80": 0.8, "q90": 0.9, "q95": 0.95}


def _div(num: float, den: float) -> float:
    return num / den if den > 0 else math.nan


def reference(actuals, forecasts, train, by, season_length=7):
    """The metrics of models.metrics, one row at a time."""
    actual = {(r.store_id, r.sku_id, r.date): r.y for r in actuals.itertuples()}
    history = {(r.store_id, r.sku_id, r.date): r.y for r in train.itertuples()}
    diffs: dict = {}
    for (s, k, d), y in history.items():
        before = (s, k, d - pd.Timedelta(days=season_length))
        if before in history:
            diffs.setdefault((s, k), []).append((y - history[before]) ** 2)
    scale = {key: sum(v) / len(v) for key, v in diffs.items()}
    groups: dict = {}
    for r in forecasts.to_dict("records"):
        groups.setdefault(tuple(r[b] for b in by), []).append(
            (r, actual[(r["store_id"], r["sku_id"], r["target_date"])]))
    out = []
    for key in sorted(groups):
        items = groups[key]
        row = dict(zip(by, key, strict=True))
        total = sum(a for _, a in items)
        row["n"] = len(items)
        row["wape"] = _div(sum(abs(r["mean"] - a) for r, a in items), total)
        row["wape_q50"] = _div(sum(abs(r["q50"] - a) for r, a in items), total)
        per_series: dict = {}
        for r, a in items:
            per_series.setdefault((r["store_id"], r["sku_id"]), []).append((r["mean"] - a) ** 2)
        scaled = [math.sqrt(sum(v) / len(v) / scale[s]) for s, v in per_series.items()
                  if scale.get(s, 0) > 0]
        row["rmsse"] = sum(scaled) / len(scaled) if scaled else math.nan
        row["rmsse_series"] = len(scaled)
        nonzero = [abs(r["mean"] - a) / a for r, a in items if a > 0]
        row["mape"] = _div(sum(nonzero), len(nonzero))
        row["bias"] = _div(sum(r["mean"] - a for r, a in items), total)
        for col, tau in TAUS.items():
            loss = 0.0
            for r, a in items:
                loss += tau * (a - r[col]) if a >= r[col] else (1 - tau) * (r[col] - a)
            row[f"pinball_{col}"] = loss / len(items)
        for col in TAUS:
            row[f"coverage_{col}"] = sum(a <= r[col] for r, a in items) / len(items)
        row["coverage_80"] = sum(r["q10"] <= a <= r["q90"] for r, a in items) / len(items)
        out.append(row)
    return pd.DataFrame(out)


@pytest.mark.parametrize("by", [[], ["model"], ["model", "horizon"], ["horizon", "sku_id"]])
def test_evaluate_matches_the_reference(by):
    got = evaluate(ACTUALS, FORECASTS, TRAIN, by=by)
    want = reference(ACTUALS, FORECASTS, TRAIN, by)
    assert list(got.columns) == list(want.columns)
    pd.testing.assert_frame_equal(got, want, check_dtype=False)


def test_evaluate_spot_values():
    got = evaluate(ACTUALS, FORECASTS, TRAIN, by=["model"]).set_index("model")
    # model a: |f - a| = 1,1,3, .5,1.2,0, 0,1,.5 = 8.2 over sum(a) = 29
    assert got.loc["a", "wape"] == pytest.approx(8.2 / 29)
    # its median: |q50 - a| = 1,1,3, 0,1,0, 0,1,0 = 7 over 29
    assert got.loc["a", "wape_q50"] == pytest.approx(7 / 29)
    assert "wape_q50" not in evaluate(ACTUALS, FORECASTS.drop(columns="q50"), TRAIN).columns
    assert got.loc["a", "bias"] == pytest.approx((-1 + 1 - 3 + .5 - 1.2 + 0 + 0 - 1 + .5) / 29)
    assert got.loc["a", "rmsse_series"] == 2, "the constant series has no RMSSE scale"
    assert "coverage_90" not in got.columns, "q5 is absent: no 90% central interval"


def test_evaluate_groups_by_a_column_of_the_actuals():
    segment = ACTUALS.assign(segment=np.where(ACTUALS["sku_id"] == 10, "fast", "slow"))
    got = evaluate(segment, FORECASTS, TRAIN, by=["segment", "model"])
    fc = FORECASTS.assign(segment=np.where(FORECASTS["sku_id"] == 10, "fast", "slow"))
    want = reference(ACTUALS, fc, TRAIN, ["segment", "model"])
    pd.testing.assert_frame_equal(got, want, check_dtype=False)


def test_rmsse_scale_naive_one_and_seasonal():
    one = rmsse_scale(TRAIN, season_length=1).set_index("sku_id")["scale"]
    assert one[10] == pytest.approx(np.mean(np.diff([3, 5, 4, 6, 2, 8, 7, 5, 4]) ** 2))
    assert one[30] == 0
    seasonal = rmsse_scale(TRAIN).set_index("sku_id")["scale"]
    assert seasonal[10] == pytest.approx(((5 - 3) ** 2 + (4 - 5) ** 2) / 2)
    short = rmsse_scale(TRAIN[TRAIN["date"] < day(5)]).set_index("sku_id")["scale"]
    assert short.isna().all(), "five days hold no seven-day difference"
    got = evaluate(ACTUALS, FORECASTS, TRAIN, by=["model"], season_length=1)
    want = reference(ACTUALS, FORECASTS, TRAIN, ["model"], season_length=1)
    np.testing.assert_allclose(got["rmsse"], want["rmsse"])


def test_evaluate_with_point_median_and_business_cost():
    fc = FORECASTS.assign(under=2.0, over=np.arange(len(FORECASTS)) % 3 * 0.5)
    got = evaluate(ACTUALS, fc, TRAIN, by=["model"], point="q50", costs=("under", "over"))
    merged = fc.merge(ACTUALS.rename(columns={"date": "target_date"}))
    for model, part in merged.groupby("model"):
        row = got.set_index("model").loc[model]
        assert row["business_cost"] == pytest.approx(
            business_cost(part["y"], part["q50"], part["under"], part["over"]))
        assert row["wape"] == pytest.approx((part["q50"] - part["y"]).abs().sum()
                                            / part["y"].sum())


def test_quantile_levels_are_ordered_by_level():
    assert quantile_levels(["q95", "mean", "q5", "q50", "qx", "q100", "q0"]) == {
        "q5": 0.05, "q50": 0.5, "q95": 0.95}


@pytest.mark.parametrize(("change", "message"), [
    (lambda a, f: (a.iloc[:0], f), "actuals: is empty"),
    (lambda a, f: (a, f.iloc[:0]), "forecasts: is empty"),
    (lambda a, f: (a.iloc[1:], f), "have no actual"),
    (lambda a, f: (a, f[f["sku_id"] != 30]), "have no forecast"),
    (lambda a, f: (pd.concat([a, a.iloc[:1]]), f), "share a"),
    (lambda a, f: (a, f.drop(columns="mean")), "missing column"),
    (lambda a, f: (a, f.assign(mean=np.where(f.index == 0, np.nan, f["mean"]))), "null or "
     "infinite"),
    (lambda a, f: (a.assign(y=-a["y"]), f), "negative"),
    (lambda a, f: (a, f.assign(target_date=f["target_date"] + pd.Timedelta(days=1))),
     "have no actual"),
])
def test_evaluate_rejects_misaligned_or_bad_input(change, message):
    actuals, forecasts = change(ACTUALS, FORECASTS)
    with pytest.raises(ValueError, match=message):
        evaluate(actuals, forecasts, TRAIN, by=["model"])


def test_evaluate_rejects_unknown_or_reserved_group_columns():
    with pytest.raises(ValueError, match="in neither frame"):
        evaluate(ACTUALS, FORECASTS, TRAIN, by=["segment"])
    with pytest.raises(ValueError, match="reserved"):
        evaluate(ACTUALS, FORECASTS, TRAIN, by=["wape"])
    with pytest.raises(ValueError, match="train: is empty"):
        evaluate(ACTUALS, FORECASTS, TRAIN.iloc[:0])


def _cost_reference(a, f, under, over):
    total = 0.0
    for ai, fi, u, o in zip(a, f, under, over, strict=True):
        total += u * max(ai - fi, 0) + o * max(fi - ai, 0)
    return total


def test_business_cost_matches_reference():
    a = [3.0, 0.0, 5.0, 2.0]
    f = [1.0, 2.0, 5.0, 4.5]
    under, over = [10.0, 10.0, 4.0, 1.0], [0.5, 2.0, 1.0, 0.1]
    assert business_cost(a, f, under, over) == pytest.approx(
        _cost_reference(a, f, under, over))
    assert business_cost(a, f, 10.0, 1.0) == pytest.approx(
        _cost_reference(a, f, [10.0] * 4, [1.0] * 4))
    assert business_cost(np.array(a), pd.Series(a), 3.0, 1.0) == 0.0


@pytest.mark.parametrize(("args", "message"), [
    (([], [], 1.0, 1.0), "no rows"),
    (([1.0, 2.0], [1.0], 1.0, 1.0), "aligned"),
    (([1.0, 2.0], [1.0, np.nan], 1.0, 1.0), "null or infinite"),
    (([1.0, 2.0], [1.0, 2.0], [1.0], 1.0), "shape"),
    (([1.0, 2.0], [1.0, 2.0], 1.0, [1.0, -1.0]), "negative"),
])
def test_business_cost_rejects(args, message):
    with pytest.raises(ValueError, match=message):
        business_cost(*args)
