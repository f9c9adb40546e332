"""The inventory policy simulator: replay days of true demand against a policy's orders.

Pure numpy/pandas (plus the planner of this package); ``jobs/simulate.py`` reads the lake and
the ground truth, builds the policies and writes the reports.

Timeline of simulated day t (the one of ``jobs/world.py`` and ``optimize/inputs.py``):

1. morning: the deliveries due today arrive before opening (with a :class:`Supply` model a
   delivery may come a day late or short-shipped, as the generator's suppliers do) and go
   into the bucket of their full shelf life;
2. selling: ``sold = min(demand, stock)``, oldest units first (FIFO); demand beyond the
   stock is lost;
3. close: units at the end of their shelf life are written off (waste) and every bucket ages
   a day;
4. night: the policy sees the closing state (never the true demand) and orders; an order
   placed with lead time L arrives on the morning of day t + L.

State per store x SKU pair: ``buckets`` (n, 8), the closing stock by days to expiry, column
j = 0..6 sellable for j + 1 more day(s) (``exp_{j+1}d``), column 7 ``exp_later`` (goods that
do not expire in a week; non-perishables never expire); ``pipeline`` (n, P), column j
arriving on the morning of day t + 1 + j.

Conservation is checked every day and at the end, per pair and in total, and a breach
raises :class:`ConservationError`: ``received = sold + wasted + on hand at end - on hand at
start``, and ``ordered = received + short-shipped + in the pipeline at end - at start``.

Metrics (:func:`metrics`; pair-days count only the days a pair is active, i.e. launched):

- ``fill_rate``: units sold / units demanded (the service level);
- ``stockout_freq``: share of active pair-days whose shelf was empty at opening or ran empty
  during the day (some demand lost), the definition of ``replenish stats``;
- ``waste_pct``: units wasted / units received x 100, perishables (the case study's measure);
  ``waste_pct_all``: the same over every SKU. Waste includes the starting stock that
  expires, so it can exceed what the window's receipts would explain;
- ``turnover``: COGS (units sold x unit cost) / average inventory value x 365 / days, where
  the average inventory value is the mean over the days of the closing on-hand at cost;
- ``working_capital``: that average inventory value at cost, INR;
- costs, INR: ``ordering_cost`` = fixed cost per order line (pair-night with an order) +
  fixed cost per delivery (store x supplier x night with an order); ``holding_cost`` = per
  closing unit and night, holding rate x unit cost + storage cost per litre of its zone x
  volume; ``lost_margin`` = lost units x (price - unit cost); ``waste_cost`` = wasted units
  x (unit cost + disposal cost); ``total_cost`` = ordering + holding + lost margin + waste.
  Purchases are in it net of what they leave on the shelf: by conservation, purchases at
  cost = COGS + wasted units at cost + (closing - opening stock) at cost, and the COGS is
  paid back by the sales; stock left at the end is valued at cost. So, with demand common
  to every policy, profit = (all demand x margin) - total_cost and differences of
  ``total_cost`` between policies are differences of profit. ``purchases`` (units received
  x unit cost) is reported beside it.
"""
from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd
from scipy import stats

from optimize.inputs import (
    EXPIRY_COLUMNS,
    QUANTILE_COLUMNS,
    QUANTILE_LEVELS,
    PlanConfig,
    StoreInputs,
)
from optimize.lateness import LATE_PRIOR
from optimize.milp import solve_store

__all__ = ["PAIR_COLUMNS", "Night", "Policy", "Supply", "CostModel", "SimResult",
           "ConservationError", "simulate", "metrics", "METRIC_DOCS", "PlanPolicy",
           "ForecastProvider", "nb_quantiles", "receive_slot"]

#: Columns of the ``pairs`` frame: one row per store x SKU, the order of every state array.
PAIR_COLUMNS = ("store_id", "sku_id", "supplier_id", "is_perishable", "shelf_life_days",
                "lead_time_days", "unit_cost", "price", "volume_l", "zone")
_N_BUCKETS = len(EXPIRY_COLUMNS)  # 8: exp_1d..exp_7d, exp_later

