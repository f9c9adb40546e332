-- 004_publish_views: views for BI tools over the published tables (never over staging).
--
-- Each view and each of its columns carries a COMMENT; replenish_bi may SELECT them and
-- nothing else changes for it. Views run with their owner's rights, so they read only the
-- published tables named here.
--
-- Idempotent: CREATE OR REPLACE VIEW (a later change that drops or renames a column must
-- DROP VIEW first, in a new numbered file).

-- ---------------------------------------------------------------------------------------
-- v_reorder_plan_today: the latest published plan.
-- ---------------------------------------------------------------------------------------
CREATE OR REPLACE VIEW replenish.v_reorder_plan_today AS
SELECT p.run_date, p.store_id, p.sku_id, p.supplier_id, p.delivery_date,
       p.order_cases, p.order_units, p.case_pack, p.unit_cost, p.order_value,
       p.on_hand, p.on_order, p.forecast_coverage, p.safety_stock, p.order_up_to,
       p.expected_service_level, p.expected_waste_units, p.binding_constraint,
       p.solver_status, p.fallback_reason,
       p.order_units > 0 AS is_ordered
  FROM replenish.reorder_plan p
 WHERE p.run_date = (SELECT max(run_date) FROM replenish.reorder_plan);

COMMENT ON VIEW replenish.v_reorder_plan_today IS
    'The latest published reorder plan (the greatest run_date in reorder_plan): one row per '
    'dark store x SKU, including zero orders. Same columns as reorder_plan plus is_ordered.';
COMMENT ON COLUMN replenish.v_reorder_plan_today.run_date IS
    'Logical date of the planning run (the latest one published).';
COMMENT ON COLUMN replenish.v_reorder_plan_today.store_id IS 'Dark store identifier.';
COMMENT ON COLUMN replenish.v_reorder_plan_today.sku_id IS 'Product identifier.';
COMMENT ON COLUMN replenish.v_reorder_plan_today.supplier_id IS 'Supplier the order goes to.';
COMMENT ON COLUMN replenish.v_reorder_plan_today.delivery_date IS
    'Day the order is expected at the store: run_date + the supplier lead time.';
COMMENT ON COLUMN replenish.v_reorder_plan_today.order_cases IS
    'Cases to order (0 = do not order).';
COMMENT ON COLUMN replenish.v_reorder_plan_today.order_units IS
    'Units to order = order_cases x case_pack.';
COMMENT ON COLUMN replenish.v_reorder_plan_today.case_pack IS 'Units per case for this SKU.';
COMMENT ON COLUMN replenish.v_reorder_plan_today.unit_cost IS 'Purchase cost per unit, INR.';
COMMENT ON COLUMN replenish.v_reorder_plan_today.order_value IS
    'Purchase value of the order, INR = order_units x unit_cost.';
COMMENT ON COLUMN replenish.v_reorder_plan_today.on_hand IS
    'Units on the shelf at the close of run_date.';
COMMENT ON COLUMN replenish.v_reorder_plan_today.on_order IS
    'Units ordered earlier and not yet received at the close of run_date.';
COMMENT ON COLUMN replenish.v_reorder_plan_today.forecast_coverage IS
    'Expected demand, units, over the days this order must cover.';
COMMENT ON COLUMN replenish.v_reorder_plan_today.safety_stock IS
    'Extra units held above forecast_coverage against demand uncertainty.';
COMMENT ON COLUMN replenish.v_reorder_plan_today.order_up_to IS
    'Target inventory position, units = forecast_coverage + safety_stock.';
COMMENT ON COLUMN replenish.v_reorder_plan_today.expected_service_level IS
    'Probability (0-1) that demand until the next delivery is fully met with this order.';
COMMENT ON COLUMN replenish.v_reorder_plan_today.expected_waste_units IS
    'Units of this order expected to expire unsold.';
COMMENT ON COLUMN replenish.v_reorder_plan_today.binding_constraint IS
    'Constraint that cut the order (budget, capacity_<zone>, moq, ...); null when none.';
COMMENT ON COLUMN replenish.v_reorder_plan_today.solver_status IS
    'optimal, feasible (time limit) or heuristic (fallback rule).';
COMMENT ON COLUMN replenish.v_reorder_plan_today.fallback_reason IS
    'Why the fallback heuristic was used; null when the optimiser''s plan was used.';
COMMENT ON COLUMN replenish.v_reorder_plan_today.is_ordered IS
    'True when the line orders anything (order_units > 0).';

-- ---------------------------------------------------------------------------------------
-- v_purchase_orders: one row per purchase order (store x supplier x delivery day).
-- ---------------------------------------------------------------------------------------
CREATE OR REPLACE VIEW replenish.v_purchase_orders AS
SELECT o.run_date, o.po_id, o.store_id, o.supplier_id, o.delivery_date, o.n_lines,
       o.order_cases, o.order_units, o.order_value, o.order_volume_l, o.min_order_value,
       o.min_order_met,
       o.run_date = (SELECT max(run_date) FROM replenish.purchase_order) AS is_latest_run
  FROM replenish.purchase_order o;

