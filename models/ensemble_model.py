"""The ensemble as one object: members, learnt weights, segments; and its MLflow pyfunc.

``EnsembleConfig`` holds every setting of a training run; ``make_members`` builds the members
it names; ``training_frame`` turns feature-table rows into the members' training frame.

``EnsembleModel`` is what the registry stores. It forecasts from *new* history without
retraining (``forecast``): the nightly run scores with the champion trained up to a week
earlier. XGBoost reads the feature rows of the target days (``future``); every other member
forecasts from ``history`` with its learnt parameters (``forecast_from``). The members'
forecasts are combined with the weights of the series' segment (its store cluster, see
``models.ensemble``). A member that fails is left out of the combination and named in
``flags`` (the weights of the others are renormalised row by row), so a broken member
degrades the forecast instead of stopping the night.

The pyfunc (``EnsemblePyfunc``) wraps a pickled ``EnsembleModel``. Its input is one frame:
``role`` = ``history`` rows (store_id, sku_id, date, y and covariates, the last weeks) and
``future`` rows (the feature rows of the target days); its output the combined forecast frame
(``models.protocol``) with a ``model`` column.
"""
from __future__ import annotations

import dataclasses
import logging
import pickle
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.ensemble import PRIOR, EnsembleWeights, combine
from models.protocol import KEY, QUANTILES, Forecaster, check_forecast

__all__ = ["EnsembleConfig", "EnsembleModel", "EnsemblePyfunc", "MEMBERS", "make_members",
           "training_frame", "bounded_costs", "MEMBER_FACTORIES", "learn_weights", "split_input", "join_input",
           "ROLE", "FESTIVAL_WINDOW"]

log = logging.getLogger(__name__)

#: Members in the order of the case study, then the intermittent-demand model.
MEMBERS: tuple[str, ...] = ("xgboost", "lstm", "prophet", "arima", "tsb", "weekday_ma")
#: Column telling history rows from target-day rows in the pyfunc's input.
ROLE = "role"
#: Days before/after a festival Prophet's holiday effect spans (the run-up matters most).
FESTIVAL_WINDOW = (-3, 1)


@dataclass(frozen=True)
class EnsembleConfig:
    """Settings of one training run (logged to MLflow as parameters).

    ``members``: any of ``MEMBERS``. ``train_days``: days of history each fit reads.
    ``max_series``: series sampled for training (seeded; every series is still scored).
    ``max_asymmetry``: the XGBoost objective weighs under- and over-forecasts by each SKU's
    lost margin and holding/waste cost, with the implied critical ratio clipped to
    [1 - max_asymmetry, max_asymmetry] (see ``bounded_costs``). ``weights_objective``:
    ``wape`` or ``business_cost`` for the ensemble weights. ``n_cutoffs``: backtest origins
    scored; ``validation_origins``: weekly origins before them that only learn the ensemble
    weights (weights learnt on one week swing with that week's events: on Store Item Demand
    one week picked LSTM + TSB and missed ARIMA). ``quantile_weights``: each quantile its own
    weights (``EnsembleWeights(per_quantile=...)``). ``imputed_events``: event kinds
    (``models.events.EVENTS``) whose days TSB, ARIMA and the weekday moving average see
    imputed from plain days, in fit and scoring, and Prophet in scoring (its level correction
    and fallbacks; it fits on the raw festival days, its holidays); with ``promotion``, their
    forecasts of promoted target days are lifted by a price elasticity per category learnt
    from the history (``models.events``); empty: raw history for all. ``quick``: small
    settings for tests and demos.
    """

    horizon: int = 7
    quantiles: tuple[float, ...] = QUANTILES
    members: tuple[str, ...] = MEMBERS
    seed: int = 42
    threads: int = 2
    train_days: int = 120
    max_series: int = 5000
    n_cutoffs: int = 3
    validation_origins: int = 2
    xgb_rounds: int = 250
    xgb_max_rows: int = 300_000
    xgb_depth: int = 6
    lstm_context: int = 28
    lstm_hidden: int = 32
    lstm_max_windows: int = 20_000
    lstm_epochs: int = 30
    max_aggregates: int = 40
    max_asymmetry: float = 0.7
    holding_rate_per_day: float = 0.0008
    weights_objective: str = "wape"
    shrinkage: float = 200.0
    quantile_weights: bool = True
    imputed_events: tuple[str, ...] = ("festival", "promotion")

    def __post_init__(self) -> None:
        unknown = sorted(set(self.members) - set(MEMBERS))
        if unknown or not self.members:
            raise ValueError(f"EnsembleConfig.members: unknown {unknown}; choose from {MEMBERS}")
        if not 0.5 <= self.max_asymmetry < 1.0:
            raise ValueError(f"EnsembleConfig.max_asymmetry must be in [0.5, 1), got "
                             f"{self.max_asymmetry}")
        from models.events import check_events

        check_events(self.imputed_events, "EnsembleConfig.imputed_events")
        if self.horizon < 1 or self.train_days < 28 or self.n_cutoffs < 1 \
                or self.validation_origins < 1:
            raise ValueError("EnsembleConfig: need horizon >= 1, train_days >= 28, "
                             "n_cutoffs >= 1 and validation_origins >= 1")

    @classmethod
    def quick(cls, **override: Any) -> EnsembleConfig:
        """Small settings: minutes on ``small``, seconds on ``tiny``. The LSTM keeps 16,000
        windows and 30 epochs (early stopping): with 4,000 and 8 it was still learning when
        it stopped and forecast ``small``'s April 12-17% above the true expected demand, per
        pair error 0.23 of the demand instead of 0.14-0.16 (8 s a fit on ``small``)."""
        base: dict[str, Any] = dict(train_days=90, max_series=1500, xgb_rounds=80, xgb_max_rows=60_000,
                    xgb_depth=5, lstm_hidden=16, lstm_max_windows=16_000, lstm_epochs=30,
                    max_aggregates=12)
        base.update(override)
        return cls(**base)

    def params(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v)
                for k, v in dataclasses.asdict(self).items()}


