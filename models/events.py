"""History without its event days, for the members that cannot tell an event from a new level.

A festival lifts demand 2-3x for a few days. TSB and ARIMA have no festival input: they read
the spike as demand and carry it into the weeks after (on ``small``, the night after Eid
their perishable forecasts stood 10-14% above the true expected demand, fading over three
weeks). Prophet knows the festival dates as holidays when it fits, but its nightly level
correction and its weekday-mean fallback segments read the raw days after its cutoff.

``impute_event_days(frame)`` replaces ``y`` on the event days of each series by what a plain
day would have shown: the series' value on the same weekday 7, 14, 21 or 28 days earlier (the
most recent that is neither an event day nor missing), else the mean of the series' plain days
in the frame, else the day is left as it was (a series that has only event days). Rows are
never added or dropped, so the frame keeps its dates and its cutoff (the last date), and every
member forecasts the same target days. Event days:

* ``festival``: ``festival_intensity > 0`` (the festival and its run-up, from the calendar);
* ``promotion``: ``on_promotion`` true.

A promotion, unlike a festival, is known ahead: the scoring's target rows (``future``) carry
it (the plan is brought into the lake a week ahead, ``jobs.schema.PROMOTIONS_AHEAD_DAYS``).
So a member that sees its promoted days imputed forecasts a promoted target day as a plain
one times ``(1 - discount) ** -e``, with ``e`` the price elasticity of the SKU's category
learnt when it was fitted (``learn_elasticity``: the promoted days' demand against their
series' plain days, per category, leaning on the pooled estimate where a category has few
promoted days). XGBoost and the LSTM read the promotion columns themselves and are not
wrapped.

A frame without the event's column is returned unchanged for that event (nothing is known to
be an event). The replaced rows get ``event_imputed = True`` (False elsewhere).

``EventFree(member, events, on_fit)`` wraps a member so that it only ever sees such a history:
in ``forecast_from`` and ``add_totals`` (the nightly scoring) always, in ``fit`` when
``on_fit`` (Prophet keeps the raw festival days when it fits, since it learns festival
effects from them as holidays; its promoted days are imputed all the same). With
``promotion`` among the events, its forecasts of promoted target days are lifted as above.
Every other attribute is the member's own. A frame from
``clean_history`` with the same events is passed on as it is, so a caller scoring several
wrapped members (``EnsembleModel``) imputes each chunk of history once, not once per member
and call.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["EVENTS", "check_events", "impute_event_days", "clean_history", "EventFree",
           "fit_elasticity", "promotion_elasticity", "promotion_uplift", "learn_elasticity",
           "lift_promoted_days"]

log = logging.getLogger(__name__)

#: Event kind -> how its days are recognised in a training frame.
EVENTS: dict[str, str] = {"festival": "festival_intensity", "promotion": "on_promotion"}
#: Weeks back the same weekday is looked up on.
_WEEKS_BACK = 4
_KEY = ("store_id", "sku_id")


def check_events(events: Sequence[str], what: str = "impute_event_days") -> tuple[str, ...]:
    """``events`` as a tuple; ValueError naming ``what`` for a kind not in ``EVENTS``."""
    unknown = sorted(set(events) - set(EVENTS))
    if unknown:
        raise ValueError(f"{what}: unknown event(s) {unknown}; choose from {sorted(EVENTS)}")
    return tuple(events)


def _event_mask(frame: pd.DataFrame, events: Sequence[str]) -> np.ndarray:
    check_events(events)
    mask = np.zeros(len(frame), dtype=bool)
    for event in events:
        col = EVENTS[event]
        if col not in frame.columns:
            continue
        values = frame[col]
        if event == "festival":
            mask |= pd.to_numeric(values, errors="coerce").fillna(0.0).to_numpy() > 0
        else:
            mask |= values.fillna(False).astype(bool).to_numpy()
    return mask


def impute_event_days(frame: pd.DataFrame, events: Sequence[str] = ("festival",)
                      ) -> pd.DataFrame:
    """A copy of ``frame`` (store_id, sku_id, date, y, the events' columns) with ``y`` on
    event days replaced as the module docstring says, and ``event_imputed``."""
    out = frame.copy()
    event = _event_mask(out, events)
    out["event_imputed"] = False
    if not event.any():
        return out
    dates = pd.to_datetime(out["date"]).dt.normalize()
    day = ((dates - dates.min()).dt.days).to_numpy()
    series = out.groupby(["store_id", "sku_id"], sort=False).ngroup().to_numpy()
    n_days = int(day.max()) + 1
    y = out["y"].to_numpy(dtype="float64")
    # plain (non-event) values on a series x day grid; NaN where missing or an event day
    plain = np.full((int(series.max()) + 1, n_days), np.nan)
    plain[series[~event], day[~event]] = y[~event]
    idx = np.flatnonzero(event)
    fill = np.full(len(idx), np.nan)
    for k in range(1, _WEEKS_BACK + 1):
        back = day[idx] - 7 * k
        ok = np.isnan(fill) & (back >= 0)
        fill[ok] = plain[series[idx[ok]], back[ok]]
    left = np.isnan(fill)
    if left.any():
        counts = np.sum(~np.isnan(plain), axis=1)
        means = np.divide(np.nansum(plain, axis=1), counts,
                          out=np.full(len(counts), np.nan), where=counts > 0)
        fill[left] = means[series[idx[left]]]
    done = ~np.isnan(fill)
    y[idx[done]] = fill[done]
    out["y"] = y
    out.loc[out.index[idx[done]], "event_imputed"] = True
    return out


#: ``attrs`` key of a frame ``clean_history`` made: the events it imputed.
_TAG = "imputed_events"


def clean_history(frame: pd.DataFrame, events: Sequence[str]) -> pd.DataFrame:
    """``impute_event_days`` without its marker column, tagged (``attrs``) with ``events``
    so that ``EventFree`` members take it as it is."""
    events = check_events(events)
    if frame.attrs.get(_TAG) == events:
        return frame
    out = impute_event_days(frame, events)
    n = int(out["event_imputed"].sum())
    if n:
        log.info("%d event day(s) of %d row(s) imputed (%s)", n, len(out), ", ".join(events))
    out = out.drop(columns="event_imputed")
    out.attrs[_TAG] = events
    return out


# --------------------------------------------------------------------------- promotions
def promotion_uplift(discount: np.ndarray, elasticity: np.ndarray) -> np.ndarray:
    """Demand multiplier of a price cut: (1 - discount) ** -elasticity (1 without one)."""
    d = np.clip(np.nan_to_num(np.asarray(discount, float)), 0.0, 0.95)
    return np.exp(-np.asarray(elasticity, float) * np.log1p(-d))


def fit_elasticity(y: np.ndarray, discount: np.ndarray, base: np.ndarray, group: np.ndarray,
                   n_groups: int, prior_days: float = 30.0, cap: float = 4.0
                   ) -> tuple[np.ndarray, float]:
    """(per group 0..n_groups-1, pooled) price elasticity from promoted observations: ``y``
    sold at ``discount`` where the series sells ``base`` on plain days. Per group, the e that
    makes the sum of ``base * (1 - discount) ** -e`` equal the sum of ``y`` (one equation,
    increasing and convex in e: Newton's method; a few promoted days of one SKU say little,
    a category's say more), clipped to [0, ``cap``]; a group with few observations leans
    towards the pooled estimate (weight ``prior_days`` observations). All 0 without any."""
    g = np.asarray(group, int)
    n = len(g)
    if n == 0:
        return np.zeros(n_groups), 0.0
    slots = n_groups + 1  # the last slot: all groups pooled
    g = np.concatenate([g, np.full(n, n_groups)])
    x = np.tile(-np.log1p(-np.clip(np.asarray(discount, float), 0.0, 0.95)), 2)
    b = np.tile(np.asarray(base, float), 2)
    target = np.bincount(g, np.tile(np.asarray(y, float), 2), minlength=slots)
    count = np.bincount(g, minlength=slots).astype(float)
    e = np.zeros(slots)
    for _ in range(20):
        w = b * np.exp(e[g] * x)
        f = np.bincount(g, w, minlength=slots) - target
        slope = np.bincount(g, w * x, minlength=slots)
        e = np.clip(e - np.divide(f, slope, out=np.zeros(slots), where=slope > 0), 0.0, cap)
    pooled = float(e[-1])
    weight = count[:-1] + prior_days
    shrunk = np.divide(count[:-1] * e[:-1] + prior_days * pooled, weight,
                       out=np.full(n_groups, pooled), where=weight > 0)
    return shrunk, pooled


def promotion_elasticity(y: np.ndarray, discount: np.ndarray, group: np.ndarray,
                         prior_days: float = 30.0, cap: float = 4.0) -> np.ndarray:
    """Per row of ``y`` (pairs x days, NaN = unobserved), the price elasticity of its
    ``group`` (a category) by ``fit_elasticity``, each promoted day's base being its pair's
    mean on plain days; 0 without any promotion."""
    y = np.asarray(y, float)
    disc = np.clip(np.nan_to_num(np.asarray(discount, float)), 0.0, 0.95)
    ok = np.isfinite(y)
    plain = ok & (disc <= 0)
    n_plain = plain.sum(axis=1)
    base = np.divide(np.where(plain, y, 0.0).sum(axis=1), n_plain,
                     out=np.zeros(len(y)), where=n_plain > 0)
    r, c = np.nonzero(ok & (disc > 0) & (base > 0)[:, None])
    grp = np.asarray(group, int)
    e, _ = fit_elasticity(y[r, c], disc[r, c], base[r], grp[r], int(grp.max(initial=-1)) + 1,
                          prior_days, cap)
    return e[grp]


#: ``learn_elasticity``'s key for the pooled estimate (a category it has not seen).
POOLED = "*"


def _categories(frame: pd.DataFrame) -> pd.Series:
    """The category of each row: ``category`` (the training frame's), else
    ``category_code`` (the feature rows'), else one category for all."""
    if "category" in frame.columns:
        return frame["category"].astype(str)
    if "category_code" in frame.columns:
        return pd.to_numeric(frame["category_code"]).fillna(-1).astype("int64").astype(str)
    return pd.Series(POOLED, index=frame.index)


def _discounts(frame: pd.DataFrame) -> np.ndarray:
    """Each row's price cut: ``discount_pct`` on ``promotion`` event days, else 0 (all 0
    without either column)."""
    if "discount_pct" not in frame.columns:
        return np.zeros(len(frame))
    disc = np.nan_to_num(pd.to_numeric(frame["discount_pct"], errors="coerce")
                         .to_numpy(dtype="float64"))
    return np.where(_event_mask(frame, ("promotion",)), disc, 0.0)


def learn_elasticity(frame: pd.DataFrame, prior_days: float = 30.0) -> dict[str, float]:
    """Price elasticity per category (and ``POOLED``) from a training frame's raw days: its
    promoted days against the mean of their series' plain days (neither promoted nor
    festive). Empty without promotion columns or promoted days."""
    disc = _discounts(frame)
    if not (disc > 0).any():
        return {}
    y = frame["y"].to_numpy(dtype="float64")
    festive = _event_mask(frame, ("festival",))
    plain = ~_event_mask(frame, ("promotion",)) & ~festive
    series = frame.groupby(list(_KEY), sort=False).ngroup().to_numpy()
    n = int(series.max()) + 1
    count = np.bincount(series[plain], minlength=n)
    base = np.divide(np.bincount(series[plain], y[plain], minlength=n), count,
                     out=np.zeros(n), where=count > 0)[series]
    use = (disc > 0) & ~festive & (base > 0)
    codes, names = pd.factorize(_categories(frame)[use])
    e, pooled = fit_elasticity(y[use], disc[use], base[use], codes, len(names), prior_days)
    out = {str(name): round(float(v), 6) for name, v in zip(names, e, strict=True)}
    out[POOLED] = round(pooled, 6)
    return out


def lift_promoted_days(fc: pd.DataFrame, future: pd.DataFrame | None,
                       elasticity: dict[str, float]) -> pd.DataFrame:
    """``fc`` (a forecast frame) with the mean and quantiles of its promoted target days
    (``future``'s rows with a price cut) times ``promotion_uplift`` at their category's
    elasticity (the pooled one for a category not learnt). Unchanged without either."""
    if not elasticity or future is None or len(fc) == 0:
        return fc
    disc = _discounts(future)
    promoted = disc > 0
    if not promoted.any():
        return fc
    rows = future.loc[promoted]
    e = _categories(rows).map(elasticity).fillna(elasticity.get(POOLED, 0.0))
    lift = pd.DataFrame({"store_id": rows["store_id"].to_numpy(),
                         "sku_id": rows["sku_id"].to_numpy(),
                         "_day": pd.to_datetime(rows["date"]).dt.normalize().to_numpy(),
                         "_lift": promotion_uplift(disc[promoted], e.to_numpy(float))})
    lift = lift.groupby(["store_id", "sku_id", "_day"], as_index=False)["_lift"].max()
    keyed = fc.assign(_day=pd.to_datetime(fc["target_date"]).dt.normalize())
    factor = keyed.merge(lift, on=["store_id", "sku_id", "_day"], how="left")["_lift"]
    factor = factor.fillna(1.0).to_numpy()
    if (factor == 1.0).all():
        return fc
    out = fc.copy()
    cols = [c for c in out.columns if c == "mean" or (c.startswith("q") and c[1:].isdigit())]
    out[cols] = out[cols].to_numpy(dtype="float64") * factor[:, None]
    return out


class EventFree:
    """A member that sees history with its event days imputed (module docstring)."""

    def __init__(self, member: Any, events: Sequence[str] = ("festival",),
                 on_fit: bool = True) -> None:
        self.member, self.events, self.on_fit = member, check_events(events), on_fit
        self.name = getattr(member, "name", type(member).__name__)
        #: Category -> price elasticity, learnt by ``fit`` when promotions are an event.
        self.elasticity: dict[str, float] = {}

    def __getattr__(self, attr: str) -> Any:
        # only called for what EventFree lacks; guard pickling's lookups before __dict__ is set
        if attr.startswith("__") or "member" not in self.__dict__:
            raise AttributeError(attr)
        return getattr(self.member, attr)

    def _clean(self, frame: pd.DataFrame) -> pd.DataFrame:
        return clean_history(frame, self.events)

    def fit(self, train: pd.DataFrame, cfg: Any = None) -> EventFree:
        on_fit = self.events if self.on_fit else tuple(e for e in self.events
                                                       if e != "festival")
        self.member.fit(clean_history(train, on_fit) if on_fit else train, cfg)
        self.elasticity = learn_elasticity(train) if "promotion" in self.events else {}
        return self

    def _lift(self, fc: pd.DataFrame, future: Any) -> pd.DataFrame:
        # a wrapper pickled before elasticities were learnt has none: no lift
        return lift_promoted_days(fc, future, self.__dict__.get("elasticity", {}))

    def predict(self, horizon: int, quantiles: Sequence[float], future: Any = None
                ) -> pd.DataFrame:
        return self._lift(self.member.predict(horizon, quantiles, future=future), future)

    def forecast_from(self, history: pd.DataFrame, horizon: int, quantiles: Sequence[float],
                      future: Any = None, **extra: Any) -> pd.DataFrame:
        return self._lift(self.member.forecast_from(self._clean(history), horizon, quantiles,
                                                    future=future, **extra), future)

    def add_totals(self, totals: Any, history: pd.DataFrame) -> Any:
        return self.member.add_totals(totals, self._clean(history))