#: Metric -> meaning, in report order (the module docstring has the details).
METRIC_DOCS: dict[str, str] = {
    "fill_rate": "Service level: units sold / units demanded",
    "stockout_freq": "Share of active pair-days with an empty shelf at opening or lost sales",
    "waste_pct": "Perishables: units wasted / units received, %",
    "waste_pct_all": "All SKUs: units wasted / units received, %",
    "turnover": "Annualised inventory turnover: COGS / average inventory at cost x 365 / days",
    "working_capital": "Average inventory value at cost (closing on hand), INR",
    "purchases": "Units received x unit cost, INR",
    "ordering_cost": "Fixed cost per order line + per store x supplier delivery, INR",
    "holding_cost": "Closing stock x (holding rate x cost + storage per litre x volume), INR",
    "lost_margin": "Lost units x (price - unit cost), INR",
    "waste_cost": "Wasted units x (unit cost + disposal), INR",
    "total_cost": "ordering + holding + lost margin + waste, INR",
    "demand": "Units demanded (true, uncensored)",
    "sold": "Units sold",
    "lost": "Units of demand that found an empty shelf",
    "received": "Units received",
    "wasted": "Units written off at expiry",
    "ordered": "Units ordered",
    "shorted": "Units ordered that suppliers never shipped",
    "order_lines": "Pair-nights with an order",
    "pair_days": "Active store x SKU days",
}


class ConservationError(RuntimeError):
    """Stock was created or lost by the simulator itself (a bug, never a policy's fault)."""


def receive_slot(perishable: np.ndarray, shelf_life: np.ndarray) -> np.ndarray:
    """The bucket a delivery goes into: its full shelf life (``jobs/world.py``'s rule)."""
    return np.where(perishable, np.clip(shelf_life, 1, _N_BUCKETS) - 1, _N_BUCKETS - 1)


@dataclass(frozen=True)
class Night:
    """What a policy sees after the close of day ``t`` (arrays follow the ``pairs`` order;
    ``buckets`` and ``pipeline`` are read-only copies of the simulator's state)."""

    t: int
    date: dt.date
    buckets: np.ndarray
    pipeline: np.ndarray
    active: np.ndarray
    available: np.ndarray
    sold: np.ndarray
    received: np.ndarray
    wasted: np.ndarray

    @property
    def on_hand(self) -> np.ndarray:
        return self.buckets.sum(axis=1)

    @property
    def on_order(self) -> np.ndarray:
        return self.pipeline.sum(axis=1)

    @property
    def censored(self) -> np.ndarray:
        """The shelf emptied today: sales are a lower bound of demand (observable)."""
        return self.sold >= self.available


class Policy(Protocol):
    """Decides tonight's order: units per pair (whole, >= 0; the policy rounds to cases)."""

    name: str

    def order(self, night: Night) -> np.ndarray:
        ...