def training_frame(rows: pd.DataFrame) -> pd.DataFrame:
    """Feature-table rows -> the members' training frame.

    ``y`` = corrected ``demand``; rows with unknown demand (censored without sales) are left
    out, a day without an observation. ``segment`` = store cluster x category (the aggregates
    of Prophet and ARIMA), ``category`` the category code, ``cluster`` the store cluster
    (0 when the rows carry none).
    """
    out = rows.loc[rows["demand"].notna()].copy()
    out["date"] = pd.to_datetime(out["date"]).astype("datetime64[ns]")
    out["y"] = out["demand"].astype("float64")
    if "cluster" not in out.columns:
        out["cluster"] = 0
    out["cluster"] = out["cluster"].fillna(0).astype("int64")
    out["category"] = out["category_code"].astype("int64").astype(str)
    out["segment"] = "c" + out["cluster"].astype(str) + "-" + out["category"]
    return out.reset_index(drop=True)


def bounded_costs(costs: pd.DataFrame, max_asymmetry: float) -> pd.DataFrame:
    """``unit_costs`` rows with ``under_cost`` and ``over_cost`` rescaled so that the critical
    ratio under / (under + over) lies in [1 - max_asymmetry, max_asymmetry], keeping their sum.

    Why: a non-perishable's lost margin is hundreds of times its one-day holding cost, so the
    raw ratio is ~0.99 and the asymmetric objective's minimiser (an expectile at that ratio)
    would sit near the top of the demand distribution. The planner already applies the full
    costs to the forecast quantiles; an unbounded point forecast would count them twice.
    """
    out = costs.copy()
    total = out["under_cost"].to_numpy("float64") + out["over_cost"].to_numpy("float64")
    ratio = np.divide(out["under_cost"].to_numpy("float64"), total,
                      out=np.full(len(out), 0.5), where=total > 0)
    ratio = np.clip(ratio, 1.0 - max_asymmetry, max_asymmetry)
    safe = np.where(total > 0, total, 1.0)
    out["under_cost"] = ratio * safe
    out["over_cost"] = (1.0 - ratio) * safe
    out["critical_ratio"] = ratio
    return out


