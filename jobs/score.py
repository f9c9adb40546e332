"""``replenish run score --date D``: forecast every active store x SKU for days D+1..D+7.

Loads the champion (``models:/replenish-ensemble@champion``). If it cannot be loaded, the
previous champions and then the other versions are tried (``models.registry.load_champion``);
if none loads, every pair gets the seasonal-naive forecast. Either way the rows say so in
``flags`` and the result's ``fallback``: a night is never without forecasts, and never
silently degraded.

Inputs, for every pair active on D (a row in ``lake/features`` of D):

* history: the last ``HISTORY_DAYS`` days of corrected demand with the LSTM's covariates
  (the statistical members and the baselines forecast from it with their learnt parameters);
* the target days' feature rows for XGBoost, built from the data through D by the nightly
  feature builder (``future_rows``, see there).

Output ``lake/forecasts/date=D``: run_date, store_id, sku_id, target_date, horizon, model
(``ensemble`` or ``seasonal_naive``), mean, q50 q80 q90 q95 q99, the evening profile for the
intraday run (``evening_share``: the pair's share of units sold 18-22h over the last 30 days,
and ``evening_mean`` = mean x evening_share), model_version and flags.

Memory: the pairs are scored in chunks of whole stores, about ``Config.score_chunk_pairs``
pairs each (``REPLENISH_SCORE_CHUNK_PAIRS``), with a progress bar over the chunks; each
chunk's rows go to their own file of the partition, swapped in when every chunk is done, so
the peak memory is that of one chunk whatever the number of stores. The output does not
depend on the chunk size: XGBoost, the LSTM, TSB and the baselines forecast each pair from
its own rows, and Prophet and ARIMA, which forecast store-cluster x category aggregates and
hand them down by shares, first add every chunk's history to the population's aggregates
(``EnsembleModel.population``: a first, light pass over the chunks), then disaggregate
chunk by chunk.
"""
from __future__ import annotations

import datetime as dt
import logging
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from jobs.config import Config
from jobs.lake import list_dates, partition_dir, read_partition, replace_dir

__all__ = ["run", "ScoreResult", "HISTORY_DAYS", "future_rows", "FORECAST_COLUMNS",
           "FORECAST_SCHEMA", "store_chunks"]

log = logging.getLogger(__name__)

HISTORY_DAYS = 56
#: Days of demand the target days' features read, and the calendar's look-ahead.
LOOKBACK_DAYS = 30
CALENDAR_AHEAD_DAYS = 60
FORECAST_COLUMNS = ("run_date", "store_id", "sku_id", "target_date", "horizon", "model", "mean",
                    "q50", "q80", "q90", "q95", "q99", "evening_share", "evening_mean",
                    "model_version", "flags")
_HISTORY_COLUMNS = ["store_id", "sku_id", "demand", "on_promotion", "discount_pct",
                    "festival_intensity", "category_code", "evening_share_30"]
#: The columns of ``lake/forecasts`` (one schema for every chunk's file).
FORECAST_SCHEMA = pa.schema(
    [("run_date", pa.date32()), ("store_id", pa.int32()), ("sku_id", pa.int32()),
     ("target_date", pa.date32()), ("horizon", pa.int64()), ("model", pa.string()),
     *[(c, pa.float64()) for c in ("mean", "q50", "q80", "q90", "q95", "q99",
                                   "evening_share", "evening_mean")],
     ("model_version", pa.string()), ("flags", pa.string())])


@dataclass(frozen=True)
class ScoreResult:
    run_date: dt.date
    pairs: int
    rows: int
    model: str
    version: int | None
    fallback: str
    member_flags: tuple[str, ...]
    seconds: float

    def summary(self) -> str:
        src = f"version {self.version}" if self.version is not None else "no registered model"
        text = (f"score {self.run_date}: {self.pairs:,} pairs x 7 days = {self.rows:,} forecast "
                f"rows by {self.model} ({src}) in {self.seconds:.1f} s")
        if self.fallback:
            text += f"\nFALLBACK: {self.fallback}"
        return text + "".join(f"\nflag: {f}" for f in self.member_flags)


