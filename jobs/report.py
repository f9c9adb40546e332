"""``replenish run report --date D``: the night's short report, for people and for MLflow.

Writes ``$REPLENISH_HOME/reports/nightly/D/`` with ``report.md`` and ``report.html`` (the
same content) and PNG plots, and logs the folder to MLflow (experiment
``REPLENISH_EXPERIMENT``, a run named ``report D`` tagged with the Airflow ids):

* the plan: lines, units and value ordered per store, solver status and fallbacks, which
  constraints bound, expected service level and waste (``lake/plans``);
* the forecast: units expected per day of the week ahead, the model and version, flags
  (``lake/forecasts``);
* yesterday's KPIs where known (``lake/demand_daily`` and ``lake/clean/inventory``: fill
  rate, stock-out share, units wasted) and the monitoring checks (``lake/monitoring``).

Sections whose inputs are missing say so; the report never pretends.
"""
from __future__ import annotations

import datetime as dt
import html
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from jobs.airflow_tasks import run_tags
from jobs.config import Config
from jobs.lake import list_dates, read_partition

__all__ = ["run", "ReportResult"]

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class ReportResult:
    run_date: dt.date
    path: Path
    sections: tuple[str, ...]
    mlflow_run_id: str

    def summary(self) -> str:
        return (f"report {self.run_date}: {self.path} ({', '.join(self.sections)}); MLflow run "
                f"{self.mlflow_run_id}")


def _table(cfg: Config, table: str, day: dt.date) -> pd.DataFrame | None:
    if day not in list_dates(cfg.lake, table):
        return None
    return read_partition(cfg.lake, table, day).to_pandas()


