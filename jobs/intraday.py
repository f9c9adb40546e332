"""``replenish intraday --date D --hour H``: top-up orders for SKUs that will run out today.

Runs every two hours from 08:00 to 22:00 (Asia/Kolkata) and never touches the nightly plan:
it only *adds* express top-up lines, in ``lake/topups/date=D`` (the rows of hour H replaced)
and the warehouse table ``replenish.topup_order``.

1. **Snapshot** (``snapshot``, into ``lake/intraday_sales``): the day's sales lines with a
   timestamp before H:00 (the landing partition of D; upstream drops it through the day).
   Validated: columns present, quantity >= 0 and below the raw rules' ceiling, price > 0,
   timestamp inside [D 00:00, H:00). Rows in = rows accepted + rows rejected, rejected rows
   counted per rule in the result.
2. **Stock now** (``rescore``): the closing ``on_hand`` of D-1 (``lake/clean/inventory``),
   plus the morning's deliveries (plan lines of the run D-1 with ``delivery_date`` = D, when
   that plan exists), minus the units sold so far.
3. **Re-score** (``rescore``, into ``lake/intraday_forecasts``): the champion's forecast for
   D (``lake/forecasts`` of the run D-1, horizon 1) is split by the intraday profile
   (``features.demand.DEFAULT_HOURLY_PROFILE``, ~62% of units between 18:00 and 22:00) into
   what should have sold before H and what remains. Sales so far against that expectation
   give a factor per store x category, shrunk towards 1 (``SHRINK`` expected units of prior
   weight) and clipped to [0.5, 2]; the remaining mean and quantiles are the day's, times the
   remaining share, times the factor (a proportional approximation of the remaining
   distribution).
4. **Top-up** (``topup``, into ``lake/topups``): where stock now is below the remaining q90,
   order the difference in whole cases (express, no MOQ), for delivery within the hour. Per
   store, the top-ups together may spend at most ``BUDGET_SHARE`` of the store's daily
   budget; when they would spend more, the lines with the highest expected lost margin per
   rupee are kept.
5. **Audit** (``audit``) and **publish** (``publish``, which audits again): no negative
   quantity, one line per pair and hour, within the cap; then the hour's rows are replaced in
   ``replenish.topup_order`` in one transaction.

Every step reads what the step before it wrote for (D, H) and replaces only its own rows of
hour H, so any step can be retried or re-run alone.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from jobs.config import Config
from jobs.lake import list_dates, partition_dir, read_partition, read_snapshot, write_partition

__all__ = ["run", "snapshot", "rescore", "topup", "audit", "publish", "IntradayResult",
           "RescoreResult", "SnapshotResult", "HOURS", "BUDGET_SHARE", "AUDIT_RULES",
           "remaining_share", "top_ups"]

log = logging.getLogger(__name__)

#: Hours the intraday DAG runs at (local time).
HOURS = tuple(range(8, 23, 2))
BUDGET_SHARE = 0.15
SHRINK = 20.0
SERVICE_QUANTILE = "q90"
_MAX_UNITS = 10_000
TOPUP_COLUMNS = ("run_date", "hour", "store_id", "sku_id", "supplier_id", "on_hand_now",
                 "sold_so_far", "remaining_mean", "remaining_q90", "factor", "topup_cases",
                 "topup_units", "case_pack", "unit_cost", "order_value", "reason")


@dataclass(frozen=True)
class IntradayResult:
    run_date: dt.date
    hour: int
    rows_in: int
    rows_accepted: int
    rejected: dict[str, int]
    pairs: int
    topups: int
    units: int
    value: float
    flags: tuple[str, ...] = field(default=())

    def summary(self) -> str:
        text = (f"intraday {self.run_date} {self.hour:02d}:00: {self.rows_accepted:,} of "
                f"{self.rows_in:,} sales lines accepted"
                + (f" (rejected: {self.rejected})" if self.rejected else "")
                + f"; {self.pairs:,} pairs checked, {self.topups:,} top-ups, {self.units:,} "
                f"units, INR {self.value:,.0f}")
        return text + "".join(f"\nflag: {f}" for f in self.flags)


def remaining_share(hour: int) -> float:
    """Share of a normal day's units sold at or after ``hour``:00."""
    from features.demand import DEFAULT_HOURLY_PROFILE

    profile = np.asarray(DEFAULT_HOURLY_PROFILE, dtype="float64")
    return float(profile[hour:].sum() / profile.sum())


