"""Every verb answers --help and explains every option; errors speak to the user."""
from __future__ import annotations

import argparse
import datetime as dt

import pytest

from jobs.cli import build_parser, main


def _subparsers(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield name, sub
                yield from ((f"{name} {n}", s) for n, s in _subparsers(sub))


def test_every_option_of_every_verb_has_help():
    parser = build_parser()
    verbs = dict(_subparsers(parser))
    assert {"generate", "import", "import store-item", "warehouse", "schema", "config",
            "stats"} <= set(verbs)
    for name, sub in [("replenish", parser), *verbs.items()]:
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"{name}: option {action.option_strings or action.dest} has no help"


@pytest.mark.parametrize("argv", [["--help"], ["generate", "--help"], ["warehouse", "--help"],
                                  ["import", "store-item", "--help"], ["stats", "--help"]])
def test_help_exits_cleanly(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0
    assert "usage: replenish" in capsys.readouterr().out


def test_bad_date_is_a_clear_error(capsys):
    with pytest.raises(SystemExit):
        main(["generate", "--start", "2025-13-01"])
    assert "expected a date as YYYY-MM-DD, got '2025-13-01'" in capsys.readouterr().err


def test_generate_then_schema_from_the_cli(tmp_path, capsys):
    home = tmp_path / "h"
    assert main(["--home", str(home), "generate", "--days", "3", "--no-progress",
                 "--start", "2025-03-01"]) == 0
    out = capsys.readouterr().out
    assert "4 stores x 40 SKUs" in out
    assert (home / "landing" / "sales" / f"date={dt.date(2025, 3, 3)}").is_dir()
    assert (home / "truth" / "demand" / "date=2025-03-01").is_dir()
    assert main(["schema", "--markdown"]) == 0
    md = capsys.readouterr().out
    assert "### `sales`" in md and "| `quantity` |" in md


def test_simulate_options_reach_the_simulator(monkeypatch, tmp_path):
    """The CLI's simulate options become the SimulateConfig the simulator runs with."""
    from jobs import simulate

    seen = {}

    def capture(cfg, sim, progress=True, write=True):
        seen["sim"] = sim
        raise SystemExit(0)

    monkeypatch.setattr(simulate, "run", capture)
    monkeypatch.setenv("REPLENISH_HOME", str(tmp_path))
    with pytest.raises(SystemExit):
        main(["simulate", "--policy", "plan,oracle", "--days", "5", "--forecasts", "champion",
              "--warmup-days", "7", "--censored", "drop", "--minmax-overfill", "--retrain",
              "--no-progress"])
    sim = seen["sim"]
    assert (sim.policies, sim.days, sim.forecasts) == (("plan", "oracle"), 5, "champion")
    assert (sim.warmup_days, sim.censored, sim.minmax_capacity) == (7, "drop", False)
    assert sim.retrain is True
    with pytest.raises(SystemExit):
        main(["simulate", "--no-progress"])
    assert (seen["sim"].warmup_days, seen["sim"].minmax_capacity) == (0, True)
    assert seen["sim"].retrain is False and seen["sim"].history == "simulated"
    with pytest.raises(SystemExit):
        main(["simulate", "--history", "world", "--no-progress"])
    assert seen["sim"].history == "world"
