"""``replenish summary --date D``: what a run left behind, for a person at a terminal.

Published warehouse tables and their rows for D, the top orders, the stores' KPIs, the
monitoring verdict, where the report is, and how to open MLflow and Airflow. Read-only.
"""
from __future__ import annotations

import datetime as dt

from jobs.config import Config

__all__ = ["summary"]

_TABLES = ("forecast", "reorder_plan", "purchase_order", "kpi_daily", "actual_demand",
           "topup_order", "monitoring", "data_quality")
_DATE_COLUMN = {"kpi_daily": "kpi_date", "actual_demand": "demand_date",
                "data_quality": "run_date"}


def summary(cfg: Config, day: dt.date) -> str:
    from jobs import warehouse
    from models import registry

    lines = [f"replenish, run of {day}", ""]
    with warehouse.connect(cfg) as conn, conn.cursor() as cur:
        cur.execute("SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = 'replenish'")
        have = {r[0] for r in cur.fetchall()}
        lines.append("warehouse tables (rows for this date):")
        for table in _TABLES:
            if table not in have:
                continue
            col = _DATE_COLUMN.get(table, "run_date")
            cur.execute("SELECT column_name FROM information_schema.columns WHERE "
                        "table_schema = 'replenish' AND table_name = %s", (table,))
            cols = {r[0] for r in cur.fetchall()}
            if col not in cols:
                col = next((c for c in ("run_date", "kpi_date", "demand_date", "target_date")
                            if c in cols), None)
            if col is None:
                continue
            cur.execute(f"SELECT count(*) FROM replenish.{table} WHERE {col} = %s", (day,))
            lines.append(f"  replenish.{table:<16} {cur.fetchone()[0]:>10,}")
        lines.append("")
        if "reorder_plan" in have:
            cur.execute("SELECT store_id, sku_id, order_units, order_value, binding_constraint "
                        "FROM replenish.reorder_plan WHERE run_date = %s AND order_units > 0 "
                        "ORDER BY order_value DESC LIMIT 10", (day,))
            rows = cur.fetchall()
            lines.append("top orders by value:")
            lines.append(f"  {'store':>5} {'sku':>6} {'units':>7} {'INR':>10}  bound by")
            lines += [f"  {s:>5} {k:>6} {u:>7} {float(v):>10,.0f}  {b or '-'}"
                      for s, k, u, v, b in rows]
            lines.append("")
        if "kpi_daily" in have:
            cur.execute("SELECT store_id, fill_rate, stockout_rate, waste_pct, "
                        "inventory_turnover FROM replenish.kpi_daily WHERE kpi_date = %s "
                        "ORDER BY store_id", (day,))
            rows = cur.fetchall()
            lines.append("store KPIs of the day (observed):")
            lines.append(f"  {'store':>5} {'fill':>7} {'stock-out':>10} {'waste %':>8} "
                         f"{'turnover':>9}")
            lines += [f"  {s:>5} {_pct(f):>7} {_pct(o):>10} {_num(w):>8} {_num(t):>9}"
                      for s, f, o, w, t in rows]
            lines.append("")
        if "monitoring" in have:
            cur.execute("SELECT check_name, metric, status, detail FROM replenish.monitoring "
                        "WHERE run_date = %s AND status <> 'ok' ORDER BY 1, 2", (day,))
            bad = cur.fetchall()
            lines.append("monitoring: " + ("all checks ok" if not bad else "; ".join(
                f"{c}/{m}: {s}" + (f" ({d})" if d else "") for c, m, s, d in bad)))
            lines.append("")
        if "topup_order" in have:
            nxt = day + dt.timedelta(days=1)
            cur.execute("SELECT hour, count(*), sum(topup_units), sum(order_value) FROM "
                        "replenish.topup_order WHERE run_date = %s GROUP BY hour ORDER BY hour",
                        (nxt,))
            rows = cur.fetchall()
            lines.append(f"intraday top-ups of {nxt} (the day this plan delivers): "
                         + ("none published yet" if not rows else ""))
            lines += [f"  {h:02d}:00  {n:>5,} lines {int(u):>7,} units  INR {float(v):>10,.0f}"
                      for h, n, u, v in rows]
            lines.append("")
    version = registry.champion_version(cfg.mlflow_uri)
    report = cfg.reports / "nightly" / day.isoformat() / "report.html"
    lines += [f"champion model: {registry.REGISTERED_MODEL} version {version}",
              f"report:         {report if report.exists() else '(not written)'}",
              f"MLflow:         make mlflow   (store {cfg.mlflow_uri})",
              "Airflow:        make airflow  (then http://127.0.0.1:8080)",
              f"warehouse:      replenish warehouse psql   ({warehouse.url(cfg)}; BI views "
              "v_reorder_plan_today, v_purchase_orders, v_store_kpis, v_forecast_accuracy)"]
    return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * float(value):.1f}%"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{float(value):.1f}"