def _snapshot(cfg: Config, day: dt.date, hour: int) -> tuple[pd.DataFrame, int, dict[str, int]]:
    """Sales lines of ``day`` before ``hour``:00, validated; (accepted, rows in, rejected)."""
    path = partition_dir(cfg.landing, "sales", day)
    if not path.is_dir():
        raise FileNotFoundError(f"table 'sales' (landing), partition date={day}: missing; the "
                                "intraday snapshot has not arrived")
    sales = read_partition(cfg.landing, "sales", day).to_pandas()
    need = ["store_id", "sku_id", "ts", "quantity", "unit_price"]
    missing = [c for c in need if c not in sales.columns]
    if missing:
        raise ValueError(f"table 'sales' (landing), partition date={day}: column(s) {missing} "
                         f"missing (rule: schema)")
    ts = pd.to_datetime(sales["ts"], errors="coerce")
    start = pd.Timestamp(day)
    cut = start + pd.Timedelta(hours=hour)
    before = ts < cut
    sales = sales.loc[before | ts.isna()]
    ts = ts.loc[sales.index]
    rules = {
        "ts_parseable_in_day": ts.isna() | (ts < start),
        "quantity_in_range": ~sales["quantity"].between(0, _MAX_UNITS),
        "price_positive": ~(sales["unit_price"] > 0),
        "keys_not_null": sales["store_id"].isna() | sales["sku_id"].isna(),
    }
    bad = np.zeros(len(sales), dtype=bool)
    rejected = {}
    for name, mask in rules.items():
        m = mask.to_numpy() & ~bad
        if m.any():
            rejected[name] = int(m.sum())
        bad |= mask.to_numpy()
    return sales.loc[~bad], len(sales), rejected


def top_ups(lines: pd.DataFrame, budget: pd.Series, share: float) -> pd.DataFrame:
    """Decide top-ups from one row per pair (see the module docstring; pure).

    ``lines`` columns: store_id, sku_id, on_hand_now, remaining_mean, remaining_q90,
    case_pack, unit_cost, price. ``budget``: daily budget per store_id.
    """
    out = lines.copy()
    gap = np.maximum(out["remaining_q90"] - out["on_hand_now"], 0.0)
    cases = np.ceil(gap / out["case_pack"].clip(lower=1)).astype("int64")
    out["topup_cases"] = cases
    out["topup_units"] = cases * out["case_pack"].astype("int64")
    out["order_value"] = out["topup_units"] * out["unit_cost"]
    short = np.maximum(out["remaining_mean"] - out["on_hand_now"], 0.0)
    margin = (out["price"] - out["unit_cost"]).clip(lower=0.0)
    value = np.minimum(short, out["topup_units"]) * margin
    out["_priority"] = np.divide(value, out["order_value"], out=np.zeros(len(out)),
                                 where=out["order_value"] > 0)
    out = out.sort_values(["store_id", "_priority", "sku_id"], ascending=[True, False, True])
    cap = out["store_id"].map(budget).fillna(0.0) * share
    spent = out.groupby("store_id")["order_value"].cumsum()
    over = (spent > cap + 1e-9) & (out["topup_units"] > 0)
    out.loc[over, ["topup_cases", "topup_units", "order_value"]] = 0
    out["reason"] = np.where(over, "over the top-up budget",
                             np.where(out["topup_units"] > 0, "runs out before the next "
                                      "delivery", ""))
    return out.drop(columns="_priority").sort_values(["store_id", "sku_id"]).reset_index(
        drop=True)


@dataclass(frozen=True)
class SnapshotResult:
    run_date: dt.date
    hour: int
    rows_in: int
    rows_accepted: int
    rejected: dict[str, int]

    def summary(self) -> str:
        return (f"intraday snapshot {self.run_date} {self.hour:02d}:00: {self.rows_accepted:,} "
                f"of {self.rows_in:,} sales lines accepted"
                + (f", rejected per rule {self.rejected}" if self.rejected else ""))


