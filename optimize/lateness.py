"""How often each supplier delivers a day late, from two consecutive closing-stock snapshots.

A delivery is *late* when it was due on a morning and nothing came (the units stay on order
and are due again the next morning), as in ``jobs/world.py`` and the simulator's
``PlanPolicy``. Only lead-time-1 pairs are counted: everything they have on order at the
close of day D-1 is due on the morning of D (tonight's order and yesterday's late units
alike), so ``on_order(D-1) > 0`` is a due delivery, and it was late when
``received(D) == 0`` and the units are still on order at the close of D
(``on_order(D) >= on_order(D-1)``; a delivery short-shipped to zero units leaves the order
book instead). For longer lead times the closing stock does not say which of the units on
order were due on D, so those pairs are not counted; a supplier's lateness is learnt from
its lead-1 SKUs and applies to all of them (the generator draws it per supplier).

Pure pandas/numpy: ``jobs/plan.py`` reads the lake and sums the counts over a window.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["LATE_PRIOR", "DELIVERY_COLUMNS", "count_deliveries", "late_prob"]

#: On-time deliveries added to every supplier's count, so that a few observations say little
#: (and a supplier never observed gets 0). ``optimize.simulate.PlanPolicy`` uses it too.
LATE_PRIOR = 10.0
#: Columns of a closing-stock snapshot that :func:`count_deliveries` reads.
DELIVERY_COLUMNS = ("store_id", "sku_id", "on_order", "received")

_KEY = ["store_id", "sku_id"]


def count_deliveries(before: pd.DataFrame, day: pd.DataFrame,
                     skus: pd.DataFrame) -> pd.DataFrame:
    """Per supplier, the deliveries due on ``day`` (``due``) and how many of them were late
    (``late``), from the closing stock of the day before (``before``) and of ``day``
    (:data:`DELIVERY_COLUMNS`) and ``skus`` (``sku_id, supplier_id, lead_time_days``).
    Pairs missing from either snapshot or from ``skus`` are not counted."""
    one_day = skus.loc[skus["lead_time_days"].fillna(0).astype(int) <= 1,
                       ["sku_id", "supplier_id"]]
    due = before.loc[before["on_order"] > 0, [*_KEY, "on_order"]].merge(one_day, on="sku_id")
    seen = due.merge(day[[*_KEY, "on_order", "received"]], on=_KEY,
                     suffixes=("_before", ""))
    late = (seen["received"] == 0) & (seen["on_order"] >= seen["on_order_before"])
    out = (pd.DataFrame({"supplier_id": seen["supplier_id"].to_numpy(np.int64),
                         "due": 1, "late": late.to_numpy(np.int64)})
           .groupby("supplier_id", as_index=False)[["due", "late"]].sum())
    return out.astype(np.int64)


def late_prob(counts: pd.DataFrame, prior: float = LATE_PRIOR) -> pd.Series:
    """Per ``supplier_id`` (the index), ``late / (due + prior)`` of the summed ``counts``
    (rows of :func:`count_deliveries`, any number per supplier)."""
    if prior < 0:
        raise ValueError(f"late_prob: prior must be >= 0, got {prior}")
    total = counts.groupby("supplier_id")[["due", "late"]].sum()
    denom = total["due"] + prior
    p = (total["late"] / denom.where(denom > 0)).fillna(0.0).clip(0.0, 1.0)
    return p.rename("late_prob").astype(float)
