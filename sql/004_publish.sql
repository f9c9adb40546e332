-- 004_publish: the tables publish adds, the staging schema, and the write-audit-publish
-- functions that jobs/publish.py calls.
--
-- Write-audit-publish, per run date D (jobs.publish.run):
--   1. write:   delete D's rows from every replenish_staging table, COPY D's lake rows in,
--               commit. Nothing a planner reads has changed.
--   2. audit:   SELECT * FROM replenish_staging.audit(D): one row per rule with the number
--               of offending staged rows and a sample of them.
--   3. publish: in the SAME transaction as the audit, and only if every rule found 0 rows,
--               SELECT * FROM replenish_staging.publish(D): for each published table delete
--               D's rows and insert the staged ones, then clear D's staging rows. Commit.
-- A crash before the commit leaves the previously published rows of D untouched; readers
-- see either the old rows or the new ones, never a mix (MVCC). Why delete+insert and not a
-- partition swap: the tables are partitioned by month, so a date is a slice of a partition;
-- exchanging a whole partition would need per-day partitions (30x more relations).
-- jobs/publish.py holds a per-date advisory lock across all three steps, so two publishes
-- of the same date never interleave.
--
-- Idempotent: IF NOT EXISTS, CREATE OR REPLACE, plain COMMENT/GRANT/REVOKE.

-- ---------------------------------------------------------------------------------------
-- forecast: the intraday evening profile travels with the forecast (jobs/score.py).
-- ---------------------------------------------------------------------------------------
ALTER TABLE replenish.forecast ADD COLUMN IF NOT EXISTS evening_share double precision;
ALTER TABLE replenish.forecast ADD COLUMN IF NOT EXISTS evening_mean double precision;
COMMENT ON COLUMN replenish.forecast.evening_share IS
    'Share (0-1) of the pair''s units sold between 18:00 and 22:00 over the 30 days up to '
    'run_date; null when the pair has no recent sales.';
COMMENT ON COLUMN replenish.forecast.evening_mean IS
    'Expected demand between 18:00 and 22:00 of target_date, units = mean x evening_share '
    '(0 when evening_share is null); used by the intraday top-up run.';

-- ---------------------------------------------------------------------------------------
-- kpi_daily: precise definitions of the observed KPIs that publish writes.
-- ---------------------------------------------------------------------------------------
COMMENT ON COLUMN replenish.kpi_daily.service_level IS
    'Share (0-1) of the store''s active SKUs whose whole demand of the day was met (no lost '
    'sale). Target >= 0.95. Observed: a SKU misses when its shelf was empty at close '
    '(stock-out) and its stock-out-corrected demand exceeds units sold, or that demand is '
    'unknown (empty shelf, no sale).';
COMMENT ON COLUMN replenish.kpi_daily.fill_rate IS
    'Units sold / units demanded for the day (0-1): the share of demand served. Observed: '
    'demand is the stock-out-corrected demand of lake demand_daily; SKUs whose demand is '
    'unknown (empty shelf, no sale) are left out of both sums.';
COMMENT ON COLUMN replenish.kpi_daily.stockout_rate IS
    'Share (0-1) of the store''s active SKUs that ran out of stock during the day (observed: '
    'on hand 0 at close).';
COMMENT ON COLUMN replenish.kpi_daily.waste_pct IS
    'Perishable units written off as expired, in percent (0-100) of the perishable units '
    'that left the shelf that day (wasted + sold; in steady state the units received). '
    'Target < 6. Null when no perishable unit left the shelf.';
COMMENT ON COLUMN replenish.kpi_daily.inventory_turnover IS
    'Annualised inventory turnover, times per year = 365 x cost of goods sold of the day / '
    'average inventory value at cost, the average of the opening and closing stock '
    '(opening = closing - received + sold + wasted). Target >= 24. Null without stock.';
COMMENT ON COLUMN replenish.kpi_daily.working_capital IS
    'Value of the inventory held (on hand at close, at purchase cost), INR.';
COMMENT ON COLUMN replenish.kpi_daily.total_cost IS
    'Cost of the day, INR = ordering + holding + lost-sales margin + value of wasted units. '
    'Null for policy observed (needs the cost parameters of the simulator).';
COMMENT ON COLUMN replenish.kpi_daily.policy IS
    'Which decisions produced the numbers: observed (measured from the day''s sales and '
    'stock in the lake, i.e. the decisions actually carried out; written by publish), plan '
    '(the published plan, simulated), minmax (the min-max reorder-rule baseline, the '
    '"before"), oracle (an optimiser knowing true demand, the best possible).';

