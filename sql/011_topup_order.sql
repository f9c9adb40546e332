-- topup_order: the intraday run's express top-ups (jobs/intraday.py); never changes reorder_plan.
CREATE TABLE IF NOT EXISTS replenish.topup_order (
    run_date       date             NOT NULL,
    hour           smallint         NOT NULL,
    store_id       integer          NOT NULL,
    sku_id         integer          NOT NULL,
    supplier_id    integer          NOT NULL,
    on_hand_now    integer          NOT NULL,
    sold_so_far    integer          NOT NULL,
    remaining_mean double precision,
    remaining_q90  double precision,
    factor         double precision,
    topup_cases    integer          NOT NULL CHECK (topup_cases >= 0),
    topup_units    integer          NOT NULL CHECK (topup_units >= 0),
    unit_cost      double precision,
    order_value    double precision,
    reason         text,
    PRIMARY KEY (run_date, hour, store_id, sku_id)
);
COMMENT ON TABLE replenish.topup_order IS
    'Express top-up orders of the intraday runs (every 2 hours, 08:00-22:00): SKUs expected to '
    'run out before the next delivery. Additions to the nightly reorder_plan, never changes to '
    'it. A re-run of a (run_date, hour) replaces its rows.';
COMMENT ON COLUMN replenish.topup_order.run_date IS 'Store day of the intraday run.';
COMMENT ON COLUMN replenish.topup_order.hour IS 'Local hour of the snapshot (sales before hour:00).';
COMMENT ON COLUMN replenish.topup_order.store_id IS 'Dark store.';
COMMENT ON COLUMN replenish.topup_order.sku_id IS 'Product.';
COMMENT ON COLUMN replenish.topup_order.supplier_id IS 'Supplier of the SKU.';
COMMENT ON COLUMN replenish.topup_order.on_hand_now IS
    'Estimated units on the shelf at the snapshot: last close + morning deliveries - sold.';
COMMENT ON COLUMN replenish.topup_order.sold_so_far IS 'Units sold today before the snapshot.';
COMMENT ON COLUMN replenish.topup_order.remaining_mean IS
    'Expected demand for the rest of the day, units (forecast x intraday profile x factor).';
COMMENT ON COLUMN replenish.topup_order.remaining_q90 IS
    '90th percentile of the rest of the day''s demand, units: the top-up target.';
COMMENT ON COLUMN replenish.topup_order.factor IS
    'Sales so far over expected so far for the store x category, shrunk towards 1, in [0.5, 2].';
COMMENT ON COLUMN replenish.topup_order.topup_cases IS 'Cases to send (whole cases, no MOQ).';
COMMENT ON COLUMN replenish.topup_order.topup_units IS 'Units = cases x case pack.';
COMMENT ON COLUMN replenish.topup_order.unit_cost IS 'Purchase cost per unit, INR.';
COMMENT ON COLUMN replenish.topup_order.order_value IS 'Units x unit cost, INR.';
COMMENT ON COLUMN replenish.topup_order.reason IS 'Why the line exists.';
GRANT SELECT ON replenish.topup_order TO replenish_bi;
