"""The one typed, frozen configuration object every job receives.

Precedence, lowest to highest: built-in defaults < a TOML file (``REPLENISH_CONFIG`` or
``--config``) < environment variables < explicit overrides (command-line options).
Connections are configuration, never code; no credentials live in this repository.
"""
from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Config", "ENV_VARS", "load_config", "parse_stores"]

#: Environment variable -> (field name, meaning). The README's table is generated from this.
ENV_VARS: dict[str, tuple[str, str]] = {
    "REPLENISH_HOME": ("home", "Root of everything the pipeline writes (lake, truth, "
                       "reports, embedded PostgreSQL, MLflow, Airflow). Default ./var"),
    "REPLENISH_CONFIG": ("config_file", "Optional TOML file with any of the fields below "
                         "(keys are the lower-case field names)"),
    "SPARK_MASTER": ("spark_master", "Spark master URL. Default local[*]; e.g. "
                     "spark://host:7077 for a standalone cluster"),
    "SPARK_DRIVER_MEMORY": ("spark_driver_memory", "Driver memory for local Spark. Default 4g"),
    "SPARK_SHUFFLE_PARTITIONS": ("spark_shuffle_partitions",
                                 "spark.sql.shuffle.partitions. Default 8 (2-core machine)"),
    "REPLENISH_WAREHOUSE_URL": ("warehouse_url", "PostgreSQL URL of the warehouse "
                                "(postgresql://user@host:5432/db; password via PGPASSWORD or "
                                "~/.pgpass). Default: the embedded PostgreSQL under "
                                "$REPLENISH_HOME/pg"),
    "REPLENISH_PG_PORT": ("pg_port", "Port of the embedded PostgreSQL. Default 54329"),
    "MLFLOW_TRACKING_URI": ("mlflow_tracking_uri", "MLflow tracking server or store. "
                            "Default sqlite:///$REPLENISH_HOME/mlflow/mlflow.db"),
    "REPLENISH_INGEST_SOURCE": ("ingest_source", "Where ingest reads raw partitions: landing "
                                "(Parquet/CSV under $REPLENISH_HOME/landing, default) or "
                                "postgres (tables of REPLENISH_SOURCE_URL over JDBC)"),
    "REPLENISH_SOURCE_URL": ("source_url", "PostgreSQL URL of the source system for "
                             "ingest_source=postgres (password via PGPASSWORD)"),
    "REPLENISH_SOURCE_SCHEMA": ("source_schema", "Schema of the source tables. Default public"),
    "REPLENISH_JDBC_JAR": ("jdbc_jar", "PostgreSQL JDBC driver jar for Spark. Default "
                           "/usr/share/java/postgresql.jar (Debian libpostgresql-jdbc-java)"),
    "REPLENISH_MODEL_PROFILE": ("model_profile", "Training settings of the ensemble: full "
                                "(default) or quick (minutes on small; tests and demos)"),
    "REPLENISH_EXPERIMENT": ("mlflow_experiment", "MLflow experiment of the training runs. "
                             "Default replenish"),
    "REPLENISH_MAX_SERIES": ("max_series", "Series sampled for training and backtests (all "
                             "are scored). Default 5000"),
    "REPLENISH_QUARANTINE_MAX_SHARE": ("quarantine_max_share", "Share of a partition's rows "
                                       "that may be quarantined before a step fails. "
                                       "Default 0.01"),
    "REPLENISH_SOLVER": ("plan_solver", "MILP solver of the plan step: cbc (default) or "
                         "highs"),
    "REPLENISH_SOLVER_TIME_LIMIT": ("plan_time_limit_s", "Time limit per store's MILP, "
                                    "seconds (then the best plan found or the greedy "
                                    "fallback). Default 8"),
    "REPLENISH_MIP_GAP": ("plan_mip_gap", "Relative MIP gap at which a store's solve stops. "
                          "Default 0.005"),
    "REPLENISH_SCORE_CHUNK_PAIRS": ("score_chunk_pairs", "Store x SKU pairs score forecasts "
                                    "at a time (whole stores per chunk; bounds its memory). "
                                    "Default 20000"),
    "REPLENISH_STORES": ("stores", "Comma-separated store ids that score and plan re-run "
                         "(their rows of the date are replaced, the other stores' kept). "
                         "Default empty = all stores"),
}


