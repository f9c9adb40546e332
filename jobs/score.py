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
"""
from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from jobs.config import Config
from jobs.lake import list_dates, read_partition, write_partition

__all__ = ["run", "ScoreResult", "HISTORY_DAYS", "future_rows", "FORECAST_COLUMNS"]

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
                horizon: int) -> pd.DataFrame:
    """Feature rows of D+1..D+horizon for the ``active`` pairs, from the data through D.

    The same feature builder as the nightly job (``features.build.build_features``) runs on
    the pairs' ``demand_daily`` rows of the 30-day lookback plus placeholder rows for the
    target days (no sales, demand unknown): a target row's history features read only days up
    to D, exactly what XGBoost learnt from (it takes the history of the first target day and
    the covariates of each). Covariates of the target days: the calendar (the clean table
    where present, else the Indian festival calendar ``jobs.world.calendar_rows``), the last
    observed weather carried forward, no promotion (future promotions are not in the lake).
    """
    from features.build import build_features
    from jobs.lake import read_range, read_snapshot
    from jobs.world import calendar_rows

    clean = cfg.lake / "clean"
    lo = run_date - dt.timedelta(days=LOOKBACK_DAYS)
    demand = read_range(cfg.lake, "demand_daily", lo, run_date).to_pandas()
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
    p_days = [d for d in list_dates(clean, "promotions") if lo <= d <= run_date]
    promotions = (read_range(clean, "promotions", p_days[0], p_days[-1]).to_pandas()
                  if p_days else None)
    stores = read_snapshot(clean, "stores", run_date).to_pandas()
    skus = read_snapshot(clean, "skus", run_date).to_pandas()
    rows = build_features(demand, calendar, weather, promotions, stores, skus, days[0],
                          days[-1], lookback=LOOKBACK_DAYS)
    rows["date"] = pd.to_datetime(rows["date"]).astype("datetime64[ns]")
    return rows


def _history(cfg: Config, run_date: dt.date) -> pd.DataFrame:
    start = run_date - dt.timedelta(days=HISTORY_DAYS - 1)
    parts = []
    for day in list_dates(cfg.lake, "features"):
        if start <= day <= run_date:
            t = read_partition(cfg.lake, "features", day, columns=_HISTORY_COLUMNS)
            parts.append(t.append_column("date", pa.array([day] * t.num_rows, pa.date32())))
    if not parts:
        raise FileNotFoundError(f"table 'features': no partitions between {start} and "
                                f"{run_date}; run build_features first")
    df = pa.concat_tables(parts, promote_options="permissive").to_pandas()
    df["date"] = pd.to_datetime(df["date"]).astype("datetime64[ns]")
    return df


def _seasonal_naive(history: pd.DataFrame, quantiles: tuple[float, ...],
                    horizon: int) -> pd.DataFrame:
    from models.baselines import SeasonalNaive
    from models.protocol import ModelConfig

    train = history.loc[history["y"].notna(), ["store_id", "sku_id", "date", "y"]]
    return SeasonalNaive().fit(train, ModelConfig()).predict(horizon, quantiles)


def run(cfg: Config, run_date: dt.date) -> ScoreResult:
    from models import registry
    from models.ensemble_model import training_frame
    from models.protocol import QUANTILES, quantile_columns

    t0 = time.perf_counter()
    if run_date not in list_dates(cfg.lake, "features"):
        raise FileNotFoundError(f"table 'features': partition date={run_date} does not exist; "
                                "run build_features (and validate_features) first")
    day_rows = read_partition(cfg.lake, "features", run_date,
                              columns=["store_id", "sku_id", "evening_share_30"]).to_pandas()
    hist_raw = _history(cfg, run_date)
    active = day_rows[["store_id", "sku_id"]]
    hist_raw = hist_raw.merge(active, on=["store_id", "sku_id"], how="inner")
    try:
        from jobs.cluster import read_clusters

        clusters = read_clusters(cfg, run_date).to_pandas()[["store_id", "cluster"]]
    except FileNotFoundError:
        clusters = pd.DataFrame({"store_id": active["store_id"].unique(), "cluster": 0})
    hist_raw = hist_raw.merge(clusters, on="store_id", how="left")
    history = training_frame(hist_raw)
    horizon = 7
    fallback, version, member_flags = "", None, []
    model_name = "ensemble"
    try:
        loaded = registry.load_champion(cfg.mlflow_uri)
    except registry.RegistryError as exc:
        loaded, fallback = None, f"no model could be loaded ({exc}); seasonal naive"
    if loaded is not None:
        version, fallback = loaded.version, loaded.fallback
        model = loaded.model
        horizon = model.config.horizon
        future = future_rows(cfg, run_date, active, horizon).merge(
            clusters, on="store_id", how="left")
        try:
            fc, _, member_flags = model.forecast(history, future, horizon)
        except Exception as exc:  # every member failed: the baseline keeps the night going
            fallback = (f"ensemble version {version} failed ({type(exc).__name__}: {exc}); "
                        "seasonal naive")[:500]
            loaded = None
    if loaded is None:
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
    if cfg.stores:
        out = _with_other_stores(cfg, run_date, out)
    table = pa.Table.from_pandas(out.reset_index(drop=True), preserve_index=False)
    write_partition(cfg.lake, "forecasts", run_date, table, schema=table.schema)
    return ScoreResult(run_date, len(active), len(out), model_name, version, fallback,
                       tuple(member_flags), round(time.perf_counter() - t0, 1))


def _with_other_stores(cfg: Config, run_date: dt.date, out: pd.DataFrame) -> pd.DataFrame:
    """``cfg.stores``: the fresh rows of those stores plus every other store's rows of the
    existing partition (the model always sees every store, so a store's forecast does not
    depend on which stores were asked for)."""
    subset = list(cfg.stores)
    absent = sorted(set(subset) - set(out["store_id"].unique().tolist()))
    if absent:
        raise ValueError(f"stores {absent} (REPLENISH_STORES / the DAG's stores param) have no "
                         f"rows in table 'features', partition date={run_date}")
    mine = out.loc[out["store_id"].isin(subset)]
    if run_date not in list_dates(cfg.lake, "forecasts"):
        log.warning("score %s: no earlier forecasts partition; only stores %s written",
                    run_date, subset)
        return mine
    old = read_partition(cfg.lake, "forecasts", run_date).to_pandas()
    old = old.loc[~old["store_id"].isin(subset), list(FORECAST_COLUMNS)]
    return pd.concat([old, mine], ignore_index=True).sort_values(
        ["store_id", "sku_id", "horizon"], ignore_index=True)


def _zeros(keys: pd.DataFrame, run_date: dt.date, horizon: int) -> pd.DataFrame:
    rows = keys.loc[keys.index.repeat(horizon)].reset_index(drop=True)
    rows["horizon"] = np.tile(np.arange(1, horizon + 1), len(keys))
    rows["target_date"] = pd.Timestamp(run_date) + pd.to_timedelta(rows["horizon"], unit="D")
    for col in ("mean", "q50", "q80", "q90", "q95", "q99"):
        rows[col] = 0.0
    return rows