def snapshot(cfg: Config, run_date: dt.date, hour: int) -> SnapshotResult:
    """Step 1: validate the sales before ``hour`` and keep the accepted lines' totals per pair
    in ``lake/intraday_sales/date=D`` (the hour's rows replaced)."""
    _check_hour(hour)
    sales, rows_in, rejected = _snapshot(cfg, run_date, hour)
    sold = sales.groupby(["store_id", "sku_id"], as_index=False)["quantity"].sum().rename(
        columns={"quantity": "sold_so_far"})
    sold["hour"] = hour
    _replace_hour(cfg, "intraday_sales", run_date, hour, sold)
    return SnapshotResult(run_date, hour, rows_in, rows_in - sum(rejected.values()), rejected)


RESCORE_COLUMNS = ("hour", "store_id", "sku_id", "supplier_id", "category", "on_hand_now",
                   "sold_so_far", "arriving", "mean", SERVICE_QUANTILE, "factor",
                   "remaining_mean", "remaining_q90", "case_pack", "unit_cost", "price")


@dataclass(frozen=True)
class RescoreResult:
    run_date: dt.date
    hour: int
    pairs: int
    expected_so_far: float
    sold_so_far: float
    remaining_units: float
    flags: tuple[str, ...] = field(default=())

    def summary(self) -> str:
        text = (f"intraday rescore {self.run_date} {self.hour:02d}:00: {self.pairs:,} pairs, "
                f"{self.sold_so_far:,.0f} units sold vs {self.expected_so_far:,.0f} expected "
                f"so far; {self.remaining_units:,.0f} units expected for the rest of the day")
        return text + "".join(f"\nflag: {f}" for f in self.flags)


def rescore(cfg: Config, run_date: dt.date, hour: int) -> RescoreResult:
    """Steps 2-3: stock now and the re-scored rest of the day per pair, into
    ``lake/intraday_forecasts/date=D`` (the hour's rows replaced)."""
    _check_hour(hour)
    prev = run_date - dt.timedelta(days=1)
    flags: list[str] = []
    if prev not in list_dates(cfg.lake, "forecasts"):
        raise FileNotFoundError(f"table 'forecasts', partition date={prev}: missing; the "
                                "nightly run of the day before must score first")
    if run_date not in list_dates(cfg.lake, "intraday_sales"):
        raise FileNotFoundError(f"table 'intraday_sales', partition date={run_date}: missing; "
                                "run the snapshot first")
    snap = read_partition(cfg.lake, "intraday_sales", run_date).to_pandas()
    sold = snap.loc[snap["hour"] == hour, ["store_id", "sku_id", "sold_so_far"]]
    fc = read_partition(cfg.lake, "forecasts", prev).to_pandas()
    fc = fc.loc[fc["horizon"] == 1]
    inv = read_partition(cfg.lake / "clean", "inventory", prev,
                         columns=["store_id", "sku_id", "on_hand"]).to_pandas()
    skus = read_snapshot(cfg.lake / "clean", "skus", run_date).to_pandas()
    arrivals = pd.DataFrame(columns=["store_id", "sku_id", "arriving"])
    if prev in list_dates(cfg.lake, "plans"):
        plan = read_partition(cfg.lake, "plans", prev).to_pandas()
        plan = plan.loc[pd.to_datetime(plan["delivery_date"]).dt.date == run_date]
        arrivals = plan.groupby(["store_id", "sku_id"], as_index=False)["order_units"].sum() \
            .rename(columns={"order_units": "arriving"})
    else:
        flags.append(f"no plan of {prev}: this morning's deliveries are not counted")
    pairs = (fc[["store_id", "sku_id", "mean", SERVICE_QUANTILE]]
             .merge(inv, on=["store_id", "sku_id"], how="left")
             .merge(arrivals, on=["store_id", "sku_id"], how="left")
             .merge(sold, on=["store_id", "sku_id"], how="left")
             .merge(skus[["sku_id", "category", "case_pack", "unit_cost", "price",
                          "supplier_id"]], on="sku_id", how="left"))
    pairs[["on_hand", "arriving", "sold_so_far"]] = pairs[
        ["on_hand", "arriving", "sold_so_far"]].astype("float64").fillna(0)
    pairs["on_hand_now"] = (pairs["on_hand"] + pairs["arriving"]
                            - pairs["sold_so_far"]).clip(lower=0)
    rest = remaining_share(hour)
    done = 1.0 - rest
    expected = pairs["mean"] * done
    grp = pairs.assign(_exp=expected).groupby(["store_id", "category"])
    factor = ((grp["sold_so_far"].transform("sum") + SHRINK)
              / (grp["_exp"].transform("sum") + SHRINK)).clip(0.5, 2.0)
    pairs["factor"] = factor if done > 0 else 1.0
    pairs["remaining_mean"] = pairs["mean"] * rest * pairs["factor"]
    pairs["remaining_q90"] = pairs[SERVICE_QUANTILE] * rest * pairs["factor"]
    pairs["hour"] = hour
    _replace_hour(cfg, "intraday_forecasts", run_date, hour, pairs[list(RESCORE_COLUMNS)])
    return RescoreResult(run_date, hour, len(pairs), float(expected.sum()),
                         float(pairs["sold_so_far"].sum()),
                         float(pairs["remaining_mean"].sum()), tuple(flags))