def _plan_section(plan: pd.DataFrame | None, folder: Path) -> list[str]:
    import matplotlib.pyplot as plt

    if plan is None:
        return ["## Plan", "", "No plan for this date (`lake/plans` is missing).", ""]
    per_store = plan.groupby("store_id").agg(lines=("sku_id", "size"),
                                             ordered=("order_units", lambda s: int((s > 0).sum())),
                                             units=("order_units", "sum"),
                                             value=("order_value", "sum"))
    out = ["## Plan", "",
           f"{len(plan):,} lines for {plan['store_id'].nunique()} stores; "
           f"{int((plan['order_units'] > 0).sum()):,} lines order "
           f"{int(plan['order_units'].sum()):,} units worth INR "
           f"{float(plan['order_value'].sum()):,.0f}.", ""]
    if "solver_status" in plan.columns:
        status = plan.drop_duplicates("store_id")["solver_status"].value_counts()
        out += ["Solver status per store: " + ", ".join(f"{k} {v}" for k, v in status.items()),
                ""]
    if "fallback_reason" in plan.columns:
        fb = plan.loc[plan["fallback_reason"].notna() & (plan["fallback_reason"] != ""),
                      ["store_id", "fallback_reason"]].drop_duplicates()
        out += [f"**Fallbacks**: {len(fb)} store(s)" + ("" if fb.empty else ":"), ""]
        out += [f"- store {r.store_id}: {r.fallback_reason}" for r in fb.itertuples()]
        out.append("")
    if "binding_constraint" in plan.columns:
        bound = plan["binding_constraint"].fillna("none").value_counts().head(8)
        out += ["Binding constraints (lines): " + ", ".join(f"{k} {v}"
                                                            for k, v in bound.items()), ""]
    for col, label in (("expected_service_level", "expected service level (mean over lines)"),
                       ("expected_waste_units", "expected waste, units (sum)")):
        if col in plan.columns:
            v = plan[col].mean() if "service" in col else plan[col].sum()
            out.append(f"- {label}: {v:,.3f}")
    out += ["", per_store.to_markdown(floatfmt=",.0f"), ""]
    fig, ax = plt.subplots(figsize=(8, 3.5))
    per_store["value"].plot.bar(ax=ax, color="#4477aa")
    ax.set_ylabel("order value, INR")
    ax.set_title("Orders per store")
    fig.savefig(folder / "orders_per_store.png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    out += ["![orders per store](orders_per_store.png)", ""]
    top = plan.sort_values("order_value", ascending=False).head(10)
    cols = [c for c in ("store_id", "sku_id", "order_units", "order_value", "forecast_coverage",
                        "binding_constraint") if c in top.columns]
    out += ["Top orders by value:", "", top[cols].to_markdown(index=False, floatfmt=",.1f"), ""]
    return out


def _forecast_section(fc: pd.DataFrame | None, folder: Path) -> list[str]:
    import matplotlib.pyplot as plt

    if fc is None:
        return ["## Forecast", "", "No forecasts for this date (`lake/forecasts` is missing).",
                ""]
    daily = fc.groupby("target_date")[["mean", "q90"]].sum()
    models = fc.groupby(["model", "model_version"], dropna=False).size()
    out = ["## Forecast", "",
           f"{fc[['store_id', 'sku_id']].drop_duplicates().shape[0]:,} pairs x "
           f"{fc['horizon'].max()} days; model: "
           + ", ".join(f"{m} (version {v})" for (m, v) in models.index), ""]
    flags = fc["flags"].dropna().unique() if "flags" in fc.columns else []
    out += [f"- flag: {f}" for f in flags[:10]]
    out += ["", daily.to_markdown(floatfmt=",.0f"), ""]
    fig, ax = plt.subplots(figsize=(8, 3.5))
    daily["mean"].plot(ax=ax, marker="o", label="expected units")
    daily["q90"].plot(ax=ax, ls="--", label="sum of q90")
    ax.legend()
    ax.set_title("Units expected, all stores")
    fig.savefig(folder / "forecast_week.png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return [*out, "![forecast](forecast_week.png)", ""]


def _kpi_section(cfg: Config, day: dt.date) -> list[str]:
    dd = _table(cfg, "demand_daily", day)
    if dd is None:
        return ["## KPIs", "", "No demand_daily for this date.", ""]
    demand = dd["demand"].fillna(dd["units_sold"])
    fill = float(dd["units_sold"].sum() / demand.sum()) if demand.sum() > 0 else float("nan")
    out = ["## KPIs of the day", "",
           f"- units sold: {int(dd['units_sold'].sum()):,}; corrected demand "
           f"{float(demand.sum()):,.0f}; fill rate {fill:.1%}",
           f"- pairs ending the day out of stock: {float(dd['stockout'].mean()):.1%}"]
    inv_dates = list_dates(cfg.lake / "clean", "inventory")
    if day in inv_dates:
        inv = read_partition(cfg.lake / "clean", "inventory", day).to_pandas()
        if "wasted" in inv.columns:
            out.append(f"- units wasted: {int(inv['wasted'].sum()):,}")
    return [*out, ""]


def _monitor_section(cfg: Config, day: dt.date) -> list[str]:
    mon = _table(cfg, "monitoring", day)
    if mon is None:
        prev = [d for d in list_dates(cfg.lake, "monitoring") if d < day]
        if not prev:
            return ["## Monitoring", "", "No monitoring yet.", ""]
        mon, day = read_partition(cfg.lake, "monitoring", prev[-1]).to_pandas(), prev[-1]
    cols = ["check", "metric", "value", "baseline", "status", "detail"]
    return ["## Monitoring", "", f"Checks of {day}:", "",
            mon[cols].to_markdown(index=False, floatfmt=".4f"), ""]


def run(cfg: Config, run_date: dt.date) -> ReportResult:
    import matplotlib

    matplotlib.use("Agg")
    import mlflow

    from models import registry

    folder = cfg.reports / "nightly" / run_date.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"# replenish nightly report, {run_date}", ""]
    lines += _plan_section(_table(cfg, "plans", run_date), folder)
    lines += _forecast_section(_table(cfg, "forecasts", run_date), folder)
    lines += _kpi_section(cfg, run_date)
    lines += _monitor_section(cfg, run_date)
    text = "\n".join(lines)
    (folder / "report.md").write_text(text)
    (folder / "report.html").write_text(_html(text, run_date))
    sections = tuple(line[3:] for line in lines if line.startswith("## "))
    mlflow.set_tracking_uri(cfg.mlflow_uri)
    exp = registry.experiment_id(cfg.mlflow_uri, cfg.mlflow_experiment)
    tags = {"run_date": run_date.isoformat(), "step": "report",
            **run_tags()}
    with mlflow.start_run(experiment_id=exp, run_name=f"report {run_date}", tags=tags) as r:
        mlflow.log_artifacts(str(folder), artifact_path="report")
        run_id = r.info.run_id
    return ReportResult(run_date, folder / "report.html", sections, run_id)


def _html(markdown_text: str, day: dt.date) -> str:
    """A self-contained HTML page: the Markdown shown as preformatted text with images."""
    body = []
    for line in markdown_text.splitlines():
        if line.startswith("![") and "](" in line:
            src = line.split("](", 1)[1].rstrip(")")
            body.append(f'<img src="{html.escape(src)}" style="max-width:100%">')
        elif line.startswith("# "):
            body.append(f"<h1>{html.escape(line[2:])}</h1>")
        elif line.startswith("## "):
            body.append(f"<h2>{html.escape(line[3:])}</h2>")
        else:
            body.append(f"<pre style='margin:0'>{html.escape(line)}</pre>")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>replenish {day}</title>"
            "</head><body style='font-family:sans-serif'>" + "\n".join(body) + "</body></html>")