-- ---------------------------------------------------------------------------------------
-- purchase_order: the plan's orders, one purchase order per store x supplier x delivery
-- day (lake purchase_orders, written by jobs/plan.py); its lines are the reorder_plan rows
-- of the same run_date, store, supplier and delivery day with order_units > 0.
-- ---------------------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS replenish.purchase_order (
    run_date        date             NOT NULL,
    po_id           text             NOT NULL,
    store_id        integer          NOT NULL,
    supplier_id     integer          NOT NULL,
    delivery_date   date             NOT NULL,
    n_lines         integer          NOT NULL,
    order_cases     integer          NOT NULL,
    order_units     integer          NOT NULL,
    order_value     numeric(14, 2)   NOT NULL,
    order_volume_l  double precision,
    min_order_value numeric(14, 2),
    min_order_met   boolean,
    PRIMARY KEY (run_date, po_id)
) PARTITION BY RANGE (run_date);
CREATE TABLE IF NOT EXISTS replenish.purchase_order_default
    PARTITION OF replenish.purchase_order DEFAULT;

COMMENT ON TABLE replenish.purchase_order IS
    'Purchase orders of the run of run_date: one per dark store x supplier x delivery day, '
    'totalling the reorder_plan lines with an order (join on run_date, store_id, '
    'supplier_id, delivery_date for the lines). Money in INR. Partitioned by run_date (one '
    'partition per month).';
COMMENT ON COLUMN replenish.purchase_order.run_date IS
    'Logical date of the planning run that raised the order (store-local day). Partition '
    'key; a re-run of the same date replaces its rows.';
COMMENT ON COLUMN replenish.purchase_order.po_id IS
    'Purchase-order number PO-<run date>-<store>-<supplier>-<delivery date>, e.g. '
    'PO-20250131-12-3-20250202: the same keys give the same number on a re-run.';
COMMENT ON COLUMN replenish.purchase_order.store_id IS 'Dark store the goods go to.';
COMMENT ON COLUMN replenish.purchase_order.supplier_id IS 'Supplier the order goes to.';
COMMENT ON COLUMN replenish.purchase_order.delivery_date IS
    'Day the goods are expected at the store (run_date + the supplier lead time).';
COMMENT ON COLUMN replenish.purchase_order.n_lines IS 'SKUs (order lines) on the order.';
COMMENT ON COLUMN replenish.purchase_order.order_cases IS 'Cases ordered, all lines.';
COMMENT ON COLUMN replenish.purchase_order.order_units IS 'Units ordered, all lines.';
COMMENT ON COLUMN replenish.purchase_order.order_value IS
    'Purchase value of the order, INR, all lines.';
COMMENT ON COLUMN replenish.purchase_order.order_volume_l IS
    'Shelf volume of the goods ordered, litres.';
COMMENT ON COLUMN replenish.purchase_order.min_order_value IS
    'The supplier''s minimum order value per delivery, INR (0 when it has none).';
COMMENT ON COLUMN replenish.purchase_order.min_order_met IS
    'True when order_value >= min_order_value; false orders need a planner''s look.';

-- ---------------------------------------------------------------------------------------
-- actual_demand: what really happened, to score forecasts against (v_forecast_accuracy).
-- ---------------------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS replenish.actual_demand (
    demand_date date             NOT NULL,
    store_id    integer          NOT NULL,
    sku_id      integer          NOT NULL,
    units_sold  integer          NOT NULL,
    demand      double precision,
    stockout    boolean          NOT NULL,
    PRIMARY KEY (demand_date, store_id, sku_id)
) PARTITION BY RANGE (demand_date);
CREATE TABLE IF NOT EXISTS replenish.actual_demand_default
    PARTITION OF replenish.actual_demand DEFAULT;

COMMENT ON TABLE replenish.actual_demand IS
    'Actual daily demand per dark store x SKU (lake demand_daily), published by the run of '
    'the same day; forecasts are scored against it in v_forecast_accuracy. Partitioned by '
    'demand_date (one partition per month).';
COMMENT ON COLUMN replenish.actual_demand.demand_date IS
    'Store-local day the demand happened. Partition key; a re-run replaces the day''s rows.';
COMMENT ON COLUMN replenish.actual_demand.store_id IS 'Dark store identifier.';
COMMENT ON COLUMN replenish.actual_demand.sku_id IS 'Product identifier.';
COMMENT ON COLUMN replenish.actual_demand.units_sold IS 'Units sold during the day.';
COMMENT ON COLUMN replenish.actual_demand.demand IS
    'Units demanded: units sold, scaled up on a stock-out day by the share of a normal day''s '
    'sales that happen before the shelf emptied. Null when unknown (shelf empty, no sale).';
COMMENT ON COLUMN replenish.actual_demand.stockout IS
    'True if the shelf was empty at close (sales were capped by stock).';

