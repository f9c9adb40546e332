"""Reads that keep only what a job needs, partition by partition: ``read_range(where=...)``,
the cluster job's per-store totals and train's oracle for the sampled pairs only. Each is
checked against the plain full read of the same hand-written partitions."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from jobs.cluster import store_totals
from jobs.config import Config
from jobs.lake import read_range, write_partition
from jobs.train import _oracle
from models.clustering import store_features

DAYS = [dt.date(2025, 3, 1) + dt.timedelta(days=i) for i in range(21)]
SCHEMA = pa.schema([("store_id", pa.int32()), ("sku_id", pa.int32()),
                    ("demand", pa.float64())])


def _demand_day(i: int) -> pa.Table:
    """3 stores x 3 SKUs; store 2's SKU 3 unknown (null) on odd days, SKU 2 NaN on day 4;
    store 3 unknown on every SKU on day 5, and absent altogether on day 6."""
    rows = []
    for store in (1, 2, 3):
        if store == 3 and i == 6:
            continue
        for sku in (1, 2, 3):
            value: float | None = float(store * (1 + (i % 7 == 5)) + sku + i % 3)
            if store == 2 and sku == 3 and i % 2:
                value = None
            if store == 2 and sku == 2 and i == 4:
                value = float("nan")
            if store == 3 and i == 5:
                value = None
            rows.append((store, sku, value))
    return pa.Table.from_pylist([dict(zip(SCHEMA.names, r, strict=True)) for r in rows], schema=SCHEMA)


@pytest.fixture()
def lake(tmp_path):
    cfg = Config(home=tmp_path / "home")
    for i, day in enumerate(DAYS):
        write_partition(cfg.lake, "demand_daily", day, _demand_day(i), schema=SCHEMA)
    return cfg


def test_store_totals_sum_only_known_demand():
    out = store_totals(_demand_day(4)).to_pandas().set_index("store_id")["demand"]
    day = _demand_day(4).to_pandas()
    known = day[np.isfinite(day["demand"])]
    assert out.to_dict() == pytest.approx(known.groupby("store_id")["demand"].sum().to_dict())
    assert 2 in out.index and out[2] == pytest.approx(2 + 1 + 4 % 3 + 2 + 3 + 4 % 3)
    # a store whose every SKU is unknown that day gets no row (a gap, not a zero)
    assert 3 not in store_totals(_demand_day(5)).to_pandas()["store_id"].tolist()


def test_read_range_applies_where_per_partition(lake):
    seen = []

    def where(t: pa.Table) -> pa.Table:
        seen.append(t.num_rows)
        return t.slice(0, 1)

    out = read_range(lake.lake, "demand_daily", DAYS[2], DAYS[4], where=where)
    assert seen == [9, 9, 9] and out.num_rows == 3
    assert out["date"].to_pylist() == DAYS[2:5]


def test_store_features_on_store_totals_equal_the_pair_rows(lake):
    stores = pd.DataFrame({"store_id": [1, 2, 3], "customer_density": [4.0, 9.0, 1.0],
                           "competitor_proximity_km": [0.5, 2.0, 3.0],
                           "demographic_index": [0.3, 0.7, 0.1]})
    full = read_range(lake.lake, "demand_daily", DAYS[0], DAYS[-1]).to_pandas()
    full["demand"] = full["demand"].where(np.isfinite(full["demand"]))
    reduced = read_range(lake.lake, "demand_daily", DAYS[0], DAYS[-1],
                         columns=["store_id", "demand"], where=store_totals).to_pandas()
    assert len(reduced) < len(full) / 2
    pd.testing.assert_frame_equal(store_features(reduced, stores),
                                  store_features(full, stores))


def test_oracle_reads_only_the_sampled_pairs(tmp_path):
    cfg = Config(home=tmp_path / "home")
    schema = pa.schema([("store_id", pa.int32()), ("sku_id", pa.int32()),
                        ("expected_demand", pa.float64()), ("nb_dispersion", pa.float64())])
    for i, day in enumerate(DAYS[:3]):
        rows = [{"store_id": s, "sku_id": k, "expected_demand": float(s * 10 + k + i),
                 "nb_dispersion": 2.0} for s in (1, 2) for k in (1, 2, 3)]
        write_partition(cfg.truth, "demand", day, pa.Table.from_pylist(rows, schema=schema),
                        schema=schema)
    pairs = pd.DataFrame({"store_id": [1, 2], "sku_id": [3, 1]})
    out = _oracle(cfg, DAYS[0], DAYS[2], pairs)
    assert sorted(set(zip(out["store_id"], out["sku_id"], strict=True))) == [(1, 3), (2, 1)]
    assert len(out) == 2 * 3
    day2 = out[(out["store_id"] == 2) & (out["date"] == DAYS[2])]
    assert day2["expected_demand"].tolist() == [23.0]
    assert _oracle(cfg, DAYS[5], DAYS[6], pairs) is None
