-- 001_schema: the warehouse tables planners read, in schema "replenish".
--
-- Idempotent: every statement can run again on a populated database without error and
-- without losing rows (CREATE ... IF NOT EXISTS, COMMENT ON is a plain overwrite).
-- A later change to a table goes into a new numbered file (ALTER TABLE ... ADD COLUMN IF
-- NOT EXISTS ...), never into this one, because CREATE TABLE IF NOT EXISTS does not alter
-- an existing table.
--
-- Tables that grow daily are RANGE partitioned by their date: one partition per month,
-- created by replenish.ensure_partitions() (002_partitions.sql), plus a DEFAULT partition
-- so that a row for a month nobody prepared is still stored rather than rejected.
-- Dates are store-local calendar days (Asia/Kolkata). Money is INR.

CREATE SCHEMA IF NOT EXISTS replenish;
COMMENT ON SCHEMA replenish IS
    'replenish: nightly replenishment plans for quick-commerce dark stores (forecasts, '
    'reorder plans, KPIs, model runs, data-quality results). Read-only for BI tools via '
    'the role replenish_bi.';

-- ---------------------------------------------------------------------------------------
-- schema_migrations: which sql/NNN_*.sql files `replenish warehouse migrate` has applied.
-- ---------------------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS replenish.schema_migrations (
    version    text        PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE replenish.schema_migrations IS
    'Bookkeeping of `replenish warehouse migrate`: one row per applied sql/NNN_*.sql file.';
COMMENT ON COLUMN replenish.schema_migrations.version IS
    'File name without .sql, e.g. 001_schema; files are applied in this order.';
COMMENT ON COLUMN replenish.schema_migrations.applied_at IS
    'When the file was applied (server clock, with time zone).';

-- ---------------------------------------------------------------------------------------
-- forecast: demand forecasts per store x SKU x target day, as published by a run.
-- ---------------------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS replenish.forecast (
    run_date      date             NOT NULL,
    store_id      integer          NOT NULL,
    sku_id        integer          NOT NULL,
    target_date   date             NOT NULL,
    horizon_days  smallint         NOT NULL,
    model         text             NOT NULL,
    mean          double precision NOT NULL,
    q50           double precision,
    q80           double precision,
    q90           double precision,
    q95           double precision,
    q99           double precision,
    model_version text,
    flags         text,
    PRIMARY KEY (run_date, store_id, sku_id, target_date)
) PARTITION BY RANGE (run_date);
CREATE TABLE IF NOT EXISTS replenish.forecast_default
    PARTITION OF replenish.forecast DEFAULT;

COMMENT ON TABLE replenish.forecast IS
    'Daily demand forecast per dark store x SKU x target day, in units, as published by '
    'the run of run_date. Quantiles give the demand distribution used for safety stock. '
    'Partitioned by run_date (one partition per month).';
COMMENT ON COLUMN replenish.forecast.run_date IS
    'Logical date of the pipeline run that produced the forecast (store-local day). '
    'Partition key; a re-run of the same date replaces its rows.';
COMMENT ON COLUMN replenish.forecast.store_id IS 'Dark store identifier (lake table stores).';
COMMENT ON COLUMN replenish.forecast.sku_id IS 'Product identifier (lake table skus).';
COMMENT ON COLUMN replenish.forecast.target_date IS 'Calendar day whose demand is forecast.';
COMMENT ON COLUMN replenish.forecast.horizon_days IS
    'Days ahead: target_date - run_date (1 = tomorrow).';
COMMENT ON COLUMN replenish.forecast.model IS
    'Forecaster that produced the numbers, e.g. ensemble, xgboost, prophet, seasonal_naive.';
COMMENT ON COLUMN replenish.forecast.mean IS
    'Expected demand for the day, units (demand, not sales: corrected for stock-outs).';
COMMENT ON COLUMN replenish.forecast.q50 IS
    'Median demand: 50% chance demand is at or below this, units. Null if the model gives '
    'no distribution.';
COMMENT ON COLUMN replenish.forecast.q80 IS
    '80th percentile of demand, units: stocking this many meets the day''s demand 80% of '
    'the time.';
COMMENT ON COLUMN replenish.forecast.q90 IS '90th percentile of demand, units.';
COMMENT ON COLUMN replenish.forecast.q95 IS
    '95th percentile of demand, units (the 95% service-level target).';
COMMENT ON COLUMN replenish.forecast.q99 IS '99th percentile of demand, units.';
COMMENT ON COLUMN replenish.forecast.model_version IS
    'MLflow registered model version used for scoring; null for models outside the registry.';
COMMENT ON COLUMN replenish.forecast.flags IS
    'Comma-separated notes on the row, e.g. cold_start (new SKU or store), festival, '
    'promotion, fallback; null when none.';

-- ---------------------------------------------------------------------------------------
-- reorder_plan: what to order for every store x SKU, the run's decision.
-- ---------------------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS replenish.reorder_plan (
    run_date               date             NOT NULL,
    store_id               integer          NOT NULL,
    sku_id                 integer          NOT NULL,
    supplier_id            integer          NOT NULL,
    delivery_date          date             NOT NULL,
    order_cases            integer          NOT NULL,
    order_units            integer          NOT NULL,
    case_pack              integer          NOT NULL,
    unit_cost              numeric(12, 2)   NOT NULL,
    order_value            numeric(14, 2)   NOT NULL,
    on_hand                integer          NOT NULL,
    on_order               integer          NOT NULL,
    forecast_coverage      double precision NOT NULL,
    safety_stock           double precision NOT NULL,
    order_up_to            double precision NOT NULL,
    expected_service_level double precision,
    expected_waste_units   double precision,
    binding_constraint     text,
    solver_status          text             NOT NULL,
    fallback_reason        text,
    PRIMARY KEY (run_date, store_id, sku_id)
) PARTITION BY RANGE (run_date);
CREATE TABLE IF NOT EXISTS replenish.reorder_plan_default
    PARTITION OF replenish.reorder_plan DEFAULT;

COMMENT ON TABLE replenish.reorder_plan IS
    'The replenishment decision of the run of run_date: one row per dark store x SKU, '
    'including zero orders. Money in INR, quantities in units unless named cases. '
    'Partitioned by run_date (one partition per month).';
COMMENT ON COLUMN replenish.reorder_plan.run_date IS
    'Logical date of the planning run (store-local day). Partition key; a re-run of the '
    'same date replaces its rows.';
COMMENT ON COLUMN replenish.reorder_plan.store_id IS 'Dark store identifier (lake table stores).';
COMMENT ON COLUMN replenish.reorder_plan.sku_id IS 'Product identifier (lake table skus).';
COMMENT ON COLUMN replenish.reorder_plan.supplier_id IS 'Supplier the order goes to.';
COMMENT ON COLUMN replenish.reorder_plan.delivery_date IS
    'Day the order is expected at the store: run_date + the supplier lead time.';
COMMENT ON COLUMN replenish.reorder_plan.order_cases IS
    'Cases to order (whole cases; 0 = do not order). At least the SKU''s minimum order '
    'quantity when ordering at all.';
COMMENT ON COLUMN replenish.reorder_plan.order_units IS
    'Units to order = order_cases x case_pack.';
COMMENT ON COLUMN replenish.reorder_plan.case_pack IS 'Units per case for this SKU.';
COMMENT ON COLUMN replenish.reorder_plan.unit_cost IS 'Purchase cost per unit, INR.';
COMMENT ON COLUMN replenish.reorder_plan.order_value IS
    'Purchase value of the order, INR = order_units x unit_cost; counts against the '
    'store''s daily budget.';
COMMENT ON COLUMN replenish.reorder_plan.on_hand IS
    'Units on the shelf at the close of run_date (inventory snapshot the plan starts from).';
COMMENT ON COLUMN replenish.reorder_plan.on_order IS
    'Units ordered earlier and not yet received at the close of run_date.';
COMMENT ON COLUMN replenish.reorder_plan.forecast_coverage IS
    'Expected demand, units, over the days this order must cover (from delivery_date until '
    'the next delivery arrives), from the forecast means.';
COMMENT ON COLUMN replenish.reorder_plan.safety_stock IS
    'Extra units held above forecast_coverage against demand uncertainty, from the forecast '
    'quantiles and the service-level target.';
COMMENT ON COLUMN replenish.reorder_plan.order_up_to IS
    'Target inventory position, units = forecast_coverage + safety_stock; the order brings '
    'on_hand + on_order up to about this, rounded to cases and cut by constraints.';
COMMENT ON COLUMN replenish.reorder_plan.expected_service_level IS
    'Probability (0-1) that demand until the next delivery is fully met with this order, '
    'under the forecast distribution.';
COMMENT ON COLUMN replenish.reorder_plan.expected_waste_units IS
    'Units of this order expected to expire unsold (perishables; 0 for long-life goods).';
COMMENT ON COLUMN replenish.reorder_plan.binding_constraint IS
    'Constraint that cut the order below its unconstrained optimum, e.g. budget, '
    'shelf_space_chilled, moq, case_pack; null when none was binding.';
COMMENT ON COLUMN replenish.reorder_plan.solver_status IS
    'Outcome of the store''s optimisation: optimal, feasible (time limit, best found), or '
    'heuristic when the fallback rule produced the row.';
COMMENT ON COLUMN replenish.reorder_plan.fallback_reason IS
    'Why the fallback heuristic was used instead of the MILP (e.g. infeasible, timeout); '
    'null when the MILP plan was used.';

-- ---------------------------------------------------------------------------------------
-- kpi_daily: outcome measures per store and day, for the plan and its comparators.
-- ---------------------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS replenish.kpi_daily (
    kpi_date           date             NOT NULL,
    store_id           integer          NOT NULL,
    service_level      double precision,
    fill_rate          double precision,
    stockout_rate      double precision,
    waste_pct          double precision,
    inventory_turnover double precision,
    working_capital    numeric(14, 2),
    total_cost         numeric(14, 2),
    policy             text             NOT NULL,
    PRIMARY KEY (kpi_date, store_id, policy)
) PARTITION BY RANGE (kpi_date);
CREATE TABLE IF NOT EXISTS replenish.kpi_daily_default
    PARTITION OF replenish.kpi_daily DEFAULT;

COMMENT ON TABLE replenish.kpi_daily IS
    'Daily outcome KPIs per dark store, for the published plan and for the policies it is '
    'compared with (see column policy). Shares are fractions 0-1 except waste_pct; money in '
    'INR. Partitioned by kpi_date (one partition per month).';
COMMENT ON COLUMN replenish.kpi_daily.kpi_date IS
    'Day the KPIs describe (store-local). Partition key.';
COMMENT ON COLUMN replenish.kpi_daily.store_id IS 'Dark store identifier (lake table stores).';
COMMENT ON COLUMN replenish.kpi_daily.service_level IS
    'Share (0-1) of the store''s SKUs whose whole demand of the day was met '
    '(no lost sale). Target >= 0.95.';
COMMENT ON COLUMN replenish.kpi_daily.fill_rate IS
    'Units sold / units demanded for the day (0-1): the share of demand served.';
COMMENT ON COLUMN replenish.kpi_daily.stockout_rate IS
    'Share (0-1) of the store''s SKUs that ran out of stock (shelf empty) during the day.';
COMMENT ON COLUMN replenish.kpi_daily.waste_pct IS
    'Perishable units written off as expired, in percent (0-100) of perishable units '
    'received. Target < 6.';
COMMENT ON COLUMN replenish.kpi_daily.inventory_turnover IS
    'Annualised inventory turnover, times per year = cost of goods sold / average '
    'inventory value at cost, scaled to 365 days. Target >= 24.';
COMMENT ON COLUMN replenish.kpi_daily.working_capital IS
    'Value of the inventory held (on hand, at purchase cost), INR, at the close of the day.';
COMMENT ON COLUMN replenish.kpi_daily.total_cost IS
    'Cost of the day, INR = ordering + holding + lost-sales margin + value of wasted units.';
COMMENT ON COLUMN replenish.kpi_daily.policy IS
    'Which decisions produced the numbers: plan (the published plan), minmax (the '
    'min-max reorder-rule baseline, the "before"), oracle (an optimiser knowing true '
    'demand, the best possible).';

-- ---------------------------------------------------------------------------------------
-- model_run: one row per training / registration run, linking to MLflow.
-- ---------------------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS replenish.model_run (
    run_id            text        PRIMARY KEY,
    run_date          date        NOT NULL,
    dag_id            text,
    dag_run_id        text,
    model_name        text        NOT NULL,
    model_version     text,
    alias             text,
    metrics           jsonb       NOT NULL DEFAULT '{}'::jsonb,
    data_window_start date,
    data_window_end   date,
    created_at        timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE replenish.model_run IS
    'One row per model training or backtest run, mirrored from MLflow so planners can see '
    'which model (and how accurate) produced a forecast.';
COMMENT ON COLUMN replenish.model_run.run_id IS 'MLflow run id (primary key).';
COMMENT ON COLUMN replenish.model_run.run_date IS
    'Logical date of the pipeline run that trained the model (store-local day).';
COMMENT ON COLUMN replenish.model_run.dag_id IS
    'Airflow DAG that ran the training; null when run from the command line.';
COMMENT ON COLUMN replenish.model_run.dag_run_id IS
    'Airflow DAG run id (e.g. scheduled__2025-01-31T00:00:00+00:00); null outside Airflow.';
COMMENT ON COLUMN replenish.model_run.model_name IS
    'Registered model name in the MLflow model registry, e.g. replenish-demand.';
COMMENT ON COLUMN replenish.model_run.model_version IS
    'Registered model version created by the run; null if the run was not registered.';
COMMENT ON COLUMN replenish.model_run.alias IS
    'Registry alias the version held when published, e.g. champion or challenger; null if none.';
COMMENT ON COLUMN replenish.model_run.metrics IS
    'Backtest accuracy as JSON, e.g. {"wape": 0.21, "mape": 0.18, "bias": -0.01, '
    '"rmsse": 0.8, "pinball_q95": 0.3, "coverage_q95": 0.94}; shares are fractions 0-1.';
COMMENT ON COLUMN replenish.model_run.data_window_start IS
    'First day of the training data (inclusive).';
COMMENT ON COLUMN replenish.model_run.data_window_end IS
    'Last day of the training data (inclusive).';
COMMENT ON COLUMN replenish.model_run.created_at IS
    'When the row was written (server clock, with time zone); audit only.';

-- ---------------------------------------------------------------------------------------
-- data_quality: the result of every validation rule on every checked partition.
-- ---------------------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS replenish.data_quality (
    run_date         date    NOT NULL,
    table_name       text    NOT NULL,
    partition_date   date    NOT NULL,
    suite            text    NOT NULL,
    rule             text    NOT NULL,
    column_name      text    NOT NULL DEFAULT '',
    rows_in          bigint,
    rows_accepted    bigint,
    rows_quarantined bigint,
    success          boolean NOT NULL,
    details          jsonb,
    PRIMARY KEY (run_date, table_name, partition_date, suite, rule, column_name),
    CONSTRAINT data_quality_rows_balance
        CHECK (rows_in = rows_accepted + rows_quarantined)
) PARTITION BY RANGE (run_date);
CREATE TABLE IF NOT EXISTS replenish.data_quality_default
    PARTITION OF replenish.data_quality DEFAULT;

COMMENT ON TABLE replenish.data_quality IS
    'Outcome of each data-quality rule (Great Expectations suites in expectations/) on each '
    'validated lake partition. Rows are never dropped silently: rows_in = rows_accepted + '
    'rows_quarantined. Partitioned by run_date (one partition per month).';
COMMENT ON COLUMN replenish.data_quality.run_date IS
    'Logical date of the pipeline run that validated the data. Partition key.';
COMMENT ON COLUMN replenish.data_quality.table_name IS
    'Lake table validated, e.g. sales, inventory, features.';
COMMENT ON COLUMN replenish.data_quality.partition_date IS
    'Date partition of the table that was validated (date=YYYY-MM-DD in the lake).';
COMMENT ON COLUMN replenish.data_quality.suite IS 'Expectation suite name.';
COMMENT ON COLUMN replenish.data_quality.rule IS
    'Rule (expectation) checked, e.g. expect_column_values_to_not_be_null.';
COMMENT ON COLUMN replenish.data_quality.column_name IS
    'Column the rule checks; empty string for table-level rules (row counts, keys).';
COMMENT ON COLUMN replenish.data_quality.rows_in IS 'Rows in the partition when checked.';
COMMENT ON COLUMN replenish.data_quality.rows_accepted IS 'Rows that passed the rule.';
COMMENT ON COLUMN replenish.data_quality.rows_quarantined IS
    'Rows that failed the rule and were moved to the lake''s quarantine/<table> with the reason.';
COMMENT ON COLUMN replenish.data_quality.success IS
    'True if the rule passed within tolerance (quarantined share <= '
    'REPLENISH_QUARANTINE_MAX_SHARE); false stops the pipeline step.';
COMMENT ON COLUMN replenish.data_quality.details IS
    'Rule result as JSON: observed value, threshold, a sample of offending rows.';