GRANT SELECT ON replenish.purchase_order, replenish.purchase_order_default,
                replenish.actual_demand, replenish.actual_demand_default TO replenish_bi;

-- ---------------------------------------------------------------------------------------
-- replenish_staging: one table per published table (same columns, all nullable, no keys,
-- so that the audit, not COPY, reports bad rows) plus the audit inputs. UNLOGGED: staging
-- is rebuilt from the lake on every run, so it needs no WAL (a server crash empties it).
-- Never readable by replenish_bi.
-- ---------------------------------------------------------------------------------------
CREATE SCHEMA IF NOT EXISTS replenish_staging;
COMMENT ON SCHEMA replenish_staging IS
    'Write-audit-publish staging of replenish (jobs/publish.py): rows of a run date waiting '
    'for the audit. Internal: not for BI tools; replenish_bi has no access.';
REVOKE ALL ON SCHEMA replenish_staging FROM PUBLIC;

CREATE UNLOGGED TABLE IF NOT EXISTS replenish_staging.forecast (
    run_date      date,
    store_id      integer,
    sku_id        integer,
    target_date   date,
    horizon_days  smallint,
    model         text,
    mean          double precision,
    q50           double precision,
    q80           double precision,
    q90           double precision,
    q95           double precision,
    q99           double precision,
    model_version text,
    flags         text,
    evening_share double precision,
    evening_mean  double precision
);
CREATE UNLOGGED TABLE IF NOT EXISTS replenish_staging.reorder_plan (
    run_date               date,
    store_id               integer,
    sku_id                 integer,
    supplier_id            integer,
    delivery_date          date,
    order_cases            integer,
    order_units            integer,
    case_pack              integer,
    unit_cost              numeric(12, 2),
    order_value            numeric(14, 2),
    on_hand                integer,
    on_order               integer,
    forecast_coverage      double precision,
    safety_stock           double precision,
    order_up_to            double precision,
    expected_service_level double precision,
    expected_waste_units   double precision,
    binding_constraint     text,
    solver_status          text,
    fallback_reason        text
);
CREATE UNLOGGED TABLE IF NOT EXISTS replenish_staging.purchase_order (
    run_date        date,
    po_id           text,
    store_id        integer,
    supplier_id     integer,
    delivery_date   date,
    n_lines         integer,
    order_cases     integer,
    order_units     integer,
    order_value     numeric(14, 2),
    order_volume_l  double precision,
    min_order_value numeric(14, 2),
    min_order_met   boolean
);
CREATE UNLOGGED TABLE IF NOT EXISTS replenish_staging.actual_demand (
    demand_date date,
    store_id    integer,
    sku_id      integer,
    units_sold  integer,
    demand      double precision,
    stockout    boolean
);
CREATE UNLOGGED TABLE IF NOT EXISTS replenish_staging.kpi_daily (
    kpi_date           date,
    store_id           integer,
    service_level      double precision,
    fill_rate          double precision,
    stockout_rate      double precision,
    waste_pct          double precision,
    inventory_turnover double precision,
    working_capital    numeric(14, 2),
    total_cost         numeric(14, 2),
    policy             text
);
-- Audit inputs (never published): the run date's active pairs and the limits in force.
CREATE UNLOGGED TABLE IF NOT EXISTS replenish_staging.active_pair (
    run_date date    NOT NULL,
    store_id integer NOT NULL,
    sku_id   integer NOT NULL
);
CREATE UNLOGGED TABLE IF NOT EXISTS replenish_staging.store_limits (
    run_date           date             NOT NULL,
    store_id           integer          NOT NULL,
    daily_budget       double precision NOT NULL,
    capacity_ambient_l double precision NOT NULL,
    capacity_chilled_l double precision NOT NULL,
    capacity_frozen_l  double precision NOT NULL
);
CREATE UNLOGGED TABLE IF NOT EXISTS replenish_staging.sku_attrs (
    run_date date             NOT NULL,
    sku_id   integer          NOT NULL,
    zone     text             NOT NULL,
    volume_l double precision NOT NULL
);

CREATE INDEX IF NOT EXISTS forecast_run_date_idx ON replenish_staging.forecast (run_date);
CREATE INDEX IF NOT EXISTS reorder_plan_run_date_idx
    ON replenish_staging.reorder_plan (run_date);
CREATE INDEX IF NOT EXISTS purchase_order_run_date_idx
    ON replenish_staging.purchase_order (run_date);
CREATE INDEX IF NOT EXISTS actual_demand_demand_date_idx
    ON replenish_staging.actual_demand (demand_date);