@dataclass(frozen=True)
class Config:
    """Everything a job needs to know about where things are and how to reach them."""

    home: Path = Path("var")
    spark_master: str = "local[*]"
    spark_driver_memory: str = "4g"
    spark_shuffle_partitions: int = 8
    spark_ui: bool = False
    warehouse_url: str | None = None
    pg_port: int = 54329
    mlflow_tracking_uri: str | None = None
    quarantine_max_share: float = 0.01
    model_profile: str = "full"
    mlflow_experiment: str = "replenish"
    max_series: int = 5000
    ingest_source: str = "landing"
    source_url: str | None = None
    source_schema: str = "public"
    jdbc_jar: str = "/usr/share/java/postgresql.jar"
    plan_solver: str = "cbc"
    plan_time_limit_s: float = 8.0
    plan_mip_gap: float = 0.005
    stores: tuple[int, ...] = ()
    score_chunk_pairs: int = 20_000
    config_file: Path | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        # Accept plain strings for paths, so Config(home="/tmp/x") just works.
        object.__setattr__(self, "home", Path(self.home))
        if self.config_file is not None:
            object.__setattr__(self, "config_file", Path(self.config_file))

    # Derived locations: one root, so a run is a folder you can delete or copy.
    @property
    def lake(self) -> Path:
        return self.home / "lake"

    @property
    def truth(self) -> Path:
        return self.home / "truth"

    @property
    def landing(self) -> Path:
        return self.home / "landing"

    @property
    def reports(self) -> Path:
        return self.home / "reports"

    @property
    def pg_dir(self) -> Path:
        return self.home / "pg"

    @property
    def mlflow_uri(self) -> str:
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        return f"sqlite:///{(self.home / 'mlflow' / 'mlflow.db').resolve()}"

    @property
    def uses_embedded_warehouse(self) -> bool:
        return not self.warehouse_url

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)


_FIELDS = {f.name: f for f in dataclasses.fields(Config)}


def parse_stores(value: Any) -> tuple[int, ...]:
    """Store ids from ``"3, 1,7"``, a list or a tuple: sorted, unique, positive; empty = all."""
    items = [p.strip() for p in value.split(",")] if isinstance(value, str) else list(value)
    ids = set()
    for item in items:
        if item == "":
            continue
        text = str(item).strip()
        if isinstance(item, bool) or not text.isdigit() or int(text) <= 0:
            raise ValueError(f"stores: {item!r} is not a store id (a positive integer); "
                             f"got {value!r}")
        ids.add(int(text))
    return tuple(sorted(ids))


def _coerce(name: str, value: Any) -> Any:
    """Turn a string from the environment or a TOML value into the field's type."""
    if value is None:
        return None
    if name in ("home", "config_file"):
        return Path(os.path.expanduser(str(value)))
    if name in ("spark_shuffle_partitions", "pg_port", "max_series"):
        return int(value)
    if name == "score_chunk_pairs":
        pairs = int(value)
        if pairs < 1:
            raise ValueError(f"score_chunk_pairs must be >= 1, got {value!r}")
        return pairs
    if name == "model_profile":
        if str(value) not in ("full", "quick"):
            raise ValueError(f"model_profile must be 'full' or 'quick', got {value!r}")
        return str(value)
    if name == "quarantine_max_share":
        share = float(value)
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"quarantine_max_share must lie in [0, 1], got {value!r}")
        return share
    if name == "ingest_source":
        if str(value) not in ("landing", "postgres"):
            raise ValueError(f"ingest_source must be 'landing' or 'postgres', got {value!r}")
        return str(value)
    if name == "plan_solver":
        if str(value) not in ("cbc", "highs"):
            raise ValueError(f"plan_solver must be 'cbc' or 'highs', got {value!r}")
        return str(value)
    if name == "plan_time_limit_s":
        seconds = float(value)
        if not seconds > 0:
            raise ValueError(f"plan_time_limit_s must be > 0, got {value!r}")
        return seconds
    if name == "plan_mip_gap":
        gap = float(value)
        if not 0.0 <= gap < 1.0:
            raise ValueError(f"plan_mip_gap must lie in [0, 1), got {value!r}")
        return gap
    if name == "stores":
        return parse_stores(value)
    if name == "spark_ui":
        return str(value).strip().lower() in ("1", "true", "yes", "on")
    return str(value) if value != "" else None


def load_config(env: Mapping[str, str] | None = None, config_file: str | Path | None = None,
                **overrides: Any) -> Config:
    """Build the Config from defaults, an optional TOML file, the environment and overrides.

    ``overrides`` whose value is None are ignored, so command-line options that were not
    given do not mask the environment.
    """
    env = os.environ if env is None else env
    values: dict[str, Any] = {}

    path = config_file or env.get("REPLENISH_CONFIG")
    if path:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} (from --config or REPLENISH_CONFIG) "
                                    "does not exist")
        with path.open("rb") as fh:
            data = tomllib.load(fh)
        unknown = sorted(set(data) - set(_FIELDS))
        if unknown:
            raise ValueError(f"config file {path}: unknown keys {unknown}; "
                             f"known keys are {sorted(_FIELDS)}")
        values.update({k: _coerce(k, v) for k, v in data.items()})
        values["config_file"] = path

    for var, (name, _) in ENV_VARS.items():
        if var in env and name != "config_file":
            values[name] = _coerce(name, env[var])

    for name, value in overrides.items():
        if name not in _FIELDS:
            raise TypeError(f"unknown config field {name!r}")
        if value is not None:
            values[name] = _coerce(name, value)
    return Config(**values)
