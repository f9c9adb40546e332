"""``replenish simulate``: replay a window of the generated world under each policy.

Reads (each day from ``lake/clean`` when ingested there, else from ``landing``):

- the ``stores`` and ``skus`` snapshots in force on the first day;
- ``calendar`` of the lookback and the window (festive days, for the weekday forecast);
- ``promotions`` of the lookback, the window and the 7 days after it (each pair's discount
  per day: planned in advance, as the feature pipeline reads it; for the weekday forecast);
- the ``inventory`` snapshot of the day before the window: the starting stock by days to
  expiry; its ``on_order`` is assumed to arrive on the window's first morning (the planner's
  own assumption; the arrival day of each open order is not in the snapshot). Pairs without
  a row start empty;
- ``sales`` and ``inventory`` of the ``lookback_days`` before the window: the observed
  history the policies start from;
- ``truth/demand`` for the window (true, uncensored demand: the same for every policy) and
  the 7 days after it (the oracle's forecast);
- ``world.json``: the generator's scenario and seed, for its suppliers' reliability.

Policies (``optimize/simulate.py`` replays them):

- ``minmax``: the generator's own rule (:class:`jobs.world.ReorderRule`, applied as
  ``World._reorder`` does, checked against it by a test): the case study's "before". Its
  moving average of sales starts from the observed history (an EWMA over the lookback);
  pairs that never sold start from their store x category mean. The chain-level part of its
  levels is the mean over the simulated stores. By default (``minmax_capacity``) its orders
  are trimmed to each zone's free room (:func:`jobs.world.fit_to_room`), the capacities the
  MILP respects (with ``capacity="observed"``, never less than what the store held), so the
  baseline meets the same limits, as the generator's own rule does.
- ``plan``: the per-store MILP (``optimize.milp.solve_store``) re-planned every night, fed by
  a forecast: ``weekday_moving_average`` (default: ``WeekdayProfile``, a 28-day moving
  average with each store's weekday shape, trained without the days the ``calendar`` marks
  festive in the store's region, ``Window.festive``: a level that averages a festival's
  run-up in over-forecasts the weeks after it; promoted days divided by their uplift in the
  history and multiplied by it on the target days, (1 - discount) ** -elasticity with the
  elasticity of the SKU's category learnt from the history, ``promotion_elasticity``; its
  quantiles a negative binomial's with each pair's dispersion of the last 28 days),
  ``moving_average`` (flat, every day) or
  ``seasonal_naive`` from ``models.baselines``
  (``fit`` / ``predict`` every night, horizons 1-7, quantiles from their residuals) on the
  *observed* sales of the last ``lookback_days`` days, where a day whose shelf emptied
  (censored: sales are only a lower bound of demand) counts as the demand it most likely had
  given the previous night's forecast, E[D | D >= sold] (``censored="impute"``, default), or
  as unobserved (``"drop"``, biased low; see ``HistoryForecast``); a pair with no
  observed day gets the mean forecast of its store x category (a cold-start prior). Or
  ``lake``: ``lake/forecasts/date=D`` of ``replenish run score`` for every night D (made from
  the world's own history, not the simulated one); or ``champion``: the same, scoring the
  nights that have no partition yet with ``jobs.score.run`` (the registered ensemble
  champion, the nightly job's code path; needs ``lake/features`` of those nights), with
  ``retrain`` after ``jobs.train.run_if_due`` of the same date (weekly retraining, as the
  nightly DAG does); never with a champion trained after the night it scores.
- ``oracle``: the same MILP fed the true distribution of each day's demand: the mean is the
  generator's ``expected_demand`` and the quantiles those of a negative binomial with the
  truth's ``nb_dispersion`` (size k). The generator draws Poisson(mu x three independent
  gamma shocks of mean 1: store-day, store-category-day, pair-day); the negative binomial
  with k = 1 / ((1 + v_s)(1 + v_c)(1 + v_p) - 1) has exactly that mean and variance
  (a product of gammas is not a gamma, so its shape is an approximation, checked against a
  simulation of the mixture in ``tests/optimize/test_simulate.py``). The oracle knows no
  realised shock. After the last day of truth the last day's distribution repeats.

Swapping in the truth (``swap``, a diagnostic of the plan's cost gap to the oracle): the plan
is fed its forecasts with one part replaced by the oracle's. ``mean``: the truth's expected
demand as the mean, each quantile moved with it (its distance to the mean kept, clipped at
0); ``spread``: the forecast's own mean, the quantiles a negative binomial's around it with
the truth's dispersion. What the cost moves with tells whether the gap is the forecasts'
level or their spread. The oracle and min-max are never swapped.

Warm-up (``warmup_days``): the replay starts that many days before the measured window and
those days are left out of the metrics, so each policy is measured in its own steady state.
Without it the plan and the oracle spend the window selling down the stock the min-max rule
left (ambient and frozen zones filled to their capacity, weeks of cover for non-perishables),
which caps their turnover whatever they decide; with it they are compared on what they hold
themselves.

Suppliers: ``world`` (default when ``world.json`` describes the lake) replays the
generator's late and short deliveries with its per-supplier probabilities and the same
random draws for every policy; ``perfect`` delivers every order in full, on time. ``plan``
and ``oracle`` never read those probabilities: they learn each supplier's share of late
deliveries from what arrives (``PlanPolicy.late_prob``) and plan for it.

Writes ``reports/simulate/<start>_<days>d_<policy>.{json,md}`` per policy and, when several
run, ``<start>_<days>d_<p1-p2-...>.{json,md}`` with the side-by-side table and the INR
differences. Metric definitions: ``optimize/simulate.py`` (also in every JSON report).
"""
from __future__ import annotations

import datetime as dt
import json
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from jobs.config import Config
from jobs.lake import latest_snapshot_date, list_dates, partition_dir, read_partition
from jobs.world import SCENARIOS, ZONE_NAMES, ReorderRule, World, fit_to_room
from models.baselines import WeekdayProfile
from models.events import promotion_elasticity, promotion_uplift
from optimize.demand import daily_variance, gamma_mean_above
from optimize.inputs import EXPIRY_COLUMNS, QUANTILE_COLUMNS, PlanConfig, StoreInputs
from optimize.simulate import (
    METRIC_DOCS,
    CostModel,
    Night,
    PlanPolicy,
    SimResult,
    Supply,
    nb_quantiles,
    simulate,
)

__all__ = ["run", "SimulateConfig", "SimulateReport", "POLICIES", "FORECASTS", "SUPPLIERS",
           "CAPACITIES", "CENSORED", "SWAPS",
           "MinMaxPolicy", "OracleForecast", "SwappedForecast", "HistoryForecast", "LakeForecast",
           "WeekdayProfile",
           "promotion_elasticity", "promotion_uplift",
           "load_window", "Window", "CASE_STUDY"]

POLICIES = ("plan", "minmax", "oracle")
FORECASTS = ("moving_average", "weekday_moving_average", "seasonal_naive", "lake", "champion")
#: Whose sales the history forecasts learn from during the replay (``SimulateConfig``).
HISTORIES = ("simulated", "world")
#: How the history forecasts read a day whose shelf emptied (``HistoryForecast``).
CENSORED = ("impute", "drop")
#: What of the plan's forecasts is replaced by the truth's (``SwappedForecast``).
SWAPS = ("none", "mean", "spread")
SUPPLIERS = ("auto", "world", "perfect")
CAPACITIES = ("observed", "declared")
HORIZON = 7
#: Calendar festival intensity from which a day counts as festive (``Window.festive``).
FESTIVE = 0.3

