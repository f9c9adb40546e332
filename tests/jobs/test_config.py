"""Config precedence: defaults < TOML file < environment < explicit options."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from jobs.cli import main
from jobs.config import ENV_VARS, Config, load_config


def test_defaults_without_anything():
    cfg = load_config(env={})
    assert cfg == Config()
    assert cfg.home == Path("var") and cfg.spark_master == "local[*]"
    assert cfg.uses_embedded_warehouse
    assert cfg.mlflow_uri.startswith("sqlite:///") and cfg.mlflow_uri.endswith("mlflow.db")


def test_file_then_env_then_override(tmp_path):
    toml = tmp_path / "r.toml"
    toml.write_text('home = "/from/file"\nspark_master = "spark://file:7077"\n'
                    'quarantine_max_share = 0.05\npg_port = 6000\n')
    cfg = load_config(env={"REPLENISH_CONFIG": str(toml)})
    assert (cfg.home, cfg.spark_master, cfg.quarantine_max_share, cfg.pg_port) == (
        Path("/from/file"), "spark://file:7077", 0.05, 6000)

    env = {"REPLENISH_CONFIG": str(toml), "SPARK_MASTER": "spark://env:7077",
           "REPLENISH_HOME": "/from/env"}
    cfg = load_config(env=env)
    assert cfg.spark_master == "spark://env:7077" and cfg.home == Path("/from/env")
    assert cfg.pg_port == 6000, "keys the environment does not set still come from the file"

    cfg = load_config(env=env, home="/from/flag", spark_master=None)
    assert cfg.home == Path("/from/flag")
    assert cfg.spark_master == "spark://env:7077", "an option not given must not mask env"


def test_warehouse_and_mlflow_urls_from_env():
    cfg = load_config(env={"REPLENISH_WAREHOUSE_URL": "postgresql://bi@db:5432/w",
                           "MLFLOW_TRACKING_URI": "http://mlflow:5000"})
    assert not cfg.uses_embedded_warehouse
    assert cfg.mlflow_uri == "http://mlflow:5000"


@pytest.mark.parametrize("content, message", [
    ('colour = "blue"\n', "unknown keys \\['colour'\\]"),
    ("quarantine_max_share = 2.0\n", "quarantine_max_share must lie in"),
])
def test_bad_config_file_is_a_clear_error(tmp_path, content, message):
    toml = tmp_path / "bad.toml"
    toml.write_text(content)
    with pytest.raises(ValueError, match=message):
        load_config(env={}, config_file=toml)


def test_missing_config_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.toml"):
        load_config(env={"REPLENISH_CONFIG": str(tmp_path / "nope.toml")})


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Config().home = Path("/elsewhere")  # type: ignore[misc]


def test_cli_home_option_beats_environment(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("REPLENISH_HOME", str(tmp_path / "env"))
    assert main(["--home", str(tmp_path / "flag"), "config"]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path / "flag") in out and str(tmp_path / "env") not in out


def test_plan_solver_settings_from_env_and_checked():
    cfg = load_config(env={"REPLENISH_SOLVER": "highs", "REPLENISH_SOLVER_TIME_LIMIT": "2.5",
                           "REPLENISH_MIP_GAP": "0.01"})
    assert (cfg.plan_solver, cfg.plan_time_limit_s, cfg.plan_mip_gap) == ("highs", 2.5, 0.01)
    assert (Config().plan_solver, Config().plan_time_limit_s) == ("cbc", 8.0)
    with pytest.raises(ValueError, match="plan_solver must be 'cbc' or 'highs'"):
        load_config(env={"REPLENISH_SOLVER": "gurobi"})
    with pytest.raises(ValueError, match="plan_mip_gap"):
        load_config(env={"REPLENISH_MIP_GAP": "1.5"})


def test_readme_lists_every_environment_variable():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    missing = [var for var in ENV_VARS if f"`{var}`" not in readme]
    assert not missing, f"README's configuration table lacks {missing}"


def test_store_subset_parses_from_env_and_rejects_non_ids():
    from jobs.config import parse_stores

    assert load_config(env={"REPLENISH_STORES": " 7, 3,,7 "}).stores == (3, 7)
    assert load_config(env={}).stores == ()
    assert parse_stores([2, 1]) == (1, 2)
    for bad in ("1,x", "0", "-2", "1.5", [True]):
        with pytest.raises(ValueError, match="stores: .* is not a store id"):
            parse_stores(bad)