def future_rows(cfg: Config, run_date: dt.date, active: pd.DataFrame,
                horizon: int, context: dict[str, Any] | None = None) -> pd.DataFrame:
    """Feature rows of D+1..D+horizon for the ``active`` pairs, from the data through D.

    The same feature builder as the nightly job (``features.build.build_features``) runs on
    the pairs' ``demand_daily`` rows of the 30-day lookback plus placeholder rows for the
    target days (no sales, demand unknown): a target row's history features read only days up
    to D, exactly what XGBoost learnt from (it takes the history of the first target day and
    the covariates of each). Covariates of the target days: the calendar (the clean table
    where present, else the Indian festival calendar ``jobs.world.calendar_rows``), the last
    observed weather carried forward, the promotions of the clean ``promotions`` partitions
    brought in ahead (``jobs.schema.PROMOTIONS_AHEAD_DAYS``; a day without one: no promotion).
    Only the stores of ``active`` are read. ``context``: ``_future_context``'s tables, read
    once for every chunk.
    """
    from features.build import build_features

    lo = run_date - dt.timedelta(days=LOOKBACK_DAYS)
    stores = sorted(active["store_id"].unique().tolist())
    parts = []
    for d in list_dates(cfg.lake, "demand_daily"):
        if lo <= d <= run_date:
            t = _read(cfg.lake, "demand_daily", d, None, stores)
            parts.append(t.append_column("date", pa.array([d] * t.num_rows, pa.date32())))
    if not parts:
        raise FileNotFoundError(f"table 'demand_daily': no partitions between {lo} and "
                                f"{run_date}")
    demand = pa.concat_tables(parts, promote_options="permissive").to_pandas()
    demand = demand.merge(active, on=["store_id", "sku_id"])
    days = [run_date + dt.timedelta(days=h) for h in range(1, horizon + 1)]
    pseudo = pd.concat([active.assign(date=day) for day in days], ignore_index=True)
    for col, value in (("units_sold", 0), ("revenue", 0.0), ("promo_units", 0),
                       ("evening_units", 0), ("n_lines", 0), ("stockout", False),
                       ("censored", False)):
        pseudo[col] = value
    for col in ("avg_unit_price", "last_sale_hour", "on_hand_close", "demand"):
        pseudo[col] = np.nan
    demand = pd.concat([demand, pseudo[demand.columns]], ignore_index=True)
    ctx = context if context is not None else _future_context(cfg, run_date, horizon)
    rows = build_features(demand, ctx["calendar"], ctx["weather"], ctx["promotions"],
                          ctx["stores"], ctx["skus"], days[0], days[-1], lookback=LOOKBACK_DAYS)
    rows["date"] = pd.to_datetime(rows["date"]).astype("datetime64[ns]")
    return rows


def _future_context(cfg: Config, run_date: dt.date, horizon: int) -> dict[str, Any]:
    """Calendar, weather, promotions, stores and skus the target days' features read."""
    from jobs.lake import read_range, read_snapshot
    from jobs.world import calendar_rows

    clean = cfg.lake / "clean"
    lo = run_date - dt.timedelta(days=LOOKBACK_DAYS)
    days = [run_date + dt.timedelta(days=h) for h in range(1, horizon + 1)]
    cal_end = days[-1] + dt.timedelta(days=CALENDAR_AHEAD_DAYS)
    have = {d for d in list_dates(clean, "calendar") if lo <= d <= cal_end}
    parts = [read_partition(clean, "calendar", d).to_pandas().assign(date=d)
             for d in sorted(have)]
    day = lo
    while day <= cal_end:
        if day not in have:
            parts.append(calendar_rows(day).assign(date=day))
        day += dt.timedelta(days=1)
    calendar = pd.concat(parts, ignore_index=True)
    weather = None
    w_days = [d for d in list_dates(clean, "weather") if lo - dt.timedelta(days=3) <= d
              <= run_date]
    if w_days:
        weather = read_range(clean, "weather", w_days[0], w_days[-1]).to_pandas()
        last = weather.loc[weather["date"] == w_days[-1]]
        weather = pd.concat([weather, *[last.assign(date=d) for d in days]], ignore_index=True)
    p_days = [d for d in list_dates(clean, "promotions") if lo <= d <= days[-1]]
    promotions = (read_range(clean, "promotions", p_days[0], p_days[-1]).to_pandas()
                  if p_days else None)
    stores = read_snapshot(clean, "stores", run_date).to_pandas()
    skus = read_snapshot(clean, "skus", run_date).to_pandas()
    return {"calendar": calendar, "weather": weather, "promotions": promotions,
            "stores": stores, "skus": skus}