COMMENT ON VIEW replenish.v_purchase_orders IS
    'Purchase orders: one row per run x dark store x supplier x delivery day with its totals. '
    'Filter on run_date (or is_latest_run); the lines are the v_reorder_plan_today / '
    'reorder_plan rows with the same run_date, store_id, supplier_id, delivery_date and '
    'is_ordered. Money in INR.';
COMMENT ON COLUMN replenish.v_purchase_orders.run_date IS
    'Logical date of the planning run that raised the order.';
COMMENT ON COLUMN replenish.v_purchase_orders.po_id IS
    'Purchase-order number PO-<run date>-<store>-<supplier>-<delivery date>.';
COMMENT ON COLUMN replenish.v_purchase_orders.store_id IS 'Dark store the goods go to.';
COMMENT ON COLUMN replenish.v_purchase_orders.supplier_id IS 'Supplier the order goes to.';
COMMENT ON COLUMN replenish.v_purchase_orders.delivery_date IS
    'Day the goods are expected at the store.';
COMMENT ON COLUMN replenish.v_purchase_orders.n_lines IS 'SKUs (order lines) on the order.';
COMMENT ON COLUMN replenish.v_purchase_orders.order_cases IS 'Cases ordered, all lines.';
COMMENT ON COLUMN replenish.v_purchase_orders.order_units IS 'Units ordered, all lines.';
COMMENT ON COLUMN replenish.v_purchase_orders.order_value IS
    'Purchase value of the order, INR, all lines.';
COMMENT ON COLUMN replenish.v_purchase_orders.order_volume_l IS
    'Shelf volume of the goods ordered, litres.';
COMMENT ON COLUMN replenish.v_purchase_orders.min_order_value IS
    'The supplier''s minimum order value per delivery, INR (0 when none).';
COMMENT ON COLUMN replenish.v_purchase_orders.min_order_met IS
    'True when order_value >= min_order_value.';
COMMENT ON COLUMN replenish.v_purchase_orders.is_latest_run IS
    'True for the orders of the latest published run.';

-- ---------------------------------------------------------------------------------------
-- v_store_kpis: daily KPIs per store against the case-study targets, with the day's orders.
-- ---------------------------------------------------------------------------------------
CREATE OR REPLACE VIEW replenish.v_store_kpis AS
SELECT k.kpi_date, k.store_id, k.policy,
       k.service_level, k.fill_rate, k.stockout_rate, k.waste_pct, k.inventory_turnover,
       k.working_capital, k.total_cost,
       k.service_level >= 0.95     AS meets_service_target,
       k.waste_pct < 6             AS meets_waste_target,
       k.inventory_turnover >= 24  AS meets_turnover_target,
       p.ordered_lines, p.ordered_units, p.ordered_value
  FROM replenish.kpi_daily k
  LEFT JOIN (SELECT run_date, store_id,
                    count(*) FILTER (WHERE order_units > 0) AS ordered_lines,
                    sum(order_units) AS ordered_units,
                    sum(order_value) AS ordered_value
               FROM replenish.reorder_plan
              GROUP BY run_date, store_id) p
    ON p.run_date = k.kpi_date AND p.store_id = k.store_id;

COMMENT ON VIEW replenish.v_store_kpis IS
    'Daily KPIs per dark store and policy (kpi_daily) with the case-study targets '
    '(service level >= 0.95, waste < 6%, turnover >= 24x) and the orders the plan of the '
    'same day placed. Filter on kpi_date and policy (observed = what really happened).';
COMMENT ON COLUMN replenish.v_store_kpis.kpi_date IS 'Day the KPIs describe (store-local).';
COMMENT ON COLUMN replenish.v_store_kpis.store_id IS 'Dark store identifier.';
COMMENT ON COLUMN replenish.v_store_kpis.policy IS
    'observed (measured), plan (simulated plan), minmax (baseline) or oracle (best possible).';
COMMENT ON COLUMN replenish.v_store_kpis.service_level IS
    'Share (0-1) of the store''s SKUs whose whole demand of the day was met.';
COMMENT ON COLUMN replenish.v_store_kpis.fill_rate IS
    'Units sold / units demanded for the day (0-1).';
COMMENT ON COLUMN replenish.v_store_kpis.stockout_rate IS
    'Share (0-1) of the store''s SKUs that ran out of stock during the day.';
COMMENT ON COLUMN replenish.v_store_kpis.waste_pct IS
    'Perishable units expired, percent (0-100) of perishable units received.';
COMMENT ON COLUMN replenish.v_store_kpis.inventory_turnover IS
    'Annualised inventory turnover, times per year.';
COMMENT ON COLUMN replenish.v_store_kpis.working_capital IS
    'Value of the inventory on hand at close, at purchase cost, INR.';
COMMENT ON COLUMN replenish.v_store_kpis.total_cost IS
    'Cost of the day, INR (ordering + holding + lost sales + waste); null when not modelled.';
COMMENT ON COLUMN replenish.v_store_kpis.meets_service_target IS
    'service_level >= 0.95; null when service_level is null.';
