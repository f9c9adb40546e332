"""``replenish run publish --date D``: write–audit–publish of run date D into the warehouse.

What becomes visible to planners (``replenish.<table>``, replaced per date):

==============  =====================================================  ===========
table           from                                                   date column
==============  =====================================================  ===========
forecast        ``lake/forecasts/date=D`` (jobs/score.py)               run_date
reorder_plan    ``lake/plans/date=D`` (jobs/plan.py)                    run_date
purchase_order  ``lake/purchase_orders/date=D`` (jobs/plan.py)          run_date
actual_demand   ``lake/demand_daily/date=D`` (jobs/build_features.py)   demand_date
kpi_daily       :func:`kpis_for` (policy ``observed``)                  kpi_date
==============  =====================================================  ===========

A lake table may carry more columns than the warehouse table: only the warehouse table's
columns are loaded (the forecast's ``horizon`` becomes ``horizon_days``).

1. **Write.** Under a per-date advisory lock, delete D's rows from every table of schema
   ``replenish_staging`` and COPY (CSV) D's rows in, with the audit inputs: the active
   pairs (``lake/clean/inventory`` of D, the rows the plan covers; else ``lake/features``
   of D), the stores' budgets and zone capacities and the SKUs' zones and volumes (the
   ``clean`` snapshots in force), and in ``replenish_staging.batch`` a digest of the lake
   partitions read. Commit: nothing a planner reads has changed. The DAG's audit task
   stages; its publish task reuses those rows when the digest still matches the lake (else
   it stages again), so a night's rows are copied into PostgreSQL once.
2. **Audit.** ``replenish_staging.audit(D)`` (sql/004_publish.sql) checks every rule on the
   staged rows: one plan line per active pair, no negative order, each store within its
   daily budget and zone capacities, purchase orders that add up to the plan, 7 horizons
   per pair, monotone quantiles, no null or non-finite mean, NOT NULL columns and keys, KPI
   ranges. Any offending row raises :class:`AuditError` naming table, date, rule and sample
   rows; nothing is published and the date's staged rows stay for inspection.
3. **Publish.** In the audit's transaction, ``replenish_staging.publish(D)`` deletes D's
   published rows and inserts the staged ones, table by table, then clears D's staging;
   one COMMIT makes it all visible at once. A crash at any point before the commit leaves
   the previously published rows of D in place; a re-run of D gives the same rows.

Debug hooks for the crash tests: ``REPLENISH_PUBLISH_PAUSE_AFTER_STAGING=<seconds>`` sleeps
between the write and the audit, ``REPLENISH_PUBLISH_PAUSE_BEFORE_COMMIT=<seconds>`` inside
the publish transaction before its commit (each announces itself on stderr).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from jobs import warehouse
from jobs.config import Config
from jobs.lake import latest_snapshot_date, partition_dir, read_partition, read_snapshot

__all__ = ["run", "audit", "kpis_for", "store_kpis", "PublishResult", "AuditResult",
           "AuditFailure", "AuditError", "PublishError", "PUBLISHED", "KPI_COLUMNS",
           "HORIZON_DAYS", "POLICY", "PAUSE_AFTER_STAGING", "PAUSE_BEFORE_COMMIT"]

#: Published tables, in publish order, with their date column.
PUBLISHED: dict[str, str] = {"forecast": "run_date", "reorder_plan": "run_date",
                             "purchase_order": "run_date", "actual_demand": "demand_date",
                             "kpi_daily": "kpi_date"}
#: Staging-only tables the audit reads (never published).
_AUDIT_INPUTS: dict[str, str] = {"active_pair": "run_date", "store_limits": "run_date",
                                 "sku_attrs": "run_date"}
#: Forecast days per pair and run (D+1..D+7).
HORIZON_DAYS = 7
#: kpi_daily.policy of the KPIs measured from the lake.
POLICY = "observed"
KPI_COLUMNS = ("kpi_date", "store_id", "service_level", "fill_rate", "stockout_rate",
               "waste_pct", "inventory_turnover", "working_capital", "total_cost", "policy")
PAUSE_AFTER_STAGING = "REPLENISH_PUBLISH_PAUSE_AFTER_STAGING"
PAUSE_BEFORE_COMMIT = "REPLENISH_PUBLISH_PAUSE_BEFORE_COMMIT"

_STAGING = "replenish_staging"
_LOCK_KEY = 0x5055424C  # advisory lock (key, run date ordinal): one publish per date
_BATCH_ROWS = 200_000
_SHOWN_SAMPLES = 3
_STORE_LIMITS = ("store_id", "daily_budget", "capacity_ambient_l", "capacity_chilled_l",
                 "capacity_frozen_l")
_ARROW = {"smallint": pa.int16(), "integer": pa.int32(), "bigint": pa.int64(),
          "double precision": pa.float64(), "date": pa.date32(), "text": pa.string(),
          "boolean": pa.bool_()}


class PublishError(RuntimeError):
    """The date cannot be staged (missing input, unloadable column); nothing was published."""


@dataclass(frozen=True)
class AuditFailure:
    """One audit rule that found offending staged rows."""

    table: str
    rule: str
    description: str
    failed_rows: int
    sample: tuple[Any, ...]

    def describe(self, run_date: dt.date) -> str:
        shown = "; ".join(json.dumps(s, default=str, sort_keys=True)
                          for s in self.sample[:_SHOWN_SAMPLES])
        return (f"replenish.{self.table} ({PUBLISHED[self.table]}={run_date}), rule "
                f"{self.rule} ({self.description}): {self.failed_rows:,} offending row(s), "
                f"e.g. {shown}")


class AuditError(PublishError):
    """The staged rows of a date broke audit rules; nothing was published."""

    def __init__(self, run_date: dt.date, failures: list[AuditFailure]) -> None:
        self.run_date = run_date
        self.failures = failures
        lines = "\n".join(f"  - {f.describe(run_date)}" for f in failures)
        super().__init__(
            f"publish {run_date}: the audit of the staged rows failed, so nothing was "
            f"published (the rows published before for {run_date} stay):\n{lines}\n"
            f"The staged rows stay in schema {_STAGING} for inspection; fix the inputs "
            "and re-run.")


@dataclass(frozen=True)
class AuditResult:
    run_date: dt.date
    staged: tuple[tuple[str, int], ...]
    rules: int
    seconds: float

    def summary(self) -> str:
        rows = ", ".join(f"{t} {n:,}" for t, n in self.staged if t in PUBLISHED)
        return (f"audit {self.run_date}: {self.rules} rules passed on the staged rows "
                f"({rows}) in {self.seconds:.1f} s; publish makes them visible")


@dataclass(frozen=True)
class PublishResult:
    run_date: dt.date
    published: tuple[tuple[str, int], ...]
    rules: int
    seconds: float
    #: True when the rows the audit task staged were published as they were (same inputs).
    reused_staging: bool = False

    def rows(self, table: str) -> int:
        return dict(self.published)[table]

    def summary(self) -> str:
        rows = ", ".join(f"{t} {n:,}" for t, n in self.published)
        how = "the audit's staged rows" if self.reused_staging else "freshly staged rows"
        return (f"publish {self.run_date}: {rows} rows published in one transaction after "
                f"{self.rules} audit rules passed on {how}, in {self.seconds:.1f} s")


# ----------------------------------------------------------------------------- KPIs


def store_kpis(day: dt.date, demand: pd.DataFrame, inventory: pd.DataFrame | None,
               skus: pd.DataFrame) -> pd.DataFrame:
    """The observed KPIs of ``day`` per store (:data:`KPI_COLUMNS`), from that day's rows.

    ``demand``: lake demand_daily (store_id, sku_id, units_sold, stockout, demand; demand
    null = unknown). ``inventory``: lake clean/inventory (store_id, sku_id, on_hand,
    received, wasted) or None. ``skus``: sku_id, unit_cost, is_perishable. Per store:

    - service_level = share of its demand_daily pairs whose demand was met: not a stock-out,
      or a stock-out whose known demand did not exceed units sold;
    - fill_rate = units sold / demand over the pairs whose demand is known;
    - stockout_rate = share of pairs with a stock-out (on hand 0 at close);
    - waste_pct = 100 x perishable units wasted / perishable units that left the shelf
      (wasted + sold): on a day, expiries of stock received earlier can exceed the day's
      receipts, so receipts are not the denominator; in steady state the two agree;
    - inventory_turnover = 365 x COGS / average of opening and closing stock value, at cost,
      opening units = on_hand - received + units_sold + wasted (floored at 0);
    - working_capital = closing on-hand value at cost;
    - total_cost: null (needs the simulator's cost parameters).

    Inventory KPIs are null without inventory, and any ratio with a zero denominator is null.
    """
    cost = skus.drop_duplicates("sku_id").set_index("sku_id")["unit_cost"].astype(float)
    perishable = skus.drop_duplicates("sku_id").set_index("sku_id")["is_perishable"].astype(bool)
    d = demand[["store_id", "sku_id", "units_sold", "stockout", "demand"]].copy()
    sold = d["units_sold"].astype(float)
    wanted = pd.to_numeric(d["demand"], errors="coerce").astype(float)
    stockout = d["stockout"].fillna(False).astype(bool)
    known = wanted.notna()
    d = d.assign(met=(~stockout) | (known & (wanted <= sold)), out=stockout,
                 sold_known=np.where(known, sold, 0.0), demand_known=wanted.fillna(0.0),
                 cogs=sold * d["sku_id"].map(cost))
    g = d.groupby("store_id")
    out = pd.DataFrame({"service_level": g["met"].mean(), "stockout_rate": g["out"].mean(),
                        "fill_rate": g["sold_known"].sum()
                        / g["demand_known"].sum().where(lambda s: s > 0),
                        "cogs": g["cogs"].sum()})
    if inventory is not None and len(inventory):
        inv = inventory[["store_id", "sku_id", "on_hand", "received", "wasted"]].merge(
            d[["store_id", "sku_id", "units_sold"]], on=["store_id", "sku_id"], how="left")
        unit = inv["sku_id"].map(cost)
        fresh = inv["sku_id"].map(perishable).fillna(False).astype(bool)
        on_hand = inv["on_hand"].astype(float)
        opening = (on_hand - inv["received"] + inv["units_sold"].fillna(0) + inv["wasted"])
        inv = inv.assign(close_value=on_hand * unit,
                         open_value=opening.clip(lower=0).astype(float) * unit,
                         fresh_in=np.where(fresh, inv["wasted"] + inv["units_sold"].fillna(0), 0),
                         fresh_out=np.where(fresh, inv["wasted"], 0))
        gi = inv.groupby("store_id")
        stock = pd.DataFrame({"close": gi["close_value"].sum(), "open": gi["open_value"].sum(),
                              "fresh_in": gi["fresh_in"].sum(),
                              "fresh_out": gi["fresh_out"].sum()})
        out = out.join(stock, how="outer")
        average = ((out["open"] + out["close"]) / 2).where(lambda s: s > 0)
        out["inventory_turnover"] = 365.0 * out["cogs"].fillna(0.0) / average
        out["waste_pct"] = 100.0 * out["fresh_out"] / out["fresh_in"].where(lambda s: s > 0)
        out["working_capital"] = out["close"].round(2)
    else:
        out["inventory_turnover"] = out["waste_pct"] = out["working_capital"] = np.nan
    out = out.reset_index().rename(columns={"index": "store_id"})
    out["store_id"] = out["store_id"].astype("int32")
    out["kpi_date"] = day
    out["total_cost"] = np.nan
    out["policy"] = POLICY
    return out[list(KPI_COLUMNS)].sort_values("store_id").reset_index(drop=True)


def kpis_for(cfg: Config, run_date: dt.date) -> pd.DataFrame:
    """:func:`store_kpis` of ``run_date`` from ``lake/demand_daily``, ``lake/clean/inventory``
    (optional: imported sales-only data has none) and the skus snapshot in force."""
    clean = cfg.lake / "clean"
    _require(cfg.lake, "demand_daily", run_date, "run build_features for the date first")
    demand = read_partition(cfg.lake, "demand_daily", run_date,
                            ["store_id", "sku_id", "units_sold", "stockout", "demand"])
    inventory = (read_partition(clean, "inventory", run_date,
                                ["store_id", "sku_id", "on_hand", "received", "wasted"])
                 .to_pandas() if partition_dir(clean, "inventory", run_date).is_dir() else None)
    skus = read_snapshot(clean, "skus", run_date).select(["sku_id", "unit_cost",
                                                          "is_perishable"])
    return store_kpis(run_date, demand.to_pandas(), inventory, skus.to_pandas())


# ----------------------------------------------------------------------------- sources


@dataclass(frozen=True)
class _Source:
    """Rows to stage: a label for messages, the column names (as staging names them) and a
    reader yielding Arrow tables of the requested columns."""

    label: str
    names: tuple[str, ...]
    read: Callable[[list[str]], Iterable[pa.Table]]

    @classmethod
    def of(cls, label: str, table: pa.Table) -> _Source:
        return cls(label, tuple(table.column_names), lambda cols: [table.select(cols)])


def _require(root: Path, table: str, day: dt.date, hint: str) -> Path:
    path = partition_dir(root, table, day)
    if not path.is_dir():
        raise FileNotFoundError(f"table {table!r}: partition date={day} does not exist under "
                                f"{path.parent}; {hint}")
    return path


def _lake(root: Path, table: str, day: dt.date, hint: str,
          rename: Mapping[str, str] | None = None) -> _Source:
    """A lake partition read in batches, columns renamed by ``rename`` (lake -> staging)."""
    import pyarrow.dataset as ds

    path = _require(root, table, day, hint)
    rename = dict(rename or {})
    back = {new: old for old, new in rename.items()}
    dataset = ds.dataset(str(path), format="parquet")

    def read(cols: list[str]) -> Iterable[pa.Table]:
        for batch in dataset.to_batches(columns=[back.get(c, c) for c in cols],
                                        batch_size=_BATCH_ROWS):
            yield pa.Table.from_batches([batch]).rename_columns(cols)

    label = f"lake/{'clean/' if root.name == 'clean' else ''}{table}/{path.name}"
    return _Source(label, tuple(rename.get(n, n) for n in dataset.schema.names), read)


def _active_pairs(cfg: Config, day: dt.date) -> _Source:
    """The pairs the plan covers: the clean inventory rows of D, else the feature rows."""
    for root, table in ((cfg.lake / "clean", "inventory"), (cfg.lake, "features")):
        if partition_dir(root, table, day).is_dir():
            src = _lake(root, table, day, "")
            pairs = pa.concat_tables(list(src.read(["store_id", "sku_id"])))
            return _Source.of(src.label, pairs)
    raise FileNotFoundError(f"no active pairs for {day}: neither lake/clean/inventory/date={day}"
                            f" nor lake/features/date={day} exists; run validate_raw and "
                            "build_features for the date first")


def _sources(cfg: Config, day: dt.date) -> dict[str, _Source]:
    """Everything to stage for ``day``, staging table -> source; fails before any write."""
    clean = cfg.lake / "clean"
    stores = read_snapshot(clean, "stores", day).select(list(_STORE_LIMITS))
    skus = read_snapshot(clean, "skus", day).select(["sku_id", "zone", "volume_l"])
    return {
        "active_pair": _active_pairs(cfg, day),
        "store_limits": _Source.of("lake/clean/stores (snapshot in force)", stores),
        "sku_attrs": _Source.of("lake/clean/skus (snapshot in force)", skus),
        "forecast": _lake(cfg.lake, "forecasts", day, "run score for the date first",
                          rename={"horizon": "horizon_days"}),
        "reorder_plan": _lake(cfg.lake, "plans", day, "run plan for the date first"),
        "purchase_order": _lake(cfg.lake, "purchase_orders", day,
                                "run plan for the date first"),
        "actual_demand": _lake(cfg.lake, "demand_daily", day,
                               "run build_features for the date first"),
        "kpi_daily": _Source.of(f"kpis_for({day})", pa.Table.from_pandas(
            kpis_for(cfg, day), preserve_index=False)),
    }


# ----------------------------------------------------------------------------- staging


def _columns(cur: Any, schema: str, table: str) -> list[tuple[str, str, bool]]:
    """(name, SQL type, NOT NULL) of a table's columns, in order."""
    cur.execute("""
        SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull
          FROM pg_attribute a
         WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped
         ORDER BY a.attnum""", (f"{schema}.{table}",))
    return [(name, kind, bool(notnull)) for name, kind, notnull in cur.fetchall()]


def _arrow_type(sql_type: str) -> pa.DataType:
    if sql_type.startswith("numeric"):
        return pa.float64()  # written as text; PostgreSQL rounds to the column's scale
    try:
        return _ARROW[sql_type]
    except KeyError:
        raise PublishError(f"publish cannot stage SQL type {sql_type!r}") from None


def _cast(column: pa.ChunkedArray, to: pa.DataType, label: str, name: str,
          sql_type: str) -> pa.ChunkedArray:
    try:
        return column.cast(to, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
        raise PublishError(f"{label}: column {name} ({column.type}) cannot be stored as "
                           f"{sql_type}: {err}") from err


def _check_date(column: pa.ChunkedArray, day: dt.date, label: str, name: str) -> None:
    import pyarrow.compute as pc

    same = pc.fill_null(pc.equal(column, pa.scalar(day, pa.date32())), False)
    if not pc.all(same).as_py():
        other = column.filter(pc.invert(same))
        first = other[0].as_py() if len(other) else None
        raise PublishError(f"{label}: a row has {name} = {first}, expected {day}: the "
                           "partition holds rows of another date")


def _copy(cur: Any, table: str, key: str, day: dt.date, source: _Source) -> int:
    """COPY ``source`` into ``replenish_staging.<table>`` for ``day``; returns the rows.

    The staging table's columns are taken from the source by name (extra source columns
    are ignored); the date column defaults to ``day`` and must equal it when present; a
    column the source lacks is null, unless the published table needs it (NOT NULL).
    """
    import psycopg2
    import pyarrow.csv as pacsv

    cols = _columns(cur, _STAGING, table)
    required = {n for n, _, notnull in cols if notnull}
    if table in PUBLISHED:
        required |= {n for n, _, notnull in _columns(cur, "replenish", table) if notnull}
    names = [n for n, _, _ in cols]
    missing = [n for n in names if n not in source.names and n != key and n in required]
    if missing:
        raise PublishError(f"{source.label} lacks column(s) {', '.join(missing)} that "
                           f"replenish.{table} needs (it has {', '.join(source.names)})")
    types = {n: (t, _arrow_type(t)) for n, t, _ in cols}
    statement = (f"COPY {_STAGING}.{table} ({', '.join(_ident(n) for n in names)}) "
                 "FROM STDIN WITH (FORMAT csv)")
    options = pacsv.WriteOptions(include_header=False)
    rows = 0
    for batch in source.read([n for n in names if n in source.names]):
        n_rows = batch.num_rows
        if not n_rows:
            continue
        arrays = []
        for name in names:
            sql_type, arrow = types[name]
            if name in batch.column_names:
                arrays.append(_cast(batch.column(name), arrow, source.label, name, sql_type))
            elif name == key:
                arrays.append(pa.array([day] * n_rows, pa.date32()))
            else:
                arrays.append(pa.nulls(n_rows, arrow))
        if key in batch.column_names:
            _check_date(arrays[names.index(key)], day, source.label, key)
        buffer = io.BytesIO()
        pacsv.write_csv(pa.table(arrays, names=names), buffer, options)
        buffer.seek(0)
        try:
            cur.copy_expert(statement, buffer)
        except psycopg2.Error as err:
            raise PublishError(f"{source.label}: COPY into {_STAGING}.{table} failed: "
                               f"{str(err).strip()}") from err
        rows += n_rows
    return rows


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _inputs(cfg: Config, day: dt.date) -> str:
    """A digest of every lake partition ``_sources`` reads for ``day``: each file's path,
    size and modification time. Partitions are replaced by renaming a new folder into place,
    so a rewritten partition changes the digest."""
    clean = cfg.lake / "clean"
    dirs = [partition_dir(clean, "inventory", day), partition_dir(cfg.lake, "features", day)]
    dirs += [partition_dir(clean, t, latest_snapshot_date(clean, t, day))
             for t in ("stores", "skus")]
    dirs += [partition_dir(cfg.lake, t, day)
             for t in ("forecasts", "plans", "purchase_orders", "demand_daily")]
    digest = hashlib.sha256()
    for folder in dirs:
        files = sorted(folder.rglob("*")) if folder.is_dir() else []
        for f in (f for f in files if f.is_file()):
            st = f.stat()
            digest.update(f"{f.relative_to(cfg.lake)}|{st.st_size}|{st.st_mtime_ns}\n"
                          .encode())
    return digest.hexdigest()


def _stage(cfg: Config, conn: Any, day: dt.date,
           inputs: str) -> tuple[tuple[str, int], ...]:
    """Replace ``day``'s staging rows with its lake rows, in one transaction, and record
    what they were staged from (``inputs``, :func:`_inputs`) in ``replenish_staging.batch``."""
    sources = _sources(cfg, day)
    tables = {**_AUDIT_INPUTS, **PUBLISHED}
    counts = []
    with conn, conn.cursor() as cur:
        for table, key in tables.items():
            cur.execute(f"DELETE FROM {_STAGING}.{table} WHERE {key} = %s", (day,))
        for table, key in tables.items():
            counts.append((table, _copy(cur, table, key, day, sources[table])))
        for table in tables:
            cur.execute(f"ANALYZE {_STAGING}.{table}")
        cur.execute(f"DELETE FROM {_STAGING}.batch WHERE run_date = %s", (day,))
        cur.execute(f"INSERT INTO {_STAGING}.batch (run_date, inputs, staged) "
                    "VALUES (%s, %s, %s)", (day, inputs, json.dumps(counts)))
    return tuple(counts)


def _already_staged(conn: Any, day: dt.date,
                    inputs: str) -> tuple[tuple[str, int], ...] | None:
    """The row counts of ``day``'s staging when it was staged from ``inputs``, the lake
    partitions as they are now (the audit task's work, still current), else None."""
    with conn, conn.cursor() as cur:
        cur.execute(f"SELECT inputs, staged FROM {_STAGING}.batch WHERE run_date = %s", (day,))
        row = cur.fetchone()
    if row is None or row[0] != inputs:
        return None
    return tuple((str(t), int(n)) for t, n in row[1])  # psycopg2 decodes jsonb


# ----------------------------------------------------------------------------- audit, publish


def _lock(conn: Any, day: dt.date) -> None:
    """Session lock on the date (released when the connection closes, also on a crash)."""
    with conn, conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_lock(%s, %s)", (_LOCK_KEY, day.toordinal()))


def _audit(cur: Any, day: dt.date) -> tuple[int, list[AuditFailure]]:
    """(rules checked, failures) on the staged rows of ``day``."""
    cur.execute("SELECT audited_table, rule, description, failed_rows, sample "
                f"FROM {_STAGING}.audit(%s, %s)", (day, HORIZON_DAYS))
    rows = cur.fetchall()
    failures = [AuditFailure(table, rule, text, int(n), tuple(sample or ()))
                for table, rule, text, n, sample in rows if n]
    return len(rows), failures


def _pause(variable: str, what: str) -> None:
    raw = os.environ.get(variable, "").strip()
    if not raw:
        return
    seconds = float(raw)
    print(f"{what}; pausing {seconds:g} s ({variable})", file=sys.stderr, flush=True)
    time.sleep(seconds)


def audit(cfg: Config, run_date: dt.date) -> AuditResult:
    """Stage ``run_date`` and audit it, publishing nothing; raises :class:`AuditError`.

    The DAG's audit task: a failed audit stops the run before publish. ``run`` then takes
    the staged rows as they are when the lake partitions they came from are unchanged (else
    it stages again) and re-runs the audit rules inside its own lock, so what it publishes is
    exactly what it audited.
    """
    t0 = time.perf_counter()
    warehouse.migrate(cfg)
    conn = warehouse.connect(cfg)
    try:
        _lock(conn, run_date)
        staged = _stage(cfg, conn, run_date, _inputs(cfg, run_date))
        with conn, conn.cursor() as cur:
            rules, failures = _audit(cur, run_date)
    finally:
        conn.close()
    if failures:
        raise AuditError(run_date, failures)
    return AuditResult(run_date, staged, rules, round(time.perf_counter() - t0, 1))


def run(cfg: Config, run_date: dt.date) -> PublishResult:
    """Write, audit and publish ``run_date``: all of its rows become visible in one commit,
    or none (:class:`AuditError`, :class:`PublishError`, a crash)."""
    t0 = time.perf_counter()
    warehouse.ensure_partitions(cfg, run_date, run_date)
    conn = warehouse.connect(cfg)
    try:
        _lock(conn, run_date)
        inputs = _inputs(cfg, run_date)
        reused = _already_staged(conn, run_date, inputs)
        staged = reused or _stage(cfg, conn, run_date, inputs)
        _pause(PAUSE_AFTER_STAGING, f"publish {run_date}: staged "
               + ", ".join(f"{t} {n}" for t, n in staged))
        with conn, conn.cursor() as cur:
            rules, failures = _audit(cur, run_date)
            if failures:
                raise AuditError(run_date, failures)
            cur.execute(f"SELECT published_table, published_rows FROM {_STAGING}.publish(%s)",
                        (run_date,))
            published = tuple((table, int(n)) for table, n in cur.fetchall())
            cur.execute(f"DELETE FROM {_STAGING}.batch WHERE run_date = %s", (run_date,))
            _pause(PAUSE_BEFORE_COMMIT, f"publish {run_date}: swapped, not committed")
    finally:
        conn.close()
    return PublishResult(run_date, published, rules, round(time.perf_counter() - t0, 1),
                         reused_staging=reused is not None)