def _festivals(calendar: pd.DataFrame | None) -> pd.DataFrame | None:
    """Prophet holidays from the festival calendar (one row per festival day)."""
    if calendar is None or calendar.empty or "festival" not in calendar.columns:
        return None
    fest = calendar.loc[calendar["festival"].notna(), ["festival", "date"]].drop_duplicates()
    if fest.empty:
        return None
    return pd.DataFrame({"holiday": fest["festival"].astype(str),
                         "ds": pd.to_datetime(fest["date"]),
                         "lower_window": FESTIVAL_WINDOW[0],
                         "upper_window": FESTIVAL_WINDOW[1]}).reset_index(drop=True)


def _xgboost(cfg: EnsembleConfig, calendar: pd.DataFrame | None,
             costs: pd.DataFrame | None) -> Forecaster:
    from models.xgb import XGBConfig, XGBForecaster

    xcfg = XGBConfig(horizons=cfg.horizon, quantiles=tuple(cfg.quantiles),
                     n_estimators=cfg.xgb_rounds, max_depth=cfg.xgb_depth, nthread=cfg.threads,
                     max_rows=cfg.xgb_max_rows, holding_rate_per_day=cfg.holding_rate_per_day)
    bounded = None if costs is None else bounded_costs(costs, cfg.max_asymmetry)
    return XGBForecaster(xcfg, costs=bounded)


def _lstm(cfg: EnsembleConfig, calendar: pd.DataFrame | None,
          costs: pd.DataFrame | None) -> Forecaster:
    from models.lstm import LSTMForecaster

    return LSTMForecaster(context=cfg.lstm_context, horizon=cfg.horizon, hidden=cfg.lstm_hidden,
                          max_windows=cfg.lstm_max_windows, epochs=cfg.lstm_epochs,
                          num_threads=cfg.threads, seed=cfg.seed)


def _prophet(cfg: EnsembleConfig, calendar: pd.DataFrame | None,
             costs: pd.DataFrame | None) -> Forecaster:
    from models.statistical import ProphetAggregate

    return _event_free(cfg, ProphetAggregate(festivals=_festivals(calendar),
                                             max_aggregates=cfg.max_aggregates, seed=cfg.seed),
                       on_fit=False)


def _arima(cfg: EnsembleConfig, calendar: pd.DataFrame | None,
           costs: pd.DataFrame | None) -> Forecaster:
    from models.statistical import ArimaAggregate

    return _event_free(cfg, ArimaAggregate(max_aggregates=cfg.max_aggregates, seed=cfg.seed))


def _tsb(cfg: EnsembleConfig, calendar: pd.DataFrame | None,
         costs: pd.DataFrame | None) -> Forecaster:
    from models.baselines import CrostonTSB

    return _event_free(cfg, CrostonTSB(method="tsb"))


def _weekday_ma(cfg: EnsembleConfig, calendar: pd.DataFrame | None,
                costs: pd.DataFrame | None) -> Forecaster:
    from models.baselines import WeekdayProfile

    return _event_free(cfg, WeekdayProfile())


def _event_free(cfg: EnsembleConfig, member: Forecaster, on_fit: bool = True) -> Forecaster:
    """``member`` seeing ``cfg.imputed_events`` imputed (``models.events``), or as it is."""
    if not cfg.imputed_events:
        return member
    from models.events import EventFree

    return EventFree(member, cfg.imputed_events, on_fit=on_fit)  # type: ignore[return-value]


#: How each member is built: name -> factory(cfg, calendar, costs). The extension point for
#: a new member (add its name to ``MEMBERS`` too).
MEMBER_FACTORIES: dict[str, Callable[[EnsembleConfig, pd.DataFrame | None,
                                      pd.DataFrame | None], Forecaster]] = {
    "xgboost": _xgboost, "lstm": _lstm, "prophet": _prophet, "arima": _arima, "tsb": _tsb,
    "weekday_ma": _weekday_ma}


def make_members(cfg: EnsembleConfig, calendar: pd.DataFrame | None = None,
                 costs: pd.DataFrame | None = None) -> dict[str, Forecaster]:
    """Fresh, unfitted members named by ``cfg.members`` (``MEMBER_FACTORIES``); ``calendar``
    (region, date, festival) gives Prophet its holidays, ``costs`` (``unit_costs``) the
    XGBoost objective."""
    return {name: MEMBER_FACTORIES[name](cfg, calendar, costs) for name in cfg.members}