def _hour_rows(cfg: Config, table: str, day: dt.date, hour: int, step: str,
               required: bool = False) -> pd.DataFrame:
    """The rows of ``hour`` in ``table``'s partition ``day``; ``required``: none is an error
    (an hour with no top-ups is normal, an hour with no re-scored pair is not)."""
    rows = None
    if day in list_dates(cfg.lake, table):
        rows = read_partition(cfg.lake, table, day).to_pandas()
        rows = rows.loc[rows["hour"] == hour]
    if rows is None or (required and rows.empty):
        raise FileNotFoundError(f"table {table!r}, partition date={day}, hour={hour}: missing; "
                                f"run the intraday {step} step for hour {hour} first")
    return rows


def _budget(cfg: Config, day: dt.date) -> pd.Series:
    stores = read_snapshot(cfg.lake / "clean", "stores", day).to_pandas()
    return stores.set_index("store_id")["daily_budget"]


def topup(cfg: Config, run_date: dt.date, hour: int) -> IntradayResult:
    """Step 4: top-ups from the hour's re-scored pairs, into ``lake/topups`` (the hour's rows
    replaced; audited before they are written)."""
    _check_hour(hour)
    pairs = _hour_rows(cfg, "intraday_forecasts", run_date, hour, "rescore", required=True)
    budget = _budget(cfg, run_date)
    out = top_ups(pairs, budget, BUDGET_SHARE)
    out["run_date"] = run_date
    out["hour"] = hour
    out = out.loc[out["topup_units"] > 0, list(TOPUP_COLUMNS)]
    _audit(out, budget, run_date, hour)
    _replace_hour(cfg, "topups", run_date, hour,
                  out.astype({"topup_cases": "int64", "topup_units": "int64"}))
    return IntradayResult(run_date, hour, 0, 0, {}, len(pairs), len(out),
                          int(out["topup_units"].sum()), float(out["order_value"].sum()))


def audit(cfg: Config, run_date: dt.date, hour: int) -> str:
    """Step 5a: the hour's top-ups in the lake against the rules (no negative quantity, one
    line per pair, within the top-up budget); raises
    ``ValueError`` naming the table, partition and rule."""
    rows = _hour_rows(cfg, "topups", run_date, hour, "topup")
    _audit(rows, _budget(cfg, run_date), run_date, hour)
    return (f"intraday audit {run_date} {hour:02d}:00: {len(rows):,} top-up lines pass "
            f"{len(AUDIT_RULES)} rules ({', '.join(AUDIT_RULES)})")


