"""A synthetic dark-store world with ground truth: who sells what, when, and why.

The world is built once from a seed (cities, stores, SKUs, weather, promotions), then
simulated day by day (``World.day``): true expected demand from every driver, realised
demand, an intraday arrival curve, a simple min-max reorder rule that produces the stock,
and the sales that the stock allowed. Memory is bounded by the number of store x SKU pairs,
never by the number of days.

Every random draw comes from ``numpy.random.default_rng([seed, stream, day])``, so the
same seed and start date give the same days whatever the window's length.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from jobs.calendar_india import NATIONAL_HOLIDAYS, REGIONS, festival_intensity
from jobs.schema import PROMOTIONS_AHEAD_DAYS

__all__ = ["Scenario", "SCENARIOS", "World", "DayResult", "CATEGORIES", "HOURS",
           "ReorderRule", "fit_to_room", "ZONE_NAMES", "CAPACITY_DAYS"]

#: Selling hours of a dark store (06:00-23:59); index 0 is 06:00.
HOURS = np.arange(6, 24)
#: Storage zones, in the order of the stores' capacity columns.
ZONE_NAMES = ("ambient", "chilled", "frozen")


@dataclass(frozen=True)
class Scenario:
    name: str
    n_stores: int
    n_skus: int
    n_cities: int
    default_days: int


SCENARIOS = {s.name: s for s in (
    Scenario("tiny", 4, 40, 2, 120),
    Scenario("small", 10, 200, 3, 365),
    Scenario("medium", 100, 1000, 8, 730),
    Scenario("blinkit", 400, 8000, 16, 365),
)}

# name, region, monsoon months, monthly mean max temperature (C), lat, lon
_CITIES = (
    ("Delhi", "north", (7, 8, 9), (20, 23, 29, 35, 39, 38, 34, 33, 33, 32, 27, 22), 28.6, 77.2),
    ("Mumbai", "west", (6, 7, 8, 9), (30, 31, 32, 33, 33, 32, 30, 30, 31, 33, 33, 31), 19.1, 72.9),
    ("Bengaluru", "south", (6, 7, 8, 9, 10), (28, 31, 33, 34, 33, 29, 28, 28, 28, 28, 27, 27),
     12.97, 77.59),
    ("Kolkata", "east", (6, 7, 8, 9), (26, 29, 34, 36, 36, 34, 32, 32, 32, 31, 29, 26), 22.57, 88.36),
    ("Chennai", "south", (10, 11, 12), (29, 31, 33, 35, 38, 37, 35, 35, 34, 32, 29, 28), 13.08, 80.27),
    ("Hyderabad", "south", (6, 7, 8, 9), (29, 32, 35, 38, 40, 35, 31, 30, 31, 31, 29, 28), 17.39, 78.49),
    ("Pune", "west", (6, 7, 8, 9), (30, 32, 35, 37, 37, 32, 28, 28, 29, 31, 30, 29), 18.52, 73.86),
    ("Ahmedabad", "west", (7, 8, 9), (28, 31, 36, 40, 41, 38, 33, 32, 34, 35, 32, 29), 23.02, 72.57),
    ("Jaipur", "north", (7, 8), (22, 25, 31, 37, 40, 39, 35, 33, 34, 33, 29, 24), 26.91, 75.79),
    ("Lucknow", "north", (7, 8, 9), (22, 26, 32, 38, 40, 38, 34, 33, 33, 32, 29, 24), 26.85, 80.95),
    ("Gurugram", "north", (7, 8, 9), (20, 23, 29, 35, 39, 38, 34, 33, 33, 32, 27, 22), 28.46, 77.03),
    ("Noida", "north", (7, 8, 9), (20, 23, 29, 35, 39, 38, 34, 33, 33, 32, 27, 22), 28.54, 77.39),
    ("Chandigarh", "north", (7, 8, 9), (19, 22, 27, 33, 37, 38, 33, 32, 32, 30, 26, 21), 30.73, 76.78),
    ("Indore", "west", (6, 7, 8, 9), (27, 30, 34, 38, 40, 35, 29, 28, 29, 31, 29, 27), 22.72, 75.86),
    ("Bhubaneswar", "east", (6, 7, 8, 9), (29, 32, 35, 37, 38, 35, 32, 31, 32, 31, 30, 28),
     20.30, 85.82),
    ("Kochi", "south", (6, 7, 8, 9, 10), (31, 31, 32, 32, 32, 29, 28, 28, 29, 30, 30, 31), 9.93, 76.27),
)

# name, zone, perishable, shelf life range, price range (INR), share of SKUs, rate factor,
# morning share factor, rain effect, heat effect (per 10 C above 30), elasticity range
_CATS = (
    ("fruits_vegetables", "ambient", True, (2, 5), (20, 120), .14, 1.8, 1.3, -0.15, 0.0, (1.0, 1.8)),
    ("dairy", "chilled", True, (2, 7), (25, 250), .09, 2.2, 2.2, 0.05, 0.0, (0.8, 1.5)),
    ("bakery", "ambient", True, (3, 6), (30, 150), .05, 1.5, 2.0, 0.10, 0.0, (1.0, 2.0)),
    ("meat_fish", "chilled", True, (2, 3), (150, 600), .04, 0.7, 1.0, 0.0, 0.0, (1.2, 2.2)),
    ("sweets", "ambient", True, (5, 7), (80, 500), .04, 0.6, 0.8, 0.0, 0.0, (1.5, 2.5)),
    ("frozen", "frozen", False, (120, 365), (60, 400), .06, 0.7, 0.5, -0.25, 0.35, (1.5, 2.8)),
    ("snacks", "ambient", False, (90, 180), (10, 120), .12, 1.2, 0.6, 0.20, 0.0, (1.8, 3.0)),
    ("beverages", "ambient", False, (120, 365), (20, 200), .10, 1.1, 0.7, 0.15, 0.30, (1.8, 3.0)),
    ("staples", "ambient", False, (120, 365), (40, 450), .11, 0.9, 1.0, 0.10, 0.0, (0.8, 1.6)),
    ("instant_food", "ambient", False, (180, 365), (12, 150), .07, 1.0, 0.7, 0.30, 0.0, (1.5, 2.5)),
    ("personal_care", "ambient", False, (365, 730), (40, 450), .08, 0.5, 1.0, 0.0, 0.0, (1.2, 2.2)),
    ("household", "ambient", False, (365, 730), (40, 350), .06, 0.5, 1.0, 0.0, 0.0, (1.2, 2.2)),
    ("puja_festive", "ambient", False, (180, 365), (20, 300), .02, 0.3, 1.3, 0.0, 0.0, (1.0, 2.0)),
)
CATEGORIES = tuple(c[0] for c in _CATS)

# Store archetypes: they make store clusters really differ.
# name, share, size factor, evening share, weekend lift, volatility cv, category tilts
_ARCHETYPES = (
    ("premium_urban", .25, 1.3, 0.66, 1.10, 0.08,
     {"fruits_vegetables": 1.3, "dairy": 1.2, "bakery": 1.3, "beverages": 1.2, "frozen": 1.4}),
    ("family_suburb", .35, 1.0, 0.63, 1.25, 0.06,
     {"staples": 1.5, "dairy": 1.3, "household": 1.4, "personal_care": 1.3, "snacks": 0.9}),
    ("student_office", .25, 0.9, 0.73, 0.85, 0.12,
     {"snacks": 1.7, "beverages": 1.6, "instant_food": 1.8, "staples": 0.5, "household": 0.6}),
    ("budget", .15, 0.7, 0.65, 1.15, 0.09,
     {"staples": 1.4, "fruits_vegetables": 1.1, "frozen": 0.5, "meat_fish": 0.6}),
)

#: Coefficient of variation of the unknowable store x category x day demand shock.
_CAT_CV = 0.07

#: A zone's declared capacity in days of its typical (base) demand, by volume. Dark stores
#: are small and capacity-bound: the min-max rule (``ReorderRule``, trimmed to the room)
#: fills ambient and frozen shelves to the limit (its ``cover_days`` would not fit); chilled
#: goods (all perishable) turn in days, so the chilled zone is sized to about twice what the
#: rule holds at its peak.
CAPACITY_DAYS = {"ambient": 40.0, "chilled": 10.0, "frozen": 40.0}

#: Day-of-week shape (Mon..Sun) before the archetype's weekend lift.
_WEEKLY = np.array([0.93, 0.90, 0.93, 0.97, 1.05, 1.12, 1.10])


@dataclass(frozen=True)
class ReorderRule:
    """The simple min-max rule that produced the world's stock (the case study's "before").

    Perishables are reviewed daily, other SKUs every ``review_days`` (staggered by supplier).
    Reorder when position (on hand + on order) falls to ``s`` = estimate x (lead time +
    review) x ``safety``; order up to ``S`` = ``s`` + estimate x cover, where cover is
    ``cover_days`` or, for perishables, ``perishable_cover_frac`` of the shelf life. The
    estimate is a moving average of *sales* (so stock-outs bias it low, as in real stores)
    that the planner refreshes only every ``refresh_days``: festivals, promotions and
    weather catch it out. Levels are set per SKU for the whole chain, blended with the
    store's own history by ``chain_weight``: big stores run short, small ones overstock.

    ``respect_capacity``: trim each night's orders to the zone's free room
    (:func:`fit_to_room`), as a dark store must: its shelves are full, so a rule that wants
    ``cover_days`` of an ambient SKU gets what fits, and the trimmed orders include those of
    SKUs about to run out (the "before" policy's stock-outs next to full shelves). On in the
    generated world and in the simulator's min-max baseline; off only to study the rule
    without limits. The parameters were calibrated with it on (README, "Calibration").
    """

    safety: float = 0.15
    cover_days: float = 90.0
    perishable_cover_frac: float = 0.75
    ewma_alpha: float = 0.1
    review_days: int = 3
    refresh_days: int = 14
    chain_weight: float = 0.8
    respect_capacity: bool = True


def fit_to_room(units: np.ndarray, case: np.ndarray, moq: np.ndarray, volume: np.ndarray,
                group: np.ndarray, room: np.ndarray) -> np.ndarray:
    """Orders (units, whole cases) trimmed so each group's order volume fits its room.

    ``group[i]`` indexes ``room`` (litres free in a store x zone: capacity - volume on hand
    and on order). Where a group's orders take more than its room, every order in it shrinks
    by the same factor, rounded down to whole cases; one that falls below its MOQ is dropped.
    Rounding down keeps the group within its room; groups with room to spare are untouched.
    """
    units = np.asarray(units, np.int64)
    vol = units * np.asarray(volume, float)
    need = np.bincount(group, vol, minlength=len(room))
    free = np.maximum(np.asarray(room, float), 0.0)
    over = need > free + 1e-9
    if not over.any():
        return units
    factor = np.where(over, free / np.where(need > 0, need, 1.0), 1.0)[group]
    cases = np.floor(units / case * factor + 1e-9)
    cases = np.where(over[group] & (cases < np.maximum(moq, 1)), 0, cases)
    return np.where(over[group], cases * case, units).astype(np.int64)


@dataclass
class DayResult:
    """Everything the generator writes for one day (pairs are the active store x SKU pairs)."""

    day: dt.date
    pair_store: np.ndarray
    pair_sku: np.ndarray
    expected: np.ndarray
    dispersion: np.ndarray
    demand: np.ndarray
    available: np.ndarray
    sold: np.ndarray
    received: np.ndarray
    wasted: np.ndarray
    on_hand: np.ndarray
    on_order: np.ndarray
    expiry: np.ndarray  # (pairs, 8): exp_1d..exp_7d, exp_later at close
    lines: pd.DataFrame  # sales lines: store_id, sku_id, ts, quantity, unit_price, on_promotion
    promotions: pd.DataFrame
    weather: pd.DataFrame
    calendar: pd.DataFrame


@dataclass
class World:
    """Static attributes of the world plus the evolving stock state."""

    scenario: Scenario
    seed: int
    start: dt.date
    days: int
    rule: ReorderRule = field(default_factory=ReorderRule)

    def __post_init__(self) -> None:
        rng = np.random.default_rng([self.seed, 1])
        self.cities = self._build_cities()
        self.stores = self._build_stores(rng)
        self.skus = self._build_skus(rng)
        self._build_pairs(rng)
        self._build_weather()
        self._build_promotions()
        self._init_state()

    # ----------------------------------------------------------------- static world
    def _build_cities(self) -> pd.DataFrame:
        rows = [_CITIES[i % len(_CITIES)] for i in range(self.scenario.n_cities)]
        names = [r[0] if i < len(_CITIES) else f"{r[0]}-{i // len(_CITIES) + 1}"
                 for i, r in enumerate(rows)]
        return pd.DataFrame({
            "city": names, "region": [r[1] for r in rows],
            "monsoon": [r[2] for r in rows], "temps": [r[3] for r in rows],
            "lat": [r[4] for r in rows], "lon": [r[5] for r in rows]})

    def _build_stores(self, rng: np.random.Generator) -> pd.DataFrame:
        n = self.scenario.n_stores
        shares = np.array([a[1] for a in _ARCHETYPES])
        # Every archetype appears when there are enough stores: deterministic round-robin
        # over a shuffled quota rather than pure chance.
        quota = np.repeat(np.arange(len(_ARCHETYPES)), np.ceil(shares * n).astype(int))[:n]
        arche = rng.permutation(quota) if n >= len(_ARCHETYPES) else np.arange(n) % len(
            _ARCHETYPES)
        city = np.arange(n) % len(self.cities)
        rng.shuffle(city)
        a = [_ARCHETYPES[i] for i in arche]
        density = np.array([x[2] for x in a]) * rng.lognormal(0, 0.25, n) * 12.0
        competitor = rng.uniform(0.3, 4.0, n)
        demo = np.clip(np.array([{"premium_urban": .8, "family_suburb": .55,
                                  "student_office": .5, "budget": .25}[x[0]] for x in a])
                       + rng.normal(0, 0.08, n), 0.02, 0.98)
        # Store size: density, and fewer customers when a competitor is close.
        size = np.array([x[2] for x in a]) * rng.lognormal(0, 0.3, n) * (
            0.75 + 0.25 * competitor / 4.0)
        opened = [self.start - dt.timedelta(days=int(d)) for d in rng.integers(60, 900, n)]
        cities = self.cities.iloc[city]
        return pd.DataFrame({
            "store_id": np.arange(1, n + 1, dtype=np.int32),
            "store_name": [f"{c} DS-{i + 1:03d}" for i, c in enumerate(cities.city)],
            "city": cities.city.to_numpy(), "region": cities.region.to_numpy(),
            "latitude": cities.lat.to_numpy() + rng.normal(0, 0.05, n),
            "longitude": cities.lon.to_numpy() + rng.normal(0, 0.05, n),
            "customer_density": density.round(3), "competitor_proximity_km": competitor.round(2),
            "demographic_index": demo.round(3), "opened_on": opened,
            "archetype": [x[0] for x in a], "size": size,
            "evening_share": [x[3] for x in a], "weekend_lift": [x[4] for x in a],
            "volatility": [x[5] for x in a], "city_idx": city,
            "growth": rng.normal(0.15, 0.08, n),
        })

    def _build_skus(self, rng: np.random.Generator) -> pd.DataFrame:
        n = self.scenario.n_skus
        shares = np.array([c[5] for c in _CATS])
        counts = np.maximum(1, np.floor(shares / shares.sum() * n)).astype(int)
        while counts.sum() < n:
            counts[np.argmax(shares * n - counts)] += 1
        while counts.sum() > n:
            counts[np.argmax(counts)] -= 1
        cat_idx = np.repeat(np.arange(len(_CATS)), counts)
        c = [_CATS[i] for i in cat_idx]
        lo = np.array([x[4][0] for x in c], float)
        hi = np.array([x[4][1] for x in c], float)
        price = np.round(np.exp(rng.uniform(np.log(lo), np.log(hi))), 0)
        margin = rng.uniform(0.15, 0.35, n)
        shelf = np.array([rng.integers(x[3][0], x[3][1] + 1) for x in c], dtype=np.int32)
        # Long tail: log-normal popularity, assortments of many SKUs sell less per SKU.
        median = 1.4 * min(1.0, (1000 / n) ** 0.5)
        rate = np.exp(rng.normal(np.log(median), 1.25, n)) * np.array([x[6] for x in c])
        rate = np.clip(rate, 0.02, 150.0)
        case_pack = np.where(rate > 20, rng.choice([6, 12, 24], n),
                             np.where(rate > 3, rng.choice([1, 4, 6, 12], n),
                                      rng.choice([1, 1, 2, 4], n))).astype(np.int32)
        perishable = np.array([x[2] for x in c])
        case_pack = np.where(perishable, np.minimum(case_pack, 6), case_pack).astype(np.int32)
        moq = rng.choice([1, 1, 1, 2, 3], n).astype(np.int32)
        n_suppliers = max(3, n // 40)
        supplier = (cat_idx * 7 + rng.integers(0, n_suppliers, n)) % n_suppliers + 1
        lead = np.where(perishable, 1, rng.choice([1, 2, 2, 3], n)).astype(np.int32)
        volume = np.round(rng.lognormal(np.log(0.6), 0.6, n), 3)
        # A few SKUs are new: launched during the window, with short history.
        # A few SKUs are new: launched 2-26 weeks into the window, with short history.
        launch_offset = np.where(rng.random(n) < 0.05, rng.integers(14, 180, n),
                                 -rng.integers(200, 1500, n))
        launched = [self.start + dt.timedelta(days=int(d)) for d in launch_offset]
        cats = [x[0] for x in c]
        return pd.DataFrame({
            "sku_id": np.arange(1, n + 1, dtype=np.int32),
            "sku_name": [f"{cat.replace('_', ' ').title()} item {i + 1}"
                         for i, cat in enumerate(cats)],
            "category": cats, "zone": [x[1] for x in c], "is_perishable": perishable,
            "shelf_life_days": shelf, "unit_cost": np.round(price * (1 - margin), 2),
            "price": price, "case_pack": case_pack, "moq_cases": moq,
            "supplier_id": supplier.astype(np.int32), "lead_time_days": lead,
            "volume_l": volume, "launched_on": launched, "launch_offset": launch_offset,
            "cat_idx": cat_idx, "rate": rate,
            "elasticity": rng.uniform([x[10][0] for x in c], [x[10][1] for x in c]),
            "dispersion": rng.uniform(4.0, 15.0, n),
            "trend": rng.normal(0.0, 0.12, n),
            "morning_factor": [x[7] for x in c],
        })

    def _build_pairs(self, rng: np.random.Generator) -> None:
        st, sk = self.stores, self.skus
        s_idx, k_idx = np.meshgrid(np.arange(len(st)), np.arange(len(sk)), indexing="ij")
        self.p_store, self.p_sku = s_idx.ravel(), k_idx.ravel()
        tilt = np.ones((len(st), len(_CATS)))
        for i, arch in enumerate(st.archetype):
            tilts = next(a[6] for a in _ARCHETYPES if a[0] == arch)
            for j, cat in enumerate(CATEGORIES):
                tilt[i, j] = tilts.get(cat, 1.0)
        self.p_base = (sk.rate.to_numpy()[self.p_sku] * st["size"].to_numpy()[self.p_store]
                       * tilt[self.p_store, sk.cat_idx.to_numpy()[self.p_sku]]
                       * rng.lognormal(0, 0.3, len(self.p_store)))
        # Intraday arrival curves: one per (archetype evening share, morning factor).
        self.p_hourly = self._hourly_profiles()
        st_cost = np.bincount(self.p_store, self.p_base * sk.unit_cost.to_numpy()[self.p_sku],
                              minlength=len(st))
        self.stores["daily_budget"] = np.round(st_cost * 1.35, -2)
        for zone in ("ambient", "chilled", "frozen"):
            vol = np.where(sk.zone.to_numpy()[self.p_sku] == zone,
                           self.p_base * sk.volume_l.to_numpy()[self.p_sku], 0.0)
            # Room for CAPACITY_DAYS of the zone's typical demand, at least 200 litres.
            self.stores[f"capacity_{zone}_l"] = np.maximum(200.0, np.round(
                np.bincount(self.p_store, vol, minlength=len(st)) * CAPACITY_DAYS[zone], -1))

    def _hourly_profiles(self) -> np.ndarray:
        """(pairs, 18) share of a day's demand arriving in each selling hour."""
        hours = HOURS
        evening = (hours >= 18) & (hours < 22)
        morning = (hours >= 6) & (hours < 10)
        shape = np.exp(-0.5 * ((hours - 13) / 4.0) ** 2)
        ev_share = self.stores.evening_share.to_numpy()[self.p_store]
        mf = self.skus.morning_factor.to_numpy()[self.p_sku]
        # Morning-heavy categories (milk, bread) move some of the evening to the morning.
        ev = np.clip(ev_share - 0.08 * (mf - 1.0), 0.3, 0.85)
        base = np.where(morning, shape * mf[:, None] * 1.6, shape)
        day = base * ~evening
        day = day / day.sum(axis=1, keepdims=True) * (1 - ev)[:, None]
        ev_curve = np.array([0.22, 0.28, 0.30, 0.20])
        prof = day.copy()
        prof[:, evening] = ev[:, None] * ev_curve[None, :]
        return prof

    def _build_weather(self) -> None:
        """Daily weather per city; day ``d`` draws from its own seed, so a longer window
        never changes the days a shorter one produced."""
        n_days, n_c = self.days, len(self.cities)
        temp = np.zeros((n_c, n_days))
        rain = np.zeros((n_c, n_days))
        hum = np.zeros((n_c, n_days))
        noise = np.zeros(n_c)
        for d in range(n_days):
            rng = np.random.default_rng([self.seed, 2, d])
            month = (self.start + dt.timedelta(days=d)).month
            base = np.array([t[month - 1] for t in self.cities.temps], float)
            monsoon = np.array([month in ms for ms in self.cities.monsoon])
            noise = 0.7 * noise + rng.normal(0, 1.2, n_c)
            wet = rng.random(n_c) < np.where(monsoon, 0.6, 0.05)
            rain[:, d] = np.where(wet, rng.gamma(1.2, np.where(monsoon, 18.0, 6.0)), 0.0)
            temp[:, d] = base + noise - np.where(rain[:, d] > 10, 2.0, 0.0)
            hum[:, d] = np.clip(np.where(monsoon, 0.82, 0.5) + rng.normal(0, 0.06, n_c),
                                0.1, 1.0)
        self.w_temp, self.w_rain, self.w_hum = temp.round(1), rain.round(1), hum.round(2)

    def _build_promotions(self) -> None:
        """Promotion events: (city index or -1 for all, sku index, first day, last day, disc),
        planned ``PROMOTIONS_AHEAD_DAYS`` past the window too (the plan published ahead)."""
        n_sku, rows = len(self.skus), []
        planned = self.days + PROMOTIONS_AHEAD_DAYS
        for d in range(planned):
            rng = np.random.default_rng([self.seed, 3, d])
            starts = np.nonzero(rng.random(n_sku) < 1 / 90)[0]  # ~4 events per SKU a year
            for k in starts:
                city = -1 if rng.random() < 0.4 else int(rng.integers(0, len(self.cities)))
                length = int(rng.integers(3, 8))
                disc = float(rng.choice([0.1, 0.15, 0.2, 0.25, 0.3]))
                rows.append((city, int(k), d, d + length - 1, disc, "discount"))
        # Festival promotions for the categories a festival moves.
        for d in range(planned):
            day = self.start + dt.timedelta(days=d)
            rng = np.random.default_rng([self.seed, 3, d, 1])
            for fest, _inten, off in festival_intensity(day):
                if off != -4:
                    continue
                for cat, peak in fest.peaks.items():
                    if peak < 2.0 or cat not in CATEGORIES:
                        continue
                    ks = np.nonzero(self.skus.category.to_numpy() == cat)[0]
                    for k in ks[rng.random(len(ks)) < 0.3]:
                        rows.append((-1, int(k), d, d + 4, 0.15, "festival"))
        self.promos = pd.DataFrame(rows, columns=["city", "sku", "first", "last", "discount",
                                                  "promo_type"])
        # Ids from the start day and SKU, so they do not depend on the window's length.
        first = [self.start + dt.timedelta(days=int(d)) for d in self.promos["first"]]
        self.promos["promo_id"] = [f"{t[0].upper()}{f:%Y%m%d}-{k + 1}" for t, f, k in zip(
            self.promos.promo_type, first, self.promos.sku, strict=False)]

    def _init_state(self) -> None:
        n = len(self.p_store)
        sk = self.skus
        self.lead = sk.lead_time_days.to_numpy()[self.p_sku]
        self.shelf = sk.shelf_life_days.to_numpy()[self.p_sku]
        self.perishable = sk.is_perishable.to_numpy()[self.p_sku]
        self.case = sk.case_pack.to_numpy()[self.p_sku]
        self.moq = sk.moq_cases.to_numpy()[self.p_sku]
        self.est = self.p_base.copy()
        # Supplier reliability: chance a delivery is a day late, or short-shipped.
        sup_rng = np.random.default_rng([self.seed, 4])
        n_sup = int(sk.supplier_id.max()) + 1
        self.p_late = sup_rng.uniform(0.02, 0.12, n_sup)[sk.supplier_id.to_numpy()[self.p_sku]]
        self.p_short = sup_rng.uniform(0.03, 0.15, n_sup)[sk.supplier_id.to_numpy()[self.p_sku]]
        self.est_used = self.p_base.copy()
        self.review = np.where(self.perishable, 1, self.rule.review_days)
        self.review_phase = sk.supplier_id.to_numpy()[self.p_sku] % self.review
        self.buckets = np.zeros((n, 8), dtype=np.int64)
        self.pipeline = np.zeros((n, int(self.lead.max()) + 1), dtype=np.int64)
        launched = sk.launch_offset.to_numpy()[self.p_sku] <= 0
        start_stock = np.where(launched, np.ceil(self.p_base * (self.lead + 3)), 0).astype(
            np.int64)
        slot = np.where(self.perishable, np.minimum(self.shelf, 7) - 1, 7)
        self.buckets[np.arange(n), slot] = start_stock

    # ----------------------------------------------------------------- one day
    def demand_multipliers(self, d: int) -> np.ndarray:
        """Deterministic multiplier of base demand for every pair on day index ``d``."""
        day = self.start + dt.timedelta(days=d)
        st, sk = self.stores, self.skus
        cat = sk.cat_idx.to_numpy()[self.p_sku]
        city = st.city_idx.to_numpy()[self.p_store]
        # weekly shape with the archetype's weekend lift
        dow = day.weekday()
        wk = _WEEKLY[dow] * (st.weekend_lift.to_numpy()[self.p_store] if dow >= 5 else 1.0)
        # trend (store growth + SKU trend) and yearly calendar
        years = d / 365.0
        trend = np.exp((st.growth.to_numpy()[self.p_store] + sk.trend.to_numpy()[self.p_sku])
                       * years)
        # weather: rain moves some categories by +-25-30%, heat moves cold goods
        rain = self.w_rain[city, d]
        temp = self.w_temp[city, d]
        rain_eff = np.array([c[8] for c in _CATS])[cat]
        heat_eff = np.array([c[9] for c in _CATS])[cat]
        wet = np.clip(rain / 15.0, 0, 1.0)
        weather = (1 + rain_eff * wet * 1.0 + 0.05 * wet) * (
            1 + heat_eff * np.clip((temp - 30) / 10.0, -0.5, 1.2))
        # festivals by region
        fest = np.ones(len(self.p_store))
        region = st.region.to_numpy()[self.p_store]
        for f, inten, _ in festival_intensity(day):
            peak = np.array([f.peaks.get(c, f.default) for c in CATEGORIES])[cat]
            reg = np.array([f.regions.get(r, 0.0) for r in region])
            fest *= np.maximum(0.5, 1 + inten * reg * (peak - 1))
        payday = 1.06 if day.day <= 3 else 1.0
        launch = sk.launch_offset.to_numpy()[self.p_sku]
        ramp = np.where(launch > d, 0.0, np.clip((d - launch + 1) / 21.0, 0.3, 1.0))
        return wk * trend * weather * fest * payday * ramp

    def promotion_discount(self, d: int) -> tuple[np.ndarray, pd.DataFrame]:
        """Discount per pair on day ``d`` and the promotions table rows for that day."""
        p = self.promos
        act = p[(p["first"] <= d) & (p["last"] >= d)]
        disc = np.zeros(len(self.p_store))
        rows = []
        n_sku = len(self.skus)
        city_of_store = self.stores.city_idx.to_numpy()
        for r in act.itertuples(index=False):
            stores = np.arange(len(self.stores)) if r.city < 0 else np.nonzero(
                city_of_store == r.city)[0]
            idx = stores * n_sku + r.sku
            disc[idx] = np.maximum(disc[idx], r.discount)
            rows.append(pd.DataFrame({"promo_id": r.promo_id, "store_id": stores + 1,
                                      "sku_id": r.sku + 1, "discount_pct": r.discount,
                                      "promo_type": r.promo_type}))
        table = (pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(
            {"promo_id": [], "store_id": [], "sku_id": [], "discount_pct": [],
             "promo_type": []}))
        return disc, table

    def day(self, d: int) -> DayResult:
        """Simulate day index ``d``: demand, deliveries, sales, expiry, and tonight's orders."""
        day = self.start + dt.timedelta(days=d)
        rng = np.random.default_rng([self.seed, 10, d])
        st, sk = self.stores, self.skus
        n = len(self.p_store)
        active = sk.launch_offset.to_numpy()[self.p_sku] <= d

        disc, promo_rows = self.promotion_discount(d)
        uplift = (1 - disc) ** (-sk.elasticity.to_numpy()[self.p_sku])
        mu = self.p_base * self.demand_multipliers(d) * uplift * active

        # Unknowable shocks: store-day, store-category-day, pair-day (gamma, mean 1).
        vol = st.volatility.to_numpy()
        s_shock = rng.gamma(1 / vol ** 2, vol ** 2)[self.p_store]
        cat = sk.cat_idx.to_numpy()[self.p_sku]
        c_shock = rng.gamma(1 / _CAT_CV ** 2, _CAT_CV ** 2, (len(st), len(_CATS)))[self.p_store, cat]
        k = sk.dispersion.to_numpy()[self.p_sku]
        p_shock = rng.gamma(k, 1 / k)
        demand = rng.poisson(mu * s_shock * c_shock * p_shock)
        v = (1 + vol[self.p_store] ** 2) * (1 + _CAT_CV ** 2) * (1 + 1 / k) - 1
        dispersion = 1 / v

        # Morning deliveries arrive before opening.
        # Suppliers are not perfect: some deliveries come a day late, some short.
        due = self.pipeline[:, 0].copy()
        self.pipeline[:, :-1] = self.pipeline[:, 1:]
        self.pipeline[:, -1] = 0
        late = (due > 0) & (rng.random(n) < self.p_late)
        self.pipeline[late, 0] += due[late]
        short = (due > 0) & ~late & (rng.random(n) < self.p_short)
        received = np.where(late, 0, np.where(
            short, np.floor(due * rng.uniform(0.3, 0.9, n)), due)).astype(np.int64)
        slot = np.where(self.perishable, np.minimum(self.shelf, 8) - 1, 7)
        np.add.at(self.buckets, (np.arange(n), slot), received)
        available = self.buckets.sum(axis=1)

        # Demand arrives through the day; the shelf empties in time order (censoring).
        hourly = np.zeros((n, len(HOURS)), dtype=np.int64)
        has = demand > 0
        hourly[has] = rng.multinomial(demand[has], self.p_hourly[has])
        cum = np.cumsum(hourly, axis=1)
        sold_cum = np.minimum(cum, available[:, None])
        sold_h = np.diff(sold_cum, axis=1, prepend=0)
        sold = sold_cum[:, -1]

        # FIFO: the oldest units leave first.
        cumb = np.cumsum(self.buckets, axis=1)
        left = np.maximum(cumb - sold[:, None], 0)
        self.buckets = np.diff(left, axis=1, prepend=0)
        wasted = self.buckets[:, 0].copy()
        self.buckets[:, :6] = self.buckets[:, 1:7]
        self.buckets[:, 6] = 0
        on_hand = self.buckets.sum(axis=1)

        on_order = self._reorder(sold, on_hand, active, d)
        lines = self._sales_lines(rng, day, sold_h, disc)
        return DayResult(
            day=day, pair_store=self.p_store[active] + 1, pair_sku=self.p_sku[active] + 1,
            expected=mu[active], dispersion=dispersion[active], demand=demand[active],
            available=available[active], sold=sold[active], received=received[active],
            wasted=wasted[active], on_hand=on_hand[active], on_order=on_order[active],
            expiry=self.buckets[active], lines=lines, promotions=promo_rows,
            weather=self._weather_rows(d), calendar=calendar_rows(day))

    def _reorder(self, sold: np.ndarray, on_hand: np.ndarray, active: np.ndarray,
                 d: int) -> np.ndarray:
        """Tonight's min-max orders; returns units on order after ordering."""
        r = self.rule
        self.est = np.where(active, (1 - r.ewma_alpha) * self.est + r.ewma_alpha * sold,
                            self.est)
        if d % r.refresh_days == 0:
            by_store = self.est.reshape(len(self.stores), len(self.skus))
            chain = np.broadcast_to(by_store.mean(axis=0), by_store.shape).ravel()
            self.est_used = r.chain_weight * chain + (1 - r.chain_weight) * self.est
        est = self.est_used
        on_order = self.pipeline.sum(axis=1)
        position = on_hand + on_order
        cover = np.where(self.perishable, self.shelf * r.perishable_cover_frac, r.cover_days)
        s = est * (self.lead + self.review) * r.safety
        up_to = s + est * cover
        due = (d % self.review) == self.review_phase
        need = np.where(active & due & (position <= s), np.ceil(up_to - position), 0)
        cases = np.where(need > 0, np.maximum(np.ceil(need / self.case), self.moq), 0)
        units = (cases * self.case).astype(np.int64)
        if r.respect_capacity:
            units = fit_to_room(units, self.case, self.moq, self._volume, self._zone_group,
                                self._room(position))
        # An order placed tonight arrives on the morning of day + lead time.
        self.pipeline[np.arange(len(units)), self.lead - 1] += units
        return on_order + units

    @property
    def _volume(self) -> np.ndarray:
        return self.skus.volume_l.to_numpy()[self.p_sku]

    @property
    def _zone_group(self) -> np.ndarray:
        zone = pd.Index(ZONE_NAMES).get_indexer(self.skus.zone.to_numpy())[self.p_sku]
        return self.p_store * len(ZONE_NAMES) + zone

    def _room(self, position: np.ndarray) -> np.ndarray:
        """Litres free per store x zone (group ``store * 3 + zone``) for ``position`` units
        on hand and on order."""
        cap = self.stores[[f"capacity_{z}_l" for z in ZONE_NAMES]].to_numpy(float).ravel()
        used = np.bincount(self._zone_group, position * self._volume, minlength=len(cap))
        return cap - used

    def _sales_lines(self, rng: np.random.Generator, day: dt.date, sold_h: np.ndarray,
                     disc: np.ndarray) -> pd.DataFrame:
        """Split each pair-hour's units into transaction lines of 1-3 units."""
        pair, hour = np.nonzero(sold_h)
        units = sold_h[pair, hour]
        n_lines = np.maximum(1, rng.binomial(units, 0.72))
        rep = np.repeat(np.arange(len(units)), n_lines)
        first = np.cumsum(n_lines) - n_lines
        pos = np.arange(len(rep)) - first[rep]
        base, extra = units // n_lines, units % n_lines
        qty = base[rep] + (pos < extra[rep])
        p = pair[rep]
        secs = (HOURS[hour[rep]] * 3600 + rng.integers(0, 3600, len(rep))).astype("int64")
        ts = np.datetime64(day, "us") + secs * 1_000_000
        price = self.skus.price.to_numpy()[self.p_sku[p]]
        d = disc[p]
        return pd.DataFrame({
            "store_id": (self.p_store[p] + 1).astype(np.int32),
            "sku_id": (self.p_sku[p] + 1).astype(np.int32),
            "ts": ts, "quantity": qty.astype(np.int32),
            "unit_price": np.round(price * (1 - d), 2), "on_promotion": d > 0})

    def _weather_rows(self, d: int) -> pd.DataFrame:
        return pd.DataFrame({"city": self.cities.city, "temp_max_c": self.w_temp[:, d],
                             "rain_mm": self.w_rain[:, d], "humidity": self.w_hum[:, d]})


def calendar_rows(day: dt.date) -> pd.DataFrame:
    """One row per region: holiday flag, the strongest festival in its run-up, payday."""
    rows = []
    national = (day.month, day.day) in NATIONAL_HOLIDAYS
    for region in REGIONS:
        best, best_i, holiday = None, 0.0, national
        for fest, inten, off in festival_intensity(day):
            weight = fest.regions.get(region, 0.0)
            if weight * inten > best_i:
                best, best_i = fest.name, weight * inten
            if off == 0 and weight >= 0.5:
                holiday = True
        rows.append((region, holiday, best, round(best_i, 3), day.day <= 3))
    return pd.DataFrame(rows, columns=["region", "is_holiday", "festival",
                                       "festival_intensity", "is_payday"])