COMMENT ON COLUMN replenish.v_store_kpis.meets_waste_target IS
    'waste_pct < 6; null when waste_pct is null.';
COMMENT ON COLUMN replenish.v_store_kpis.meets_turnover_target IS
    'inventory_turnover >= 24; null when inventory_turnover is null.';
COMMENT ON COLUMN replenish.v_store_kpis.ordered_lines IS
    'SKUs the plan of run_date = kpi_date orders for the store (null: no plan that day).';
COMMENT ON COLUMN replenish.v_store_kpis.ordered_units IS
    'Units the plan of run_date = kpi_date orders for the store.';
COMMENT ON COLUMN replenish.v_store_kpis.ordered_value IS
    'Purchase value, INR, the plan of run_date = kpi_date orders for the store.';

-- ---------------------------------------------------------------------------------------
-- v_forecast_accuracy: published forecasts against the actual demand, once it is known.
-- ---------------------------------------------------------------------------------------
CREATE OR REPLACE VIEW replenish.v_forecast_accuracy AS
SELECT f.target_date, f.store_id, f.horizon_days, f.run_date, f.model,
       count(*)                                AS pairs,
       sum(a.demand)                           AS actual_units,
       sum(f.mean)                             AS forecast_units,
       sum(abs(f.mean - a.demand))             AS abs_error_units,
       sum(abs(f.mean - a.demand)) / nullif(sum(a.demand), 0)       AS wape,
       (sum(f.mean) - sum(a.demand)) / nullif(sum(a.demand), 0)     AS bias,
       avg((a.demand <= f.q80)::int) FILTER (WHERE f.q80 IS NOT NULL)::double precision
                                               AS coverage_q80,
       avg((a.demand <= f.q95)::int) FILTER (WHERE f.q95 IS NOT NULL)::double precision
                                               AS coverage_q95
  FROM replenish.forecast f
  JOIN replenish.actual_demand a
    ON a.demand_date = f.target_date AND a.store_id = f.store_id AND a.sku_id = f.sku_id
 WHERE a.demand IS NOT NULL
 GROUP BY f.target_date, f.store_id, f.horizon_days, f.run_date, f.model;

COMMENT ON VIEW replenish.v_forecast_accuracy IS
    'Forecast accuracy per target day x store x horizon (and model): the published '
    'forecasts joined with actual_demand of the target day, once it is published; SKUs '
    'whose demand is unknown are left out. To aggregate over days or stores, sum '
    'abs_error_units, forecast_units and actual_units and divide (WAPE = sum abs_error_units '
    '/ sum actual_units, bias = (sum forecast_units - sum actual_units) / sum actual_units); '
    'never average wape.';
COMMENT ON COLUMN replenish.v_forecast_accuracy.target_date IS
    'Day whose demand was forecast (and is now known).';
COMMENT ON COLUMN replenish.v_forecast_accuracy.store_id IS 'Dark store identifier.';
COMMENT ON COLUMN replenish.v_forecast_accuracy.horizon_days IS
    'Days ahead the forecast was made (1 = the night before).';
COMMENT ON COLUMN replenish.v_forecast_accuracy.run_date IS
    'Run that made the forecast = target_date - horizon_days.';
COMMENT ON COLUMN replenish.v_forecast_accuracy.model IS 'Forecaster that produced the numbers.';
COMMENT ON COLUMN replenish.v_forecast_accuracy.pairs IS 'SKUs of the store compared.';
COMMENT ON COLUMN replenish.v_forecast_accuracy.actual_units IS
    'Actual demand, units, summed over the SKUs (stock-out corrected).';
COMMENT ON COLUMN replenish.v_forecast_accuracy.forecast_units IS
    'Forecast mean demand, units, summed over the SKUs.';
COMMENT ON COLUMN replenish.v_forecast_accuracy.abs_error_units IS
    'Sum over SKUs of |forecast mean - actual demand|, units.';
COMMENT ON COLUMN replenish.v_forecast_accuracy.wape IS
    'Weighted absolute percentage error as a fraction = abs_error_units / actual_units '
    '(lower is better); null when actual_units = 0.';
COMMENT ON COLUMN replenish.v_forecast_accuracy.bias IS
    'Relative bias = (forecast_units - actual_units) / actual_units: > 0 over-forecast, '
    '< 0 under-forecast; null when actual_units = 0.';
COMMENT ON COLUMN replenish.v_forecast_accuracy.coverage_q80 IS
    'Share (0-1) of SKUs whose actual demand was <= the forecast q80 (ideal 0.80); null '
    'without quantiles.';
COMMENT ON COLUMN replenish.v_forecast_accuracy.coverage_q95 IS
    'Share (0-1) of SKUs whose actual demand was <= the forecast q95 (ideal 0.95); null '
    'without quantiles.';

GRANT SELECT ON replenish.v_reorder_plan_today, replenish.v_purchase_orders,
                replenish.v_store_kpis, replenish.v_forecast_accuracy TO replenish_bi;
REVOKE INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER
    ON replenish.v_reorder_plan_today, replenish.v_purchase_orders,
       replenish.v_store_kpis, replenish.v_forecast_accuracy FROM replenish_bi;