#: The case study's "before" and "after" (service level, perishable waste %, turnover).
CASE_STUDY = {"before": {"fill_rate": 0.892, "waste_pct": 9.8, "turnover": 18.2},
              "after": {"fill_rate": 0.968, "waste_pct": 6.9, "turnover": 24.5}}


@dataclass(frozen=True)
class SimulateConfig:
    """What to simulate. ``start`` None: the last ``days`` days of the truth; ``stores``
    None: every store."""

    policies: tuple[str, ...] = POLICIES
    days: int = 28
    start: dt.date | None = None
    stores: tuple[int, ...] | None = None
    solver: str = "cbc"
    forecasts: str = "weekday_moving_average"
    suppliers: str = "auto"
    capacity: str = "observed"
    lookback_days: int = 56
    time_limit_s: float = 8.0
    mip_gap: float = 0.005
    #: Days replayed before the measured window (``days``) and left out of the metrics, so
    #: every policy is measured in its own steady state rather than while it drains (or
    #: fills) the stock the generator's min-max rule left behind.
    warmup_days: int = 0
    #: The min-max baseline respects the zone capacities the MILP respects (``stores``),
    #: trimming its orders to the zone's room, as the generator's rule does; False replays
    #: the rule without that trimming (zones overfill: a study of the rule without limits).
    minmax_capacity: bool = True
    #: Stock-out days in the plan's history forecasts: "impute" or "drop" (HistoryForecast).
    censored: str = "impute"
    #: With ``forecasts="champion"``: before a missing night is scored, run the nightly
    #: DAG's ``train.run_if_due`` for that date, so the champion is retrained weekly during
    #: the replay (``LakeForecast``); False scores every night with the champion as it is.
    retrain: bool = False
    #: Whose sales the history forecasts (``moving_average``, ``weekday_moving_average``,
    #: ``seasonal_naive``) learn from during the replay: "simulated" (default), the plan's
    #: own, as in production where the model reads the sales of the plan it serves; "world",
    #: the generated world's (its min-max rule's sales and stock-outs, what ``lake`` and
    #: ``champion`` forecasts read): the same forecaster on the other policy's history, to
    #: measure what reading it costs the plan.
    history: str = "simulated"
    #: A diagnostic: feed the plan its forecasts with the truth's mean (``"mean"``) or the
    #: truth's spread (``"spread"``) swapped in (``SwappedForecast``); ``"none"``: as they are.
    swap: str = "none"

    def __post_init__(self) -> None:
        bad = [p for p in self.policies if p not in POLICIES]
        if bad or not self.policies:
            raise ValueError(f"--policy: unknown {bad}; choose from {', '.join(POLICIES)} "
                             "or all")
        if self.days < 1:
            raise ValueError(f"--days must be at least 1, got {self.days}")
        if self.forecasts not in FORECASTS:
            raise ValueError(f"--forecasts must be one of {FORECASTS}, not {self.forecasts!r}")
        if self.suppliers not in SUPPLIERS:
            raise ValueError(f"--suppliers must be one of {SUPPLIERS}, not {self.suppliers!r}")
        if self.capacity not in CAPACITIES:
            raise ValueError(f"--capacity must be one of {CAPACITIES}, not {self.capacity!r}")
        if self.lookback_days < 7:
            raise ValueError("lookback_days must be at least 7")
        if self.censored not in CENSORED:
            raise ValueError(f"censored must be one of {CENSORED}, not {self.censored!r}")
        if self.warmup_days < 0:
            raise ValueError(f"warmup_days must be >= 0, got {self.warmup_days}")
        if self.history not in HISTORIES:
            raise ValueError(f"--history must be one of {HISTORIES}, not {self.history!r}")
        if self.history == "world" and self.forecasts in ("lake", "champion"):
            raise ValueError(f"--history world is for the history forecasts; --forecasts "
                             f"{self.forecasts} already reads the world's history (its "
                             "lake/features)")
        if self.swap not in SWAPS:
            raise ValueError(f"--swap must be one of {SWAPS}, not {self.swap!r}")
        if self.retrain and self.forecasts != "champion":
            raise ValueError(f"--retrain needs --forecasts champion, not {self.forecasts!r}: "
                             "only the champion's forecasts come from a model to retrain")

    def plan_config(self) -> PlanConfig:
        """The planner's settings: one thread, the job's solver, time limit and gap."""
        return PlanConfig(solver=self.solver, time_limit_s=self.time_limit_s,
                          mip_gap=self.mip_gap, threads=1)


@dataclass
class Window:
    """Everything the replay needs, read once; arrays follow ``pairs`` (store-major grid of
    the simulated stores x every SKU, sorted by ids)."""

    start: dt.date
    days: int
    pairs: pd.DataFrame
    stores: dict[int, StoreInputs]
    n_stores: int
    n_skus: int
    buckets: np.ndarray  # (n, 8) closing stock of start - 1
    on_order: np.ndarray  # (n,)
    demand: np.ndarray  # (days, n)
    active: np.ndarray  # (days, n)
    expected: np.ndarray  # (days + extra, n) truth from start on
    dispersion: np.ndarray  # (days + extra, n)
    hist_dates: list[dt.date]
    hist_sold: np.ndarray  # (n, L) observed units sold
    hist_active: np.ndarray  # (n, L)
    hist_censored: np.ndarray  # (n, L) the shelf emptied that day
    world: dict | None = None
    sources: dict[str, str] = field(default_factory=dict)
    #: (n_stores, L + days): a festival in the store's region (``calendar`` intensity >=
    #: FESTIVE) on each history and window day; the ``weekday_moving_average`` leaves those
    #: days out of its level. All False where the calendar has no partition.
    festive: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), bool))
    #: The first ``warmup`` of the ``days`` replayed are not measured.
    warmup: int = 0
    #: (n, L + days + HORIZON): each pair's largest promotion discount (0..1, 0 = none) on
    #: each history, window and look-ahead day, from the ``promotions`` table (planned in
    #: advance, as the feature pipeline reads it); zeros where a day has no partition.
    promo: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    #: With ``history="world"``: (n, days) the generated world's units sold, activity and
    #: censoring on each window day, read as the history before the window is
    #: (``_history``); empty otherwise.
    world_sold: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    world_active: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), bool))
    world_censored: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), bool))

    @property
    def end(self) -> dt.date:
        return self.start + dt.timedelta(days=self.days - 1)

    @property
    def measured_start(self) -> dt.date:
        return self.start + dt.timedelta(days=self.warmup)


@dataclass(frozen=True)
class SimulateReport:
    results: dict[str, SimResult]
    text: str
    paths: tuple[Path, ...]
    seconds: float
    settings: dict


# ------------------------------------------------------------------------------ reading
def _root(cfg: Config, table: str, day: dt.date) -> Path:
    """lake/clean when the day was ingested there, else landing."""
    clean = cfg.lake / "clean"
    return clean if partition_dir(clean, table, day).is_dir() else cfg.landing


def _read_days(cfg: Config, table: str, days: Sequence[dt.date], columns: Sequence[str],
               root: Path | None = None) -> pd.DataFrame:
    parts = []
    for day in days:
        base = root if root is not None else _root(cfg, table, day)
        t = read_partition(base, table, day, columns)
        parts.append(t.append_column("date", pa.array([day] * t.num_rows, pa.date32())))
    if not parts:
        return pd.DataFrame(columns=[*columns, "date"])
    return pa.concat_tables(parts).to_pandas()


