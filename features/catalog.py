"""Every feature of the ``features`` table, in one place: name, family, meaning, history.

``build_features`` emits exactly ``KEYS + LABELS + feature_names()`` (a test checks it), so
this module is the documentation, the schema and the contract of the validation suite:
a feature may be null only where ``Feature.may_be_null(history_days)`` says so.

Category-like strings become integers through the fixed mappings below (0 = unknown), so a
code means the same thing in every run, every data set and every model.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Feature", "FEATURES", "LABELS", "KEYS", "feature_names", "feature",
           "catalog_markdown", "CATEGORY_CODES", "ZONE_CODES", "REGION_CODES", "PROMO_TYPES",
           "LAGS", "ROLL_WINDOWS", "SAME_WEEKDAY_LAGS", "MAX_WINDOW", "AGE_CAP_DAYS",
           "NEW_SKU_DAYS", "FESTIVAL_HORIZON_DAYS", "RAINY_MM"]

KEYS = ("date", "store_id", "sku_id")
#: What happened on the row's date: training targets, never inputs of the same row.
LABELS = ("units_sold", "demand", "censored")

#: Fixed integer codes (0 = anything else, e.g. ``unknown`` from imported data).
CATEGORY_CODES: dict[str, int] = {c: i + 1 for i, c in enumerate((
    "fruits_vegetables", "dairy", "bakery", "meat_fish", "sweets", "frozen", "snacks",
    "beverages", "staples", "instant_food", "personal_care", "household", "puja_festive"))}
ZONE_CODES: dict[str, int] = {"ambient": 1, "chilled": 2, "frozen": 3}
REGION_CODES: dict[str, int] = {"north": 1, "south": 2, "east": 3, "west": 4}
#: Promotion types with their own one-hot column ``promo_type_<type>``.
PROMO_TYPES = ("discount", "bundle", "festival")

LAGS = (1, 2, 3, 7, 14, 21, 28, 30)
ROLL_WINDOWS = (3, 7, 14, 30)
SAME_WEEKDAY_LAGS = (7, 14, 21, 28)
#: The longest window any feature reads; ``build_features`` needs lookback >= this.
MAX_WINDOW = 30
AGE_CAP_DAYS = 365
NEW_SKU_DAYS = 30
#: Festival distances look this many days ahead (the calendar is known in advance).
FESTIVAL_HORIZON_DAYS = 60
#: A "rainy day" in the Indian Meteorological Department's sense.
RAINY_MM = 2.5

_DOUBLE, _INT, _BOOL = "double", "int", "boolean"


@dataclass(frozen=True)
class Feature:
    """One feature column.

    ``window_days``: days of the pair's own history the feature reads (0 for covariates known
    in advance). ``min_history``: with a gap-free history of at least this many days
    (``history_days``), the feature is never null. ``nullable``: may be null for a reason
    other than short history (given in ``meaning``). ``dtype``: Spark type name.
    """

    name: str
    family: str
    meaning: str
    window_days: int
    nullable: bool = False
    dtype: str = _DOUBLE
    min_history: int | None = None

    @property
    def history_needed(self) -> int:
        return self.window_days if self.min_history is None else self.min_history

    def may_be_null(self, history_days: int) -> bool:
        """True when a null is legitimate for a row with ``history_days`` of history.

        Exact for gap-free series; a day missing from the pair's history also nulls the
        lags that land on it and can null short windows lying wholly inside the gap.
        """
        return self.nullable or history_days < self.history_needed


def _history() -> list[Feature]:
    return [Feature("history_days", "history", "Days in [D-lookback, D-1] on which the pair "
                    "was active (has a demand row); 0 for a pair new on D", MAX_WINDOW,
                    dtype=_INT, min_history=0)]


def _lags() -> list[Feature]:
    out = [Feature(f"lag_{k}", "lag", f"Corrected demand on D-{k}; null if the pair was not "
                   f"active that day; a censored day without sales holds the imputed value",
                   k) for k in LAGS]
    out.append(Feature("same_weekday_mean_4", "lag", "Mean of lag_7, lag_14, lag_21, lag_28 "
                       "over those present (same weekday, last 4 weeks)", 28, min_history=7))
    out += [Feature(f"units_lag_{k}", "lag", f"Units sold on D-{k} (uncorrected)", k,
                    dtype=_INT) for k in (1, 7)]
    return out


def _rolling() -> list[Feature]:
    out = [Feature(f"roll_mean_{k}", "rolling", f"Mean corrected demand over the days present "
                   f"in [D-{k}, D-1]", k, min_history=1) for k in ROLL_WINDOWS]
    out += [Feature(f"roll_std_{k}", "rolling", f"Population standard deviation (ddof=0) of "
                    f"corrected demand over the days present in [D-{k}, D-1]", k, min_history=1)
            for k in ROLL_WINDOWS]
    out += [Feature("roll_max_7", "rolling", "Max corrected demand over [D-7, D-1]", 7,
                    min_history=1),
            Feature("roll_min_7", "rolling", "Min corrected demand over [D-7, D-1]", 7,
                    min_history=1)]
    return out


def _intermittency() -> list[Feature]:
    out = [Feature("days_since_last_sale", "intermittency", "Days since the last day with "
                   "units sold > 0 in [D-lookback, D-1]; lookback + 1 if none", MAX_WINDOW,
                   dtype=_INT, min_history=0)]
    for k in (7, 30):
        out.append(Feature(f"zero_sale_share_{k}", "intermittency", f"Share of the days "
                           f"present in [D-{k}, D-1] with no units sold", k, min_history=1))
    for k in (7, 30):
        out.append(Feature(f"stockout_share_{k}", "intermittency", f"Share of the days present "
                           f"in [D-{k}, D-1] that closed with an empty shelf", k,
                           min_history=1))
    return out


def _intraday() -> list[Feature]:
    return [Feature(f"evening_share_{k}", "intraday", f"Units sold 18:00-22:00 / units sold "
                    f"over [D-{k}, D-1]; null when nothing sold", k, nullable=True)
            for k in (7, 30)]


def _promo_history() -> list[Feature]:
    return [
        Feature("promo_share_30", "promotion_history", "Share of the days present in "
                "[D-30, D-1] with a promotion on the pair", 30, min_history=1),
        Feature("promo_lift_30", "promotion_history", "Mean corrected demand on promotion days"
                " / mean on other days in [D-30, D-1]; null unless both kinds of day are "
                "present and the other days' mean > 0", 30, nullable=True),
        Feature("avg_price_30", "promotion_history", "Average price paid per unit over "
                "[D-30, D-1] (revenue / units); null when nothing sold", 30, nullable=True),
        Feature("price_vs_avg_30", "promotion_history", "price_on_day / avg_price_30; null "
                "when nothing sold in the window", 30, nullable=True),
    ]


def _calendar() -> list[Feature]:
    c = "calendar"
    return [
        Feature("day_of_week", c, "Day of week of D, 0 = Monday .. 6 = Sunday", 0, dtype=_INT),
        Feature("is_weekend", c, "D is a Saturday or Sunday", 0, dtype=_BOOL),
        Feature("day_of_month", c, "Day of month of D, 1..31", 0, dtype=_INT),
        Feature("month", c, "Month of D, 1..12", 0, dtype=_INT),
        Feature("week_of_year", c, "ISO week of D, 1..53", 0, dtype=_INT),
        Feature("is_payday", c, "Payday in the store's region on D (from the calendar)", 0,
                dtype=_BOOL),
        Feature("is_holiday", c, "Public or regional holiday in the store's region on D", 0,
                dtype=_BOOL),
        Feature("is_festival", c, "D is a festival day (main day or run-up) in the store's "
                "region", 0, dtype=_BOOL),
        Feature("festival_intensity", c, "Festival intensity in the store's region on D, 0-1",
                0),
        Feature("days_to_next_festival", c, f"Days from D to the next festival day (0 on a "
                f"festival day), capped at {FESTIVAL_HORIZON_DAYS}; from the calendar rows "
                f"given", 0, dtype=_INT),
        Feature("days_since_last_festival", c, "Days since the last festival day before D in "
                "[D-lookback, D-1]; lookback + 1 if none", 0, dtype=_INT),
    ]


def _weather() -> list[Feature]:
    w, why = "weather", "; null when the data set has no weather for the city and day"
    return [
        Feature("temp_max_c", w, "Max temperature in the store's city on D, C" + why, 0,
                nullable=True),
        Feature("rain_mm", w, "Rainfall in the store's city on D, mm" + why, 0, nullable=True),
        Feature("humidity", w, "Relative humidity in the store's city on D, 0-1" + why, 0,
                nullable=True),
        Feature("is_rainy", w, f"rain_mm >= {RAINY_MM}" + why, 0, nullable=True, dtype=_BOOL),
        Feature("rain_3d_mm", w, "Rain on D-2, D-1 and D (the days present)" + why, 0,
                nullable=True),
    ]


def _promotion() -> list[Feature]:
    p = "promotion"
    out = [
        Feature("on_promotion", p, "A promotion applies to the pair on D", 0, dtype=_BOOL),
        Feature("discount_pct", p, "Largest discount on D, 0-1 (0 without promotion)", 0),
    ]
    out += [Feature(f"promo_type_{t}", p, f"A '{t}' promotion applies on D", 0, dtype=_BOOL)
            for t in PROMO_TYPES]
    out += [
        Feature("price_on_day", p, "Regular price x (1 - discount_pct), INR", 0),
        Feature("price_ratio", p, "price_on_day / regular price", 0),
    ]
    return out


def _store() -> list[Feature]:
    s = "store"
    out = [Feature("region_code", s, "Region of the store: " + ", ".join(
        f"{k}={v}" for k, v in REGION_CODES.items()) + ", 0=other", 0, dtype=_INT)]
    out += [Feature(n, s, m, 0) for n, m in (
        ("customer_density", "Households per km2 in the delivery radius, thousands"),
        ("competitor_proximity_km", "Distance to the nearest competing dark store, km"),
        ("demographic_index", "Affluence index, 0-1"),
        ("capacity_ambient_l", "Ambient shelf volume, litres"),
        ("capacity_chilled_l", "Chilled volume, litres"),
        ("capacity_frozen_l", "Frozen volume, litres"),
        ("daily_budget", "Purchase budget per day, INR"))]
    out.append(Feature("store_age_days", s, f"Days since the store opened, 0..{AGE_CAP_DAYS}",
                       0, dtype=_INT))
    return out


def _sku() -> list[Feature]:
    k = "sku"
    return [
        Feature("category_code", k, "Category: " + ", ".join(
            f"{c}={v}" for c, v in CATEGORY_CODES.items()) + ", 0=other", 0, dtype=_INT),
        Feature("zone_code", k, "Storage zone: " + ", ".join(
            f"{z}={v}" for z, v in ZONE_CODES.items()) + ", 0=other", 0, dtype=_INT),
        Feature("is_perishable", k, "Fresh goods with a shelf life of 2-7 days", 0,
                dtype=_BOOL),
        Feature("shelf_life_days", k, "Days a unit can be sold after receipt", 0, dtype=_INT),
        Feature("unit_cost", k, "Purchase cost per unit, INR", 0),
        Feature("price", k, "Regular selling price per unit, INR", 0),
        Feature("margin", k, "(price - unit_cost) / price", 0),
        Feature("case_pack", k, "Units per case", 0, dtype=_INT),
        Feature("moq_cases", k, "Minimum order quantity, cases", 0, dtype=_INT),
        Feature("lead_time_days", k, "Days from order to delivery", 0, dtype=_INT),
        Feature("volume_l", k, "Shelf volume per unit, litres", 0),
        Feature("sku_age_days", k, f"Days since launch, 0..{AGE_CAP_DAYS}", 0, dtype=_INT),
        Feature("is_new_sku", k, f"Launched fewer than {NEW_SKU_DAYS} days before D", 0,
                dtype=_BOOL),
    ]


FEATURES: tuple[Feature, ...] = tuple(
    _history() + _lags() + _rolling() + _intermittency() + _intraday() + _promo_history()
    + _calendar() + _weather() + _promotion() + _store() + _sku())

_BY_NAME = {f.name: f for f in FEATURES}
assert len(_BY_NAME) == len(FEATURES), "duplicate feature names"


def feature_names() -> list[str]:
    return [f.name for f in FEATURES]


def feature(name: str) -> Feature:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown feature {name!r}; see features.catalog.FEATURES") from None


def catalog_markdown() -> str:
    """The catalog as a Markdown table, grouped by family, for the docs."""
    out = ["# Features", "",
           f"One row per (date D, store, SKU). Keys: {', '.join(KEYS)}; labels (what happened "
           f"on D, never inputs): {', '.join(LABELS)}. History features read only days "
           "before D; covariates (calendar, weather, promotion, price, store, SKU) are known "
           "in advance for D. `window` = days of the pair's history read; `min history` = "
           "days of gap-free history after which the feature is never null.", "",
           "| feature | family | type | window | min history | nullable | meaning |",
           "|---|---|---|---|---|---|---|"]
    out += [f"| `{f.name}` | {f.family} | {f.dtype} | {f.window_days} | {f.history_needed} | "
            f"{'yes' if f.nullable else 'no'} | {f.meaning} |" for f in FEATURES]
    return "\n".join(out) + "\n"
