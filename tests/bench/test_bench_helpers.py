"""The benchmark scripts' pure helpers, on hand-written frames (no Spark, no peers fitted)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import bench_peers  # noqa: E402
import bench_scale  # noqa: E402
import common  # noqa: E402
import run_all  # noqa: E402


def test_verdict_lines_reads_tables_and_plain_lines_once():
    text = "\n".join([
        "| check | measured | target | verdict |",
        "|:---|---:|---:|:---|",
        "| train <= 15 min | 9.8 min | <= 15 min | PASS |",
        "| ensemble < arima | 16.9% vs 12.1% | < | MISS (+40% over) |",
        "| train <= 15 min | 9.8 min | <= 15 min | PASS |",
        "Target (medium): PASS at 730 days in 132.2 s",
        "| medium | 100 | - | PASS |",
        "nothing to see | here",
        "PASSWORD is not a verdict",
        "| scenario | days | rows | wall s | rows/s | target |",
        "|:--|--:|--:|--:|--:|--:|",
        "| medium | 60 | 26,615,594 | 29.9 | 889,918 | PASS (proj. 364 s) |",
    ])
    assert common.verdict_lines(text) == [
        "train <= 15 min | 9.8 min | <= 15 min | PASS",
        "ensemble < arima | 16.9% vs 12.1% | < | MISS (+40% over)",
        "Target (medium): PASS at 730 days in 132.2 s",
        "medium | 100 | PASS",
        "medium: target PASS (proj. 364 s)",
    ]


def test_verdict_formats_the_miss():
    assert common.verdict(True) == "PASS"
    assert common.verdict(False, 0.25, "slower") == "MISS (+25% slower)"
    assert common.verdict(False) == "MISS"


def test_complete_series_fills_before_first_with_zero_and_gaps_with_previous():
    train = pd.DataFrame({"store_id": [1, 1, 1, 2], "sku_id": [5, 5, 5, 7],
                          "date": pd.to_datetime(["2024-01-02", "2024-01-04", "2024-01-05",
                                                  "2024-01-01"]),
                          "y": [3.0, 1.0, 2.0, 4.0]})
    keys = pd.DataFrame({"store_id": [1, 2], "sku_id": [5, 7]})
    df = bench_peers.complete_series(train, pd.Timestamp("2024-01-01"),
                                     pd.Timestamp("2024-01-05"), keys)
    a = df.loc[df["unique_id"] == 1_000_005, "y"].tolist()
    b = df.loc[df["unique_id"] == 2_000_007, "y"].tolist()
    assert a == [0.0, 3.0, 3.0, 1.0, 2.0]   # before first: 0; censored day: previous
    assert b == [4.0, 4.0, 4.0, 4.0, 4.0]   # every series ends at the origin
    assert df.groupby("unique_id")["ds"].max().eq(pd.Timestamp("2024-01-05")).all()


def test_to_forecast_frame_maps_interval_ends_to_monotone_quantiles():
    cut = pd.Timestamp("2024-01-05")
    fc = pd.DataFrame({"unique_id": [1_000_005, 1_000_005],
                       "ds": pd.to_datetime(["2024-01-06", "2024-01-07"]),
                       "m": [2.0, -1.0],
                       "m-hi-60": [3.0, 0.5], "m-hi-80": [4.0, 0.2],  # 0.2 < 0.5: not monotone
                       "m-hi-90": [5.0, 1.0], "m-hi-98": [7.0, 2.0]})
    out = bench_peers.to_forecast_frame(fc, "m", cut)
    assert out[["store_id", "sku_id"]].drop_duplicates().values.tolist() == [[1, 5]]
    assert out["horizon"].tolist() == [1, 2]
    assert out["mean"].tolist() == [2.0, 0.0]          # clipped at 0
    assert out.loc[0, ["q50", "q80", "q90", "q95", "q99"]].tolist() == [2, 3, 4, 5, 7]
    assert out.loc[1, ["q50", "q80", "q90", "q95", "q99"]].tolist() == [0, 0.5, 0.5, 1, 2]


def _fc(model, rows, mean):
    return pd.DataFrame({"store_id": [r[0] for r in rows], "sku_id": [r[1] for r in rows],
                         "target_date": pd.to_datetime([r[2] for r in rows]),
                         "horizon": 1, "mean": mean, "q50": mean,
                         "model": model, "cutoff": pd.Timestamp("2024-01-01")})


def test_score_all_scores_every_model_on_the_same_rows_against_a_plain_wape():
    rows = [(1, 1, "2024-01-02"), (1, 2, "2024-01-02"), (2, 1, "2024-01-02")]
    a = _fc("a", rows, [1.0, 2.0, 3.0])
    b = _fc("b", rows[:2], [2.0, 2.0])          # b lacks the third row
    act = pd.DataFrame({"store_id": [1, 1, 2], "sku_id": [1, 2, 1],
                        "date": pd.to_datetime(["2024-01-02"] * 3), "y": [2.0, 2.0, 9.0],
                        "cutoff": pd.Timestamp("2024-01-01")})
    hist = pd.DataFrame({"store_id": [1] * 8, "sku_id": [1] * 8,
                         "date": pd.date_range("2023-12-24", periods=8), "y": np.arange(8.0)})
    table = bench_peers.score_all(pd.concat([a, b]), act, hist, costs=None)
    assert table["n"].tolist() == [2, 2]        # the common rows only
    wape = dict(zip(table["model"], table["wape"], strict=True))
    assert wape["a"] == pytest.approx((1 + 0) / 4)
    assert wape["b"] == pytest.approx((0 + 0) / 4)
    assert "pinball_mean" in table.columns


def test_common_rows_needs_an_actual():
    rows = [(1, 1, "2024-01-02"), (1, 1, "2024-01-03")]
    fc = pd.concat([_fc("a", rows, [1.0, 1.0]), _fc("b", rows, [1.0, 1.0])])
    act = pd.DataFrame({"store_id": [1], "sku_id": [1], "date": pd.to_datetime(["2024-01-03"]),
                        "y": [1.0], "cutoff": pd.Timestamp("2024-01-01")})
    got = bench_peers.common_rows(fc, act)
    assert got["target_date"].tolist() == [pd.Timestamp("2024-01-03")]


def _world(name, stores, skus, pairs, seconds):
    w = bench_scale.World(name, stores, skus, 63, pairs=pairs)
    for stage, s in seconds.items():
        w.stages[stage] = bench_scale.StageRun(stage, s, s * 10, pairs)
    return w


def test_extrapolate_is_the_fixed_cost_plus_the_reference_scaled():
    worlds = [_world("tiny", 4, 40, 100, {"score": 10.0, "train": 5.0}),
              _world("small", 10, 200, 1_000, {"score": 12.0, "train": 30.0}),
              _world("medium", 100, 1000, 10_000, {"score": 30.0, "train": 40.0})]
    secs, mb, how = bench_scale.extrapolate(worlds, "score", 100_000, 400)
    assert secs == pytest.approx(10 + (30 - 10) * 10)
    assert mb == pytest.approx(100 + (300 - 100) * 10)
    assert "tiny" in how and "medium" in how
    secs, _, how = bench_scale.extrapolate(worlds, "train", 100_000, 400)
    assert secs == 40.0 and "capped" in how


def test_extrapolate_prefers_the_blinkit_slice_as_reference():
    worlds = [_world("tiny", 4, 40, 100, {"plan": 40.0}),
              _world("medium", 100, 1000, 10_000, {"plan": 50.0}),
              _world("slice", 10, 8000, 8_000, {"plan": 60.0})]
    secs, _, how = bench_scale.extrapolate(worlds, "plan", 80_000, 400)
    assert secs == pytest.approx(40 + 20 * 10)
    assert "slice" in how and "per store" in how


def test_extrapolate_falls_back_to_proportional_when_the_reference_is_cheaper():
    worlds = [_world("a", 1, 1, 100, {"score": 20.0}), _world("b", 1, 1, 200, {"score": 10.0})]
    secs, _, _ = bench_scale.extrapolate(worlds, "score", 2_000, 400)
    assert secs == pytest.approx(100.0)


def test_published_rows_are_summed_from_the_publish_summary():
    text = ("publish 2025-03-04: forecast 1,120, reorder_plan 160, purchase_order 12 rows "
            "published in one transaction after 55 audit rules passed on the audit's staged "
            "rows, in 3.1 s")
    assert bench_scale._published(text) == 1_292
    assert bench_scale._published("nothing") == 0


def test_runner_skips_missing_scripts_and_summarises(tmp_path, monkeypatch):
    monkeypatch.setattr(run_all, "SCRIPTS", (run_all.Script("bench_nope.py", 1, 1, "x"),))
    out = tmp_path / "RESULTS.md"
    assert run_all.main(["--out", str(out), "--logs", str(tmp_path)]) == 0
    text = out.read_text()
    assert "## Summary (`make bench`)" in text and "MISSING" in text


def _fake_scripts(tmp_path, monkeypatch, generate_code: int):
    """Two stand-in scripts: 'generate' makes <workdir>/medium/world.json and exits with
    ``generate_code``; 'features' records the arguments it was given."""
    bench = tmp_path / "bench"
    bench.mkdir()
    seen = tmp_path / "features-args.json"
    (bench / "bench_generate.py").write_text(
        "import sys, pathlib\n"
        "args = sys.argv[1:]\n"
        "if '--workdir' in args:\n"
        "    w = pathlib.Path(args[args.index('--workdir') + 1]) / 'medium'\n"
        "    w.mkdir(parents=True, exist_ok=True)\n"
        "    (w / 'world.json').write_text('{}')\n"
        f"sys.exit({generate_code})\n")
    (bench / "bench_features.py").write_text(
        "import sys, json, pathlib\n"
        f"pathlib.Path({str(seen)!r}).write_text(json.dumps(sys.argv[1:]))\n")
    monkeypatch.setattr(run_all, "BENCH", bench)
    monkeypatch.setattr(run_all, "SCRIPTS", tuple(
        s for s in run_all.SCRIPTS if s.name in ("bench_generate.py", "bench_features.py")))
    return seen


def test_runner_shares_the_generated_medium_world_with_the_next_script(tmp_path, monkeypatch):
    import json

    seen = _fake_scripts(tmp_path, monkeypatch, generate_code=0)
    shared = tmp_path / "shared"
    assert run_all.main(["--out", "-", "--logs", str(tmp_path), "--workdir", str(shared)]) == 0
    args = json.loads(seen.read_text())
    assert args[args.index("--home") + 1] == str(shared / "medium")
    assert (shared / "medium" / "world.json").exists()  # a --workdir given is kept


def test_runner_does_not_share_a_world_whose_maker_failed(tmp_path, monkeypatch):
    import json

    seen = _fake_scripts(tmp_path, monkeypatch, generate_code=3)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    assert run_all.main(["--out", "-", "--logs", str(tmp_path)]) == 1
    assert "--home" not in json.loads(seen.read_text())
    assert not (tmp_path / f"bench-shared-{os.getpid()}").exists()  # the temporary one goes


def test_replenish_bench_lists_the_scripts_and_refuses_peers_without_the_extra(
        capsys, monkeypatch):
    import importlib.util

    from jobs.cli import main

    assert main(["bench", "--list"]) == 0
    listing = capsys.readouterr().out
    assert all(s.name in listing for s in run_all.SCRIPTS)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "statsforecast" else real(name, *a))
    assert main(["bench", "--only", "bench_peers"]) == 2
    assert "optional bench extra" in capsys.readouterr().err


def test_extrapolate_runs_on_the_line_through_two_slices_and_keeps_bounded_memory_flat():
    worlds = [_world("tiny", 4, 40, 100, {"score": 10.0}),
              _world("slice6", 6, 8000, 40_000, {"score": 30.0}),
              _world("slice12", 12, 8000, 80_000, {"score": 50.0})]
    worlds[2].stages["score"].peak_mb = 250.0  # less than slice6's 300: bounded
    secs, mb, how = bench_scale.extrapolate(worlds, "score", 3_000_000, 400)
    assert secs == pytest.approx(30 + 20 * (3_000_000 - 40_000) / 40_000)
    assert mb == pytest.approx(300.0)
    assert "slice6" in how and "slice12" in how and "memory flat" in how


def test_slice_stores_option_takes_a_list():
    assert bench_scale._parser().parse_args(["--slice-stores", "3,9"]).slice_stores == (3, 9)
    assert bench_scale._parser().parse_args(["--slice-stores", "0"]).slice_stores == ()
    assert bench_scale._parser().parse_args([]).slice_stores == (6, 12)


def test_scale_section_renders_a_world_that_failed_before_its_night():
    import argparse

    w = bench_scale.World("blinkit", 400, 8000, 63)
    w.stages["generate"] = bench_scale.StageRun("generate", 380.0, 4636.0, 602_207_888)
    w.error = "setup: build_features exit 1"
    args = argparse.Namespace(days=63, profile="quick", max_series=500)
    info = {"nproc": "2", "cpu": "x", "memory": "1 GiB", "python": "3.11", "arch": "x86_64",
            "date": "2026-11-24"}
    text, _ = bench_scale._section([w], args, info, common.LoadSampler(), 600.0, None)
    assert text.startswith(bench_scale.SECTION_BLINKIT) and "setup: build_features" in text


def _night(name: str, stores: int, pairs: int, scale: float) -> bench_scale.World:
    w = bench_scale.World(name, stores, 8000, 63, pairs=pairs)
    for stage in bench_scale.STAGES:
        w.stages[stage] = bench_scale.StageRun(stage, 100.0 * scale, 1000.0 * scale, pairs)
    return w


def test_scale_section_measures_a_blinkit_night_and_projects_only_from_slices():
    import argparse

    args = argparse.Namespace(days=63, profile="quick", max_series=500)
    info = {"nproc": "2", "cpu": "x", "memory": "1 GiB", "python": "3.11", "arch": "x86_64",
            "date": "2026-11-24"}
    blinkit = _night("blinkit", 400, 3_084_800, 3.0)
    text, verdicts = bench_scale._section([blinkit], args, info, common.LoadSampler(),
                                          600.0, None)
    assert "Extrapolation" not in text and "Assumptions" not in text
    # the night is ingest..publish: six stages of 300 s, measured, not projected
    assert "blinkit night (ingest..publish) ran within 4 h on this machine | 0.5 h" in verdicts[0]
    assert "measured peak memory" in verdicts[1] and "2.9 GB" in verdicts[1]
    assert ("score + plan + publish of one night ran for real | score 300 s + plan 300 s + "
            "publish 300 s | ran | PASS") in verdicts[2]
    del blinkit.stages["publish"]
    _, verdicts = bench_scale._section([blinkit], args, info, common.LoadSampler(), 600.0,
                                       None)
    assert verdicts[2].endswith("MISS")
    slices = [_night("blinkit_slice6", 6, 46_200, 1.0), _night("blinkit_slice12", 12, 92_580,
                                                               1.5)]
    text, verdicts = bench_scale._section(slices, args, info, common.LoadSampler(), 600.0,
                                          None)
    assert "Extrapolation to `blinkit`" in text and "projected within 4 h" in verdicts[0]
    assert "slice (6 stores x 8,000 SKUs): score + plan of one night" in verdicts[2]