CREATE INDEX IF NOT EXISTS kpi_daily_kpi_date_idx ON replenish_staging.kpi_daily (kpi_date);
CREATE INDEX IF NOT EXISTS active_pair_run_date_idx ON replenish_staging.active_pair (run_date);
CREATE INDEX IF NOT EXISTS store_limits_run_date_idx
    ON replenish_staging.store_limits (run_date);
CREATE INDEX IF NOT EXISTS sku_attrs_run_date_idx ON replenish_staging.sku_attrs (run_date);

COMMENT ON TABLE replenish_staging.forecast IS
    'Staged rows of replenish.forecast (same columns, nullable, no key).';
COMMENT ON TABLE replenish_staging.reorder_plan IS
    'Staged rows of replenish.reorder_plan (same columns, nullable, no key).';
COMMENT ON TABLE replenish_staging.purchase_order IS
    'Staged rows of replenish.purchase_order (same columns, nullable, no key).';
COMMENT ON TABLE replenish_staging.actual_demand IS
    'Staged rows of replenish.actual_demand (same columns, nullable, no key).';
COMMENT ON TABLE replenish_staging.kpi_daily IS
    'Staged rows of replenish.kpi_daily (same columns, nullable, no key).';
COMMENT ON TABLE replenish_staging.active_pair IS
    'Audit input: the store x SKU pairs active on run_date (lake features, else the clean '
    'inventory snapshot); the plan needs one line and the forecast 7 horizons for each.';
COMMENT ON TABLE replenish_staging.store_limits IS
    'Audit input: each store''s daily budget (INR) and zone capacities (litres) in force on '
    'run_date (lake clean/stores snapshot).';
COMMENT ON TABLE replenish_staging.sku_attrs IS
    'Audit input: each SKU''s storage zone and unit volume (litres) in force on run_date '
    '(lake clean/skus snapshot).';

REVOKE ALL ON ALL TABLES IN SCHEMA replenish_staging FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA replenish_staging FROM replenish_bi;

-- ---------------------------------------------------------------------------------------
-- audit(day, horizons): every rule over the staged rows of day, passing or not.
-- One row per rule: failed_rows = 0 means it passed; sample = up to 5 offending rows.
-- ---------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION replenish_staging.audit(day date, horizons integer DEFAULT 7)
RETURNS TABLE (audited_table text, rule text, description text, failed_rows bigint,
               sample jsonb)
LANGUAGE plpgsql
AS $fn$
DECLARE
    t         record;
    cols      text[];
    nulls     bigint[];
    keys      text;
    keys_text text;
    key_names text;
