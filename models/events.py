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

A frame without the event's column is returned unchanged for that event (nothing is known to
be an event). The replaced rows get ``event_imputed = True`` (False elsewhere).

``EventFree(member, events, on_fit)`` wraps a member so that it only ever sees such a history:
in ``forecast_from`` and ``add_totals`` (the nightly scoring) always, in ``fit`` when
``on_fit`` (Prophet keeps the raw days when it fits, since it learns festival effects from
them as holidays). Every other attribute is the member's own. A frame from
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

__all__ = ["EVENTS", "check_events", "impute_event_days", "clean_history", "EventFree"]

log = logging.getLogger(__name__)

#: Event kind -> how its days are recognised in a training frame.
EVENTS: dict[str, str] = {"festival": "festival_intensity", "promotion": "on_promotion"}
#: Weeks back the same weekday is looked up on.
_WEEKS_BACK = 4


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


class EventFree:
    """A member that sees history with its event days imputed (module docstring)."""

    def __init__(self, member: Any, events: Sequence[str] = ("festival",),
                 on_fit: bool = True) -> None:
        self.member, self.events, self.on_fit = member, check_events(events), on_fit
        self.name = getattr(member, "name", type(member).__name__)

    def __getattr__(self, attr: str) -> Any:
        # only called for what EventFree lacks; guard pickling's lookups before __dict__ is set
        if attr.startswith("__") or "member" not in self.__dict__:
            raise AttributeError(attr)
        return getattr(self.member, attr)

    def _clean(self, frame: pd.DataFrame) -> pd.DataFrame:
        return clean_history(frame, self.events)

    def fit(self, train: pd.DataFrame, cfg: Any = None) -> EventFree:
        self.member.fit(self._clean(train) if self.on_fit else train, cfg)
        return self

    def predict(self, horizon: int, quantiles: Sequence[float], future: Any = None
                ) -> pd.DataFrame:
        return self.member.predict(horizon, quantiles, future=future)

    def forecast_from(self, history: pd.DataFrame, horizon: int, quantiles: Sequence[float],
                      future: Any = None, **extra: Any) -> pd.DataFrame:
        return self.member.forecast_from(self._clean(history), horizon, quantiles,
                                         future=future, **extra)

    def add_totals(self, totals: Any, history: pd.DataFrame) -> Any:
        return self.member.add_totals(totals, self._clean(history))
