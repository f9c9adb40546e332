"""``replenish simulate`` on a generated tiny world: the three policies side by side, the
reports, conservation; and the simulator against the generator itself (the min-max policy
replays ``jobs/world.py`` exactly)."""
from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from jobs import generate
from jobs import simulate as js
from jobs.cli import main
from jobs.config import Config
from jobs.world import SCENARIOS, World
from optimize.simulate import METRIC_DOCS, simulate

START = dt.date(2025, 3, 1)
DAYS = 35  # 31 days of history before a 4-day window


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Config:
    cfg = Config(home=tmp_path_factory.mktemp("sim-world"))
    generate.run(cfg, "tiny", START, DAYS, seed=3, progress=False)
    return cfg


@pytest.fixture(scope="module")
def report(world) -> js.SimulateReport:
    return js.run(world, js.SimulateConfig(days=4, solver="cbc"), progress=False)


def test_all_policies_report_every_metric(report):
    assert list(report.results) == ["plan", "minmax", "oracle"]
    for name, res in report.results.items():
        assert res.start == START + dt.timedelta(days=DAYS - 4) and res.days == 4
        assert set(METRIC_DOCS) <= set(res.metrics), name
        m = res.metrics
        assert all(np.isfinite(v) for v in m.values()), (name, m)
        assert 0 < m["fill_rate"] <= 1 and 0 <= m["stockout_freq"] <= 1
        assert m["total_cost"] == pytest.approx(m["ordering_cost"] + m["holding_cost"]
                                                + m["lost_margin"] + m["waste_cost"])
        assert 0 < m["pair_days"] <= 4 * 4 * 40  # 4 days x 4 stores x 40 SKUs, if launched
    for name in ("plan", "oracle"):
        notes = report.results[name].notes
        assert notes["store_nights"] == 4 * 4 and notes["violations"] == 0
    # the same true demand for every policy
    demand = {r.metrics["demand"] for r in report.results.values()}
    assert len(demand) == 1
    for key in ("service level (fill rate)", "total cost vs minmax", "total cost vs oracle"):
        assert key in report.text


def test_conservation_holds_for_every_policy(report):
    for res in report.results.values():
        b = res.by_pair
        assert (b.received == b.sold + b.wasted + b.end_on_hand - b.start_on_hand).all()
        assert res.metrics["received"] == res.metrics["sold"] + res.metrics["wasted"] + \
            b.end_on_hand.sum() - b.start_on_hand.sum()


def test_the_oracle_costs_no_more_than_minmax(report):
    """Deterministic for this seed; on four tiny worlds (seeds 1, 2, 3, 7) the oracle was
    10-20% cheaper than min-max over a 4-day window, so this is no knife edge."""
    cost = {p: r.metrics["total_cost"] for p, r in report.results.items()}
    assert cost["oracle"] <= cost["minmax"]


def test_reports_are_written(world, report):
    folder = world.reports / "simulate"
    stem = f"{START + dt.timedelta(days=DAYS - 4)}_4d_"
    for name in ("plan", "minmax", "oracle", "plan-minmax-oracle"):
        assert (folder / f"{stem}{name}.md").is_file()
        data = json.loads((folder / f"{stem}{name}.json").read_text())
        assert data["days"] == 4 and data["definitions"]["fill_rate"]
    both = json.loads((folder / f"{stem}plan-minmax-oracle.json").read_text())
    assert {d["policy"] for d in both["differences"]} == {"plan", "minmax"}
    assert both["settings"]["suppliers"] == "world"


def test_start_stock_is_the_snapshot_of_the_day_before(world):
    sim = js.SimulateConfig(days=2)
    win = js.load_window(world, sim)
    assert win.start == START + dt.timedelta(days=DAYS - 2)
    from jobs.lake import read_partition

    inv = read_partition(world.landing, "inventory", win.start - dt.timedelta(days=1)
                         ).to_pandas()
    assert win.buckets.sum() == inv["on_hand"].sum()
    assert win.on_order.sum() == inv["on_order"].sum()


