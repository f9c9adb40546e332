"""Hand-written and seeded synthetic inputs for the optimize tests and the timing script."""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from optimize.inputs import EXPIRY_COLUMNS, QUANTILE_COLUMNS, QUANTILE_LEVELS, StoreInputs

# category, zone, perishable, shelf life range, price range, share
_CATS = (
    ("fruits_vegetables", "ambient", True, (2, 5), (20, 120), .14),
    ("dairy", "chilled", True, (2, 7), (25, 250), .09),
    ("bakery", "ambient", True, (3, 6), (30, 150), .05),
    ("meat_fish", "chilled", True, (2, 3), (150, 600), .04),
    ("sweets", "ambient", True, (5, 7), (80, 500), .04),
    ("frozen", "frozen", False, (120, 365), (60, 400), .06),
    ("snacks", "ambient", False, (90, 180), (10, 120), .12),
    ("beverages", "ambient", False, (120, 365), (20, 200), .10),
    ("staples", "ambient", False, (120, 365), (40, 450), .11),
    ("instant_food", "ambient", False, (180, 365), (12, 150), .07),
    ("personal_care", "ambient", False, (365, 730), (40, 450), .08),
    ("household", "ambient", False, (365, 730), (40, 350), .06),
    ("puja_festive", "ambient", False, (180, 365), (20, 300), .04),
)


def nb_quantiles(mean: np.ndarray, k: np.ndarray | float) -> np.ndarray:
    """Quantiles q50..q99 of a negative binomial with mean ``mean`` and size ``k``."""
    mean = np.asarray(mean, float)
    k = np.broadcast_to(np.asarray(k, float), mean.shape)
    p = k / (k + np.maximum(mean, 1e-9))
    q = np.stack([stats.nbinom.ppf(lvl, k, p) for lvl in QUANTILE_LEVELS], axis=-1)
    return np.where(mean[..., None] > 0, q, 0.0)


def sku(sku_id: int, mean: float = 10.0, *, horizon: int = 7, k: float = 8.0,
        store_id: int = 1, **attrs: object) -> pd.DataFrame:
    """The long ``lines`` rows of one SKU with a flat daily forecast; attributes overridable
    (``exp`` maps an expiry column to units, and on_hand follows it)."""
    base: dict[str, object] = {
        "store_id": store_id, "sku_id": sku_id, "category": "snacks", "zone": "ambient",
        "volume_l": 0.5, "unit_cost": 70.0, "price": 100.0, "case_pack": 6, "moq_cases": 1,
        "supplier_id": 1, "lead_time_days": 1, "shelf_life_days": 120,
        "is_perishable": False, "on_hand": 0, "on_order": 0,
        **{c: 0 for c in EXPIRY_COLUMNS},
    }
    exp = dict(attrs.pop("exp", {}) or {})  # type: ignore[call-overload]
    base.update(attrs)
    base.update(exp)
    base["on_hand"] = sum(int(base[c]) for c in EXPIRY_COLUMNS)  # type: ignore[call-overload]
    q = nb_quantiles(np.full(horizon, mean), k)
    rows = pd.DataFrame({"horizon": np.arange(1, horizon + 1), "mean": float(mean)})
    for j, c in enumerate(QUANTILE_COLUMNS):
        rows[c] = q[:, j]
    for c, v in base.items():
        rows[c] = v
    return rows


def frame(*skus: pd.DataFrame) -> pd.DataFrame:
    return pd.concat(skus, ignore_index=True)


def store(budget: float = 1e6, ambient: float = 1e6, chilled: float = 1e6,
          frozen: float = 1e6, store_id: int = 1,
          supplier_min: dict[int, float] | None = None) -> StoreInputs:
    return StoreInputs(store_id, ambient, chilled, frozen, budget, dict(supplier_min or {}))


