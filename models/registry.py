"""The MLflow side: experiments, the registered ensemble, and the champion/challenger aliases.

One registered model (``REGISTERED_MODEL``, ``replenish-ensemble`` by default) holds every
trained ensemble as a version. Two aliases say which one is used:

* ``champion``: what ``score`` loads (``models:/replenish-ensemble@champion``);
* ``challenger``: the newest version that did not beat the champion.

A new version takes ``champion`` only if its business cost over the backtest window is lower
than the champion's on the same rows (``gate``); otherwise it becomes ``challenger``. The
first version is champion by default. Every move of ``champion`` is appended to the
registered model's tag ``champion_history`` (a comma-separated list of versions), so
``rollback`` can restore the previous one. Version tags record the training run: run date,
cutoff, backtest WAPE and business cost, and the gate's verdict.

Every function takes the tracking URI explicitly; nothing depends on a global MLflow state
set elsewhere. With the default SQLite store the artifacts live next to it
(``$REPLENISH_HOME/mlflow/artifacts``), not in the working directory.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["REGISTERED_MODEL", "CHAMPION", "CHALLENGER", "client", "experiment_id",
           "set_champion", "champion_version", "promote", "rollback", "list_versions",
           "load_version", "load_champion", "LoadedModel", "RegistryError", "HISTORY_TAG"]

log = logging.getLogger(__name__)

REGISTERED_MODEL = "replenish-ensemble"
CHAMPION = "champion"
CHALLENGER = "challenger"
HISTORY_TAG = "champion_history"


class RegistryError(RuntimeError):
    """The registry cannot do what was asked (no such version, nothing to roll back to)."""


def client(tracking_uri: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def _artifact_root(tracking_uri: str) -> str | None:
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri.removeprefix("sqlite:///"))
        return (db.parent / "artifacts").resolve().as_uri()
    return None


def experiment_id(tracking_uri: str, name: str) -> str:
    """The experiment ``name``, created (with its artifacts beside a SQLite store) if new."""
    c = client(tracking_uri)
    exp = c.get_experiment_by_name(name)
    if exp is not None:
        return str(exp.experiment_id)
    root = _artifact_root(tracking_uri)
    if root:
        Path(root.removeprefix("file://")).mkdir(parents=True, exist_ok=True)
    return str(c.create_experiment(name, artifact_location=root))


def _ensure_model(c: Any, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        c.get_registered_model(name)
    except MlflowException:
        c.create_registered_model(name, description=(
            "replenish demand-forecast ensemble (XGBoost, LSTM, Prophet, ARIMA, TSB) with "
            "per-cluster weights. Alias 'champion' is scored nightly."))


def champion_version(tracking_uri: str, name: str = REGISTERED_MODEL) -> int | None:
    """The version holding ``champion``, or None."""
    from mlflow.exceptions import MlflowException

    try:
        return int(client(tracking_uri).get_model_version_by_alias(name, CHAMPION).version)
    except MlflowException:
        return None


def _history(c: Any, name: str) -> list[int]:
    tags = c.get_registered_model(name).tags or {}
    text = tags.get(HISTORY_TAG, "")
    return [int(v) for v in text.split(",") if v.strip()]


def set_champion(tracking_uri: str, version: int, name: str = REGISTERED_MODEL,
                 reason: str = "") -> None:
    """Move ``champion`` to ``version`` and record it in the history."""
    c = client(tracking_uri)
    _ensure_model(c, name)
    c.get_model_version(name, str(version))  # raises if it does not exist
    c.set_registered_model_alias(name, CHAMPION, str(version))
    history = _history(c, name)
    if not history or history[-1] != version:
        history.append(version)
    c.set_registered_model_tag(name, HISTORY_TAG, ",".join(map(str, history)))
    if reason:
        c.set_model_version_tag(name, str(version), "champion_reason", reason)
    log.info("registry: %s@champion -> version %d %s", name, version, reason)


def promote(tracking_uri: str, version: int, name: str = REGISTERED_MODEL) -> int | None:
    """Make ``version`` the champion by hand; returns the previous champion's version."""
    c = client(tracking_uri)
    from mlflow.exceptions import MlflowException

    try:
        c.get_model_version(name, str(version))
    except MlflowException as exc:
        raise RegistryError(f"{name} has no version {version}") from exc
    before = champion_version(tracking_uri, name)
    set_champion(tracking_uri, version, name, reason="promoted by hand")
    try:
        if int(c.get_model_version_by_alias(name, CHALLENGER).version) == version:
            c.delete_registered_model_alias(name, CHALLENGER)
    except MlflowException:
        pass
    return before


