"""XGBoost: one global model over every store x SKU on the feature table.

Training frame: the feature table (``features.catalog``): one row per (date, store_id,
sku_id) with the feature columns and the label ``demand`` (or ``y``, the protocol's name,
when present). Rows whose label is null (a censored day without any sale: demand unknown)
are not targets, but still lend their history features to longer horizons (below).

Horizons 1..H, direct strategy, one model for all of them. A feature row at date D holds
history features read from days before D (lags, rolling windows, intermittency, ...: the
catalog features with ``window_days > 0``) and covariates known in advance for D (calendar,
festival, weather, promotion, price, store and SKU attributes: ``window_days == 0``).
Forecasting from a cutoff T, only the row of T + 1 has fully known history, so an example of
horizon h is

    demand on D  ~  history features of the pair's row at D - h + 1
                    + covariates of the row at D + the feature ``horizon`` = h

i.e. history as of the cutoff T = D - h and the target day's own covariates. Training stacks
the examples of h = 1..H (h = 1 is the row itself; for h > 1 an example is dropped when the
pair has no row at D - h + 1) and fits one booster, so the horizons share what they have in
common (a weekend is a weekend) while trees can split on ``horizon`` where stale history
matters. No recursion, no feature recomputation, no leakage: in a backtest the history
columns of later target rows are never read. (One booster per horizon would cost H times
the fixed per-round work for the same data; the stacked model is also one importance table.)

``predict(horizon, quantiles, future)``: ``future`` holds the feature rows of the target
days T + 1 .. T + horizon for every pair to forecast (the caller builds them: the T + 1 row
exactly, later rows need only their covariates; their history columns are ignored). The
cutoff is the day before ``future``'s first date, so a model fitted earlier can score a
later night; in a backtest or a fit-then-score run it equals the training frame's last date.
The pairs forecast are those of ``future`` (a global model can forecast a pair it never saw).
``forecast_from(history, horizon, quantiles, future)`` is the same forecast with the cutoff
stated: ``history``'s last date (the boosters read a pair's history from its cutoff + 1
feature row, so ``history`` only sets the cutoff); ``future`` may hold more days, only
those after the cutoff are used. It never refits. Pickles with the standard ``pickle``
module (XGBoost boosters serialise themselves).

Point forecast (``mean`` column): with ``objective="asymmetric"`` (the default) the
business-aware objective of ``models.objective``: each training row weighs an
under-forecast by its SKU's ``under_cost`` (lost margin) and an over-forecast by
``over_cost`` (holding and, for perishables, expected waste). The costs come from
``costs`` (a ``unit_costs`` table) when given, else from the SKU attributes on the training
rows themselves (``price``, ``unit_cost``, ``is_perishable``, ``shelf_life_days``; each
SKU's latest row) through ``unit_costs``. The minimiser is an expectile at
under / (under + over), so this "mean" sits above the conditional mean when margin
outweighs holding and waste. ``objective="squared"``: plain ``reg:squarederror``.

Quantiles: XGBoost's own quantile regression, one multi-quantile booster
(``reg:quantileerror`` with ``quantile_alpha`` = the configured levels), so the spread
follows the features (a volatile, promoted or festival day, a longer horizon, gets a wider
interval) rather than one global residual distribution. ``predict`` returns any subset of
the trained levels. Every value is clipped at 0 and made non-decreasing across levels (a
running max over the trained levels); the quantiles do not depend on the costs (the planner applies those).

Training: ``tree_method="hist"``, seeded (``ModelConfig.seed``), ``nthread`` threads. The
number of rounds is chosen by early stopping on a time-ordered validation tail (examples
whose target date is among the last ``valid_days`` dates; metric: the asymmetric loss
itself, RMSE, or the pinball loss); the early-stopped booster is then kept and continued on
all examples for ``tail_rounds`` x its rounds more, so the most recent days are learnt too
(the quantile booster; the point booster is refit from scratch on all examples with the
rounds found: ``point_tail_rounds``). The quantile booster grows one tree per level per round,
most of a fit's CPU, so it learns at ``quantile_learning_rate`` (0.1, twice the point
booster's 0.05) and is not refit: about a third of its former rounds, for a q50 WAPE
0.1-0.3 points higher and the same coverage on two origins of ``small``. With fewer
than ``5 * valid_days`` dates the tail is a fifth of the dates; below 5 dates there is no
early stopping (``n_estimators`` rounds on all examples).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Self

import numpy as np
import pandas as pd
import xgboost as xgb
from matplotlib.figure import Figure

from features.catalog import FEATURES, LABELS, feature_names
from models.objective import asymmetric_objective, costs_for_rows, unit_costs
from models.protocol import (
    KEY,
    QUANTILES,
    ModelConfig,
    check_forecast,
    check_train,
    forecast_frame,
    quantile_columns,
)

__all__ = ["XGBConfig", "XGBForecaster", "HISTORY_FEATURES", "EXTRA_FEATURES",
           "HORIZON_FEATURE"]

#: Catalog features read from the pair's own history (taken from the cutoff + 1 row).
HISTORY_FEATURES: frozenset[str] = frozenset(f.name for f in FEATURES if f.window_days > 0)
#: Columns outside the catalog used by default when present: the store cluster
#: (``models.clustering``: join ``ClusterResult.labels`` on store_id), a covariate.
EXTRA_FEATURES: tuple[str, ...] = ("cluster",)
#: The model's own input: days from the cutoff to the target day.
HORIZON_FEATURE = "horizon"
_COST_ATTRS = ("price", "unit_cost", "is_perishable", "shelf_life_days")
_OBJECTIVES = ("asymmetric", "squared")
_MIN_DATES_FOR_VALIDATION = 5


@dataclass(frozen=True)
class XGBConfig:
    """Hyperparameters of ``XGBForecaster``; defaults suit the nightly run.

    ``horizons``: days ahead a fitted model can forecast. ``quantiles``: levels the quantile
    booster learns. ``objective``: ``"asymmetric"`` or ``"squared"``; ``loss``, ``smooth``,
    ``delta``: the shape of the asymmetric loss (see ``models.objective``).
    ``holding_rate_per_day``, ``cover_days``, ``salvage_rate``: passed to ``unit_costs`` when
    the costs come from the training rows (0.0008/day as in ``optimize.inputs.PlanConfig``).
    ``valid_days``: length of the early-stopping tail; ``tail_rounds``: rounds the quantile
    booster adds on all examples after early stopping, as a share of its early-stopped rounds
    (None: refit from scratch on all examples); ``point_tail_rounds``: the same for the point
    booster (default None: its refit is cheap and was 0.3-0.6 points of WAPE better).
    ``quantile_learning_rate``: the quantile booster's (None: ``learning_rate``).
    ``max_rows``: sample at most this
    many stacked training examples (seeded). ``features``: the model's inputs (default: the
    catalog features and ``EXTRA_FEATURES`` present in the training frame). ``history``:
    which of them are read from the cutoff + 1 row (default ``HISTORY_FEATURES``); every
    other feature is a covariate of the target day. ``label``: default ``y`` when present,
    else ``demand``.
    """

    horizons: int = 7
    quantiles: tuple[float, ...] = QUANTILES
    objective: str = "asymmetric"
    loss: str = "squared"
    smooth: float = 0.0
    delta: float = 1.0
    holding_rate_per_day: float = 0.0008
    cover_days: float = 1.0
    salvage_rate: float = 0.0
    n_estimators: int = 300
    learning_rate: float = 0.05
    max_depth: int = 6
    min_child_weight: float = 1.0
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    reg_lambda: float = 1.0
    early_stopping_rounds: int = 30
    valid_days: int = 14
    tail_rounds: float = 0.15
    point_tail_rounds: float | None = None
    quantile_learning_rate: float | None = 0.1
    nthread: int = 2
    max_rows: int | None = None
    features: tuple[str, ...] | None = None
    history: frozenset[str] = field(default=HISTORY_FEATURES)
    label: str | None = None

    def __post_init__(self) -> None:
        if self.horizons < 1:
            raise ValueError(f"XGBConfig.horizons must be >= 1, got {self.horizons}")
        quantile_columns(self.quantiles)
        if self.objective not in _OBJECTIVES:
            raise ValueError(f"XGBConfig.objective must be one of {_OBJECTIVES}, "
                             f"got {self.objective!r}")
        if self.n_estimators < 1 or self.early_stopping_rounds < 1 or self.valid_days < 1:
            raise ValueError("XGBConfig: n_estimators, early_stopping_rounds and valid_days "
                             "must be >= 1")
        for name in ("tail_rounds", "point_tail_rounds"):
            share = getattr(self, name)
            if share is not None and not 0.0 <= share <= 1.0:
                raise ValueError(f"XGBConfig.{name} must be in [0, 1], got {share}")
        if self.quantile_learning_rate is not None and not self.quantile_learning_rate > 0:
            raise ValueError("XGBConfig.quantile_learning_rate must be > 0, got "
                             f"{self.quantile_learning_rate}")
        if self.max_rows is not None and self.max_rows < 1:
            raise ValueError(f"XGBConfig.max_rows must be >= 1, got {self.max_rows}")
        if self.features is not None and not self.features:
            raise ValueError("XGBConfig.features must name at least one column")


def _matrix(df: pd.DataFrame, cols: Sequence[str], what: str) -> np.ndarray:
    """Features as float64 with NaN for nulls (booleans become 0/1)."""
    out = np.empty((len(df), len(cols)), dtype="float64")
    for j, c in enumerate(cols):
        try:
            out[:, j] = df[c].astype("Float64").to_numpy(dtype="float64", na_value=np.nan)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{what}: feature column {c!r} is not numeric or boolean "
                             f"({df[c].dtype}): {exc}") from exc
    out[~np.isfinite(out)] = np.nan
    return out


def _asymmetric_loss(y: np.ndarray, f: np.ndarray, under: np.ndarray, over: np.ndarray,
                     loss: str, delta: float) -> float:
    """Mean cost-weighted loss (the smooth = 0 form): the early-stopping metric."""
    e = y - f
    w = np.where(e > 0, under, over)
    rho = e ** 2 / 2 if loss == "squared" else delta ** 2 * (np.sqrt(1 + (e / delta) ** 2) - 1)
    return float(np.mean(w * rho))


def _check_columns(df: pd.DataFrame, cols: Sequence[str], what: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        have = list(df.columns)
        shown = f"{have[:20]} and {len(have) - 20} more" if len(have) > 20 else f"{have}"
        raise ValueError(f"{what}: missing column(s) {missing} the model needs (has {shown})")


def _dates(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values).dt.normalize().astype("datetime64[ns]")


class XGBForecaster:
    """Global XGBoost forecaster: an asymmetric point booster and a multi-quantile booster
    over horizons 1..H (see the module docstring).

    ``costs``: a ``unit_costs`` table (sku_id, under_cost, over_cost) for the asymmetric
    objective; default: derived from the training rows' SKU attributes. After ``fit``,
    ``costs`` holds the table used (None for ``objective="squared"``).
    """

    name = "xgboost"

    def __init__(self, config: XGBConfig | None = None,
                 costs: pd.DataFrame | None = None) -> None:
        self.config = config if config is not None else XGBConfig()
        if costs is not None:
            _check_columns(costs, ("sku_id", "under_cost", "over_cost"), "costs")
        self._given_costs = costs
        self.costs: pd.DataFrame | None = None
        self._point: xgb.Booster | None = None
        self._quantile: xgb.Booster | None = None
        self._rounds = (0, 0)
        self._examples_used = 0
        self._features: tuple[str, ...] = ()
        self._history: tuple[str, ...] = ()
        self._covariates: tuple[str, ...] = ()
        self._cutoff: pd.Timestamp | None = None

    # -- fitted state --------------------------------------------------------------------
    def _boosters(self) -> tuple[xgb.Booster, xgb.Booster]:
        if self._point is None or self._quantile is None:
            raise RuntimeError("XGBForecaster: call fit(train, cfg) before using the model")
        return self._point, self._quantile

    @property
    def features(self) -> tuple[str, ...]:
        """The input columns read from the feature table (the boosters also get
        ``horizon``, last)."""
        self._boosters()
        return self._features

    @property
    def history_features(self) -> tuple[str, ...]:
        """Inputs taken from the cutoff + 1 row."""
        self._boosters()
        return self._history

    @property
    def covariates(self) -> tuple[str, ...]:
        """Inputs taken from the target day's row."""
        self._boosters()
        return self._covariates

    @property
    def cutoff(self) -> pd.Timestamp:
        """The training frame's last date."""
        self._boosters()
        assert self._cutoff is not None
        return self._cutoff

    @property
    def rounds(self) -> tuple[int, int]:
        """Boosting rounds (point, quantile): early-stopped plus those on all examples."""
        self._boosters()
        return self._rounds

    @property
    def n_examples(self) -> int:
        """Stacked (row, horizon) training examples."""
        self._boosters()
        return self._examples_used

    # -- fit -----------------------------------------------------------------------------
    def fit(self, train: pd.DataFrame, cfg: ModelConfig | None = None) -> Self:
        """Learn the point and quantile boosters from the feature table; returns self."""
        conf = self.config
        seed = (cfg if cfg is not None else ModelConfig()).seed
        label = conf.label or ("y" if "y" in train.columns else "demand")
        _check_columns(train, [*KEY, "date", label], "training frame")
        features = self._choose_features(train, label)
        cost_attrs = [c for c in _COST_ATTRS if c in train.columns]
        cols = list(dict.fromkeys([*KEY, "date", label, *features, *cost_attrs]))
        frame = train[cols].rename(columns={label: "y"})
        frame["date"] = _dates(frame["date"])
        dup = frame.duplicated([*KEY, "date"], keep=False)
        if dup.any():
            raise ValueError(f"training frame: {int(dup.sum())} row(s) share a (store_id, "
                             f"sku_id, date), e.g.\n"
                             f"{frame.loc[dup, [*KEY, 'date']].head(5).to_string(index=False)}")
        labelled = check_train(frame[frame["y"].notna()], "training frame (labelled rows)")
        self._features = tuple(features)
        self._history = tuple(f for f in features if f in conf.history)
        self._covariates = tuple(f for f in features if f not in conf.history)
        costs = self._costs(frame) if conf.objective == "asymmetric" else None

        examples = pd.concat([self._examples(frame, labelled, h)
                              for h in range(1, conf.horizons + 1)], ignore_index=True)
        if conf.max_rows is not None and len(examples) > conf.max_rows:
            rng = np.random.default_rng(seed)
            keep = np.sort(rng.choice(len(examples), conf.max_rows, replace=False))
            examples = examples.iloc[keep].reset_index(drop=True)
        dates = np.sort(labelled["date"].unique())
        n_valid = min(conf.valid_days, len(dates) // 5)
        tail = np.zeros(len(examples), dtype=bool)
        if len(dates) >= _MIN_DATES_FOR_VALIDATION and n_valid >= 1:
            tail = (examples["date"] >= pd.Timestamp(dates[-n_valid])).to_numpy()
        if tail.all():
            tail[:] = False

        x = _matrix(examples, self._inputs, "training frame")
        y = examples["y"].to_numpy(dtype="float64")
        if costs is not None:
            under, over = costs_for_rows(examples, costs)
        else:
            under = over = np.ones(len(y))
        point, quantile = self._fit_boosters(x, y, under, over, tail, seed)
        self.costs = costs
        self._point, self._quantile = point[0], quantile[0]
        self._rounds = (point[1], quantile[1])
        self._examples_used = len(y)
        self._cutoff = pd.Timestamp(labelled["date"].max())
        return self

    @property
    def _inputs(self) -> list[str]:
        return [*self._features, HORIZON_FEATURE]

    def _choose_features(self, train: pd.DataFrame, label: str) -> list[str]:
        conf = self.config
        if conf.features is not None:
            features = list(dict.fromkeys(conf.features))
            _check_columns(train, features, "training frame")
        else:
            features = [c for c in (*feature_names(), *EXTRA_FEATURES) if c in train.columns]
            if not features:
                raise ValueError("training frame: no feature column of features.catalog "
                                 f"(or {list(EXTRA_FEATURES)}); has {list(train.columns)}")
        reserved = sorted({*LABELS, "y", label, "date", HORIZON_FEATURE, *KEY} & set(features))
        if reserved:
            raise ValueError(f"XGBConfig.features: {reserved} are keys, labels or the "
                             "model's own horizon, not inputs")
        return features

    def _costs(self, frame: pd.DataFrame) -> pd.DataFrame:
        conf = self.config
        if self._given_costs is not None:
            return self._given_costs[["sku_id", "under_cost", "over_cost"]].copy()
        missing = [c for c in _COST_ATTRS if c not in frame.columns]
        if missing:
            raise ValueError(f"training frame: the asymmetric objective needs each SKU's "
                             f"{list(_COST_ATTRS)} (missing {missing}); add them, pass "
                             "costs=unit_costs(skus, ...), or use objective='squared'")
        skus = (frame.sort_values("date", kind="stable")
                .drop_duplicates("sku_id", keep="last")[["sku_id", *_COST_ATTRS]])
        return unit_costs(skus, conf.holding_rate_per_day, conf.cover_days,
                          conf.salvage_rate).reset_index(drop=True)

    def _examples(self, frame: pd.DataFrame, labelled: pd.DataFrame, h: int) -> pd.DataFrame:
        """Examples of horizon h: labelled rows at D with history from the row at D-h+1."""
        if h == 1:
            out = labelled[[*KEY, "date", "y", *self._features]].copy()
        else:
            targets = labelled[[*KEY, "date", "y", *self._covariates]]
            src = frame[[*KEY, "date", *self._history]].copy()
            src["date"] = src["date"] + pd.Timedelta(days=h - 1)
            out = targets.merge(src, on=[*KEY, "date"], how="inner")
        out[HORIZON_FEATURE] = h
        return out.sort_values(["date", *KEY], kind="stable")

    def _params(self, seed: int) -> dict[str, Any]:
        conf = self.config
        return {"tree_method": "hist", "eta": conf.learning_rate, "max_depth": conf.max_depth,
                "min_child_weight": conf.min_child_weight, "subsample": conf.subsample,
                "colsample_bytree": conf.colsample_bytree, "lambda": conf.reg_lambda,
                "seed": seed, "nthread": conf.nthread, "verbosity": 0}

    def _fit_boosters(self, x: np.ndarray, y: np.ndarray, under: np.ndarray,
                      over: np.ndarray, tail: np.ndarray,
                      seed: int) -> tuple[tuple[xgb.Booster, int], tuple[xgb.Booster, int]]:
        """(booster, rounds) of the point and the quantile model: early stopping on the
        tail, then the early-stopped booster continued on every example (no refit from
        scratch: the quantile booster's rounds are most of a fit's CPU)."""
        conf = self.config
        names = self._inputs
        every = np.ones(len(y), dtype=bool)
        head = ~tail
        split = bool(tail.any())
        # one DMatrix per row set, shared by both boosters (hist bins them once each)
        d_all = xgb.DMatrix(x, label=y, feature_names=names, nthread=conf.nthread)
        d_head = (xgb.DMatrix(x[head], label=y[head], feature_names=names,
                              nthread=conf.nthread) if split else d_all)
        d_tail = (xgb.DMatrix(x[tail], label=y[tail], feature_names=names,
                              nthread=conf.nthread) if split else None)

        def fit(params: dict[str, Any], rows: np.ndarray, dtrain: xgb.DMatrix,
                obj_for: Callable[[np.ndarray], Any] | None,
                metric: Callable[[np.ndarray, xgb.DMatrix], tuple[str, float]] | None,
                tail_rounds: float | None) -> tuple[xgb.Booster, int]:
            obj = obj_for(rows) if obj_for is not None else None
            if not split:
                booster = xgb.train(params, dtrain, num_boost_round=conf.n_estimators,
                                    obj=obj, verbose_eval=False)
                return booster, conf.n_estimators
            booster = xgb.train(params, dtrain, num_boost_round=conf.n_estimators,
                                evals=[(d_tail, "valid")], obj=obj, custom_metric=metric,
                                early_stopping_rounds=conf.early_stopping_rounds,
                                verbose_eval=False)
            rounds = booster.best_iteration + 1
            obj = obj_for(every) if obj_for is not None else None
            if tail_rounds is None:  # refit on every example with the rounds found
                fit_params = params
                if "base_score" in params:
                    fit_params = {**params, "base_score": float(np.mean(y))}
                return xgb.train(fit_params, d_all, num_boost_round=rounds, obj=obj,
                                 verbose_eval=False), rounds
            booster = booster[:rounds]
            extra = math.ceil(tail_rounds * rounds)
            if extra > 0:  # learn the most recent days too
                booster = xgb.train(params, d_all, num_boost_round=extra, obj=obj,
                                    xgb_model=booster, verbose_eval=False)
            return booster, rounds + extra

        rows = head if split else every
        p_params = {**self._params(seed), "base_score": float(np.mean(y[rows]))}
        obj_for: Callable[[np.ndarray], Any] | None = None
        metric = None
        if conf.objective == "squared":
            p_params |= {"objective": "reg:squarederror", "eval_metric": "rmse"}
        else:
            p_params["disable_default_eval_metric"] = 1
            # costs normalised by the training rows' mean, as asymmetric_objective does
            scale = float(np.mean(0.5 * (under[rows] + over[rows])))
            u_v, o_v, y_v = under[tail] / scale, over[tail] / scale, y[tail]

            def obj_for(r: np.ndarray) -> Any:
                return asymmetric_objective(under[r], over[r], conf.smooth, conf.loss,
                                            conf.delta)

            def metric(predt: np.ndarray, _: xgb.DMatrix) -> tuple[str, float]:
                return "asymmetric", _asymmetric_loss(y_v, predt.reshape(-1), u_v, o_v,
                                                      conf.loss, conf.delta)
        q_params = {**self._params(seed), "objective": "reg:quantileerror",
                    "eta": conf.quantile_learning_rate or conf.learning_rate,
                    "quantile_alpha": np.asarray(conf.quantiles, dtype="float64"),
                    "eval_metric": "quantile"}
        return (fit(p_params, rows, d_head, obj_for, metric, conf.point_tail_rounds),
                fit(q_params, rows, d_head, None, None, conf.tail_rounds))

    # -- predict -------------------------------------------------------------------------
    def predict(self, horizon: int, quantiles: Sequence[float] = QUANTILES,
                future: pd.DataFrame | None = None) -> pd.DataFrame:
        """Forecast days 1..``horizon`` after the cutoff (the day before ``future``'s first
        date) for every pair in ``future``, the feature rows of those target days."""
        point, quantile = self._boosters()
        conf = self.config
        if isinstance(horizon, bool) or not isinstance(horizon, int | np.integer) \
                or not 1 <= horizon <= conf.horizons:
            raise ValueError(f"XGBForecaster.predict: horizon must be an int in "
                             f"1..{conf.horizons} (XGBConfig.horizons), got {horizon!r}")
        horizon = int(horizon)
        quantile_columns(quantiles)
        trained = [float(q) for q in conf.quantiles]
        idx = []
        for level in quantiles:
            hit = [j for j, t in enumerate(trained) if math.isclose(float(level), t)]
            if not hit:
                raise ValueError(f"XGBForecaster.predict: quantile {level} was not trained; "
                                 f"trained levels {trained} (XGBConfig.quantiles)")
            idx.append(hit[0])
        if future is None:
            raise ValueError("XGBForecaster.predict: needs future, the feature rows of the "
                             "target days (store_id, sku_id, date and the model's features)")
        _check_columns(future, [*KEY, "date", *self._features], "future")
        if len(future) == 0:
            raise ValueError("future: is empty")
        fut = future[[*KEY, "date", *self._features]].copy()
        if fut[[*KEY, "date"]].isna().to_numpy().any():
            raise ValueError("future: null store_id, sku_id or date")
        fut["date"] = _dates(fut["date"])
        cutoff = pd.Timestamp(fut["date"].min()) - pd.Timedelta(days=1)
        fut[HORIZON_FEATURE] = ((fut["date"] - cutoff) // pd.Timedelta(days=1)).astype("int64")
        fut = fut[fut[HORIZON_FEATURE] <= horizon]
        dup = fut.duplicated([*KEY, "date"], keep=False)
        if dup.any():
            raise ValueError(f"future: {int(dup.sum())} row(s) share a (store_id, sku_id, "
                             f"date), e.g.\n"
                             f"{fut.loc[dup, [*KEY, 'date']].head(5).to_string(index=False)}")
        counts = fut.groupby(list(KEY), sort=True)[HORIZON_FEATURE].size()
        short = counts[counts != horizon]
        if len(short):
            first, last = cutoff + pd.Timedelta(days=1), cutoff + pd.Timedelta(days=horizon)
            raise ValueError(f"future: {len(short)} pair(s) lack a row for some day of "
                             f"{first.date()}..{last.date()} (the cutoff is the day before "
                             f"future's first date), e.g. (store_id, sku_id) "
                             f"{list(short.index[:5])}")
        keys = counts.index.to_frame(index=False)[list(KEY)]
        origin = fut.loc[fut[HORIZON_FEATURE] == 1, [*KEY, *self._history]]
        rows = (fut[[*KEY, HORIZON_FEATURE, *self._covariates]]
                .merge(origin, on=list(KEY), how="left")
                .sort_values([*KEY, HORIZON_FEATURE], kind="stable"))
        x = xgb.DMatrix(_matrix(rows, self._inputs, "future"), feature_names=self._inputs,
                        nthread=conf.nthread)
        n = len(keys)
        mean = np.clip(np.asarray(point.predict(x), dtype="float64"), 0.0, None)
        raw = np.asarray(quantile.predict(x), dtype="float64").reshape(n * horizon,
                                                                       len(trained))
        # monotone over every trained level first, so a column never depends on the others
        # asked for
        qvalues = np.maximum.accumulate(np.clip(raw, 0.0, None), axis=1)[:, idx]
        out = forecast_frame(keys, cutoff, mean.reshape(n, horizon),
                             qvalues.reshape(n, horizon, len(idx)), quantiles)
        check_forecast(out, horizon, quantiles)
        return out

    def forecast_from(self, history: pd.DataFrame, horizon: int,
                      quantiles: Sequence[float] = QUANTILES,
                      future: pd.DataFrame | None = None) -> pd.DataFrame:
        """Forecast days 1..``horizon`` after ``history``'s last date for every pair of
        ``future``, the feature rows of (at least) those days; the same boosters, no refit."""
        self._boosters()
        _check_columns(history, ["date"], "history")
        if len(history) == 0:
            raise ValueError("history: is empty")
        if future is None:
            raise ValueError("XGBForecaster.forecast_from: needs future, the feature rows of "
                             "the target days (store_id, sku_id, date and the model's "
                             "features)")
        _check_columns(future, [*KEY, "date"], "future")
        cutoff = pd.Timestamp(_dates(history["date"]).max())
        after = _dates(future["date"]) > cutoff
        first = cutoff + pd.Timedelta(days=1)
        if not (_dates(future["date"]) == first).any():
            raise ValueError(f"future: no feature row for {first.date()}, the day after "
                             f"history's last date {cutoff.date()} (the cutoff); the model "
                             "reads each pair's history from that row")
        return self.predict(horizon, quantiles, future.loc[after.to_numpy()])

    # -- importance ----------------------------------------------------------------------
    def feature_importance(self) -> pd.DataFrame:
        """Gain importance of the point booster: mean gain per split of each input (0 when
        never split on), with ``share`` of the total; columns feature, gain, share, largest
        first. ``horizon`` is among the inputs."""
        point, _ = self._boosters()
        score = point.get_score(importance_type="gain")
        gain = np.array([float(np.asarray(score.get(f, 0.0)).sum()) for f in self._inputs])
        total = float(gain.sum())
        out = pd.DataFrame({"feature": self._inputs, "gain": gain,
                            "share": gain / total if total > 0 else np.zeros(len(gain))})
        return out.sort_values(["gain", "feature"], ascending=[False, True],
                               kind="stable").reset_index(drop=True)

    def importance_plot(self, top: int = 20) -> Figure:
        """Horizontal bars of the ``top`` inputs by share of gain."""
        imp = self.feature_importance().head(top).iloc[::-1]
        fig = Figure(figsize=(7, 0.3 * len(imp) + 1.5), layout="constrained")
        ax = fig.add_subplot()
        ax.barh(imp["feature"], imp["share"], color="tab:blue")
        ax.set_xlabel("share of total gain (point model)")
        ax.set_title(f"XGBoost feature importance, top {len(imp)} by gain")
        return fig