@dataclass(frozen=True)
class Supply:
    """Imperfect suppliers, as in ``jobs/world.py``: a due delivery comes a day late with
    probability ``p_late`` (it is due again the next morning), else is short-shipped with
    probability ``p_short`` (a uniform 30-90% of it arrives; the rest is never shipped).
    Draws come from ``default_rng([seed, t])`` for every pair whether or not it is due, so
    every policy meets the same supplier luck on the same day (common random numbers)."""

    p_late: np.ndarray
    p_short: np.ndarray
    seed: int = 0

    def deliver(self, t: int, due: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(received, late, shorted) units of the ``due`` deliveries."""
        rng = np.random.default_rng([self.seed, 101, t])
        n = len(due)
        u_late, u_short, frac = rng.random(n), rng.random(n), rng.uniform(0.3, 0.9, n)
        late = (due > 0) & (u_late < self.p_late)
        short = (due > 0) & ~late & (u_short < self.p_short)
        received = np.where(late, 0, np.where(short, np.floor(due * frac), due)).astype(np.int64)
        late_units = np.where(late, due, 0).astype(np.int64)
        return received, late_units, due - received - late_units


@dataclass(frozen=True)
class CostModel:
    """How the simulator values a day, INR; the defaults are the planner's
    (:class:`optimize.inputs.PlanConfig`), see :meth:`from_plan_config`."""

    holding_rate_per_day: float = 0.0008
    storage_cost_per_litre_day: Mapping[str, float] = field(
        default_factory=lambda: {"ambient": 0.02, "chilled": 0.06, "frozen": 0.08}, hash=False)
    disposal_cost_per_unit: float = 1.0
    fixed_cost_per_line: float = 5.0
    fixed_cost_per_supplier: float = 50.0

    @classmethod
    def from_plan_config(cls, cfg: PlanConfig) -> CostModel:
        return cls(cfg.holding_rate_per_day, dict(cfg.storage_cost_per_litre_day),
                   cfg.disposal_cost_per_unit, cfg.fixed_cost_per_line,
                   cfg.fixed_cost_per_supplier)


@dataclass
class SimResult:
    """One policy's replay: the metrics, per-pair and per-day totals, and the policy's notes."""

    policy: str
    start: dt.date
    days: int
    metrics: dict[str, float]
    by_pair: pd.DataFrame
    by_day: pd.DataFrame
    seconds: float
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def end(self) -> dt.date:
        return self.start + dt.timedelta(days=self.days - 1)


def _frozen(a: np.ndarray) -> np.ndarray:
    out = a.copy()
    out.flags.writeable = False
    return out


def _check_pairs(pairs: pd.DataFrame) -> None:
    missing = [c for c in PAIR_COLUMNS if c not in pairs.columns]
    if missing:
        raise ValueError(f"pairs: missing columns {missing}; the contract is "
                         "optimize.simulate.PAIR_COLUMNS (one row per store x SKU)")
    if pairs.duplicated(["store_id", "sku_id"]).any():
        raise ValueError("pairs: duplicate (store_id, sku_id) rows")
    if (pairs["lead_time_days"] < 0).any() or (pairs["shelf_life_days"] < 1).any():
        raise ValueError("pairs: lead_time_days must be >= 0 and shelf_life_days >= 1")


def _conserve(label: str, lhs: np.ndarray, rhs: np.ndarray, pairs: pd.DataFrame) -> None:
    bad = lhs != rhs
    if bad.any():
        idx = np.nonzero(bad)[0][:5]
        rows = pairs.iloc[idx][["store_id", "sku_id"]].assign(lhs=lhs[idx], rhs=rhs[idx])
        raise ConservationError(f"conservation broken ({label}) for {int(bad.sum())} pair(s):\n"
                                f"{rows.to_string(index=False)}")


def simulate(pairs: pd.DataFrame, start_buckets: np.ndarray, start_pipeline: np.ndarray,
             demand: np.ndarray, active: np.ndarray, policy: Policy, start: dt.date,
             costs: CostModel | None = None, supply: Supply | None = None,
             on_day: Callable[[int], None] | None = None, measure_from: int = 0
             ) -> SimResult:
    """Replay ``len(demand)`` days from ``start`` (see the module docstring).

    ``pairs``: :data:`PAIR_COLUMNS`, n rows. ``start_buckets`` (n, 8): closing stock of the
    day before ``start`` by days to expiry. ``start_pipeline`` (n, P): units arriving on the
    morning of day 1 + j (column j). ``demand`` (days, n): true units demanded; ``active``
    (days, n): the pair is sold that day (launched); an inactive pair has no demand and
    gets no order. ``on_day(t)`` is called after each day (a progress bar).

    ``measure_from`` (a warm-up): the metrics, ``by_pair`` and ``by_day`` cover days
    ``measure_from`` .. end only (the result's ``start`` and ``days`` say so), so a policy is
    judged on its own steady state rather than on draining the stock it inherited; the
    conservation checks still cover every day.
    """
    t0 = time.perf_counter()
    _check_pairs(pairs)
    costs = costs or CostModel()
    n = len(pairs)
    demand = np.asarray(demand, np.int64)
    active = np.asarray(active, bool)
    n_days = demand.shape[0]
    if demand.shape != (n_days, n) or active.shape != demand.shape:
        raise ValueError(f"demand and active must be (days, {n}); got {demand.shape} and "
                         f"{active.shape}")
    if (demand[~active] != 0).any():
        raise ValueError("demand: an inactive pair-day has demand")
    if (demand < 0).any():
        raise ValueError("demand must be >= 0")
    if not 0 <= measure_from < n_days:
        raise ValueError(f"measure_from must be in 0..{n_days - 1}, got {measure_from}")
    buckets = np.array(start_buckets, np.int64).reshape(n, _N_BUCKETS)
    if (buckets < 0).any():
        raise ValueError("start_buckets must be >= 0")
    lead = np.maximum(pairs["lead_time_days"].to_numpy(int), 1)
    start_pipeline = np.asarray(start_pipeline, np.int64).reshape(n, -1)
    width = max(int(lead.max(initial=1)), start_pipeline.shape[1]) + 1
    pipeline = np.zeros((n, width), np.int64)
    pipeline[:, :start_pipeline.shape[1]] = start_pipeline

    perishable = pairs["is_perishable"].to_numpy(bool)
    slot = receive_slot(perishable, pairs["shelf_life_days"].to_numpy(int))
    cost = pairs["unit_cost"].to_numpy(float)
    margin = pairs["price"].to_numpy(float) - cost
    storage = np.array([costs.storage_cost_per_litre_day.get(z, 0.0) for z in pairs["zone"]])
    hold_rate = costs.holding_rate_per_day * cost + storage * pairs["volume_l"].to_numpy(float)
    store_sup = pd.MultiIndex.from_arrays([pairs["store_id"], pairs["supplier_id"]])
    group, _ = pd.factorize(store_sup)
    rows = np.arange(n)

    keys = ("demand", "sold", "lost", "received", "wasted", "ordered", "shorted",
            "order_lines", "pair_days", "stockout_days", "closing_units")
    tot = {k: np.zeros(n, np.int64) for k in keys}  # every day (conservation)
    mtot = {k: np.zeros(n, np.int64) for k in keys}  # the measured days (metrics)
    start_on_hand = buckets.sum(axis=1)
    start_in_pipe = pipeline.sum(axis=1)
    measured_on_hand = start_on_hand.copy()
    per_day: list[dict[str, object]] = []
    deliveries = 0
    for t in range(n_days):
        if t == measure_from:
            measured_on_hand = buckets.sum(axis=1)
        day = start + dt.timedelta(days=t)
        opening = buckets.sum(axis=1)
        pipe_before = pipeline.sum(axis=1)
        # 1. morning deliveries
        due = pipeline[:, 0].copy()
        pipeline[:, :-1] = pipeline[:, 1:]
        pipeline[:, -1] = 0
        if supply is None:
            received, late, shorted = due, np.zeros(n, np.int64), np.zeros(n, np.int64)
        else:
            received, late, shorted = supply.deliver(t, due)
            pipeline[:, 0] += late
        np.add.at(buckets, (rows, slot), received)
        available = buckets.sum(axis=1)
        # 2. sales, oldest first
        d = demand[t]
        sold = np.minimum(d, available)
        left = np.maximum(np.cumsum(buckets, axis=1) - sold[:, None], 0)
        buckets = np.diff(left, axis=1, prepend=0)
        # 3. expiry and ageing
        wasted = buckets[:, 0].copy()
        buckets[:, :_N_BUCKETS - 2] = buckets[:, 1:_N_BUCKETS - 1]
        buckets[:, _N_BUCKETS - 2] = 0
        closing = buckets.sum(axis=1)
        _conserve(f"day {day}: opening + received = sold + wasted + closing",
                  opening + received, sold + wasted + closing, pairs)
        # 4. tonight's order
        night = Night(t, day, _frozen(buckets), _frozen(pipeline), active[t], available, sold,
                      received, wasted)
        units = np.asarray(policy.order(night))
        if units.shape != (n,):
            raise ValueError(f"policy {policy.name}: order must have one entry per pair "
                             f"({n}), got shape {units.shape}")
        if not np.all(np.isfinite(units)) or (units < 0).any() or \
                (np.abs(units - np.round(units)) > 1e-9).any():
            raise ValueError(f"policy {policy.name}: orders must be whole units >= 0")
        units = np.where(active[t], np.round(units), 0).astype(np.int64)
        pipeline[rows, lead - 1] += units
        _conserve(f"day {day}: pipeline + ordered = received + shorted + pipeline after",
                  pipe_before + units, received + shorted + pipeline.sum(axis=1), pairs)

        lost = d - sold
        ordered_lines = units > 0
        n_deliveries = int(np.unique(group[ordered_lines]).size)
        act = active[t]
        stockout = act & ((available == 0) | (lost > 0))
        for key, value in (("demand", d), ("sold", sold), ("lost", lost),
                           ("received", received), ("wasted", wasted), ("ordered", units),
                           ("shorted", shorted), ("order_lines", ordered_lines),
                           ("pair_days", act), ("stockout_days", stockout),
                           ("closing_units", closing)):
            tot[key] += value
            if t >= measure_from:
                mtot[key] += value
        if t < measure_from:
            if on_day is not None:
                on_day(t)
            continue
        deliveries += n_deliveries
        per_day.append({
            "date": day, "demand": int(d.sum()), "sold": int(sold.sum()),
            "lost": int(lost.sum()), "received": int(received.sum()),
            "wasted": int(wasted.sum()), "ordered": int(units.sum()),
            "on_hand": int(closing.sum()), "inventory_value": float((closing * cost).sum()),
            "order_value": float((units * cost).sum()),
            "order_lines": int(ordered_lines.sum()), "deliveries": n_deliveries,
            "stockout_pair_days": int(stockout.sum()), "pair_days": int(act.sum()),
        })
        if on_day is not None:
            on_day(t)

    end_on_hand = buckets.sum(axis=1)
    _conserve("window: received = sold + wasted + end - start on hand", tot["received"],
              tot["sold"] + tot["wasted"] + end_on_hand - start_on_hand, pairs)
    _conserve("window: ordered = received + shorted + end - start in pipeline",
              tot["ordered"], tot["received"] + tot["shorted"] + pipeline.sum(axis=1)
              - start_in_pipe, pairs)
    if int(tot["received"].sum()) != int((tot["sold"] + tot["wasted"] + end_on_hand
                                          - start_on_hand).sum()):
        raise ConservationError("conservation broken in total")

    by_pair = pairs[["store_id", "sku_id"]].reset_index(drop=True).assign(
        start_on_hand=measured_on_hand, end_on_hand=end_on_hand,
        **{k: v for k, v in mtot.items()})
    by_pair["holding_cost"] = mtot["closing_units"] * hold_rate
    by_pair["lost_margin"] = mtot["lost"] * margin
    by_pair["waste_cost"] = mtot["wasted"] * (cost + costs.disposal_cost_per_unit)
    by_day = pd.DataFrame(per_day)
    m = metrics(by_pair, by_day, pairs, costs, deliveries)
    return SimResult(policy.name, start + dt.timedelta(days=measure_from),
                     n_days - measure_from, m, by_pair, by_day,
                     round(time.perf_counter() - t0, 3), dict(getattr(policy, "notes", {})))


def metrics(by_pair: pd.DataFrame, by_day: pd.DataFrame, pairs: pd.DataFrame,
            costs: CostModel, deliveries: int) -> dict[str, float]:
    """The report's figures (:data:`METRIC_DOCS`) from the per-pair and per-day totals."""
    n_days = max(len(by_day), 1)
    cost = pairs["unit_cost"].to_numpy(float)
    per = pairs["is_perishable"].to_numpy(bool)
    s = {k: float(by_pair[k].sum()) for k in ("demand", "sold", "lost", "received", "wasted",
                                                "ordered", "shorted", "order_lines",
                                                "pair_days", "stockout_days")}
    avg_inv = float(by_day["inventory_value"].mean()) if len(by_day) else 0.0
    cogs = float((by_pair["sold"].to_numpy() * cost).sum())
    rec_per = float(by_pair["received"].to_numpy()[per].sum())
    ordering = costs.fixed_cost_per_line * s["order_lines"] + \
        costs.fixed_cost_per_supplier * deliveries
    out = {
        "fill_rate": s["sold"] / s["demand"] if s["demand"] else 1.0,
        "stockout_freq": s["stockout_days"] / s["pair_days"] if s["pair_days"] else 0.0,
        "waste_pct": 100 * float(by_pair["wasted"].to_numpy()[per].sum()) / rec_per
        if rec_per else 0.0,
        "waste_pct_all": 100 * s["wasted"] / s["received"] if s["received"] else 0.0,
        "turnover": cogs / avg_inv * 365.0 / n_days if avg_inv > 0 else float("inf"),
        "working_capital": avg_inv,
        "purchases": float((by_pair["received"].to_numpy() * cost).sum()),
        "ordering_cost": ordering,
        "holding_cost": float(by_pair["holding_cost"].sum()),
        "lost_margin": float(by_pair["lost_margin"].sum()),
        "waste_cost": float(by_pair["waste_cost"].sum()),
    }
    out["total_cost"] = out["ordering_cost"] + out["holding_cost"] + out["lost_margin"] + \
        out["waste_cost"]
    out.update({k: s[k] for k in ("demand", "sold", "lost", "received", "wasted", "ordered",
                                  "shorted", "order_lines", "pair_days")})
    return out


# ------------------------------------------------------------------------ the MILP policy
#: A forecast for tonight: long frame store_id, sku_id, horizon (1..H), mean, q50..q99.
ForecastProvider = Callable[[Night], pd.DataFrame]
_SKU_ATTRS = ("category", "zone", "volume_l", "unit_cost", "price", "case_pack", "moq_cases",
              "supplier_id", "lead_time_days", "shelf_life_days", "is_perishable")


class PlanPolicy:
    """Re-plans every night with the per-store MILP (:func:`optimize.milp.solve_store`) fed
    by ``forecast``: the closing stock by days to expiry and the pipeline become the
    ``lines``' on-hand and on-order (the planner assumes on-order arrives tomorrow), the
    stores' budget and zone capacities their :class:`StoreInputs`. Only active pairs are
    planned. A store-night whose plan fails ``check_plan`` orders nothing, as a plan that
    breaks a constraint is never published. ``notes`` counts how each store-night was
    planned, the fallbacks and the rejected plans.

    With ``learn_late`` each supplier's probability of delivering a day late is learnt from
    the deliveries seen so far (a delivery due this morning of which nothing came:
    :meth:`late_prob`) and passed to the planner as ``late_prob``, so an order also covers,
    with that probability, the day the next delivery misses."""

    def __init__(self, name: str, pairs: pd.DataFrame, stores: Mapping[int, StoreInputs],
                 forecast: ForecastProvider, cfg: PlanConfig, learn_late: bool = True,
                 late_prior: float = LATE_PRIOR) -> None:
        missing = [c for c in ("store_id", "sku_id", *_SKU_ATTRS) if c not in pairs.columns]
        if missing:
            raise ValueError(f"PlanPolicy: pairs lack {missing}")
        absent = sorted(set(pairs["store_id"].unique()) - set(stores))
        if absent:
            raise ValueError(f"PlanPolicy: no StoreInputs for store_id {absent[:5]}")
        self.name = name
        self.pairs = pairs.reset_index(drop=True)
        self.stores = stores
        self.forecast = forecast
        self.cfg = cfg
        self._index = pd.MultiIndex.from_frame(self.pairs[["store_id", "sku_id"]])
        self.learn_late, self.late_prior = learn_late, late_prior
        self._supplier, _ = pd.factorize(self.pairs["supplier_id"])
        self._lead = np.maximum(self.pairs["lead_time_days"].to_numpy(int), 1)
        self._due = np.zeros(len(self.pairs), np.int64)
        self._n_due = np.zeros(self._supplier.max(initial=-1) + 1)
        self._n_late = np.zeros_like(self._n_due)
        self.notes: dict[str, Any] = {"store_nights": 0, "milp": 0, "greedy": 0,
                                         "fallbacks": 0, "violations": 0, "solve_seconds": 0.0,
                                         "last_fallback": "", "last_violation": ""}

    def late_prob(self) -> np.ndarray:
        """Per pair, its supplier's share of due deliveries that brought nothing, with
        ``late_prior`` deliveries on time added (few observations say little)."""
        p = self._n_late / (self._n_due + self.late_prior)
        return p[self._supplier]

    def _observe_deliveries(self, night: Night) -> None:
        due = self._due > 0
        late = due & (night.received == 0)
        self._n_due += np.bincount(self._supplier[due], minlength=len(self._n_due))
        self._n_late += np.bincount(self._supplier[late], minlength=len(self._n_due))

    def order(self, night: Night) -> np.ndarray:
        if self.learn_late:
            self._observe_deliveries(night)
        units = self._order(night)
        # due tomorrow morning: the pipeline's first day plus tonight's one-day orders
        self._due = night.pipeline[:, 0] + np.where(self._lead == 1, units, 0)
        return units

    def _order(self, night: Night) -> np.ndarray:
        n = len(self.pairs)
        units = np.zeros(n, np.int64)
        act = np.nonzero(night.active)[0]
        if not len(act):
            return units
        base = self.pairs.iloc[act][["store_id", "sku_id", *_SKU_ATTRS]].copy()
        b = night.buckets[act]
        for j, c in enumerate(EXPIRY_COLUMNS):
            base[c] = b[:, j]
        base["on_hand"] = b.sum(axis=1)
        base["on_order"] = night.on_order[act]
        if self.learn_late:
            base["late_prob"] = self.late_prob()[act]
        fc = self.forecast(night)
        cols = ["store_id", "sku_id", "horizon", "mean", *QUANTILE_COLUMNS]
        lines = base.merge(fc[cols], on=["store_id", "sku_id"], how="left").sort_values(
            ["store_id", "sku_id", "horizon"], kind="stable", ignore_index=True)
        for store_id, part in lines.groupby("store_id", sort=True):
            plan = solve_store(part.reset_index(drop=True), self.stores[int(store_id)],
                               self.cfg)
            self._note(plan)
            if plan.violations:
                continue
            ordered = plan.lines[plan.lines["order_units"] > 0]
            if len(ordered):
                pos = self._index.get_indexer(pd.MultiIndex.from_arrays(
                    [np.full(len(ordered), store_id), ordered["sku_id"].to_numpy()]))
                units[pos] = ordered["order_units"].to_numpy(np.int64)
        return units

    def _note(self, plan: Any) -> None:
        notes = self.notes
        notes["store_nights"] += 1
        notes[plan.method] = notes.get(plan.method, 0) + 1
        notes["solve_seconds"] = round(notes["solve_seconds"] + plan.solve_seconds, 3)
        if plan.fallback_reason:
            notes["fallbacks"] += 1
            notes["last_fallback"] = plan.fallback_reason
        if plan.violations:
            notes["violations"] += 1
            notes["last_violation"] = "; ".join(plan.violations)


def nb_quantiles(mean: np.ndarray, size: np.ndarray,
                 levels: Sequence[float] = QUANTILE_LEVELS) -> np.ndarray:
    """Quantiles (..., len(levels)) of a negative binomial with mean ``mean`` and size
    ``size`` (Var = mean + mean^2 / size); 0 where the mean is 0, Poisson where the size is
    not finite or not positive."""
    mean = np.asarray(mean, float)
    size = np.broadcast_to(np.asarray(size, float), mean.shape)
    q = np.zeros((*mean.shape, len(levels)))
    lvl = np.asarray(levels, float)
    pos = mean > 0
    nb = pos & np.isfinite(size) & (size > 0)
    po = pos & ~nb
    if nb.any():
        k = size[nb][:, None]
        q[nb] = stats.nbinom.ppf(lvl[None, :], k, k / (k + mean[nb][:, None]))
    if po.any():
        q[po] = stats.poisson.ppf(lvl[None, :], mean[po][:, None])
    return q