def rollback(tracking_uri: str, name: str = REGISTERED_MODEL) -> tuple[int, int]:
    """Give ``champion`` back to the version before the current one; returns (from, to)."""
    c = client(tracking_uri)
    history = _history(c, name)
    current = champion_version(tracking_uri, name)
    if current is None:
        raise RegistryError(f"{name} has no champion to roll back")
    while history and history[-1] == current:
        history.pop()
    if not history:
        raise RegistryError(f"{name}: version {current} is the first champion; nothing to roll "
                            "back to (promote a version instead)")
    target = history[-1]
    c.set_registered_model_alias(name, CHAMPION, str(target))
    c.set_registered_model_tag(name, HISTORY_TAG, ",".join(map(str, history)))
    c.set_model_version_tag(name, str(target), "champion_reason",
                            f"rolled back from version {current}")
    return current, target


def list_versions(tracking_uri: str, name: str = REGISTERED_MODEL) -> pd.DataFrame:
    """One row per version: version, aliases, run date, cutoff, backtest metrics, verdict."""
    c = client(tracking_uri)
    from mlflow.exceptions import MlflowException

    try:
        model = c.get_registered_model(name)
    except MlflowException:
        return pd.DataFrame(columns=["version", "aliases", "run_date", "wape",
                                     "business_cost", "gate", "run_id"])
    aliases: dict[int, list[str]] = {}
    for alias, version in (model.aliases or {}).items():
        aliases.setdefault(int(version), []).append(alias)
    rows = []
    for mv in c.search_model_versions(f"name = '{name}'"):
        tags = mv.tags or {}
        rows.append({"version": int(mv.version),
                     "aliases": ",".join(sorted(aliases.get(int(mv.version), []))),
                     "run_date": tags.get("run_date", ""),
                     "wape": _float(tags.get("backtest_wape")),
                     "business_cost": _float(tags.get("backtest_business_cost")),
                     "gate": tags.get("gate", ""),
                     "run_id": mv.run_id})
    return pd.DataFrame(rows).sort_values("version").reset_index(drop=True)


def _float(text: str | None) -> float:
    try:
        return float(text) if text is not None else float("nan")
    except ValueError:
        return float("nan")


@dataclass(frozen=True)
class LoadedModel:
    """A model loaded for scoring, and how it was found."""

    model: Any  # models.ensemble_model.EnsembleModel
    version: int
    uri: str
    fallback: str  # "" when the champion itself was loaded, else why not


def load_version(tracking_uri: str, version: int, name: str = REGISTERED_MODEL) -> Any:
    """The ``EnsembleModel`` of one registered version (through its pyfunc)."""
    import mlflow.pyfunc

    mlflow.set_registry_uri(tracking_uri)
    mlflow.set_tracking_uri(tracking_uri)
    loaded = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    return loaded.unwrap_python_model().model


def load_champion(tracking_uri: str, name: str = REGISTERED_MODEL) -> LoadedModel:
    """The champion; if it cannot be loaded, the previous champions newest first, then any
    other version newest first. Raises RegistryError when nothing loads (the caller falls
    back to a baseline and flags the run)."""
    c = client(tracking_uri)
    from mlflow.exceptions import MlflowException

    try:
        c.get_registered_model(name)
    except MlflowException as exc:
        raise RegistryError(f"no registered model {name!r} in {tracking_uri}: train first "
                            "(replenish run train --date D)") from exc
    current = champion_version(tracking_uri, name)
    history = [v for v in reversed(_history(c, name)) if v != current]
    others = sorted((int(mv.version) for mv in c.search_model_versions(f"name = '{name}'")),
                    reverse=True)
    order = ([current] if current is not None else []) + history + [
        v for v in others if v != current and v not in history]
    problems = []
    for version in order:
        try:
            model = load_version(tracking_uri, version, name)
        except Exception as exc:  # a broken artifact must not stop the night: try the next
            problems.append(f"version {version}: {type(exc).__name__}: {exc}"[:300])
            log.warning("registry: cannot load %s version %d: %s", name, version, exc)
            continue
        why = "" if version == current else (
            "no champion alias" if current is None else
            f"champion version {current} failed to load ({problems[0]}); using version "
            f"{version}")
        return LoadedModel(model=model, version=version, uri=f"models:/{name}/{version}",
                           fallback=why)
    raise RegistryError(f"no version of {name!r} could be loaded: " + "; ".join(problems))