def _read(root: Any, table: str, day: dt.date, columns: Sequence[str] | None,
          stores: Sequence[int] | None) -> pa.Table:
    """One partition, only the rows of ``stores`` (all when None)."""
    path = partition_dir(root, table, day)
    if not path.is_dir():
        raise FileNotFoundError(f"table {table!r}: partition date={day} does not exist "
                                f"under {path.parent}")
    filters = [("store_id", "in", list(stores))] if stores is not None else None
    return pq.read_table(path, columns=list(columns) if columns else None, filters=filters)


def _history_days(cfg: Config, run_date: dt.date) -> list[dt.date]:
    start = run_date - dt.timedelta(days=HISTORY_DAYS - 1)
    days = [d for d in list_dates(cfg.lake, "features") if start <= d <= run_date]
    if not days:
        raise FileNotFoundError(f"table 'features': no partitions between {start} and "
                                f"{run_date}; run build_features first")
    return days


def _history(cfg: Config, run_date: dt.date, active: pd.DataFrame,
             clusters: pd.DataFrame) -> pd.DataFrame:
    """The training frame of the ``active`` pairs' last ``HISTORY_DAYS`` days (only their
    stores are read), with the store clusters."""
    from models.ensemble_model import training_frame

    stores = sorted(active["store_id"].unique().tolist())
    parts = []
    for day in _history_days(cfg, run_date):
        t = _read(cfg.lake, "features", day, _HISTORY_COLUMNS, stores)
        parts.append(t.append_column("date", pa.array([day] * t.num_rows, pa.date32())))
    df = pa.concat_tables(parts, promote_options="permissive").to_pandas()
    df["date"] = pd.to_datetime(df["date"]).astype("datetime64[ns]")
    df = df.merge(active, on=["store_id", "sku_id"], how="inner")
    return training_frame(df.merge(clusters, on="store_id", how="left"))


def store_chunks(active: pd.DataFrame, pairs: int) -> list[list[int]]:
    """Stores in increasing id, cut into consecutive groups of about ``pairs`` active pairs
    (whole stores: a store with more pairs is a chunk of its own)."""
    if pairs < 1:
        raise ValueError(f"score_chunk_pairs must be >= 1, got {pairs}")
    per_store = active.groupby("store_id").size().sort_index()
    chunks: list[list[int]] = []
    current: list[int] = []
    size = 0
    for store, n in per_store.items():
        if current and size + int(n) > pairs:
            chunks.append(current)
            current, size = [], 0
        current.append(int(store))
        size += int(n)
    if current:
        chunks.append(current)
    return chunks


def _seasonal_naive(history: pd.DataFrame, quantiles: tuple[float, ...],
                    horizon: int) -> pd.DataFrame:
    from models.baselines import SeasonalNaive
    from models.protocol import ModelConfig

    train = history.loc[history["y"].notna(), ["store_id", "sku_id", "date", "y"]]
    return SeasonalNaive().fit(train, ModelConfig()).predict(horizon, quantiles)


