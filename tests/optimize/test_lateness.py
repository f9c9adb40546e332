from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from optimize.lateness import LATE_PRIOR, count_deliveries, late_prob

SKUS = pd.DataFrame({"sku_id": [1, 2, 3, 4, 5, 6],
                     "supplier_id": [1, 2, 3, 4, 5, 1],
                     "lead_time_days": [1, 1, 1, 2, 1, 1]})


def snap(rows: list[tuple[int, int, int, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["store_id", "sku_id", "on_order", "received"])


def test_counts_due_and_late_deliveries_of_lead_1_pairs():
    before = snap([(1, 1, 6, 0), (2, 1, 6, 0),  # supplier 1: due on both stores
                   (1, 2, 4, 0),                # supplier 2: due
                   (1, 3, 0, 0),                # supplier 3: nothing on order, nothing due
                   (1, 4, 5, 0),                # supplier 4: lead 2, not counted
                   (1, 5, 3, 0)])               # supplier 5: due
    day = snap([(1, 1, 6, 0),    # nothing came, still on order: late
                (2, 1, 18, 0),   # late, and tonight's order on top
                (1, 2, 0, 4),    # on time
                (1, 3, 0, 0),
                (1, 4, 5, 0),    # lead 2: nothing came, but nothing may have been due
                (1, 5, 0, 0)])   # nothing came and nothing left on order: shorted to 0
    out = count_deliveries(before, day, SKUS).set_index("supplier_id")
    assert out.to_dict("index") == {1: {"due": 2, "late": 2}, 2: {"due": 1, "late": 0},
                                    5: {"due": 1, "late": 0}}


def test_pairs_missing_from_a_snapshot_or_the_skus_are_not_counted():
    before = snap([(1, 1, 6, 0), (1, 99, 6, 0)])
    day = snap([(2, 1, 6, 0), (1, 99, 6, 0)])
    assert count_deliveries(before, day, SKUS).empty


def test_late_prob_with_the_prior_of_on_time_deliveries():
    counts = pd.DataFrame({"supplier_id": [1, 1, 2, 3], "due": [4, 6, 30, 0],
                           "late": [4, 6, 0, 0]})
    p = late_prob(counts)
    assert LATE_PRIOR == 10.0
    assert p[1] == pytest.approx(10 / (10 + LATE_PRIOR))  # always late: 0.5, not 1
    assert p[2] == 0.0  # never late
    assert p[3] == 0.0  # no delivery seen
    assert 4 not in p.index  # never seen at all: absent, i.e. 0 on its lines
    assert late_prob(counts, prior=0.0)[1] == 1.0
    assert late_prob(counts, prior=0.0)[3] == 0.0
    with pytest.raises(ValueError, match="prior"):
        late_prob(counts, prior=-1.0)


def test_late_prob_of_no_counts_is_empty():
    empty = pd.DataFrame({"supplier_id": [], "due": [], "late": []})
    assert late_prob(empty).empty


def test_count_deliveries_matches_a_plain_loop():
    rng = np.random.default_rng(3)
    pairs = [(s, k) for s in (1, 2, 3) for k in range(1, 7)]
    before = snap([(s, k, int(rng.integers(0, 3)) * 4, 0) for s, k in pairs])
    day = snap([(s, k, int(rng.integers(0, 3)) * 4, int(rng.integers(0, 2)) * 4)
                for s, k in pairs if rng.random() < 0.9])
    lead = SKUS.set_index("sku_id").lead_time_days
    supplier = SKUS.set_index("sku_id").supplier_id
    expected: dict[int, list[int]] = {}
    for b in before.itertuples():
        d = day[(day.store_id == b.store_id) & (day.sku_id == b.sku_id)]
        if lead[b.sku_id] > 1 or b.on_order == 0 or d.empty:
            continue
        c = expected.setdefault(int(supplier[b.sku_id]), [0, 0])
        c[0] += 1
        c[1] += int(d.received.iloc[0] == 0 and d.on_order.iloc[0] >= b.on_order)
    out = count_deliveries(before, day, SKUS)
    assert {int(r.supplier_id): [r.due, r.late] for r in out.itertuples()} == expected
    assert sum(late for _, late in expected.values()) > 0