BEGIN
    -- Generic: the published table's NOT NULL columns, and its primary key, hold in staging.
    -- Nulls of all columns are counted in one scan; samples only for the failing columns.
    FOR t IN SELECT * FROM (VALUES ('forecast', 'run_date'), ('reorder_plan', 'run_date'),
                                   ('purchase_order', 'run_date'),
                                   ('actual_demand', 'demand_date'),
                                   ('kpi_daily', 'kpi_date')) AS v (name, keycol) LOOP
        SELECT array_agg(a.attname::text ORDER BY a.attnum) INTO cols
          FROM pg_attribute a
         WHERE a.attrelid = format('replenish.%I', t.name)::regclass
           AND a.attnum > 0 AND NOT a.attisdropped AND a.attnotnull
           AND a.attname <> t.keycol;
        EXECUTE format('SELECT ARRAY[%s]::bigint[] FROM replenish_staging.%I s WHERE s.%I = $1',
                       (SELECT string_agg(format('count(*) FILTER (WHERE s.%I IS NULL)', c),
                                          ', ')
                          FROM unnest(cols) AS c),
                       t.name, t.keycol)
           INTO nulls USING day;
        FOR i IN 1 .. cardinality(cols) LOOP
            IF nulls[i] = 0 THEN
                RETURN QUERY SELECT t.name::text, 'not_null'::text,
                                    format('%s is never null', cols[i]), 0::bigint,
                                    '[]'::jsonb;
            ELSE
                RETURN QUERY EXECUTE format(
                    'SELECT %L::text, %L::text, %L::text, %s::bigint, '
                    '       coalesce(jsonb_agg(to_jsonb(s)), ''[]'') '
                    '  FROM (SELECT * FROM replenish_staging.%I s '
                    '         WHERE s.%I = $1 AND s.%I IS NULL LIMIT 5) s',
                    t.name, 'not_null', format('%s is never null', cols[i]), nulls[i],
                    t.name, t.keycol, cols[i]) USING day;
            END IF;
        END LOOP;
        SELECT string_agg(format('s.%I', a.attname), ', ' ORDER BY k.pos),
               string_agg(format('s.%I::text', a.attname), ', ' ORDER BY k.pos),
               string_agg(a.attname, ', ' ORDER BY k.pos)
          INTO keys, keys_text, key_names
          FROM pg_index i
          CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k (attnum, pos)
          JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
         WHERE i.indrelid = format('replenish.%I', t.name)::regclass AND i.indisprimary;
        RETURN QUERY EXECUTE format(
            'SELECT %L::text, %L::text, %L::text, count(*), '
            '       coalesce(jsonb_agg(x.j) FILTER (WHERE x.n <= 5), ''[]'') '
            '  FROM (SELECT jsonb_build_object(''key'', to_jsonb(ARRAY[%s]), '
            '                                  ''copies'', count(*)) AS j, '
            '               row_number() OVER () AS n '
            '          FROM replenish_staging.%I s WHERE s.%I = $1 '
            '         GROUP BY %s HAVING count(*) > 1) x',
            t.name, 'unique_key', format('one row per (%s)', key_names),
            keys_text, t.name, t.keycol, keys) USING day;
    END LOOP;

    -- forecast ------------------------------------------------------------------------------
    RETURN QUERY
    SELECT 'forecast', 'horizons',
           format('every active pair has one forecast for each horizon 1..%s', horizons),
           count(*), coalesce(jsonb_agg(x.j) FILTER (WHERE x.n <= 5), '[]')
      FROM (SELECT jsonb_build_object('store_id', a.store_id, 'sku_id', a.sku_id,
                                      'horizons', array_agg(f.horizon_days
                                                            ORDER BY f.horizon_days)
                                                  FILTER (WHERE f.horizon_days IS NOT NULL))
                   AS j,
                   row_number() OVER (ORDER BY a.store_id, a.sku_id) AS n
              FROM replenish_staging.active_pair a
              LEFT JOIN replenish_staging.forecast f
                ON f.run_date = day AND f.store_id = a.store_id AND f.sku_id = a.sku_id
             WHERE a.run_date = day
             GROUP BY a.store_id, a.sku_id
            HAVING count(DISTINCT f.horizon_days)
                       FILTER (WHERE f.horizon_days BETWEEN 1 AND horizons) <> horizons) x;

    RETURN QUERY
    SELECT 'forecast', 'horizon_dates',
           format('horizon_days lies in 1..%s and target_date = run_date + horizon_days',
                  horizons),
           count(*), coalesce(jsonb_agg(x.j) FILTER (WHERE x.n <= 5), '[]')
      FROM (SELECT to_jsonb(f) AS j,
                   row_number() OVER (ORDER BY f.store_id, f.sku_id, f.horizon_days) AS n
              FROM replenish_staging.forecast f
             WHERE f.run_date = day
               AND (f.horizon_days NOT BETWEEN 1 AND horizons
                    OR f.target_date <> f.run_date + f.horizon_days)) x;

    RETURN QUERY
    SELECT 'forecast', 'active_pairs', 'forecasts only for pairs active on the run date',
           count(*), coalesce(jsonb_agg(x.j) FILTER (WHERE x.n <= 5), '[]')
      FROM (SELECT jsonb_build_object('store_id', f.store_id, 'sku_id', f.sku_id) AS j,
                   row_number() OVER (ORDER BY f.store_id, f.sku_id) AS n
              FROM (SELECT DISTINCT store_id, sku_id FROM replenish_staging.forecast
                     WHERE run_date = day) f
             WHERE NOT EXISTS (SELECT 1 FROM replenish_staging.active_pair a
                                WHERE a.run_date = day AND a.store_id = f.store_id
                                  AND a.sku_id = f.sku_id)) x;

    RETURN QUERY
    SELECT 'forecast', 'finite', 'mean and quantiles are finite numbers (no NaN or infinity)',
           count(*), coalesce(jsonb_agg(x.j) FILTER (WHERE x.n <= 5), '[]')
      FROM (SELECT to_jsonb(f) AS j,
                   row_number() OVER (ORDER BY f.store_id, f.sku_id, f.horizon_days) AS n
              FROM replenish_staging.forecast f
             WHERE f.run_date = day
               AND ARRAY[f.mean, f.q50, f.q80, f.q90, f.q95, f.q99]
                   && ARRAY['NaN', 'Infinity', '-Infinity']::double precision[]) x;

    RETURN QUERY
    SELECT 'forecast', 'non_negative', 'mean and quantiles are >= 0 units',
           count(*), coalesce(jsonb_agg(x.j) FILTER (WHERE x.n <= 5), '[]')
      FROM (SELECT to_jsonb(f) AS j,
                   row_number() OVER (ORDER BY f.store_id, f.sku_id, f.horizon_days) AS n
              FROM replenish_staging.forecast f
             WHERE f.run_date = day
               AND least(f.mean, f.q50, f.q80, f.q90, f.q95, f.q99) < 0) x;

    RETURN QUERY
    SELECT 'forecast', 'quantiles_monotone', 'q50 <= q80 <= q90 <= q95 <= q99 (where given)',
           count(*), coalesce(jsonb_agg(x.j) FILTER (WHERE x.n <= 5), '[]')
      FROM (SELECT to_jsonb(f) AS j,
                   row_number() OVER (ORDER BY f.store_id, f.sku_id, f.horizon_days) AS n
              FROM replenish_staging.forecast f
             WHERE f.run_date = day
               AND EXISTS (SELECT 1
                             FROM unnest(ARRAY[f.q50, f.q80, f.q90, f.q95, f.q99])
                                  WITH ORDINALITY AS lo (q, i),
                                  unnest(ARRAY[f.q50, f.q80, f.q90, f.q95, f.q99])
                                  WITH ORDINALITY AS hi (q, i)
                            WHERE lo.i < hi.i AND lo.q > hi.q + 1e-9)) x;

    -- reorder_plan --------------------------------------------------------------------------
    RETURN QUERY
    SELECT 'reorder_plan', 'one_line_per_active_pair',
           'exactly the pairs active on the run date have a plan line',
           count(*), coalesce(jsonb_agg(x.j) FILTER (WHERE x.n <= 5), '[]')
      FROM (SELECT jsonb_build_object('store_id', coalesce(a.store_id, p.store_id),
                                      'sku_id', coalesce(a.sku_id, p.sku_id),
                                      'problem', CASE WHEN p.store_id IS NULL
                                                      THEN 'active pair without a plan line'
                                                      ELSE 'plan line for an inactive pair'
                                                 END) AS j,
                   row_number() OVER (ORDER BY coalesce(a.store_id, p.store_id),
                                               coalesce(a.sku_id, p.sku_id)) AS n
              FROM (SELECT store_id, sku_id FROM replenish_staging.active_pair
                     WHERE run_date = day) a
              FULL JOIN (SELECT DISTINCT store_id, sku_id FROM replenish_staging.reorder_plan
                          WHERE run_date = day) p
                ON p.store_id = a.store_id AND p.sku_id = a.sku_id
             WHERE a.store_id IS NULL OR p.store_id IS NULL) x;

    RETURN QUERY
    SELECT 'reorder_plan', 'non_negative', 'order_cases, order_units and order_value are >= 0',
           count(*), coalesce(jsonb_agg(x.j) FILTER (WHERE x.n <= 5), '[]')
      FROM (SELECT to_jsonb(p) AS j, row_number() OVER (ORDER BY p.store_id, p.sku_id) AS n
              FROM replenish_staging.reorder_plan p
             WHERE p.run_date = day
               AND least(p.order_cases, p.order_units, p.order_value) < 0) x;

    RETURN QUERY
    SELECT 'reorder_plan', 'case_pack', 'order_units = order_cases x case_pack',
           count(*), coalesce(jsonb_agg(x.j) FILTER (WHERE x.n <= 5), '[]')
      FROM (SELECT to_jsonb(p) AS j, row_number() OVER (ORDER BY p.store_id, p.sku_id) AS n
              FROM replenish_staging.reorder_plan p
             WHERE p.run_date = day AND p.order_units <> p.order_cases * p.case_pack) x;

    RETURN QUERY
    SELECT 'reorder_plan', 'known_store_and_sku',
           'every plan line that orders has its store and SKU in the snapshots in force '
           '(clean/stores, clean/skus), so budget and capacity can be checked',
           count(*), coalesce(jsonb_agg(x.j) FILTER (WHERE x.n <= 5), '[]')
      FROM (SELECT jsonb_build_object('store_id', p.store_id, 'sku_id', p.sku_id,
                                      'store_known', s.store_id IS NOT NULL,
                                      'sku_known', k.sku_id IS NOT NULL) AS j,
                   row_number() OVER (ORDER BY p.store_id, p.sku_id) AS n
              FROM replenish_staging.reorder_plan p
              LEFT JOIN replenish_staging.store_limits s
                ON s.run_date = day AND s.store_id = p.store_id
              LEFT JOIN replenish_staging.sku_attrs k
                ON k.run_date = day AND k.sku_id = p.sku_id
             WHERE p.run_date = day AND p.order_units <> 0
               AND (s.store_id IS NULL OR k.sku_id IS NULL)) x;

    -- Budget: order values are rounded to the paisa, so allow half a paisa per line.
    RETURN QUERY
    SELECT 'reorder_plan', 'budget', 'each store''s order_value total <= its daily_budget',
           count(*), coalesce(jsonb_agg(x.j) FILTER (WHERE x.n <= 5), '[]')
      FROM (SELECT jsonb_build_object('store_id', b.store_id, 'order_value', b.spent,
                                      'daily_budget', s.daily_budget) AS j,
                   row_number() OVER (ORDER BY b.store_id) AS n
              FROM (SELECT store_id, sum(order_value) AS spent, count(*) AS lines
                      FROM replenish_staging.reorder_plan
                     WHERE run_date = day GROUP BY store_id) b
              JOIN replenish_staging.store_limits s
                ON s.run_date = day AND s.store_id = b.store_id
             WHERE b.spent > s.daily_budget + 0.005 * b.lines
                                            + 1e-6 * greatest(1.0, abs(s.daily_budget))) x;

    -- Capacity, as optimize/checks.py: the volume ordered into a zone fits in the room the
    -- stock on hand and on order leaves (a zone already full may get no orders at all).
    RETURN QUERY
    SELECT 'reorder_plan', 'capacity',
           'per store and zone: litres ordered <= capacity - litres on hand and on order',
           count(*), coalesce(jsonb_agg(x.j) FILTER (WHERE x.n <= 5), '[]')
      FROM (SELECT jsonb_build_object('store_id', z.store_id, 'zone', z.zone,
                                      'ordered_l', round(z.ordered_l::numeric, 3),
                                      'stock_l', round(z.stock_l::numeric, 3),
                                      'capacity_l', z.capacity_l) AS j,
                   row_number() OVER (ORDER BY z.store_id, z.zone) AS n
              FROM (SELECT p.store_id, k.zone,
                           sum(p.order_units * k.volume_l) AS ordered_l,
                           sum((p.on_hand + p.on_order) * k.volume_l) AS stock_l,
                           CASE k.zone WHEN 'ambient' THEN min(s.capacity_ambient_l)
                                       WHEN 'chilled' THEN min(s.capacity_chilled_l)
                                       WHEN 'frozen' THEN min(s.capacity_frozen_l) END
                               AS capacity_l
                      FROM replenish_staging.reorder_plan p
                      JOIN replenish_staging.sku_attrs k
                        ON k.run_date = day AND k.sku_id = p.sku_id
                      JOIN replenish_staging.store_limits s
                        ON s.run_date = day AND s.store_id = p.store_id
                     WHERE p.run_date = day
                     GROUP BY p.store_id, k.zone) z
             WHERE z.ordered_l > greatest(coalesce(z.capacity_l, 0) - z.stock_l, 0)
                                 + 1e-6 * greatest(1.0, coalesce(z.capacity_l, 0))) x;

    -- purchase_order ------------------------------------------------------------------------
    -- Order values: the plan lines' are rounded to the paisa, the PO's total once.
    RETURN QUERY
    SELECT 'purchase_order', 'matches_plan',
           'one purchase order per store x supplier x delivery day of the plan lines with an '
           'order, with their line count, cases, units and value',
           count(*), coalesce(jsonb_agg(x.j) FILTER (WHERE x.n <= 5), '[]')
      FROM (SELECT jsonb_build_object(
                       'store_id', coalesce(o.store_id, p.store_id),
                       'supplier_id', coalesce(o.supplier_id, p.supplier_id),
                       'delivery_date', coalesce(o.delivery_date, p.delivery_date),
                       'purchase_orders', o.pos, 'po_lines', o.n_lines,
                       'plan_lines', p.n_lines, 'po_cases', o.order_cases,
                       'plan_cases', p.order_cases, 'po_units', o.order_units,
                       'plan_units', p.order_units, 'po_value', o.order_value,
                       'plan_value', p.order_value) AS j,
                   row_number() OVER (ORDER BY coalesce(o.store_id, p.store_id),
                                               coalesce(o.supplier_id, p.supplier_id),
                                               coalesce(o.delivery_date, p.delivery_date))
                       AS n
              FROM (SELECT store_id, supplier_id, delivery_date, count(*) AS pos,
                           sum(n_lines) AS n_lines, sum(order_cases) AS order_cases,
                           sum(order_units) AS order_units, sum(order_value) AS order_value
                      FROM replenish_staging.purchase_order
                     WHERE run_date = day GROUP BY 1, 2, 3) o
              FULL JOIN (SELECT store_id, supplier_id, delivery_date, count(*) AS n_lines,
                                sum(order_cases) AS order_cases,
                                sum(order_units) AS order_units,
                                sum(order_value) AS order_value
                           FROM replenish_staging.reorder_plan
                          WHERE run_date = day AND order_units > 0 GROUP BY 1, 2, 3) p
                ON p.store_id = o.store_id AND p.supplier_id = o.supplier_id
               AND p.delivery_date = o.delivery_date
             WHERE o.store_id IS NULL OR p.store_id IS NULL OR o.pos > 1
                OR (o.n_lines, o.order_cases, o.order_units)
                   IS DISTINCT FROM (p.n_lines, p.order_cases, p.order_units)
                OR NOT abs(o.order_value - p.order_value) <= 0.005 * p.n_lines + 0.01) x;

    -- actual_demand, kpi_daily --------------------------------------------------------------
    RETURN QUERY
    SELECT 'actual_demand', 'non_negative', 'units_sold and demand are >= 0',
           count(*), coalesce(jsonb_agg(x.j) FILTER (WHERE x.n <= 5), '[]')
      FROM (SELECT to_jsonb(d) AS j, row_number() OVER (ORDER BY d.store_id, d.sku_id) AS n
              FROM replenish_staging.actual_demand d
             WHERE d.demand_date = day AND least(d.units_sold, d.demand) < 0) x;

    RETURN QUERY
    SELECT 'kpi_daily', 'ranges',
           'shares in 0..1, waste_pct in 0..100, turnover and working capital >= 0',
           count(*), coalesce(jsonb_agg(x.j) FILTER (WHERE x.n <= 5), '[]')
      FROM (SELECT to_jsonb(k) AS j, row_number() OVER (ORDER BY k.store_id, k.policy) AS n
              FROM replenish_staging.kpi_daily k
             WHERE k.kpi_date = day
               AND (k.service_level NOT BETWEEN 0 AND 1 OR k.fill_rate NOT BETWEEN 0 AND 1
                    OR k.stockout_rate NOT BETWEEN 0 AND 1
                    OR k.waste_pct NOT BETWEEN 0 AND 100 OR k.inventory_turnover < 0
                    OR k.working_capital < 0)) x;