def run(cfg: Config, run_date: dt.date, progress: bool = True) -> ScoreResult:
    """Score every pair active on ``run_date`` (see the module docstring); ``progress``: a
    bar over the chunks on a terminal."""
    from models import registry

    t0 = time.perf_counter()
    if run_date not in list_dates(cfg.lake, "features"):
        raise FileNotFoundError(f"table 'features': partition date={run_date} does not exist; "
                                "run build_features (and validate_features) first")
    day_rows = read_partition(cfg.lake, "features", run_date,
                              columns=["store_id", "sku_id", "evening_share_30"]).to_pandas()
    active = day_rows[["store_id", "sku_id"]]
    subset = set(cfg.stores)
    absent = sorted(subset - set(active["store_id"].unique().tolist()))
    if absent:
        raise ValueError(f"stores {absent} (REPLENISH_STORES / the DAG's stores param) have no "
                         f"rows in table 'features', partition date={run_date}")
    try:
        from jobs.cluster import read_clusters

        clusters = read_clusters(cfg, run_date).to_pandas()[["store_id", "cluster"]]
    except FileNotFoundError:
        clusters = pd.DataFrame({"store_id": active["store_id"].unique(), "cluster": 0})
    chunks = store_chunks(active, cfg.score_chunk_pairs)
    horizon = 7
    fallback, version, model, population, context = "", None, None, None, None
    try:
        loaded = registry.load_champion(cfg.mlflow_uri)
    except registry.RegistryError as exc:
        loaded, fallback = None, f"no model could be loaded ({exc}); seasonal naive"
        log.warning("score %s: %s", run_date, fallback)
    if loaded is not None:
        version, fallback, model = loaded.version, loaded.fallback, loaded.model
        horizon = model.config.horizon
        days = _history_days(cfg, run_date)
        population = model.population(pd.Timestamp(days[0]), pd.Timestamp(run_date))
        if population:  # the aggregate members need every store's history first
            for stores in _bar(chunks, "score: aggregates", progress):
                model.add_population(population, _history(
                    cfg, run_date, active.loc[active["store_id"].isin(stores)], clusters))
        context = _future_context(cfg, run_date, horizon)
    keep_old = bool(subset) and run_date in list_dates(cfg.lake, "forecasts")
    if subset and not keep_old:
        log.warning("score %s: no earlier forecasts partition; only stores %s written",
                    run_date, sorted(subset))
    final = partition_dir(cfg.lake, "forecasts", run_date)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{final.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    n_rows, used, member_flags, failed = 0, set(), [], ""
    try:
        for i, stores in enumerate(_bar(chunks, "score", progress)):
            fresh = [s for s in stores if not subset or s in subset]
            parts = []
            if keep_old and len(fresh) < len(stores):
                parts.append(_read(cfg.lake, "forecasts", run_date, FORECAST_COLUMNS,
                                   [s for s in stores if s not in fresh]).select(
                                       list(FORECAST_COLUMNS)).cast(FORECAST_SCHEMA))
            if fresh:
                mine = active.loc[active["store_id"].isin(fresh)]
                out, name, why, flags = _score_chunk(cfg, run_date, mine, clusters, day_rows,
                                                     model, population, context, horizon,
                                                     version, fallback)
                used.add(name)
                failed = failed or why
                member_flags += [f for f in flags if f not in member_flags]
                parts.append(pa.Table.from_pandas(out, schema=FORECAST_SCHEMA,
                                                  preserve_index=False))
            if not parts:  # no store of the subset here, no earlier rows to keep
                continue
            table = pa.concat_tables(parts).sort_by(
                [("store_id", "ascending"), ("sku_id", "ascending"), ("horizon", "ascending")])
            if table.num_rows:
                pq.write_table(table, tmp / f"part-{i:05d}.parquet", compression="zstd")
                n_rows += table.num_rows
        if n_rows == 0:
            pq.write_table(FORECAST_SCHEMA.empty_table(), tmp / "part-00000.parquet")
        replace_dir(tmp, final)
    except BaseException:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        raise
    model_name = "ensemble" if used == {"ensemble"} else "seasonal_naive"
    return ScoreResult(run_date, len(active), n_rows, model_name, version,
                       "; ".join(f for f in (fallback, failed) if f), tuple(member_flags),
                       round(time.perf_counter() - t0, 1))


def _bar(chunks: list[list[int]], label: str, progress: bool) -> Any:
    from tqdm import tqdm

    return tqdm(chunks, desc=label, unit="chunk", file=sys.stderr,
                disable=True if not progress or len(chunks) < 2 else None)


def _score_chunk(cfg: Config, run_date: dt.date, active: pd.DataFrame,
                 clusters: pd.DataFrame, day_rows: pd.DataFrame, model: Any,
                 population: dict[str, Any] | None, context: dict[str, Any] | None,
                 horizon: int, version: int | None, fallback: str
                 ) -> tuple[pd.DataFrame, str, str, list[str]]:
    """One chunk's rows in ``FORECAST_COLUMNS``, the model that made them (``ensemble`` or
    ``seasonal_naive``), why the ensemble was not used ("" when it was) and member flags."""
    from models.protocol import QUANTILES, quantile_columns

    history = _history(cfg, run_date, active, clusters)
    model_name, member_flags, why = "ensemble", [], ""
    fc = None
    if history.empty:  # no pair of the chunk has a known demand: zeros, flagged below
        model_name = "ensemble" if model is not None else "seasonal_naive"
        fc = pd.DataFrame({"store_id": pd.Series(dtype="int64"),
                           "sku_id": pd.Series(dtype="int64")})
    elif model is not None:
        future = future_rows(cfg, run_date, active, horizon, context).merge(
            clusters, on="store_id", how="left")
        try:
            fc, _, member_flags = model.forecast(history, future, horizon, population)
        except Exception as exc:  # every member failed: the baseline keeps the night going
            why = (f"ensemble version {version} failed ({type(exc).__name__}: {exc}); "
                   "seasonal naive")[:500]
            fallback = fallback or why
            fc = None
    if fc is None:
        model_name = "seasonal_naive"
        fc = _seasonal_naive(history, QUANTILES, horizon)
        log.warning("score %s: %s", run_date, fallback)
    # pairs the models did not cover (e.g. no history at all) get the seasonal naive too
    missing = active.merge(fc[["store_id", "sku_id"]].drop_duplicates(), how="left",
                           indicator=True)
    missing = missing.loc[missing["_merge"] == "left_only", ["store_id", "sku_id"]]
    if len(missing):
        extra = history.merge(missing, on=["store_id", "sku_id"])
        filled = (_seasonal_naive(extra, QUANTILES, horizon) if len(extra) else
                  _zeros(missing, run_date, horizon))
        covered = filled[["store_id", "sku_id"]].drop_duplicates()
        rest = missing.merge(covered, how="left", indicator=True)
        rest = rest.loc[rest["_merge"] == "left_only", ["store_id", "sku_id"]]
        filled = pd.concat([filled.assign(_flag="seasonal naive: series unknown to the model"),
                            _zeros(rest, run_date, horizon).assign(
                                _flag="no history: zero forecast")], ignore_index=True)
        fc = pd.concat([fc, filled], ignore_index=True)
    out = fc.loc[fc["horizon"] <= horizon].copy()
    flags = "; ".join([*([fallback] if fallback else []), *member_flags])
    out["flags"] = out.pop("_flag").fillna(flags) if "_flag" in out.columns else flags
    out["flags"] = out["flags"].replace("", None)
    out["run_date"] = pd.Timestamp(run_date)
    out["model"] = model_name
    out["model_version"] = str(version) if version is not None and model_name == "ensemble" \
        else None
    share = day_rows[["store_id", "sku_id", "evening_share_30"]].rename(
        columns={"evening_share_30": "evening_share"})
    out = out.merge(share, on=["store_id", "sku_id"], how="left")
    out["evening_mean"] = out["mean"] * out["evening_share"].fillna(0.0)
    for q in quantile_columns(QUANTILES):
        if q not in out.columns:
            out[q] = np.nan
    out = out[list(FORECAST_COLUMNS)].sort_values(["store_id", "sku_id", "horizon"])
    out["run_date"] = out["run_date"].dt.date
    out["target_date"] = pd.to_datetime(out["target_date"]).dt.date
    return out.reset_index(drop=True), model_name, why, member_flags


def _zeros(keys: pd.DataFrame, run_date: dt.date, horizon: int) -> pd.DataFrame:
    rows = keys.loc[keys.index.repeat(horizon)].reset_index(drop=True)
    rows["horizon"] = np.tile(np.arange(1, horizon + 1), len(keys))
    rows["target_date"] = pd.Timestamp(run_date) + pd.to_timedelta(rows["horizon"], unit="D")
    for col in ("mean", "q50", "q80", "q90", "q95", "q99"):
        rows[col] = 0.0
    return rows