def _snapshot(cfg: Config, table: str, day: dt.date) -> pd.DataFrame:
    clean = cfg.lake / "clean"
    try:
        when = latest_snapshot_date(clean, table, day)
        return read_partition(clean, table, when).to_pandas()
    except FileNotFoundError:
        return read_partition(cfg.landing, table, latest_snapshot_date(
            cfg.landing, table, day)).to_pandas()


def _world_manifest(cfg: Config) -> dict | None:
    path = Path(cfg.home) / "world.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _positions(frame: pd.DataFrame, store_ids: np.ndarray, n_skus: int,
               sku_pos: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Row positions in the pairs grid of ``frame``'s (store_id, sku_id), and a mask of the
    rows that are in it."""
    s = np.searchsorted(store_ids, frame["store_id"].to_numpy())
    s = np.clip(s, 0, len(store_ids) - 1)
    ok = store_ids[s] == frame["store_id"].to_numpy()
    k = frame["sku_id"].map(sku_pos)
    ok &= k.notna().to_numpy()
    pos = s * n_skus + np.nan_to_num(k.to_numpy(float)).astype(int)
    return pos[ok], ok


def load_window(cfg: Config, sim: SimulateConfig) -> Window:
    """Read what the replay needs (see the module docstring)."""
    truth_dates = list_dates(cfg.truth, "demand")
    if not truth_dates:
        raise FileNotFoundError(f"no ground truth under {cfg.truth}/demand: the simulator "
                                "replays the generator's true demand (replenish generate)")
    measured = sim.start or truth_dates[-1] - dt.timedelta(days=sim.days - 1)
    start = measured - dt.timedelta(days=sim.warmup_days)
    total = sim.warmup_days + sim.days
    window = [start + dt.timedelta(days=i) for i in range(total)]
    have = set(truth_dates)
    missing = [d for d in window if d not in have]
    if missing:
        raise FileNotFoundError(
            f"truth/demand has no partition for {len(missing)} day(s) of the window "
            f"{start} .. {window[-1]} (first: {missing[0]}); the truth covers "
            f"{truth_dates[0]} .. {truth_dates[-1]}")
    before = start - dt.timedelta(days=1)
    if not partition_dir(_root(cfg, "inventory", before), "inventory", before).is_dir():
        raise FileNotFoundError(f"no inventory snapshot for {before}, the day before the "
                                f"window: start the window later (the truth begins "
                                f"{truth_dates[0]})")

    skus = _snapshot(cfg, "skus", start).sort_values("sku_id", ignore_index=True)
    stores = _snapshot(cfg, "stores", start).sort_values("store_id", ignore_index=True)
    if sim.stores:
        unknown = sorted(set(sim.stores) - set(stores["store_id"]))
        if unknown:
            raise ValueError(f"--stores: unknown store_id {unknown}; the stores are "
                             f"{stores['store_id'].tolist()[:20]}")
        stores = stores[stores["store_id"].isin(sim.stores)].reset_index(drop=True)
    store_ids = stores["store_id"].to_numpy()
    n_s, n_k = len(stores), len(skus)
    pairs = pd.DataFrame({
        "store_id": np.repeat(store_ids, n_k).astype(np.int64),
        "sku_id": np.tile(skus["sku_id"].to_numpy(), n_s).astype(np.int64)})
    attrs = skus.drop(columns=[c for c in ("sku_name", "launched_on") if c in skus.columns])
    pairs = pairs.merge(attrs, on="sku_id", how="left", validate="many_to_one")
    sku_pos = pd.Series(np.arange(n_k), index=skus["sku_id"].to_numpy())
    n = len(pairs)

    inv = read_partition(_root(cfg, "inventory", before), "inventory", before,
                         ["store_id", "sku_id", "on_order", *EXPIRY_COLUMNS]).to_pandas()
    pos, ok = _positions(inv, store_ids, n_k, sku_pos)
    buckets = np.zeros((n, len(EXPIRY_COLUMNS)), np.int64)
    buckets[pos] = inv.loc[ok, list(EXPIRY_COLUMNS)].to_numpy(np.int64)
    on_order = np.zeros(n, np.int64)
    on_order[pos] = inv.loc[ok, "on_order"].to_numpy(np.int64)

    extra = [d for d in truth_dates if window[-1] < d <= window[-1] + dt.timedelta(HORIZON)]
    truth = _read_days(cfg, "demand", window + extra,
                       ["store_id", "sku_id", "expected_demand", "nb_dispersion", "demand"],
                       root=cfg.truth)
    day_idx = ((pd.to_datetime(truth["date"]) - pd.Timestamp(start)).dt.days).to_numpy()
    pos, ok = _positions(truth, store_ids, n_k, sku_pos)
    day_idx = day_idx[ok]
    n_all = len(window) + len(extra)
    expected = np.zeros((n_all, n))
    dispersion = np.full((n_all, n), np.inf)
    present = np.zeros((n_all, n), bool)
    demand = np.zeros((n_all, n), np.int64)
    expected[day_idx, pos] = truth.loc[ok, "expected_demand"].to_numpy(float)
    dispersion[day_idx, pos] = truth.loc[ok, "nb_dispersion"].to_numpy(float)
    demand[day_idx, pos] = truth.loc[ok, "demand"].to_numpy(np.int64)
    present[day_idx, pos] = True

    store_inputs = _store_inputs(stores, pairs, buckets.sum(axis=1) + on_order, sim.capacity)
    hist_dates = [start - dt.timedelta(days=i) for i in range(sim.lookback_days, 0, -1)]
    hist_sold, hist_active, hist_cens = _history(cfg, hist_dates, store_ids, n_k, sku_pos, n)
    festive = _festive(cfg, hist_dates + window, stores)
    ahead = [window[-1] + dt.timedelta(days=h) for h in range(1, HORIZON + 1)]
    promo = _promotions(cfg, hist_dates + window + ahead, store_ids, n_k, sku_pos, n)
    world = {} if sim.history != "world" else dict(zip(
        ("world_sold", "world_active", "world_censored"),
        _history(cfg, window, store_ids, n_k, sku_pos, n), strict=True))
    return Window(start=start, days=total, pairs=pairs,
                  stores=store_inputs,
                  n_stores=n_s, n_skus=n_k, buckets=buckets, on_order=on_order,
                  demand=demand[:total], active=present[:total], expected=expected,
                  dispersion=dispersion, hist_dates=hist_dates, hist_sold=hist_sold,
                  hist_active=hist_active, hist_censored=hist_cens, festive=festive,
                  promo=promo, **world,
                  world=_world_manifest(cfg),
                  sources={"inventory": str(_root(cfg, "inventory", before))},
                  warmup=sim.warmup_days)


def _store_inputs(stores: pd.DataFrame, pairs: pd.DataFrame, units: np.ndarray,
                  capacity: str) -> dict[int, StoreInputs]:
    """The stores' limits for the planner. ``observed``: a zone's capacity is at least the
    volume on hand and on order at the start (imported data whose stock exceeds the declared
    litres: a store evidently holds what it held, and the planner would otherwise order
    nothing into an overfull zone for weeks; a generated world stays within its capacities,
    so there it changes nothing); ``declared``: the snapshot's capacities as they are."""
    out = {}
    vol = pd.Series(units * pairs["volume_l"].to_numpy(float)).groupby(
        [pairs["store_id"].to_numpy(), pairs["zone"].to_numpy()]).sum()
    for row in stores.to_dict("records"):
        s = StoreInputs.from_row(row)
        if capacity == "observed":
            held = {z: float(vol.get((s.store_id, z), 0.0)) for z in ("ambient", "chilled",
                                                                       "frozen")}
            s = StoreInputs(s.store_id, max(s.capacity_ambient_l, held["ambient"]),
                            max(s.capacity_chilled_l, held["chilled"]),
                            max(s.capacity_frozen_l, held["frozen"]), s.daily_budget,
                            dict(s.supplier_min_order_value))
        out[s.store_id] = s
    return out


