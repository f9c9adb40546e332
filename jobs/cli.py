"""The ``replenish`` command: one verb per thing a user does, each with ``--help``.

Heavy libraries are imported inside the verb that needs them, so ``replenish --help`` and
``replenish warehouse status`` answer at once.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from jobs.config import ENV_VARS, Config, load_config

__all__ = ["main", "build_parser"]

#: Exceptions raised by these packages carry a message meant for the user.
_PACKAGES = frozenset({"jobs", "features", "models", "optimize", "expectations"})


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {text!r}") from None


def _int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") \
            from None


def _env_help() -> str:
    lines = ["environment variables (lower precedence than the options above):"]
    lines += [f"  {name:<32} {doc}" for name, (_, doc) in ENV_VARS.items()]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- verbs
def _cmd_generate(cfg: Config, args: argparse.Namespace) -> int:
    from jobs import generate

    result = generate.run(cfg, scenario=args.scenario, start=args.start, days=args.days,
                          seed=args.seed, progress=not args.no_progress)
    end = result.start + dt.timedelta(days=result.days - 1)
    print(f"generated scenario {result.scenario!r} (seed {result.seed}): {result.stores} stores "
          f"x {result.skus} SKUs, {result.start} .. {end} ({result.days} days)")
    for table, rows in sorted(result.rows.items()):
        print(f"  {table:<14} {rows:>14,} rows")
    print(f"  {result.seconds:.1f} s, {result.rows_per_second:,.0f} rows/s, "
          f"peak memory {result.peak_rss_mb:,.0f} MB")
    print(f"landing: {cfg.landing}   ground truth: {cfg.truth}   (next: replenish run ingest)")
    return 0


def _cmd_import(cfg: Config, args: argparse.Namespace) -> int:
    from jobs import importer

    result = importer.run(cfg, args.path, start=args.start, end=args.end, stores=args.stores,
                          items=args.items, progress=not args.no_progress)
    print(result.summary())
    return 0


def _cmd_warehouse(cfg: Config, args: argparse.Namespace) -> int:
    from jobs import warehouse

    action = args.action
    if action == "start":
        print(warehouse.start(cfg))
    elif action == "stop":
        warehouse.stop(cfg)
    elif action == "status":
        info = warehouse.status(cfg)
        for key, value in info.items():
            print(f"{key:<20} {value}")
        return 0 if info.get("running") else 3
    elif action == "url":
        print(warehouse.url(cfg))
    elif action == "migrate":
        applied = warehouse.migrate(cfg)
        print("applied: " + (", ".join(applied) if applied else "nothing (already up to date)"))
    elif action == "psql":
        return warehouse.psql(cfg, list(args.psql_args))
    return 0


def _cmd_run(cfg: Config, args: argparse.Namespace) -> int:
    from jobs.steps import run_step

    if args.date and (args.date_from or args.date_to):
        raise ValueError("give either --date or --from/--to, not both")
    start = args.date or args.date_from
    end = args.date or args.date_to or args.date_from
    if start is None:
        raise ValueError("give --date YYYY-MM-DD, or --from and --to for a backfill")
    for result in run_step(cfg, args.step, start, end, progress=not args.no_progress):
        text = result.summary() if hasattr(result, "summary") else str(result)
        print(text)
    return 0


def _cmd_model(cfg: Config, args: argparse.Namespace) -> int:
    from models import registry

    uri = cfg.mlflow_uri
    if args.action == "list":
        table = registry.list_versions(uri)
        if table.empty:
            print(f"no versions of {registry.REGISTERED_MODEL} in {uri}")
            return 0
        print(table.to_string(index=False, float_format=lambda v: f"{v:,.4g}"))
    elif args.action == "promote":
        if args.version is None:
            raise ValueError("model promote needs --version N (see: replenish model list)")
        before = registry.promote(uri, args.version)
        print(f"{registry.REGISTERED_MODEL}@champion: version {before} -> {args.version}")
    elif args.action == "rollback":
        old, new = registry.rollback(uri)
        print(f"{registry.REGISTERED_MODEL}@champion: version {old} -> {new} (rolled back)")
    return 0


def _cmd_summary(cfg: Config, args: argparse.Namespace) -> int:
    from jobs.summary import summary

    print(summary(cfg, args.date))
    return 0


def _cmd_schema(cfg: Config, args: argparse.Namespace) -> int:
    from jobs import schema

    if args.markdown:
        print(schema.schema_markdown())
        return 0
    for group in (schema.RAW_TABLES, schema.TRUTH_TABLES):
        for t in group.values():
            print(f"{t.name}: {t.doc}")
            for c in t.columns:
                print(f"  {c.name:<26} {str(c.type):<14} {c.doc}")
    return 0


def _cmd_config(cfg: Config, args: argparse.Namespace) -> int:
    data = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if f.name != "extra"}
    data.update(lake=cfg.lake, truth=cfg.truth, reports=cfg.reports, pg_dir=cfg.pg_dir,
                mlflow_uri=cfg.mlflow_uri)
    print(json.dumps({k: (str(v) if v is not None else None) for k, v in data.items()},
                     indent=2))
    return 0


def _cmd_stats(cfg: Config, args: argparse.Namespace) -> int:
    from jobs import world_stats

    stats = world_stats.measure(cfg, warmup_days=args.warmup)
    for key, value in dataclasses.asdict(stats).items():
        print(f"{key:<28} {value}")
    return 0


def _cmd_simulate(cfg: Config, args: argparse.Namespace) -> int:
    from jobs import simulate

    sim = simulate.SimulateConfig(
        policies=simulate.parse_policies(args.policy), days=args.days, start=args.start,
        stores=tuple(args.stores) if args.stores else None,
        solver=args.solver or getattr(cfg, "plan_solver", "cbc"), forecasts=args.forecasts,
        suppliers=args.suppliers, capacity=args.capacity, warmup_days=args.warmup_days,
        minmax_capacity=not args.minmax_overfill, censored=args.censored,
        retrain=args.retrain, history=args.history, swap=args.swap,
        time_limit_s=float(getattr(cfg, "plan_time_limit_s", 8.0)),
        mip_gap=float(getattr(cfg, "plan_mip_gap", 0.005)))
    report = simulate.run(cfg, sim, progress=not args.no_progress)
    print(report.text)
    print(f"\n{report.seconds:,.1f} s; reports: "
          + ", ".join(str(p) for p in report.paths if p.suffix == ".md"))
    return 0


#: The benchmark runner of a source checkout (``bench/`` is not part of the installed package).
BENCH_RUNNER = Path(__file__).resolve().parent.parent / "bench" / "run_all.py"


def _bench_runner():  # noqa: ANN202 - a module loaded from a file
    """``bench/run_all.py`` as a module (loaded only for ``replenish bench``)."""
    import importlib.util

    if not BENCH_RUNNER.is_file():
        raise FileNotFoundError(f"replenish bench needs a source checkout: {BENCH_RUNNER} "
                                "is not there (the benchmarks are not part of the package)")
    name = "replenish_bench_run_all"
    spec = importlib.util.spec_from_file_location(name, BENCH_RUNNER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _bench(argv: list[str]) -> int:
    """``replenish bench ARGS``: bench/run_all.py's options, under this command's name."""
    import importlib.util

    try:
        runner = _bench_runner()
    except FileNotFoundError as exc:
        print(f"replenish bench: error: {exc}", file=sys.stderr)
        return 2
    parser = runner.build_parser()
    parser.prog = "replenish bench"
    args = parser.parse_args(argv)
    only, skip = runner.script_names(args.only), runner.script_names(args.skip)
    peers = not args.list and "bench_peers" not in skip and (not only or "bench_peers" in only)
    missing = [m for m in ("statsforecast", "mlforecast", "lightgbm")
               if importlib.util.find_spec(m) is None]
    if peers and missing:
        print(f"replenish bench: error: bench_peers needs the optional bench extra "
              f"({', '.join(missing)} not installed): pip install -c constraints.txt -e "
              "'.[bench]' (make bench does this), or leave it out with --skip bench_peers",
              file=sys.stderr)
        return 2
    return int(runner.run(args))


# ----------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    p = argparse.ArgumentParser(
        prog="replenish", formatter_class=fmt,
        description="Nightly ML replenishment for quick-commerce dark stores: generate or "
                    "import data, manage the warehouse, run pipeline steps.",
        epilog=_env_help())
    p.add_argument("--home", help="root for all outputs (overrides REPLENISH_HOME; default ./var)")
    p.add_argument("--config", help="TOML file with config fields (overrides REPLENISH_CONFIG)")
    p.add_argument("--spark-master", help="Spark master URL (overrides SPARK_MASTER)")
    p.add_argument("--warehouse-url", help="PostgreSQL URL of the warehouse (overrides "
                   "REPLENISH_WAREHOUSE_URL); never put a password in it, use PGPASSWORD")
    p.add_argument("--mlflow-tracking-uri", help="MLflow tracking URI (overrides "
                   "MLFLOW_TRACKING_URI)")
    sub = p.add_subparsers(dest="verb", metavar="VERB", required=True,
                           help="what to do; 'replenish VERB --help' explains each")

    g = sub.add_parser("generate", formatter_class=fmt,
                       help="write a synthetic dark-store world with ground truth into the lake",
                       description="Simulate a quick-commerce world day by day and write the "
                       "raw tables to $REPLENISH_HOME/lake and the true demand to "
                       "$REPLENISH_HOME/truth. Deterministic for a seed; memory stays bounded "
                       "because each day is written as soon as it is simulated.")
    g.add_argument("--scenario", default="tiny", choices=["tiny", "small", "medium", "blinkit"],
                   help="size of the world: tiny 4 stores x 40 SKUs (tests), small 10 x 200, "
                   "medium 100 x 1,000, blinkit 400 x 8,000 (default: tiny)")
    g.add_argument("--start", type=_date, default=dt.date(2025, 1, 1),
                   help="first simulated day, YYYY-MM-DD (default 2025-01-01)")
    g.add_argument("--days", type=int, default=None,
                   help="number of days (default per scenario: tiny 120, small 365, "
                   "medium 730, blinkit 365)")
    g.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    g.add_argument("--no-progress", action="store_true", help="do not draw a progress bar")
    g.set_defaults(func=_cmd_generate)

    imp = sub.add_parser("import", help="bring your own data into the lake",
                         description="Map an external data set into the raw lake tables.")
    imp_sub = imp.add_subparsers(dest="format", metavar="FORMAT", required=True,
                                 help="layout of the data to import")
    si = imp_sub.add_parser("store-item", formatter_class=fmt,
                            help="the public store-item-demand layout (date, store, item, sales)",
                            description="Import a CSV (or a zip holding train.csv) with "
                            "columns date,store,item,sales. What the data lacks is filled with "
                            "documented defaults (docs/bring_your_own_data.md); rejected rows "
                            "go to lake/quarantine/import_store_item/ with their reason.")
    si.add_argument("path", type=Path, help="CSV file or zip archive")
    si.add_argument("--start", type=_date, help="first date to import (default: all)")
    si.add_argument("--end", type=_date, help="last date to import (default: all)")
    si.add_argument("--stores", type=_int_list, help="comma-separated store ids to keep")
    si.add_argument("--items", type=_int_list, help="comma-separated item ids to keep")
    si.add_argument("--no-progress", action="store_true", help="do not draw a progress bar")
    si.set_defaults(func=_cmd_import)

    w = sub.add_parser("warehouse", formatter_class=fmt,
                       help="start, stop, inspect and migrate the PostgreSQL warehouse",
                       description="Without REPLENISH_WAREHOUSE_URL the warehouse is an "
                       "embedded PostgreSQL under $REPLENISH_HOME/pg that survives between "
                       "commands; with it, the same verbs act on that server (start/stop only "
                       "check it).\n\nactions:\n"
                       "  start    start the embedded server (idempotent) and print its URL\n"
                       "  stop     stop the embedded server\n"
                       "  status   print state, URL, version and applied migrations "
                       "(exit 3 if down)\n"
                       "  url      print the connection URL (never a password)\n"
                       "  migrate  apply sql/*.sql in order; idempotent\n"
                       "  psql     open psql on the warehouse; arguments after -- go to psql")
    w.add_argument("action", choices=["start", "stop", "status", "url", "migrate", "psql"],
                   help="what to do (see above)")
    w.add_argument("psql_args", nargs=argparse.REMAINDER,
                   help="extra arguments for psql, e.g. -- -c 'select 1'")
    w.set_defaults(func=_cmd_warehouse)

    from jobs.steps import STEPS

    r = sub.add_parser("run", formatter_class=fmt, help="run one pipeline step for a date or "
                       "a range (backfill)",
                       description="Run one step of the nightly pipeline. Every step is "
                       "idempotent for its date: re-running replaces that date's output.\n\n"
                       "steps:\n" + "\n".join(f"  {n:<18} {s.doc}" for n, s in STEPS.items()))
    r.add_argument("step", choices=list(STEPS), help="the step to run (see above)")
    r.add_argument("--date", type=_date, help="the run's logical date, YYYY-MM-DD")
    r.add_argument("--from", dest="date_from", type=_date,
                   help="first date of a backfill, YYYY-MM-DD (with --to)")
    r.add_argument("--to", dest="date_to", type=_date,
                   help="last date of a backfill, inclusive (default: --from)")
    r.add_argument("--no-progress", action="store_true", help="do not draw a progress bar")
    r.set_defaults(func=_cmd_run)

    m = sub.add_parser("model", formatter_class=fmt,
                       help="list, promote or roll back registered ensemble versions",
                       description="The ML team's view of the MLflow registry (model "
                       "replenish-ensemble).\n\nactions:\n"
                       "  list      every version with its aliases, run date, backtest WAPE, "
                       "business cost and gate verdict\n"
                       "  promote   make --version N the champion (what score loads)\n"
                       "  rollback  give the champion alias back to the previous champion")
    m.add_argument("action", choices=["list", "promote", "rollback"], help="what to do "
                   "(see above)")
    m.add_argument("--version", type=int, help="the version to promote")
    m.set_defaults(func=_cmd_model)

    sm = sub.add_parser("summary", help="what a run published: tables, top orders, KPIs, "
                        "where the report is", description="Read-only overview of the run of "
                        "--date: warehouse rows per table, the ten largest orders, the stores' "
                        "KPIs, monitoring flags, the champion model, the report's path and how "
                        "to open MLflow and Airflow.")
    sm.add_argument("--date", type=_date, required=True, help="the run's date, YYYY-MM-DD")
    sm.set_defaults(func=_cmd_summary)

    s = sub.add_parser("schema", help="print the raw lake schema (the bring-your-own-data "
                       "contract)", description="Print every raw and ground-truth table with "
                       "its columns, types and meaning.")
    s.add_argument("--markdown", action="store_true", help="print as Markdown "
                   "(docs/raw_schema.md is made this way)")
    s.set_defaults(func=_cmd_schema)

    c = sub.add_parser("config", help="print the effective configuration",
                       description="Print the configuration after applying defaults, the TOML "
                       "file, environment variables and command-line options, in that order "
                       "of precedence.")
    c.set_defaults(func=_cmd_config)

    sim = sub.add_parser(
        "simulate", formatter_class=fmt,
        help="replay a window of the generated world under the plan, min-max and oracle "
        "policies",
        description="Replay days against the generator's true demand (truth/demand), "
        "starting from the inventory snapshot of the day before the window: deliveries "
        "arrive after their lead time, stock ages FIFO and expires into waste, demand beyond "
        "stock is lost, and the policy orders again every night. Prints and saves "
        "(reports/simulate/) the case study's table per policy: fill rate, stock-out "
        "frequency, waste % of units received, annualised turnover, average working capital "
        "and total cost (ordering + holding + lost margin + waste), with the INR "
        "differences between policies. Metric definitions: README, 'Policy simulator'.\n\n"
        "policies:\n"
        "  plan    the per-store MILP re-planned nightly on a forecast (--forecasts)\n"
        "  minmax  the generator's min-max reorder rule (the case study's \"before\")\n"
        "  oracle  the same MILP fed the true demand distribution")
    sim.add_argument("--policy", default="all",
                     help="policies to run, comma-separated (plan,minmax,oracle) or all "
                     "(default all); several give a side-by-side table")
    sim.add_argument("--days", type=int, default=28,
                     help="length of the window in days (default 28)")
    sim.add_argument("--start", type=_date, default=None,
                     help="first simulated day, YYYY-MM-DD (default: the last --days days "
                     "of the generated truth); the inventory of the day before must exist")
    sim.add_argument("--stores", type=_int_list, default=None,
                     help="comma-separated store ids to simulate (default: every store)")
    sim.add_argument("--solver", choices=["cbc", "highs"], default=None,
                     help="MILP solver of the plan and oracle policies, single-threaded "
                     "(default: the config's plan_solver, cbc)")
    sim.add_argument("--forecasts",
                     choices=["weekday_moving_average", "moving_average", "seasonal_naive",
                              "lake", "champion"],
                     default="weekday_moving_average",
                     help="what the plan policy forecasts with: weekday_moving_average (a "
                     "28-day moving average times each store's weekday index, festival days "
                     "left out of its history), moving_average or seasonal_naive, each "
                     "re-fitted nightly on the simulated observed sales (stock-out days per "
                     "--censored); lake: lake/forecasts/date=D from "
                     "'replenish run score', needed for every simulated night; champion: "
                     "like lake, but a missing night is scored first by the registered "
                     "champion through the score step (needs lake/features of the nights "
                     "and a champion in MLflow) (default weekday_moving_average)")
    sim.add_argument("--retrain", action="store_true",
                     help="with --forecasts champion: before scoring a night, run the nightly "
                     "DAG's train step for that date (it retrains when the champion is a "
                     "week old or monitoring asked for it; the new version is promoted only "
                     "if it beats the champion on the backtest), so the replay retrains as "
                     "production does; replay the earliest nights first, because a champion "
                     "trained after a night is refused for it (default: score every night "
                     "with the champion as it is)")
    sim.add_argument("--history", choices=["simulated", "world"], default="simulated",
                     help="whose sales the history forecasts (weekday_moving_average, "
                     "moving_average, seasonal_naive) learn from during the replay: "
                     "simulated, the plan's own, as in production; world, the generated "
                     "world's (its min-max rule's sales and stock-outs, what lake and "
                     "champion forecasts read), to measure what learning from another "
                     "policy's history costs the plan (default simulated)")
    sim.add_argument("--swap", choices=["none", "mean", "spread"], default="none",
                     help="a diagnostic of the plan's cost gap to the oracle: feed the plan "
                     "its forecasts with the truth's mean swapped in (each quantile moved "
                     "with it) or with the truth's spread (a negative binomial with the "
                     "truth's dispersion around the forecast's own mean); run with --policy "
                     "plan and compare with an unswapped run (default none)")
    sim.add_argument("--censored", choices=["impute", "drop"], default="impute",
                     help="stock-out days in the history forecasts: impute reads a day the "
                     "shelf emptied as its likely demand (the gamma mean above the units "
                     "sold); drop leaves them out, which biases forecasts low "
                     "(default impute)")
    sim.add_argument("--warmup-days", type=int, default=0,
                     help="days replayed before the window and left out of the metrics, so "
                     "each policy is measured in its own steady state rather than while it "
                     "sells down the stock the world started with (default 0)")
    sim.add_argument("--minmax-overfill", action="store_true",
                     help="replay the min-max rule without trimming its orders to the zones' "
                     "room (it then overfills them); by default, like the generator's own "
                     "rule, it trims them to the capacities the MILP respects")
    sim.add_argument("--suppliers", choices=["auto", "world", "perfect"], default="auto",
                     help="world: the generator's late and short deliveries (same luck for "
                     "every policy); perfect: every order arrives in full and on time; auto: "
                     "world when world.json describes the lake (default auto)")
    sim.add_argument("--capacity", choices=["observed", "declared"], default="observed",
                     help="zone capacities the MILP respects: observed raises each zone's "
                     "declared capacity to the volume the store held on hand and on order the "
                     "day before the window, for imported data whose stores hold more than "
                     "they declare (a generated world keeps within its capacities, so there "
                     "it changes nothing); declared uses the stores snapshot as is "
                     "(default observed)")
    sim.add_argument("--no-progress", action="store_true", help="do not draw a progress bar")
    sim.set_defaults(func=_cmd_simulate)

    st = sub.add_parser("stats", help="measure a generated world (calibration evidence)",
                        description="Read the lake and the ground truth back and print the "
                        "min-max rule's fill rate, perishable waste, turnover, naive MAPE and "
                        "the demand shape (evening share, festival uplift, weekend ratio, "
                        "monsoon effect, daily swing).")
    st.add_argument("--warmup", type=int, default=28,
                    help="days at the start to skip while the reorder rule settles (default 28)")
    st.set_defaults(func=_cmd_stats)

    sub.add_parser(
        "bench", add_help=False,
        help="every benchmark side by side into bench/RESULTS.md (what 'make bench' runs); "
             "'replenish bench --help' lists its options")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:  # its options are bench/run_all.py's (a source checkout's)
        return _bench(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "psql_args", None) and args.psql_args[:1] == ["--"]:
        args.psql_args = args.psql_args[1:]
    try:
        cfg = load_config(config_file=args.config, home=args.home,
                          spark_master=args.spark_master, warehouse_url=args.warehouse_url,
                          mlflow_tracking_uri=args.mlflow_tracking_uri)
    except (ValueError, FileNotFoundError) as exc:
        parser.error(str(exc))
    func: Callable[[Config, argparse.Namespace], int] = args.func
    try:
        return func(cfg, args)
    except Exception as exc:  # our own errors are for the user; anything else is a bug
        ours = type(exc).__module__.split(".")[0] in _PACKAGES
        if not (ours or isinstance(exc, (ValueError, FileNotFoundError, RuntimeError))):
            raise
        print(f"replenish {args.verb}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