def synthetic_store(n_skus: int, seed: int = 0, horizon: int = 14, store_id: int = 1
                    ) -> tuple[pd.DataFrame, StoreInputs]:
    """A store like ``jobs/world.py`` makes: long-tailed demand, perishables with 2-7 days
    of shelf life, case packs, MOQs, suppliers, stock by days to expiry; budget about 1.35x
    a day's demand at cost, capacity about three weeks of demand per zone."""
    rng = np.random.default_rng(seed)
    shares = np.array([c[5] for c in _CATS])
    cat_idx = rng.choice(len(_CATS), n_skus, p=shares / shares.sum())
    c = [_CATS[i] for i in cat_idx]
    lo = np.array([x[4][0] for x in c], float)
    hi = np.array([x[4][1] for x in c], float)
    price = np.round(np.exp(rng.uniform(np.log(lo), np.log(hi))), 0)
    cost = np.round(price * (1 - rng.uniform(0.15, 0.35, n_skus)), 2)
    shelf = np.array([rng.integers(x[3][0], x[3][1] + 1) for x in c])
    perish = np.array([x[2] for x in c])
    median = 1.4 * min(1.0, (1000 / n_skus) ** 0.5) * 3  # one busy store
    rate = np.clip(np.exp(rng.normal(np.log(median), 1.25, n_skus)), 0.02, 150.0)
    case = np.where(rate > 20, rng.choice([6, 12, 24], n_skus),
                    np.where(rate > 3, rng.choice([1, 4, 6, 12], n_skus),
                             rng.choice([1, 1, 2, 4], n_skus)))
    case = np.where(perish, np.minimum(case, 6), case)
    moq = rng.choice([1, 1, 1, 2, 3], n_skus)
    lead = np.where(perish, 1, rng.choice([1, 2, 2, 3], n_skus))
    volume = np.round(rng.lognormal(np.log(0.6), 0.6, n_skus), 3)
    k = rng.uniform(4.0, 15.0, n_skus)
    weekly = np.array([0.9, 0.92, 0.95, 1.0, 1.08, 1.2, 1.15])
    days = np.arange(horizon)
    mean = rate[:, None] * weekly[days % 7][None, :] * rng.lognormal(0, 0.1, (n_skus, horizon))
    q = nb_quantiles(mean, k[:, None])

    # Stock: a few days of demand, perishables spread over their remaining life.
    on_hand = rng.poisson(rate * rng.uniform(0.0, 4.0, n_skus))
    buckets = np.zeros((n_skus, 8), int)
    life = np.where(perish, np.minimum(shelf, 7), 8)
    for i in range(n_skus):
        if on_hand[i]:
            slots = rng.integers(0, life[i], on_hand[i]) if perish[i] else np.full(on_hand[i], 7)
            buckets[i] = np.bincount(slots, minlength=8)
    on_order = np.where(lead > 1, rng.poisson(rate * (lead - 1) * 0.8), 0)

    skus = pd.DataFrame({
        "store_id": store_id, "sku_id": np.arange(1, n_skus + 1),
        "category": [x[0] for x in c], "zone": [x[1] for x in c], "volume_l": volume,
        "unit_cost": cost, "price": price, "case_pack": case, "moq_cases": moq,
        "supplier_id": (cat_idx * 7 + rng.integers(0, max(3, n_skus // 40), n_skus))
        % max(3, n_skus // 40) + 1,
        "lead_time_days": lead, "shelf_life_days": shelf, "is_perishable": perish,
        "on_hand": buckets.sum(axis=1), "on_order": on_order,
        **{col: buckets[:, j] for j, col in enumerate(EXPIRY_COLUMNS)},
    })
    fc = pd.DataFrame({"sku_id": np.repeat(skus["sku_id"].to_numpy(), horizon),
                       "horizon": np.tile(days + 1, n_skus), "mean": mean.ravel()})
    for j, col in enumerate(QUANTILE_COLUMNS):
        fc[col] = q[..., j].ravel()
    lines = skus.merge(fc, on="sku_id").sort_values(["sku_id", "horizon"], ignore_index=True)
    budget = float(np.round((rate * cost).sum() * 1.35, -2))
    caps = {}
    for z in ("ambient", "chilled", "frozen"):
        zone_vol = float((rate * volume)[skus["zone"].to_numpy() == z].sum())
        caps[z] = max(200.0, round(zone_vol * 21, -1))
    st = StoreInputs(store_id, caps["ambient"], caps["chilled"], caps["frozen"], budget)
    return lines, st