@dataclass
class EnsembleModel:
    """Fitted members + learnt weights (see the module docstring)."""

    members: dict[str, Forecaster]
    weights: pd.DataFrame  # segment, model, weight (EnsembleWeights.weights_frame())
    clusters: pd.DataFrame  # store_id, cluster
    config: EnsembleConfig
    cutoff: pd.Timestamp
    fit_seconds: dict[str, float] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)

    def segments_for(self, keys: pd.DataFrame) -> pd.DataFrame:
        """store_id, sku_id, segment (the store's cluster) for ``keys``."""
        seg = keys[list(KEY)].drop_duplicates().merge(self.clusters, on="store_id", how="left")
        seg["segment"] = seg["cluster"].fillna(-1).astype("int64").astype(str)
        return seg[[*KEY, "segment"]]

    def population(self, start: pd.Timestamp, end: pd.Timestamp) -> dict[str, Any]:
        """Empty whole-population state (member name -> state) of the members that forecast
        a series from the aggregates of every series (Prophet, ARIMA: ``new_totals``), on
        the days ``start..end``; fill it with ``add_population`` chunk by chunk, then pass it
        to ``forecast`` with each chunk, so that the chunks' forecasts are those of one call
        over all series."""
        return {name: member.new_totals(start, end)
                for name, member in self.members.items() if hasattr(member, "new_totals")}

    def add_population(self, population: dict[str, Any], history: pd.DataFrame) -> None:
        """Add one chunk of history (whole stores, in increasing store order) to
        ``population``; a member that cannot take it fails later, in ``forecast``."""
        if history.empty:
            return
        seen = _Histories(history)
        for name, state in population.items():
            if isinstance(state, Exception):
                continue
            try:
                self.members[name].add_totals(  # type: ignore[attr-defined]
                    state, seen.of(self.members[name]))
            except Exception as exc:  # the member's failure is flagged when it forecasts
                population[name] = exc

    def member_forecasts(self, history: pd.DataFrame, future: pd.DataFrame | None,
                         horizon: int | None = None,
                         population: dict[str, Any] | None = None
                         ) -> tuple[dict[str, pd.DataFrame], list[str]]:
        """Each member's forecast from history's last date; failures become flags.
        ``population``: see ``population``."""
        horizon = horizon or self.config.horizon
        out: dict[str, pd.DataFrame] = {}
        flags: list[str] = []
        seen = _Histories(history)
        for name, member in self.members.items():
            began = time.perf_counter()
            extra: dict[str, Any] = {}
            try:
                if population is not None and name in population:
                    if isinstance(population[name], Exception):
                        raise population[name]
                    extra["totals"] = population[name]
                fc = member.forecast_from(seen.of(member), horizon,  # type: ignore[attr-defined]
                                          self.config.quantiles, future=future, **extra)
                check_forecast(fc, horizon, self.config.quantiles)
            except Exception as exc:  # a member's failure degrades the ensemble, flagged
                flags.append(f"member {name} failed: {type(exc).__name__}: {exc}"[:300])
                log.warning("ensemble: %s", flags[-1])
                continue
            out[name] = fc
            log.info("ensemble: %s forecast %d rows in %.1f s", name, len(fc),
                     time.perf_counter() - began)
        return out, flags

    def forecast(self, history: pd.DataFrame, future: pd.DataFrame | None,
                 horizon: int | None = None, population: dict[str, Any] | None = None
                 ) -> tuple[pd.DataFrame, dict[str, pd.DataFrame], list[str]]:
        """(combined forecast, member forecasts, flags) from ``history``'s last date;
        ``population``: when ``history`` is one chunk of the series (see ``population``)."""
        members, flags = self.member_forecasts(history, future, horizon, population)
        if not members:
            raise RuntimeError("ensemble: every member failed: " + "; ".join(flags))
        keys = pd.concat([fc[list(KEY)] for fc in members.values()]).drop_duplicates()
        combined = combine(members, self.weights, self.segments_for(keys))
        return combined, members, flags

    def weights_for(self, segment: str | None = None, column: str = "mean"
                    ) -> dict[str, float]:
        """The weights of ``segment`` (``"*"``: all rows) for forecast ``column``."""
        w = self.weights
        rows = w.loc[w["segment"] == (segment if segment is not None else "*")]
        if "column" in rows.columns:
            rows = rows.loc[rows["column"] == column]
        return {str(r.model): float(r.weight) for r in rows.itertuples()}

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as fh:
            pickle.dump(self, fh, protocol=pickle.HIGHEST_PROTOCOL)
        return path

    @staticmethod
    def load(path: Path) -> EnsembleModel:
        with Path(path).open("rb") as fh:
            model = pickle.load(fh)  # noqa: S301 - our own artifact from the registry
        if not isinstance(model, EnsembleModel):
            raise TypeError(f"{path}: not an EnsembleModel but {type(model).__name__}")
        return model