END
$fn$;

COMMENT ON FUNCTION replenish_staging.audit(date, integer) IS
    'Write-audit-publish audit of the staged rows of a run date: one row per rule '
    '(table, rule, description, failed_rows, sample of up to 5 offending rows as JSON). '
    'All failed_rows = 0 means the date may be published.';

-- ---------------------------------------------------------------------------------------
-- publish(day): replace day's published rows with the staged ones, then clear staging.
-- Runs in the caller's transaction: call it after audit(day) found nothing, then COMMIT.
-- kpi_daily: only the policies that were staged are replaced (a simulator's plan / minmax /
-- oracle rows of the day stay).
-- ---------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION replenish_staging.publish(day date)
RETURNS TABLE (published_table text, published_rows bigint)
LANGUAGE plpgsql
AS $fn$
DECLARE
    t    record;
    cols text;
    n    bigint;
BEGIN
    FOR t IN SELECT * FROM (VALUES (1, 'forecast', 'run_date'), (2, 'reorder_plan', 'run_date'),
                                   (3, 'purchase_order', 'run_date'),
                                   (4, 'actual_demand', 'demand_date'),
                                   (5, 'kpi_daily', 'kpi_date')) AS v (ord, name, keycol)
              ORDER BY ord LOOP
        SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) INTO cols
          FROM pg_attribute a
         WHERE a.attrelid = format('replenish.%I', t.name)::regclass
           AND a.attnum > 0 AND NOT a.attisdropped;
        IF t.name = 'kpi_daily' THEN
            DELETE FROM replenish.kpi_daily k
             WHERE k.kpi_date = day
               AND k.policy IN (SELECT s.policy FROM replenish_staging.kpi_daily s
                                 WHERE s.kpi_date = day);
        ELSE
            EXECUTE format('DELETE FROM replenish.%I WHERE %I = $1', t.name, t.keycol)
                USING day;
        END IF;
        EXECUTE format('INSERT INTO replenish.%I (%s) SELECT %s FROM replenish_staging.%I '
                       'WHERE %I = $1', t.name, cols, cols, t.name, t.keycol) USING day;
        GET DIAGNOSTICS n = ROW_COUNT;
        EXECUTE format('DELETE FROM replenish_staging.%I WHERE %I = $1', t.name, t.keycol)
            USING day;
        published_table := t.name;
        published_rows := n;
        RETURN NEXT;
    END LOOP;
    DELETE FROM replenish_staging.active_pair WHERE run_date = day;
    DELETE FROM replenish_staging.store_limits WHERE run_date = day;
    DELETE FROM replenish_staging.sku_attrs WHERE run_date = day;
END
$fn$;

COMMENT ON FUNCTION replenish_staging.publish(date) IS
    'Publish the staged rows of a run date: per table delete the date''s published rows and '
    'insert the staged ones, then clear the date''s staging rows. Runs in the caller''s '
    'transaction; call replenish_staging.audit first, in the same transaction.';

REVOKE ALL ON FUNCTION replenish_staging.audit(date, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION replenish_staging.publish(date) FROM PUBLIC;