def publish(cfg: Config, run_date: dt.date, hour: int) -> str:
    """Step 5b: the hour's top-ups from the lake into ``replenish.topup_order``, audited again
    (what is published is what passed), in one transaction."""
    rows = _hour_rows(cfg, "topups", run_date, hour, "topup")
    _audit(rows, _budget(cfg, run_date), run_date, hour)
    _publish(cfg, run_date, hour, rows)
    return (f"intraday publish {run_date} {hour:02d}:00: {len(rows):,} top-up lines, "
            f"{int(rows['topup_units'].sum()):,} units")


def run(cfg: Config, run_date: dt.date, hour: int = 14) -> IntradayResult:
    """All steps of one intraday run (what ``replenish intraday`` does)."""
    snap = snapshot(cfg, run_date, hour)
    scored = rescore(cfg, run_date, hour)
    result = topup(cfg, run_date, hour)
    publish(cfg, run_date, hour)
    return dataclasses.replace(result, rows_in=snap.rows_in,
                               rows_accepted=snap.rows_accepted, rejected=snap.rejected,
                               flags=scored.flags)


def _check_hour(hour: int) -> None:
    if hour not in range(24):
        raise ValueError(f"hour must be 0..23, got {hour}")


def _replace_hour(cfg: Config, table: str, day: dt.date, hour: int, rows: pd.DataFrame) -> None:
    keep = None
    if day in list_dates(cfg.lake, table):
        keep = read_partition(cfg.lake, table, day).to_pandas()
        keep = keep.loc[keep["hour"] != hour]
    both = pd.concat([keep, rows], ignore_index=True) if keep is not None and len(keep) \
        else rows
    both = both.astype({"hour": "int64"}).sort_values(["hour", "store_id", "sku_id"])
    table_ = pa.Table.from_pandas(both, preserve_index=False)
    write_partition(cfg.lake, table, day, table_, schema=table_.schema)


AUDIT_RULES = ("non_negative", "one_line_per_pair", "within_topup_budget")


def _audit(out: pd.DataFrame, budget: pd.Series, day: dt.date, hour: int) -> None:
    where = f"table 'topups', partition date={day} hour={hour}"
    if (out["topup_units"] < 0).any() or (out["topup_cases"] < 0).any():
        raise ValueError(f"{where}: rule non_negative: negative top-up\n"
                         f"{out.loc[out['topup_units'] < 0].head().to_string(index=False)}")
    if out.duplicated(["store_id", "sku_id"]).any():
        raise ValueError(f"{where}: rule one_line_per_pair violated")
    spent = out.groupby("store_id")["order_value"].sum()
    cap = budget.reindex(spent.index).fillna(0.0) * BUDGET_SHARE
    over = spent > cap + 1e-6
    if over.any():
        raise ValueError(f"{where}: rule within_topup_budget: stores {list(spent[over].index)} "
                         f"spend {spent[over].round(0).tolist()} > caps {cap[over].tolist()}")


def _publish(cfg: Config, day: dt.date, hour: int, out: pd.DataFrame) -> None:
    from jobs import warehouse

    columns = ("run_date", "hour", "store_id", "sku_id", "supplier_id", "on_hand_now",
               "sold_so_far", "remaining_mean", "remaining_q90", "factor", "topup_cases",
               "topup_units", "unit_cost", "order_value", "reason")
    rows = [(day, hour, int(r.store_id), int(r.sku_id), int(r.supplier_id), int(r.on_hand_now),
             int(r.sold_so_far), _f(r.remaining_mean), _f(r.remaining_q90), _f(r.factor),
             int(r.topup_cases), int(r.topup_units), _f(r.unit_cost), _f(r.order_value),
             r.reason) for r in out.itertuples(index=False)]
    try:
        warehouse.migrate(cfg)
        warehouse.replace_rows(cfg, "topup_order", [("run_date = %s AND hour = %s", (day, hour))],
                               columns, rows)
    except warehouse.WarehouseError as exc:  # the lake holds the top-ups; the DAG retries
        raise RuntimeError(f"intraday {day} {hour:02d}:00: cannot publish top-ups: {exc}") \
            from exc


def _f(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(float(value)) else None