def test_cli_simulate_and_its_errors(world, capsys):
    assert main(["--home", str(world.home), "simulate", "--policy", "minmax", "--days", "3",
                 "--stores", "1,2", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "| service level (fill rate) |" in out and "2 stores x 40 SKUs" in out
    assert main(["--home", str(world.home), "simulate", "--policy", "magic",
                 "--no-progress"]) == 2
    assert "choose from plan, minmax, oracle" in capsys.readouterr().err
    assert main(["--home", str(world.home), "simulate", "--days", "3", "--start",
                 str(START), "--no-progress"]) == 2
    assert "no inventory snapshot" in capsys.readouterr().err
    # (test_plan_with_the_lakes_forecasts writes forecasts for the last 2 days only)
    assert main(["--home", str(world.home), "simulate", "--policy", "plan", "--days", "3",
                 "--forecasts", "lake", "--no-progress"]) == 2
    assert "lake/forecasts has no partition" in capsys.readouterr().err


def test_plan_with_the_lakes_forecasts(world):
    """--forecasts lake reads lake/forecasts/date=D (jobs/score.py's layout) every night."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sim = js.SimulateConfig(policies=("plan",), days=2, stores=(1,), forecasts="lake")
    win = js.load_window(world, sim)
    for t in range(2):
        day = win.start + dt.timedelta(days=t)
        rows = win.pairs[["store_id", "sku_id"]].merge(pd.DataFrame({"horizon": range(1, 8)}),
                                                       how="cross")
        rows["target_date"] = [day + dt.timedelta(days=int(h)) for h in rows["horizon"]]
        rows["mean"] = 2.0
        for c, v in zip(("q50", "q80", "q90", "q95", "q99"), (2, 3, 4, 5, 7), strict=True):
            rows[c] = float(v)
        folder = world.lake / "forecasts" / f"date={day}"
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pandas(rows, preserve_index=False),
                       folder / "part-00000.parquet")
    rep = js.run(world, sim, progress=False, write=False)
    res = rep.results["plan"]
    assert res.notes["store_nights"] == 2 and res.metrics["ordered"] > 0
    assert rep.settings["forecasts"] == "lake"


def test_minmax_replays_the_generator_exactly():
    """With perfect suppliers, the simulator + MinMaxPolicy started from the world's state
    reproduce the world's own receipts, sales, waste and stock day by day (so the "before"
    in the simulator is the generator's rule, not a look-alike)."""
    w = World(SCENARIOS["tiny"], seed=5, start=START, days=40)
    w.p_late[:] = 0.0
    w.p_short[:] = 0.0
    warm, days = 20, 15  # covers the refresh on day 28
    for d in range(warm):
        w.day(d)
    n_k = len(w.skus)
    pairs = pd.DataFrame({"store_id": w.p_store + 1, "sku_id": w.p_sku + 1}).merge(
        w.skus, on="sku_id", how="left")
    policy = js.MinMaxPolicy(pairs, len(w.stores), n_k, w.rule, w.est, w.est_used, w.start)
    b0, p0 = w.buckets.copy(), w.pipeline.copy()
    n = len(pairs)
    demand = np.zeros((days, n), np.int64)
    active = np.zeros((days, n), bool)
    seen = {k: np.zeros(days, np.int64) for k in ("sold", "wasted", "received", "on_hand")}
    for t in range(days):
        r = w.day(warm + t)
        idx = (r.pair_store - 1) * n_k + r.pair_sku - 1
        demand[t, idx] = r.demand
        active[t, idx] = True
        for k in seen:
            seen[k][t] = getattr(r, k).sum()
    res = simulate(pairs, b0, p0, demand, active, policy, START + dt.timedelta(days=warm))
    for k, v in seen.items():
        assert res.by_day[k].tolist() == v.tolist(), k