class _Histories:
    """One chunk of history as each member reads it: raw, or with event days imputed
    (``models.events.clean_history``) once per set of events, however many members and
    calls share it."""

    def __init__(self, history: pd.DataFrame) -> None:
        self.history = history
        self._clean: dict[tuple[str, ...], pd.DataFrame] = {}

    def of(self, member: Any) -> pd.DataFrame:
        from models.events import EventFree, clean_history

        if not isinstance(member, EventFree):
            return self.history
        if member.events not in self._clean:
            self._clean[member.events] = clean_history(self.history, member.events)
        return self._clean[member.events]


def learn_weights(member_forecasts: Mapping[str, pd.DataFrame], actuals: pd.DataFrame,
                  segments: pd.DataFrame | None, cfg: EnsembleConfig,
                  costs: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per-segment weights (segment, model, weight) from stacked validation forecasts."""
    prior = {m: PRIOR.get(m, 0.1) for m in member_forecasts}
    ew = EnsembleWeights(prior=prior, objective=cfg.weights_objective,
                         shrinkage=cfg.shrinkage, per_quantile=cfg.quantile_weights)
    act = actuals
    if cfg.weights_objective == "business_cost" and costs is not None:
        act = actuals.merge(costs[["sku_id", "under_cost", "over_cost"]], on="sku_id",
                            how="left")
    ew.fit(dict(member_forecasts), act, segments)
    return ew.weights_frame()


# --------------------------------------------------------------------------------- pyfunc
def _pyfunc_base() -> type:
    import mlflow.pyfunc

    return mlflow.pyfunc.PythonModel


class EnsemblePyfunc(_pyfunc_base()):  # type: ignore[misc]
    """MLflow pyfunc around a pickled ``EnsembleModel`` (artifact ``ensemble``)."""

    def load_context(self, context: Any) -> None:
        self.model = EnsembleModel.load(Path(context.artifacts["ensemble"]))

    def predict(self, context: Any, model_input: pd.DataFrame,
                params: dict[str, Any] | None = None) -> pd.DataFrame:
        horizon = int((params or {}).get("horizon", self.model.config.horizon))
        history, future = split_input(model_input)
        combined, _, flags = self.model.forecast(history, future, horizon)
        combined.insert(0, "model", "ensemble")
        combined["flags"] = "; ".join(flags) if flags else ""
        return combined


def split_input(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The pyfunc's one input frame -> (history, future)."""
    if ROLE not in frame.columns:
        raise ValueError(f"ensemble input needs a {ROLE!r} column ('history' or 'future')")
    roles = set(frame[ROLE].unique()) - {"history", "future"}
    if roles:
        raise ValueError(f"ensemble input: unknown {ROLE} value(s) {sorted(roles)}")
    history = frame.loc[frame[ROLE] == "history"].drop(columns=ROLE)
    future = frame.loc[frame[ROLE] == "future"].drop(columns=ROLE)
    history = history.loc[history["y"].notna()] if "y" in history.columns else history
    return history.reset_index(drop=True), future.reset_index(drop=True)


def join_input(history: pd.DataFrame, future: pd.DataFrame) -> pd.DataFrame:
    """(history, future) -> the pyfunc's one input frame."""
    return pd.concat([history.assign(**{ROLE: "history"}), future.assign(**{ROLE: "future"})],
                     ignore_index=True, sort=False)