def _festive(cfg: Config, dates: list[dt.date], stores: pd.DataFrame) -> np.ndarray:
    """(stores, dates): the ``calendar`` table's festival intensity in the store's region is
    at least FESTIVE (a festival's run-up or day); False where a day has no calendar."""
    out = np.zeros((len(stores), len(dates)), bool)
    if "region" not in stores.columns:
        return out
    region = stores["region"].to_numpy()
    for j, day in enumerate(dates):
        if not partition_dir(_root(cfg, "calendar", day), "calendar", day).is_dir():
            continue
        cal = read_partition(_root(cfg, "calendar", day), "calendar", day,
                             ["region", "festival_intensity"]).to_pandas()
        inten = cal.set_index("region")["festival_intensity"]
        out[:, j] = pd.Series(region).map(inten).fillna(0.0).to_numpy(float) >= FESTIVE
    return out


def _promotions(cfg: Config, dates: list[dt.date], store_ids: np.ndarray, n_k: int,
                sku_pos: pd.Series, n: int) -> np.ndarray:
    """(n, dates): each pair's largest ``discount_pct`` on each day (0: no promotion or no
    partition that day)."""
    out = np.zeros((n, len(dates)))
    for j, day in enumerate(dates):
        root = _root(cfg, "promotions", day)
        if not partition_dir(root, "promotions", day).is_dir():
            continue
        promo = read_partition(root, "promotions", day,
                               ["store_id", "sku_id", "discount_pct"]).to_pandas()
        if promo.empty:
            continue
        pos, ok = _positions(promo, store_ids, n_k, sku_pos)
        np.maximum.at(out[:, j], pos, promo.loc[ok, "discount_pct"].to_numpy(float))
    return np.clip(out, 0.0, 0.95)


