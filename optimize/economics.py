"""The economics of every line of one store, shared by the MILP, the greedy fallback, the
binding-constraint report and the tests.

For SKU i with lead time L, review period R and shelf life SL, an order of u units placed
tonight arrives on day a = L (``deliveries_before_sales``; a = L + 1 otherwise) and can be
sold on days a..a + SL - 1. Windows (days counted from 1 = tomorrow):

- pre-arrival A = 1..a-1, coverage W = 1..T with T = a + R - 1 (capped at a + SL - 1 for
  perishables: an order cannot cover days after it expired), cycle B = a..T (the R days the
  order serves before the next one lands), life E = 1..a + SL - 1. For a perishable whose
  smallest order (MOQ x case pack) lasts longer than R days at its mean forecast and whose
  usable stock will not last the R days, R is the days that lot lasts, up to SL
  (``PlanConfig.lot_cycle``, :func:`_lot_cycle`): the lot serves all of them.
- Usable old stock P_X = on_hand + on_order - old units that expire unsold by the end of X
  when the old stock ages FIFO against the mean forecast (``demand.fluid_fifo_waste``).
- D_X is the gamma demand of window X (``optimize/demand.py``); G_X(S) = E[(D_X - S)+].

Convex functions of u (the units of the order), each exact in closed form:

- expected lost sales in the cycle  LOST(u) = max(0, G_W(P_W + u) - G_A(P_A))
  (the periodic-review shortfall: what the window misses minus what was already lost before
  the order could arrive; exact when L = 1, the usual case for fresh goods); with the line's
  optional ``late_prob`` p (its supplier delivers a day late with probability p), the mix
  (1 - p) LOST_W + p LOST_W+1 over a window one day longer (capped at the shelf life): the
  order must then also serve the day the next delivery misses, and E[D_B] mixes the same way;
- expected waste of the order (perishables only)  WASTE(u) = E[(P_E + u - D_E)+] -
  E[(P_E - D_E)+]: under FIFO the old stock sells first, so the order's units are the ones
  left when its life ends;
- holding, in unit-days  HOLD(u) = h(P_W + u) - h(P_W), where stock S depletes at the mean
  daily rate m and h(S) = S^2 / 2m, continued linearly (Huber) beyond m * D with
  D = min(max_holding_days, SL): no unit is charged for more than D days;
- service shortfall  SHORT(u) = max(0, LOST(u) - (1 - target) * E[D_B]): the expected lost
  sales beyond what the category's fill-rate target allows (the soft constraint
  1 - LOST / E[D_B] >= target; the expected service level reported is 1 - LOST / E[D_B]).

Objective per line, in INR, with x = u / case_pack whole cases:

    fixed_cost_per_line * [x > 0] + lost_cost * LOST + waste_cost * WASTE + hold_cost * HOLD
    + service_penalty * price * SHORT

plus ``fixed_cost_per_supplier`` per supplier ordered from. Purchase cost enters net of the
value (at cost) of the stock the order leaves for later days: over a run of days every unit
bought is either sold (its cost is recovered in the price; ``lost_cost`` is the margin plus
goodwill a missing unit forgoes), wasted (``waste_cost`` = cost + disposal) or still held
(``hold_cost``). Adding ``unit_cost * u`` on top would count the purchase twice and the
model would buy only where the margin exceeds the cost. The purchase itself is bounded by
the store's budget.

The MILP sees each function as a convex piecewise-linear function of x (:meth:`Economics.pwl`)
through breakpoints chosen per line (:func:`_pieces`): chords between breakpoints (default)
or tangents at them, exact at every breakpoint; where a line's whole case range fits in
``n_breakpoints`` (most lines) it is exact at every feasible case count. The plan reports
the exact values.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np
import pandas as pd

from optimize.demand import daily_variance, fluid_fifo_waste, gamma_cdf, gamma_loss, gamma_ppf
from optimize.inputs import (
    EXPIRY_COLUMNS,
    QUANTILE_COLUMNS,
    SKU_COLUMNS,
    ZONES,
    PlanConfig,
    StoreInputs,
    validate_lines,
)

__all__ = ["Curves", "Economics", "build_economics", "FUNCTIONS"]

#: The convex functions the MILP approximates, in this order in :meth:`Economics.pwl`.
FUNCTIONS = ("lost", "waste", "hold", "short")
_MAX_CASES = 100_000


@dataclass(frozen=True)
class Curves:
    """The parameters of the exact convex functions (:data:`FUNCTIONS`), one entry per line
    (or per repeated line: :meth:`take`)."""

    case: np.ndarray
    perishable: np.ndarray
    mu_cover: np.ndarray
    var_cover: np.ndarray
    mu_pre: np.ndarray
    var_pre: np.ndarray
    mu_life: np.ndarray
    var_life: np.ndarray
    usable_cover: np.ndarray
    usable_pre: np.ndarray
    usable_life: np.ndarray
    deplete_rate: np.ndarray
    hold_days: np.ndarray
    allowed_lost: np.ndarray
    #: Probability that the next delivery comes a day late, and the demand of the coverage
    #: window one day longer (what this order must then also serve).
    late: np.ndarray
    mu_cover_late: np.ndarray
    var_cover_late: np.ndarray

    def take(self, idx: np.ndarray) -> Curves:
        return Curves(**{f.name: getattr(self, f.name)[idx] for f in fields(self)})

    def lost(self, units: np.ndarray) -> np.ndarray:
        """Expected lost sales in the cycle, units: on time with probability 1 - late, else
        the cycle runs a day longer (the next delivery is late)."""
        pre = gamma_loss(self.mu_pre, self.var_pre, self.usable_pre)
        s = self.usable_cover + units
        on_time = np.maximum(gamma_loss(self.mu_cover, self.var_cover, s) - pre, 0.0)
        if not self.late.any():
            return on_time
        longer = np.maximum(gamma_loss(self.mu_cover_late, self.var_cover_late, s) - pre, 0.0)
        return (1.0 - self.late) * on_time + self.late * longer

    def waste(self, units: np.ndarray) -> np.ndarray:
        """Expected units of the order written off (perishables), units."""
        base = gamma_loss(self.mu_life, self.var_life, self.usable_life)
        w = units + gamma_loss(self.mu_life, self.var_life, self.usable_life + units) - base
        return np.where(self.perishable, np.maximum(w, 0.0), 0.0)

    def hold(self, units: np.ndarray) -> np.ndarray:
        """Extra unit-days of stock the order causes."""
        return self._h(self.usable_cover + units) - self._h(self.usable_cover)

    def _h(self, s: np.ndarray) -> np.ndarray:
        m, d = self.deplete_rate, self.hold_days
        knee = m * d
        return np.where(s <= knee, s * s / (2 * m), m * d * d / 2 + d * (s - knee))

    def short(self, units: np.ndarray) -> np.ndarray:
        """Expected lost sales beyond what the service target allows, units."""
        return np.maximum(self.lost(units) - self.allowed_lost, 0.0)

    def values(self, units: np.ndarray) -> dict[str, np.ndarray]:
        return {"lost": self.lost(units), "waste": self.waste(units), "hold": self.hold(units),
                "short": self.short(units)}

    def slopes(self, units: np.ndarray) -> dict[str, np.ndarray]:
        """d/du of the functions at ``units`` (for tangents)."""
        s = self.usable_cover + units
        pre = gamma_loss(self.mu_pre, self.var_pre, self.usable_pre)
        on_time = gamma_loss(self.mu_cover, self.var_cover, s) > pre
        longer = gamma_loss(self.mu_cover_late, self.var_cover_late, s) > pre
        sf = (1.0 - self.late) * np.where(on_time, 1.0 - gamma_cdf(
            self.mu_cover, self.var_cover, s), 0.0) + self.late * np.where(
            longer, 1.0 - gamma_cdf(self.mu_cover_late, self.var_cover_late, s), 0.0)
        lost = self.lost(units)
        return {
            "lost": np.where(lost > 0, -sf, 0.0),
            "short": np.where(lost > self.allowed_lost, -sf, 0.0),
            "waste": np.where(self.perishable, gamma_cdf(self.mu_life, self.var_life,
                                                         self.usable_life + units), 0.0),
            "hold": np.minimum(s / self.deplete_rate, self.hold_days),
        }


@dataclass
class Economics:
    """Per-line arrays (input SKU order) plus the store's limits; see the module docstring."""

    store_id: int
    sku_id: np.ndarray
    category: np.ndarray
    zone: np.ndarray
    supplier_id: np.ndarray
    case: np.ndarray
    moq: np.ndarray
    unit_cost: np.ndarray
    price: np.ndarray
    volume: np.ndarray
    perishable: np.ndarray
    has_forecast: np.ndarray
    coverage_days: np.ndarray
    #: True where shelf life cut the coverage window short (review period > shelf life).
    coverage_cut: np.ndarray
    curves: Curves
    old_waste_cover: np.ndarray
    target: np.ndarray
    lost_cost: np.ndarray
    waste_cost: np.ndarray
    hold_cost: np.ndarray
    penalty: np.ndarray
    fixed_line: float
    fixed_supplier: float
    stock_volume: np.ndarray
    budget: float
    capacity: dict[str, float]
    supplier_min: dict[int, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    #: Case bounds: what demand could use / what is also allowed by budget and room.
    max_cases_need: np.ndarray = field(default_factory=lambda: np.zeros(0, int))
    max_cases: np.ndarray = field(default_factory=lambda: np.zeros(0, int))
    #: Breakpoints (n, n_breakpoints) in cases, sorted; repeats mark unused slots.
    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), int))
    #: Per function: the lines a + b * cases of the piecewise view for a non-zero order,
    #: with a mask of the ones that matter; and the exact value at zero cases.
    line_a: dict[str, np.ndarray] = field(default_factory=dict)
    line_b: dict[str, np.ndarray] = field(default_factory=dict)
    line_ok: dict[str, np.ndarray] = field(default_factory=dict)
    line_used: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), bool))
    at_zero: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.sku_id)

    @property
    def mu_cover(self) -> np.ndarray:
        """Expected demand over the coverage window, units."""
        return self.curves.mu_cover

    @property
    def mu_cycle(self) -> np.ndarray:
        """Expected demand in the cycle the order serves, units (a day more when the next
        delivery is late)."""
        c = self.curves
        return (1.0 - c.late) * (c.mu_cover - c.mu_pre) + c.late * (c.mu_cover_late - c.mu_pre)

    @property
    def usable_cover(self) -> np.ndarray:
        return self.curves.usable_cover

    @property
    def case_value(self) -> np.ndarray:
        return self.unit_cost * self.case

    @property
    def case_volume(self) -> np.ndarray:
        return self.volume * self.case

    @property
    def moq1(self) -> np.ndarray:
        """Smallest non-zero order in cases."""
        return np.maximum(self.moq, 1)

    def room(self, zone: str) -> float:
        """Litres a zone can take tonight: capacity - volume on hand and on order (may be < 0)."""
        used = float(self.stock_volume[self.zone == zone].sum())
        return self.capacity[zone] - used

    def exact(self, cases: np.ndarray) -> dict[str, np.ndarray]:
        """The exact functions at ``cases`` (all lines)."""
        return self.curves.values(np.asarray(cases) * self.case)

    # ------------------------------------------------------- the model's piecewise view
    def pwl(self, cases: np.ndarray, idx: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """The MILP's piecewise-linear view of each function at ``cases`` (lines ``idx``,
        default all): the exact value at 0 cases, else max(0, its lines)."""
        sel = slice(None) if idx is None else idx
        x = np.asarray(cases, float)
        out = {}
        for f in FUNCTIONS:
            val = np.where(self.line_ok[f][sel], self.line_a[f][sel]
                           + self.line_b[f][sel] * x[:, None], -np.inf)
            val = np.maximum(val.max(axis=1, initial=0.0), 0.0)
            out[f] = np.where(x == 0, self.at_zero[f][sel], val)
        return out

    def line_cost(self, cases: np.ndarray, idx: np.ndarray | None = None, *,
                  with_waste: bool = True) -> np.ndarray:
        """The MILP's objective contribution of each line at ``cases`` (INR)."""
        sel = slice(None) if idx is None else idx
        cases = np.asarray(cases, float)
        v = self.pwl(cases, idx)
        cost = (self.fixed_line * (cases > 0) + self.lost_cost[sel] * v["lost"]
                + self.hold_cost[sel] * v["hold"] + self.penalty[sel] * v["short"])
        if with_waste:
            cost = cost + self.waste_cost[sel] * v["waste"]
        return np.asarray(cost, float)

    def exact_cost(self, cases: np.ndarray, idx: np.ndarray | None = None, *,
                   with_waste: bool = True) -> np.ndarray:
        """Like :meth:`line_cost` with the exact functions instead of the piecewise view."""
        sel = slice(None) if idx is None else idx
        cases = np.asarray(cases, float)
        curves = self.curves if idx is None else self.curves.take(idx)
        v = curves.values(cases * self.case[sel])
        cost = (self.fixed_line * (cases > 0) + self.lost_cost[sel] * v["lost"]
                + self.hold_cost[sel] * v["hold"] + self.penalty[sel] * v["short"])
        if with_waste:
            cost = cost + self.waste_cost[sel] * v["waste"]
        return np.asarray(cost, float)

    def total_cost(self, cases: np.ndarray) -> float:
        """The MILP objective of a plan: line costs + fixed cost per supplier ordered from."""
        cases = np.asarray(cases)
        suppliers = np.unique(self.supplier_id[cases > 0]).size
        return float(self.line_cost(cases).sum() + self.fixed_supplier * suppliers)

    def cost_table(self, upto: np.ndarray, *, exact: bool = False
                   ) -> tuple[np.ndarray, np.ndarray]:
        """Line costs at every case count 0..upto[i]: (offsets, flat costs); line i's costs
        are ``flat[offsets[i]:offsets[i + 1]]``. The model's view, or the exact one."""
        upto = np.maximum(np.asarray(upto, int), 0)
        counts = upto + 1
        offsets = np.concatenate([[0], np.cumsum(counts)])
        idx = np.repeat(np.arange(self.n), counts)
        x = np.arange(offsets[-1]) - offsets[idx]
        cost = self.exact_cost(x, idx) if exact else self.line_cost(x, idx)
        return offsets, cost


# ------------------------------------------------------------------------------- building
def _per_sku(lines: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """SKU attributes (one row per SKU, input order) and forecast matrices (n, H)."""
    codes, uniques = pd.factorize(lines["sku_id"], sort=False)
    skus = lines.drop_duplicates("sku_id", keep="first").reset_index(drop=True)
    h = pd.to_numeric(lines["horizon"], errors="coerce").to_numpy(float)
    ok = ~np.isnan(h)
    horizon = int(np.nanmax(h)) if ok.any() else 1
    mats = {}
    for col in ("mean", *QUANTILE_COLUMNS[1:]):
        m = np.full((len(uniques), horizon), np.nan)
        m[codes[ok], h[ok].astype(int) - 1] = lines[col].to_numpy(float)[ok]
        mats[col] = pd.DataFrame(m).ffill(axis=1).bfill(axis=1).to_numpy()
    return skus, mats


def _extend(m: np.ndarray, days: int) -> np.ndarray:
    """Repeat the last forecast day when a window reaches beyond the horizon."""
    if m.shape[1] >= days:
        return m[:, :days]
    return np.concatenate([m, np.repeat(m[:, -1:], days - m.shape[1], axis=1)], axis=1)


def _at(cum: np.ndarray, day: np.ndarray) -> np.ndarray:
    return np.take_along_axis(cum, day[:, None], axis=1)[:, 0]


def _lot_cycle(mean: np.ndarray, case: np.ndarray, moq: np.ndarray, shelf: np.ndarray,
               perish: np.ndarray, cfg: PlanConfig) -> np.ndarray:
    """Days the order of each line serves (its cycle), from ``cfg.review_days`` up.

    With ``cfg.lot_cycle``, a perishable whose smallest order (MOQ x case pack) lasts longer
    than the review period at its mean forecast serves the days that lot lasts, up to its
    shelf life: the next order comes only when the lot runs out, so the lot must be weighed
    against the sales of all those days, as its waste is. Counting only the review period's
    sales, a slow fresh SKU sold by the case never looks worth ordering (a day's lost sales
    against a case's waste) and stays empty for good. Used only for the lines expected to run
    short before the next order could arrive (see build_economics)."""
    review = np.full(len(case), int(cfg.review_days))
    if not cfg.lot_cycle:
        return review
    ok = np.isfinite(mean)
    daily = np.where(ok, mean, 0.0).sum(axis=1) / np.maximum(ok.sum(axis=1), 1)
    lot = np.maximum(moq, 1) * case
    with np.errstate(divide="ignore", invalid="ignore"):
        days = np.where(daily > 1e-9, np.ceil(lot / np.maximum(daily, 1e-9) - 1e-9), 1)
    days = np.minimum(days, np.maximum(shelf, 1))
    return np.where(perish, np.maximum(review, days), review).astype(int)


def build_economics(lines: pd.DataFrame, store: StoreInputs, cfg: PlanConfig) -> Economics:
    """Everything the planners need, vectorised over the lines of one store."""
    validate_lines(lines)
    skus, fc = _per_sku(lines) if len(lines) else (lines.iloc[:0], {})
    n = len(skus)
    col = {c: skus[c].to_numpy() for c in SKU_COLUMNS}
    case = col["case_pack"].astype(int)
    moq = col["moq_cases"].astype(int)
    cost = col["unit_cost"].astype(float)
    price = col["price"].astype(float)
    volume = col["volume_l"].astype(float)
    perish = col["is_perishable"].astype(bool)
    shelf = col["shelf_life_days"].astype(int)
    has_fc = ~np.isnan(fc["mean"]).any(axis=1) if n else np.zeros(0, bool)
    warnings: list[str] = []
    if n and not has_fc.all():
        warnings.append(f"{int((~has_fc).sum())} line(s) without a forecast are not ordered: "
                        f"sku_id {col['sku_id'][~has_fc][:5].tolist()}")

    arrival = np.maximum(col["lead_time_days"].astype(int), 1) + (
        0 if cfg.deliveries_before_sales else 1)
    life_end = arrival + shelf - 1
    full_cover = arrival + cfg.review_days - 1
    cover = np.where(perish, np.minimum(full_cover, life_end), full_cover)
    cycle = _lot_cycle(fc["mean"], case, moq, shelf, perish, cfg) if n else np.zeros(0, int)
    lot_cover = np.where(perish, np.minimum(arrival + cycle - 1, life_end), cover)
    days = int(max(lot_cover.max(initial=1) + 1, np.where(perish, life_end, 1).max(initial=1)))
    late = np.clip(skus["late_prob"].to_numpy(float), 0.0, 1.0) if "late_prob" in skus.columns \
        else np.zeros(n)

    mean = np.nan_to_num(_extend(fc["mean"], days)) if n else np.zeros((0, days))
    upper = np.stack([_extend(fc[q], days) for q in QUANTILE_COLUMNS[1:]], axis=-1) if n \
        else np.zeros((0, days, 4))
    var = np.nan_to_num(daily_variance(mean, np.nan_to_num(upper)))
    cm = np.concatenate([np.zeros((n, 1)), np.cumsum(mean, axis=1)], axis=1)
    cv = np.concatenate([np.zeros((n, 1)), np.cumsum(var, axis=1)], axis=1)

    # Old stock: buckets by day of expiry; on order arrives day 1 with its full shelf life.
    buckets = np.zeros((n, 8))
    for j, c in enumerate(EXPIRY_COLUMNS):
        buckets[:, j] = col[c].astype(float)
    on_order = col["on_order"].astype(float)
    slot = np.where(perish & (shelf <= 7), np.clip(shelf, 1, 7) - 1, 7)
    np.add.at(buckets, (np.arange(n), slot), on_order)
    old_waste = fluid_fifo_waste(buckets, mean)
    stock = col["on_hand"].astype(float) + on_order
    # A line expected to run out before its next order could land is planned over the days
    # its lot lasts (_lot_cycle); one that can wait a night waits (ordering its lot now
    # would only age it behind the old stock).
    runs_short = stock - _at(old_waste, cover) < _at(cm, cover)
    cover = np.where(runs_short, lot_cover, cover)
    pre = arrival - 1
    life = np.where(perish, life_end, cover)

    mu_cover = _at(cm, cover)
    # A late next delivery: the order serves one day more (not past its shelf life).
    cover_late = np.where(perish, np.minimum(cover + 1, np.maximum(life_end, cover)), cover + 1)
    mu_cycle = (1.0 - late) * (mu_cover - _at(cm, pre)) + late * (_at(cm, cover_late)
                                                                   - _at(cm, pre))
    storage = np.array([cfg.storage_cost_per_litre_day.get(z, 0.0) for z in col["zone"]])
    targets = np.array([cfg.service_target(c) for c in col["category"]], float)
    curves = Curves(
        case=case, perishable=perish, mu_cover=mu_cover, var_cover=_at(cv, cover),
        mu_pre=_at(cm, pre), var_pre=_at(cv, pre), mu_life=_at(cm, life),
        var_life=_at(cv, life), usable_cover=stock - _at(old_waste, cover),
        usable_pre=stock - _at(old_waste, pre), usable_life=stock - _at(old_waste, life),
        deplete_rate=np.maximum(mu_cover / cover, 1e-6),
        hold_days=np.minimum(float(cfg.max_holding_days), shelf).astype(float),
        allowed_lost=(1 - targets) * mu_cycle, late=late,
        mu_cover_late=_at(cm, cover_late), var_cover_late=_at(cv, cover_late))
    econ = Economics(
        store_id=int(store.store_id), sku_id=col["sku_id"], category=col["category"],
        zone=col["zone"].astype(str), supplier_id=col["supplier_id"], case=case, moq=moq,
        unit_cost=cost, price=price, volume=volume, perishable=perish, has_forecast=has_fc,
        coverage_days=cover, coverage_cut=cover < full_cover, curves=curves,
        old_waste_cover=_at(old_waste, cover), target=targets,
        lost_cost=np.maximum(price - cost + cfg.goodwill_frac * price, 0.0),
        waste_cost=cost + cfg.disposal_cost_per_unit,
        hold_cost=cfg.holding_rate_per_day * cost + storage * volume,
        penalty=cfg.service_penalty * price,
        fixed_line=float(cfg.fixed_cost_per_line),
        fixed_supplier=float(cfg.fixed_cost_per_supplier),
        stock_volume=stock * volume, budget=float(store.daily_budget),
        capacity={z: store.capacity(z) for z in ZONES},
        supplier_min={int(k): float(v) for k, v in store.supplier_min_order_value.items()
                      if v > 0},
        warnings=warnings)
    _bounds(econ, cfg)
    _pieces(econ, cfg)
    return econ


def _bounds(e: Economics, cfg: PlanConfig) -> None:
    """Case bounds: what demand could use (up to the max_fill_quantile of coverage demand)
    and what the budget and the zone's room allow."""
    c = e.curves
    top = np.where(c.late > 0, gamma_ppf(c.mu_cover_late, c.var_cover_late,
                                         cfg.max_fill_quantile),
                   gamma_ppf(e.mu_cover, c.var_cover, cfg.max_fill_quantile))
    need = top - e.usable_cover
    with np.errstate(divide="ignore", invalid="ignore"):
        m_need = np.where(e.has_forecast & (e.mu_cover > 1e-9) & (need > 0),
                          np.maximum(e.moq1, np.ceil(need / e.case)), 0)
        m_budget = np.where(e.case_value > 0, np.floor(max(e.budget, 0.0) / e.case_value + 1e-9),
                            _MAX_CASES)
        rooms = {z: max(e.room(z), 0.0) for z in ZONES}
        room = np.array([rooms[z] for z in e.zone], float)
        m_room = np.where(e.case_volume > 0, np.floor(room / e.case_volume + 1e-9), _MAX_CASES)
    m_need = np.minimum(m_need, _MAX_CASES).astype(int)
    m = np.minimum(np.minimum(m_need, m_budget), m_room).astype(int)
    e.max_cases_need = m_need
    e.max_cases = np.where(m >= e.moq1, m, 0)
    for z in ZONES:
        r = e.room(z)
        if r < 0 and (e.zone == z).any():
            e.warnings.append(f"capacity_{z}: stock on hand and on order takes "
                              f"{e.capacity[z] - r:,.1f} L of {e.capacity[z]:,.1f} L; "
                              f"nothing is ordered into the {z} zone")
    if e.budget < 0:
        e.warnings.append(f"budget: daily_budget is negative ({e.budget:,.2f} INR)")


def _sparse_points(e: Economics, rows: np.ndarray, k: int) -> np.ndarray:
    """k breakpoints for lines whose case range does not fit (see :func:`_pieces`)."""
    need = np.zeros(e.n, int)
    need[rows] = e.max_cases_need[rows]
    offsets, table = e.cost_table(need, exact=True)
    out = np.zeros((len(rows), k), int)
    for r, i in enumerate(rows.tolist()):
        lo, hi = int(e.moq1[i]), int(need[i])
        seg = table[offsets[i]:offsets[i + 1]]
        best = lo + int(np.argmin(seg[lo:]))
        cand = [best, lo, hi, best + 1, best - 1, best + 2, best - 2]
        for frac in (2, 4, 8, 16, 32):
            cand += [best - (best - lo) // frac, best + (hi - best) // frac]
        pts = [0]
        for c in cand:
            c = min(max(c, lo), hi)
            if c not in pts:
                pts.append(c)
            if len(pts) == k:
                break
        out[r] = pts + [pts[-1]] * (k - len(pts))
    return out


def _pieces(e: Economics, cfg: PlanConfig) -> None:
    """Breakpoints per line and the lines of the piecewise view of each function.

    Breakpoints (case counts): 0, and in [moq, max_cases_need] every case count when they fit
    in ``n_breakpoints``; else moq, the max, the line's own optimum x* (exact cost, no
    budget or room) with its neighbours, and points halfway towards moq and the max, where a
    binding budget or room moves the optimum. ``pwl="secant"``:
    chords between consecutive non-zero breakpoints (the convex interpolant; exact at every
    breakpoint, over-estimates in between, and with the perspective rows of the MILP its LP
    relaxation is the convex hull of the breakpoints' costs). ``pwl="tangent"``: tangents
    at the breakpoints (exact there, under-estimates in between, weaker LP relaxation).
    """
    k, n = cfg.n_breakpoints, e.n
    top, lo = e.max_cases_need[:, None], e.moq1[:, None]
    j = np.arange(k)[None, :]
    pts = np.where(j == 0, 0, np.minimum(lo + j - 1, top))
    sparse = np.nonzero(top[:, 0] - lo[:, 0] + 2 > k)[0]
    if len(sparse):
        pts[sparse] = _sparse_points(e, sparse, k)
    pts = np.sort(pts, axis=1)
    first = np.ones_like(pts, bool)
    first[:, 1:] = pts[:, 1:] != pts[:, :-1]
    # Unique breakpoints first (column 0 is always 0), unused slots after them.
    big = np.iinfo(np.int64).max // 4
    pts = np.sort(np.where(first, pts, big), axis=1)
    used = pts < big
    pts = np.where(used, pts, np.where(used, pts, top).max(axis=1, keepdims=True))
    e.points = pts
    rep = np.repeat(np.arange(n), k)
    sub = e.curves.take(rep)
    units = (pts * e.case[:, None]).ravel()
    values = {f: v.reshape(n, k) for f, v in sub.values(units).items()}
    e.at_zero = {f: v[:, 0].copy() for f, v in values.items()}
    hi = e.max_cases_need[:, None].astype(float)
    low = e.moq1[:, None].astype(float)
    if cfg.pwl == "tangent":
        slopes = {f: v.reshape(n, k) for f, v in sub.slopes(units).items()}
        for f in FUNCTIONS:
            b = slopes[f] * e.case[:, None]
            e.line_a[f], e.line_b[f], e.line_ok[f] = values[f] - b * pts, b, used.copy()
        e.line_used = used.copy()
    else:
        n_used = used.sum(axis=1)
        x0, x1 = pts[:, :-1].astype(float), pts[:, 1:].astype(float)
        chord = used[:, 1:] & (np.arange(k - 1)[None, :] >= 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            for f in FUNCTIONS:
                v0, v1 = values[f][:, :-1], values[f][:, 1:]
                b = np.where(chord, (v1 - v0) / (x1 - x0), 0.0)
                a = np.where(chord, v0 - b * x0, 0.0)
                # A single non-zero breakpoint: a flat line through it, in slot 0.
                single = n_used == 2
                a[:, 0] = np.where(single, values[f][:, 1], 0.0)
                ok = chord.copy()
                ok[:, 0] = single
                e.line_a[f], e.line_b[f], e.line_ok[f] = a, b, ok
            e.line_used = ok.copy()
    for f in FUNCTIONS:
        a, b = e.line_a[f], e.line_b[f]
        e.line_ok[f] &= np.maximum(a + b * low, a + b * hi) > 1e-12
        if f == "waste":
            e.line_ok[f] &= e.perishable[:, None]