def _history(cfg: Config, dates: list[dt.date], store_ids: np.ndarray, n_k: int,
             sku_pos: pd.Series, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Observed units sold, activity (a row in the inventory snapshot) and censoring (the
    shelf emptied: nothing left after the day's sales) per pair and history day; a day
    without an inventory partition counts as inactive."""
    L = len(dates)
    sold = np.zeros((n, L))
    active = np.zeros((n, L), bool)
    cens = np.zeros((n, L), bool)
    for j, day in enumerate(dates):
        if not partition_dir(_root(cfg, "inventory", day), "inventory", day).is_dir():
            continue  # before the data begins: the pair is inactive that day
        inv = read_partition(_root(cfg, "inventory", day), "inventory", day,
                             ["store_id", "sku_id", "on_hand", "wasted"]).to_pandas()
        pos, ok = _positions(inv, store_ids, n_k, sku_pos)
        active[pos, j] = True
        left = (inv["on_hand"] + inv["wasted"]).to_numpy()[ok]
        cens[pos, j] = left <= 0
        sales = read_partition(_root(cfg, "sales", day), "sales", day,
                               ["store_id", "sku_id", "quantity"])
        agg = sales.group_by(["store_id", "sku_id"]).aggregate([("quantity", "sum")])
        agg = agg.to_pandas()
        pos, ok = _positions(agg, store_ids, n_k, sku_pos)
        sold[pos, j] = agg["quantity_sum"].to_numpy(float)[ok]
    return sold, active, cens


def _supply(win: Window, sim: SimulateConfig) -> tuple[Supply | None, str]:
    """The generator's supplier reliability (rebuilt from world.json), or perfect."""
    if sim.suppliers == "perfect":
        return None, "perfect"
    w = win.world
    reason = ""
    if not w or w.get("scenario") not in SCENARIOS:
        reason = "no world.json describing a generated scenario"
    else:
        world = World(SCENARIOS[w["scenario"]], seed=int(w["seed"]),
                      start=dt.date.fromisoformat(w["start"]), days=1)
        wsk = world.skus.set_index("sku_id")["supplier_id"]
        lake_sup = win.pairs.drop_duplicates("sku_id").set_index("sku_id")["supplier_id"]
        if not lake_sup.index.isin(wsk.index).all() or \
                (wsk.reindex(lake_sup.index).to_numpy() != lake_sup.to_numpy()).any():
            reason = "the lake's SKUs are not those of world.json"
        else:
            n_k = len(world.skus)
            idx = (win.pairs["store_id"].to_numpy() - 1) * n_k + win.pairs["sku_id"].to_numpy() - 1
            if idx.max(initial=0) < len(world.p_late) and idx.min(initial=0) >= 0:
                return Supply(world.p_late[idx], world.p_short[idx],
                              seed=int(w["seed"])), "world"
            reason = "the lake's stores are not those of world.json"
    if sim.suppliers == "world":
        raise ValueError(f"--suppliers world: {reason}")
    return None, f"perfect ({reason})"


# ----------------------------------------------------------------------------- policies
class MinMaxPolicy:
    """The generator's min-max rule (:class:`jobs.world.ReorderRule`) as ``World._reorder``
    applies it, on the simulated state. ``est`` / ``est_used``: its moving average of sales
    and the levels' estimate at the last refresh; ``origin``: the day the refresh cycle
    counts from (the world's first day). With ``rule.respect_capacity`` and ``stores`` (the
    limits the MILP gets), each night's orders are trimmed to the zone's free room
    (:func:`jobs.world.fit_to_room`)."""

    name = "minmax"

    def __init__(self, pairs: pd.DataFrame, n_stores: int, n_skus: int, rule: ReorderRule,
                 est: np.ndarray, est_used: np.ndarray, origin: dt.date,
                 stores: Mapping[int, StoreInputs] | None = None) -> None:
        if len(pairs) != n_stores * n_skus:
            raise ValueError("MinMaxPolicy: pairs must be the full store x SKU grid")
        self.rule, self.origin = rule, origin
        self.n_stores, self.n_skus = n_stores, n_skus
        perish = pairs["is_perishable"].to_numpy(bool)
        self.lead = pairs["lead_time_days"].to_numpy(int)
        self.case = pairs["case_pack"].to_numpy(int)
        self.moq = pairs["moq_cases"].to_numpy(int)
        self.review = np.where(perish, 1, rule.review_days)
        self.phase = pairs["supplier_id"].to_numpy(int) % self.review
        self.cover = np.where(perish, pairs["shelf_life_days"].to_numpy(float)
                              * rule.perishable_cover_frac, rule.cover_days)
        self.est = np.asarray(est, float).copy()
        self.est_used = np.asarray(est_used, float).copy()
        self.notes: dict[str, object] = {"rule": asdict(rule), "trimmed_to_room": 0}
        self.capacity: np.ndarray | None = None
        if rule.respect_capacity and stores is not None:
            store_pos, store_ids = pd.factorize(pairs["store_id"], sort=True)
            missing = sorted(set(store_ids) - set(stores))
            if missing:
                raise ValueError(f"MinMaxPolicy: no StoreInputs for store_id {missing[:5]}")
            zone = pd.Index(ZONE_NAMES).get_indexer(pairs["zone"].to_numpy())
            if (zone < 0).any():
                raise ValueError(f"MinMaxPolicy: zone must be one of {ZONE_NAMES}")
            self.group = store_pos * len(ZONE_NAMES) + zone
            self.volume = pairs["volume_l"].to_numpy(float)
            self.capacity = np.array([stores[int(s)].capacity(z) for s in store_ids
                                      for z in ZONE_NAMES], float)

    def refresh(self) -> None:
        r = self.rule
        chain = self.est.reshape(self.n_stores, self.n_skus).mean(axis=0)
        self.est_used = r.chain_weight * np.tile(chain, self.n_stores) + \
            (1 - r.chain_weight) * self.est

    def observe(self, d: int, sold: np.ndarray, active: np.ndarray) -> None:
        """The nightly update of the estimate (and the levels on refresh days)."""
        a = self.rule.ewma_alpha
        self.est = np.where(active, (1 - a) * self.est + a * sold, self.est)
        if d % self.rule.refresh_days == 0:
            self.refresh()

    def decide(self, d: int, on_hand: np.ndarray, on_order: np.ndarray,
               active: np.ndarray) -> np.ndarray:
        r, est = self.rule, self.est_used
        position = on_hand + on_order
        s = est * (self.lead + self.review) * r.safety
        up_to = s + est * self.cover
        due = (d % self.review) == self.phase
        need = np.where(active & due & (position <= s), np.ceil(up_to - position), 0)
        cases = np.where(need > 0, np.maximum(np.ceil(need / self.case), self.moq), 0)
        units = (cases * self.case).astype(np.int64)
        if self.capacity is not None:
            used = np.bincount(self.group, position * self.volume,
                               minlength=len(self.capacity))
            trimmed = fit_to_room(units, self.case, self.moq, self.volume, self.group,
                                  self.capacity - used)
            self.notes["trimmed_to_room"] = int(self.notes["trimmed_to_room"]) + int(
                (trimmed < units).sum())
            units = trimmed
        return units

    def order(self, night: Night) -> np.ndarray:
        d = (night.date - self.origin).days
        self.observe(d, night.sold, night.active)
        return self.decide(d, night.on_hand, night.on_order, night.active)


def minmax_from_history(win: Window, rule: ReorderRule, origin: dt.date) -> MinMaxPolicy:
    """The rule's state at the window's start, rebuilt from the observed sales history: the
    estimate starts at each pair's mean sales over the lookback and runs the rule's EWMA
    through it (after 56 days the start weighs 0.9^56 = 0.3%), the levels refreshed on the
    world's refresh days; pairs never active in the lookback start from their store x
    category mean (a new SKU's prior)."""
    sold, act = win.hist_sold, win.hist_active
    count = act.sum(axis=1)
    mean = np.divide((sold * act).sum(axis=1), count, out=np.full(len(sold), np.nan),
                     where=count > 0)
    est = _category_prior(win.pairs, mean)
    pol = MinMaxPolicy(win.pairs, win.n_stores, win.n_skus, rule, est, est, origin,
                       stores=win.stores)
    pol.refresh()
    for j, day in enumerate(win.hist_dates):
        pol.observe((day - origin).days, sold[:, j], act[:, j])
    return pol


def _category_prior(pairs: pd.DataFrame, values: np.ndarray) -> np.ndarray:
    """NaN -> the mean of the store x category (else of the category, else 0)."""
    v = pd.Series(values)
    by_sc = v.groupby([pairs["store_id"], pairs["category"]]).transform("mean")
    by_c = v.groupby(pairs["category"]).transform("mean")
    return v.fillna(by_sc).fillna(by_c).fillna(0.0).to_numpy(float)


def _forecast_frame(pairs: pd.DataFrame, idx: np.ndarray, mean: np.ndarray,
                    q: np.ndarray) -> pd.DataFrame:
    """Long frame (store_id, sku_id, horizon, mean, q50..q99) of pairs ``idx``;
    ``mean`` (len(idx), H), ``q`` (len(idx), H, 5)."""
    h = mean.shape[1]
    out = pd.DataFrame({
        "store_id": np.repeat(pairs["store_id"].to_numpy()[idx], h),
        "sku_id": np.repeat(pairs["sku_id"].to_numpy()[idx], h),
        "horizon": np.tile(np.arange(1, h + 1), len(idx)),
        "mean": mean.ravel()})
    for j, c in enumerate(QUANTILE_COLUMNS):
        out[c] = q[..., j].ravel()
    return out


def _pair_rows(pairs: pd.DataFrame, frame: pd.DataFrame) -> np.ndarray:
    """The row of ``pairs`` of each row of ``frame`` (by store_id, sku_id); -1 if none."""
    index = pd.MultiIndex.from_frame(pairs[["store_id", "sku_id"]])
    return index.get_indexer(pd.MultiIndex.from_frame(frame[["store_id", "sku_id"]]))


class OracleForecast:
    """The true distribution of days t + 1 .. t + 7: mean ``expected_demand``, quantiles of
    the negative binomial with the truth's ``nb_dispersion`` (see the module docstring)."""

    def __init__(self, pairs: pd.DataFrame, expected: np.ndarray, dispersion: np.ndarray,
                 horizon: int = HORIZON) -> None:
        self.pairs, self.expected, self.dispersion = pairs, expected, dispersion
        self.horizon = horizon

    def truth(self, night: Night) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The active pairs' positions and their true mean and size, (pairs, horizon)."""
        idx = np.nonzero(night.active)[0]
        last = len(self.expected) - 1
        days = np.minimum(night.t + np.arange(1, self.horizon + 1), last)
        return idx, self.expected[days][:, idx].T, self.dispersion[days][:, idx].T

    def __call__(self, night: Night) -> pd.DataFrame:
        idx, mean, size = self.truth(night)
        return _forecast_frame(self.pairs, idx, mean, nb_quantiles(mean, size))


class SwappedForecast:
    """The forecasts of ``provider`` with the truth's mean (``part="mean"``) or spread
    (``part="spread"``) swapped in (module docstring, "Swapping in the truth"). Rows the
    truth does not cover (an inactive pair) are left as they are."""

    def __init__(self, provider: Callable[[Night], pd.DataFrame], oracle: OracleForecast,
                 part: str) -> None:
        if part not in SWAPS[1:]:
            raise ValueError(f"swap: part must be one of {SWAPS[1:]}, not {part!r}")
        self.provider, self.oracle, self.part = provider, oracle, part

    def __getattr__(self, attr: str) -> Any:
        # what the run reads off the plan's forecast (``trained`` of a retraining champion)
        if attr.startswith("__") or "provider" not in self.__dict__:
            raise AttributeError(attr)
        return getattr(self.provider, attr)

    def __call__(self, night: Night) -> pd.DataFrame:
        fc = self.provider(night).reset_index(drop=True)
        idx, mean, size = self.oracle.truth(night)
        of_pair = np.full(len(self.oracle.pairs) + 1, -1)  # pair row -> row of the truth
        of_pair[idx] = np.arange(len(idx))
        row = of_pair[_pair_rows(self.oracle.pairs, fc)]  # a pair not in pairs: -1 -> -1
        h = fc["horizon"].to_numpy(int) - 1
        ok = (row >= 0) & (h >= 0) & (h < mean.shape[1])
        r, h = row[ok], h[ok]
        out = fc.copy()
        cols = list(QUANTILE_COLUMNS)
        if self.part == "mean":
            shift = mean[r, h] - fc["mean"].to_numpy(float)[ok]
            for c in cols:
                out.loc[ok, c] = np.maximum(fc[c].to_numpy(float)[ok] + shift, 0.0)
            out.loc[ok, "mean"] = mean[r, h]
        else:
            q = nb_quantiles(fc["mean"].to_numpy(float)[ok], size[r, h])
            for j, c in enumerate(cols):
                out.loc[ok, c] = q[:, j]
        return out


class HistoryForecast:
    """A baseline of ``models.baselines`` re-fitted every night on the sales of the last
    ``lookback`` days; pairs it cannot forecast get their store x category mean forecast.

    A day whose shelf emptied (censored: sales are only a lower bound of demand) is, with
    ``censored="impute"`` (default), the demand it most likely had given last night's
    forecast for it, E[D | D >= sold] (``optimize.demand.gamma_mean_above``, the planner's
    own reading of the quantiles); with ``"drop"`` it is unobserved. Dropping is biased low:
    the days that stock out are the days demand was high, so a lean plan stocks out more,
    forecasts lower and stocks out more again. Censored days of the history before the
    window (no forecast of ours for them) are unobserved either way; inactive days too.

    ``world=True``: each night adds the generated world's sales of the day
    (``Window.world_sold``, its activity and censoring) to the history instead of the
    simulated policy's: the forecaster learns from the min-max rule's sales, as the lake's
    features do, while the plan it feeds runs its own stock."""

    def __init__(self, pairs: pd.DataFrame, make_model: Callable[[], object], win: Window,
                 lookback: int, horizon: int = HORIZON, censored: str = "impute",
                 skip_festivals: bool = False, promotions: bool = False,
                 world: bool = False) -> None:
        if censored not in CENSORED:
            raise ValueError(f"censored must be one of {CENSORED}, not {censored!r}")
        self.pairs, self.make_model, self.lookback, self.horizon = pairs, make_model, \
            lookback, horizon
        self.censored = censored
        if world and win.world_sold.shape != (len(pairs), win.days):
            raise ValueError("HistoryForecast(world=True) needs the window's world sales: "
                             "load the window with SimulateConfig(history='world')")
        self.world = (win.world_sold, win.world_active, win.world_censored) if world else None
        obs = np.where(win.hist_active & ~win.hist_censored, win.hist_sold, np.nan)
        self.values = np.full((len(pairs), obs.shape[1] + win.days), np.nan)
        self.values[:, :obs.shape[1]] = obs
        #: Festive days (``Window.festive``) per pair, left out of the training history: a
        #: level that averages a festival's 2-3x run-up in over-forecasts the weeks after.
        self.skip = np.zeros(self.values.shape, bool)
        if skip_festivals and win.festive.size:
            store_pos = pd.factorize(pairs["store_id"], sort=True)[0]
            self.skip = win.festive[store_pos][:, :self.values.shape[1]]
        self.offset = obs.shape[1]
        #: With ``promotions``: each pair's discount per day (history, window, look-ahead;
        #: ``Window.promo``). A promoted day of the history is divided by its uplift before
        #: the fit and a promoted target day multiplied by it (``promotion_elasticity``):
        #: otherwise a promotion's extra sales raise the level for weeks after it while the
        #: promotion itself, planned in advance, finds the shelf stocked for a normal day.
        self.promotions = promotions
        self.disc = np.zeros((len(pairs), self.values.shape[1] + horizon))
        if promotions and win.promo.size:
            width = min(win.promo.shape[1], self.disc.shape[1])
            self.disc[:, :width] = win.promo[:, :width]
        self.group = pd.factorize(pairs["category"])[0] if "category" in pairs.columns \
            else np.zeros(len(pairs), int)
        self.first = win.start - dt.timedelta(days=obs.shape[1])
        #: Tomorrow's forecast mean and variance per pair (NaN: none yet).
        self.next_mean = np.full(len(pairs), np.nan)
        self.next_var = np.full(len(pairs), np.nan)

    def observed(self, night: Night) -> np.ndarray:
        """Tonight's value per pair for the training history (NaN: unobserved)."""
        sold, active, censored = night.sold, night.active, night.censored
        if self.world is not None:
            sold, active, censored = (a[:, night.t] for a in self.world)
        out = np.where(active & ~censored, sold, np.nan).astype(float)
        if self.censored == "impute":
            cens = active & censored & np.isfinite(self.next_mean)
            out[cens] = gamma_mean_above(self.next_mean[cens], self.next_var[cens],
                                         sold[cens])
        return out

    def __call__(self, night: Night) -> pd.DataFrame:
        out = self._forecast(night)
        day1 = out[out["horizon"] == 1]
        pos = _pair_rows(self.pairs, day1)
        self.next_mean[:] = np.nan
        self.next_var[:] = np.nan
        mean = day1["mean"].to_numpy(float)
        self.next_mean[pos] = mean
        self.next_var[pos] = daily_variance(mean, day1[list(QUANTILE_COLUMNS[1:])].to_numpy(
            float))
        return out

    def _forecast(self, night: Night) -> pd.DataFrame:
        from models.protocol import QUANTILES

        col = self.offset + night.t
        self.values[:, col] = self.observed(night)
        lo = max(0, col + 1 - self.lookback)
        block = np.where(self.skip[:, lo:col + 1], np.nan, self.values[:, lo:col + 1])
        lift = np.ones((len(self.pairs), self.horizon))
        if self.promotions:
            disc = self.disc[:, lo:col + 1]
            elasticity = promotion_elasticity(block, disc, self.group)[:, None]
            block = block / promotion_uplift(disc, elasticity)
            lift = promotion_uplift(self.disc[:, col + 1:col + 1 + self.horizon], elasticity)
        r, c = np.nonzero(np.isfinite(block))
        dates = pd.Timestamp(self.first) + pd.to_timedelta(lo + c, unit="D")
        train = pd.DataFrame({"store_id": self.pairs["store_id"].to_numpy()[r],
                              "sku_id": self.pairs["sku_id"].to_numpy()[r],
                              "date": dates, "y": block[r, c]})
        idx = np.nonzero(night.active)[0]
        if len(train) == 0:
            zeros = np.zeros((len(idx), self.horizon))
            return _forecast_frame(self.pairs, idx, zeros, np.zeros((*zeros.shape, 5)))
        model = self.make_model()
        fc = model.fit(train).predict(self.horizon, QUANTILES)  # type: ignore[attr-defined]
        cutoff = pd.Timestamp(night.date)
        fc = fc.assign(horizon=((pd.to_datetime(fc["target_date"]) - cutoff).dt.days))
        fc = fc[(fc["horizon"] >= 1) & (fc["horizon"] <= self.horizon)]
        grid = pd.DataFrame({"store_id": np.repeat(self.pairs["store_id"].to_numpy()[idx],
                                                   self.horizon),
                             "sku_id": np.repeat(self.pairs["sku_id"].to_numpy()[idx],
                                                 self.horizon),
                             "horizon": np.tile(np.arange(1, self.horizon + 1), len(idx))})
        cols = ["mean", *QUANTILE_COLUMNS]
        out = grid.merge(fc[["store_id", "sku_id", "horizon", *cols]],
                         on=["store_id", "sku_id", "horizon"], how="left")
        cat = out["sku_id"].map(self.pairs.drop_duplicates("sku_id").set_index("sku_id")[
            "category"])
        for c in cols:
            prior = out.groupby([out["store_id"], cat, out["horizon"]])[c].transform("mean")
            out[c] = out[c].fillna(prior).fillna(0.0)
        if self.promotions:
            out[cols] = out[cols].to_numpy(float) * lift[idx].reshape(-1, 1)
        return out


class LakeForecast:
    """``lake/forecasts/date=D`` (``replenish run score``) for the night of day D.

    With ``score`` (``forecasts="champion"``: ``jobs.score.run``), a night whose partition
    is missing is scored first, by the registered champion through the scoring job's own
    code path (it needs that night's ``lake/features`` and a champion in MLflow). With
    ``train`` as well (``retrain=True``: ``jobs.train.run_if_due``), the nightly DAG's
    training step runs before that scoring, so the champion is retrained weekly (or on a
    monitoring flag) during the replay as in production. A champion trained after the night
    it would score is refused (``ValueError``): that would be a forecast made with the days
    it forecasts. Either way the forecasts come from the world's own history (the features
    of the generated sales), not from the sales of the simulated policy."""

    def __init__(self, cfg: Config, dates: Sequence[dt.date],
                 score: Callable[[Config, dt.date], object] | None = None,
                 train: Callable[[Config, dt.date], object] | None = None) -> None:
        self.cfg, self.root, self.score, self.train = cfg, cfg.lake, score, train
        #: What ``train`` returned, night by night (``TrainResult`` or ``Skipped``).
        self.trained: list[object] = []
        have = set(list_dates(cfg.lake, "forecasts"))
        missing = [d for d in dates if d not in have]
        if missing and score is None:
            raise FileNotFoundError(
                f"--forecasts lake: lake/forecasts has no partition for {len(missing)} of the "
                f"{len(dates)} simulated nights (first: {missing[0]}); run 'replenish run "
                f"score --from {missing[0]} --to {missing[-1]}' or use --forecasts "
                "moving_average")

    def __call__(self, night: Night) -> pd.DataFrame:
        if self.score is not None and not partition_dir(self.root, "forecasts",
                                                        night.date).is_dir():
            if self.train is not None:
                self.trained.append(self.train(self.cfg, night.date))
            self._no_look_ahead(night.date)
            self.score(self.cfg, night.date)
        fc = read_partition(self.root, "forecasts", night.date).to_pandas()
        return fc[fc["horizon"].between(1, HORIZON)]

    def _no_look_ahead(self, day: dt.date) -> None:
        from jobs.train import champion_trained

        version, trained = champion_trained(self.cfg)
        if trained is not None and trained > day:
            raise ValueError(
                f"--forecasts champion: the champion (version {version}) was trained on "
                f"{trained}, after the night {day} it would score (table 'forecasts', "
                f"partition date={day} is missing); scoring it would use the days it "
                "forecasts. Replay the earliest nights first (a longer --warmup-days before "
                "a shorter one) or promote a version trained on or before that night")


def _build_policy(name: str, win: Window, sim: SimulateConfig, cfg: Config):
    origin = dt.date.fromisoformat(win.world["start"]) if win.world else win.start
    if name == "minmax":
        return minmax_from_history(win, ReorderRule(respect_capacity=sim.minmax_capacity),
                                   origin)
    if name == "oracle":
        provider: Callable[[Night], pd.DataFrame] = OracleForecast(
            win.pairs, win.expected, win.dispersion)
    elif sim.forecasts in ("lake", "champion"):
        scorer = trainer = None
        if sim.forecasts == "champion":
            from jobs import score, train

            scorer = score.run
            trainer = train.run_if_due if sim.retrain else None
        provider = LakeForecast(cfg, [win.start + dt.timedelta(days=t) for t in range(win.days)],
                                score=scorer, train=trainer)
    else:
        from models.baselines import MovingAverage, SeasonalNaive

        make = {"moving_average": MovingAverage, "seasonal_naive": SeasonalNaive,
                "weekday_moving_average": WeekdayProfile}[sim.forecasts]
        provider = HistoryForecast(win.pairs, make, win, sim.lookback_days,
                                   censored=sim.censored,
                                   skip_festivals=sim.forecasts == "weekday_moving_average",
                                   promotions=sim.forecasts == "weekday_moving_average",
                                   world=sim.history == "world")
    if sim.swap != "none" and name == "plan":
        provider = SwappedForecast(provider, OracleForecast(win.pairs, win.expected,
                                                            win.dispersion), sim.swap)
    return PlanPolicy(name, win.pairs, win.stores, provider, sim.plan_config())


# ------------------------------------------------------------------------------- report
_ROWS = (
    ("fill_rate", "service level (fill rate)", "pct1"),
    ("stockout_freq", "stock-out frequency (pair-days)", "pct1"),
    ("waste_pct", "waste, % of units received (perishables)", "num1"),
    ("waste_pct_all", "waste, % of units received (all SKUs)", "num1"),
    ("turnover", "inventory turnover (annualised, at cost)", "x"),
    ("working_capital", "average working capital (INR, at cost)", "inr"),
    ("purchases", "purchases (INR, received at cost)", "inr"),
    ("ordering_cost", "ordering cost (INR)", "inr"),
    ("holding_cost", "holding cost (INR)", "inr"),
    ("lost_margin", "lost margin (INR)", "inr"),
    ("waste_cost", "waste cost (INR)", "inr"),
    ("total_cost", "total cost (INR)", "inr"),
)


def _fmt(value: float | None, kind: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if kind == "pct1":
        return f"{100 * value:.1f}%"
    if kind == "num1":
        return f"{value:.1f}%"
    if kind == "x":
        return f"{value:.1f}x" if math.isfinite(value) else "inf"
    return f"₹{value:,.0f}"


def _table(results: dict[str, SimResult], with_case_study: bool = True) -> str:
    names = list(results)
    head = ["metric", *names]
    if with_case_study:
        head += ["case study before", "case study after"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, label, kind in _ROWS:
        row = [label, *(_fmt(results[p].metrics[key], kind) for p in names)]
        if with_case_study:
            row += [_fmt(CASE_STUDY[w].get(key), kind) for w in ("before", "after")]
        out.append("| " + " | ".join(row) + " |")
    for ref in ("minmax", "oracle"):
        if ref in results and len(names) > 1:
            base = results[ref].metrics["total_cost"]
            row = [f"total cost vs {ref} (INR)"]
            for p in names:
                diff = results[p].metrics["total_cost"] - base
                pct = f" ({100 * diff / base:+.1f}%)" if base else ""
                row.append(f"{'+' if diff >= 0 else '-'}₹{abs(diff):,.0f}{pct}")
            if with_case_study:
                row += ["", ""]
            out.append("| " + " | ".join(row) + " |")
    return "\n".join(out)


def _differences(results: dict[str, SimResult]) -> list[dict]:
    names = list(results)
    out = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            ca, cb = results[a].metrics["total_cost"], results[b].metrics["total_cost"]
            out.append({"policy": a, "versus": b, "total_cost_diff_inr": ca - cb,
                        "total_cost_ratio": ca / cb if cb else float("nan")})
    return out


def _sentences(results: dict[str, SimResult]) -> list[str]:
    out = []
    for d in _differences(results):
        diff = d["total_cost_diff_inr"]
        word = "less" if diff < 0 else "more"
        out.append(f"- {d['policy']} costs ₹{abs(diff):,.0f} {word} than {d['versus']} "
                   f"({100 * (d['total_cost_ratio'] - 1):+.1f}%)")
    return out


def _measured_days(win: Window) -> int:
    return win.days - win.warmup


def _header(win: Window, settings: dict) -> str:
    warm = (f", measured after a {win.warmup}-day warm-up from {win.start}" if win.warmup
            else "")
    learnt = " learnt from the world's sales" if settings.get("history") == "world" else ""
    swap = settings.get("swap", "none")
    if swap != "none":
        learnt += f", the truth's {swap} swapped in"
    return (f"Policy simulation {win.measured_start} .. {win.end} ({_measured_days(win)} "
            f"days{warm}): "
            f"{win.n_stores} store{'s' if win.n_stores != 1 else ''} x {win.n_skus} SKUs "
            f"({len(win.pairs):,} pairs); "
            f"suppliers {settings['suppliers']}, forecasts for plan: {settings['forecasts']}"
            f"{' (retrained weekly)' if settings.get('retrain') else ''}{learnt}, "
            f"solver {settings['solver']}")


def _markdown(win: Window, settings: dict, results: dict[str, SimResult]) -> str:
    lines = [f"# {_header(win, settings)}", "", _table(results), ""]
    if len(results) > 1:
        lines += ["Differences in total cost over the window:", "", *_sentences(results), ""]
    if settings.get("retrained"):
        lines += ["Retrained during the replay:", "",
                  *[f"- {line}" for line in settings["retrained"]], ""]
    lines += ["Wall time: " + ", ".join(f"{p} {r.seconds:,.1f} s" for p, r in results.items()),
              ""]
    for p, r in results.items():
        notes = {k: v for k, v in r.notes.items() if k != "rule" and v not in ("", 0, 0.0)}
        if notes:
            lines.append(f"- {p}: " + ", ".join(f"{k} {v}" for k, v in notes.items()))
    lines += ["", "Definitions (optimize/simulate.py):", ""]
    lines += [f"- `{k}`: {v}" for k, v in METRIC_DOCS.items()]
    lines += ["", "Case study columns: Blinkit before/after (service level, perishable waste, "
              "turnover); other metrics have no comparable figure."]
    return "\n".join(lines) + "\n"


def _json(win: Window, settings: dict, results: dict[str, SimResult]) -> dict:
    def clean(v: object) -> object:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, (np.integer, np.floating)):
            return clean(v.item())
        return v

    return {
        "start": win.measured_start.isoformat(), "end": win.end.isoformat(),
        "days": _measured_days(win), "warmup_days": win.warmup,
        "replay_start": win.start.isoformat(),
        "stores": win.n_stores, "skus": win.n_skus, "pairs": len(win.pairs),
        "settings": settings,
        "policies": {p: {"metrics": {k: clean(v) for k, v in r.metrics.items()},
                         "seconds": r.seconds,
                         "notes": {k: clean(v) for k, v in r.notes.items()},
                         "by_day": json.loads(r.by_day.to_json(orient="records",
                                                               date_format="iso"))}
                     for p, r in results.items()},
        "differences": [{k: clean(v) for k, v in d.items()} for d in _differences(results)],
        "case_study": CASE_STUDY, "definitions": METRIC_DOCS,
    }


def _write(cfg: Config, win: Window, settings: dict, results: dict[str, SimResult]
           ) -> list[Path]:
    folder = cfg.reports / "simulate"
    folder.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    groups = [{p: r} for p, r in results.items()]
    if len(results) > 1:
        groups.append(results)
    for group in groups:
        warm = f"_w{win.warmup}" if win.warmup else ""
        stem = f"{win.measured_start}_{_measured_days(win)}d{warm}_{'-'.join(group)}"
        for suffix, text in ((".json", json.dumps(_json(win, settings, group), indent=2,
                                                  default=str) + "\n"),
                             (".md", _markdown(win, settings, group))):
            path = folder / (stem + suffix)
            tmp = path.with_suffix(path.suffix + ".tmp")
            tmp.write_text(text)
            tmp.replace(path)
            paths.append(path)
    return paths


# ----------------------------------------------------------------------------------- run
def run(cfg: Config, sim: SimulateConfig, progress: bool = True, write: bool = True
        ) -> SimulateReport:
    """Replay the window under every policy of ``sim`` and report (module docstring)."""
    t0 = time.perf_counter()
    win = load_window(cfg, sim)
    supply, supplier_mode = _supply(win, sim)
    settings = {"policies": list(sim.policies), "solver": sim.solver,
                "forecasts": sim.forecasts, "suppliers": supplier_mode,
                "capacity": sim.capacity, "warmup_days": sim.warmup_days,
                "censored": sim.censored, "retrain": sim.retrain, "history": sim.history,
                "swap": sim.swap,
                "minmax_capacity": sim.minmax_capacity,
                "lookback_days": sim.lookback_days, "time_limit_s": sim.time_limit_s,
                "mip_gap": sim.mip_gap, "stores": list(sim.stores) if sim.stores else "all",
                "world": win.world and {k: win.world.get(k) for k in (
                    "scenario", "seed", "start", "end")},
                "inventory_source": win.sources.get("inventory")}
    costs = CostModel.from_plan_config(sim.plan_config())
    start_pipe = win.on_order[:, None]
    results: dict[str, SimResult] = {}
    for name in sim.policies:
        policy = _build_policy(name, win, sim, cfg)
        bar = _progress(win.days, f"simulate {name}", progress)
        result = simulate(win.pairs, win.buckets, start_pipe, win.demand, win.active, policy,
                          win.start, costs=costs, supply=supply,
                          on_day=(lambda _t, b=bar: b.update(1)) if bar is not None else None,
                          measure_from=win.warmup)
        if bar is not None:
            bar.close()
        results[name] = result
        trained = getattr(getattr(policy, "forecast", None), "trained", None)
        if trained:  # the weekly retraining of --retrain: one line per training night
            settings["retrained"] = [t.summary().splitlines()[0] for t in trained
                                     if hasattr(t, "version")]  # not a Skipped
    text = "\n".join([_header(win, settings), "", _table(results)]
                     + (["", *_sentences(results)] if len(results) > 1 else []))
    paths = _write(cfg, win, settings, results) if write else []
    return SimulateReport(results, text, tuple(paths), round(time.perf_counter() - t0, 2),
                          settings)


def _progress(total: int, label: str, enabled: bool):
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return None
    return tqdm(total=total, desc=label, unit="day", disable=not enabled, file=sys.stderr)


def parse_policies(text: str) -> tuple[str, ...]:
    """``plan,minmax`` or ``all`` -> the policy names, in the order given."""
    names = [p.strip() for p in text.split(",") if p.strip()]
    if names == ["all"]:
        return POLICIES
    bad = [p for p in names if p not in POLICIES]
    if bad or not names:
        raise ValueError(f"--policy: unknown {bad or text!r}; choose from "
                         f"{', '.join(POLICIES)} (comma-separated) or all")
    return tuple(dict.fromkeys(names))

