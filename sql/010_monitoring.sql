-- monitoring: the nightly accuracy and drift checks of `replenish run monitor` (jobs/monitor.py).
CREATE TABLE IF NOT EXISTS replenish.monitoring (
    run_date   date             NOT NULL,
    check_name text             NOT NULL,
    metric     text             NOT NULL,
    value      double precision,
    baseline   double precision,
    threshold  double precision,
    status     text             NOT NULL,
    retrain    boolean          NOT NULL,
    detail     text,
    PRIMARY KEY (run_date, check_name, metric)
);
COMMENT ON TABLE replenish.monitoring IS
    'One row per monitoring check of a nightly run: rolling forecast accuracy against the '
    'backtest baseline, and feature drift (PSI). A re-run of a date replaces its rows.';
COMMENT ON COLUMN replenish.monitoring.run_date IS 'Store day the run was about.';
COMMENT ON COLUMN replenish.monitoring.check_name IS 'accuracy or drift.';
COMMENT ON COLUMN replenish.monitoring.metric IS
    'rolling_wape_7d (forecast WAPE over the last 7 target days, all horizons) or '
    'psi_<feature> (population stability index of the feature, day vs reference window).';
COMMENT ON COLUMN replenish.monitoring.value IS 'The measured value; null when skipped.';
COMMENT ON COLUMN replenish.monitoring.baseline IS
    'For accuracy: the champion''s backtest WAPE. Null for drift.';
COMMENT ON COLUMN replenish.monitoring.threshold IS
    'accuracy: the tolerated ratio to the baseline (1.1); drift: the PSI alert level (0.25).';
COMMENT ON COLUMN replenish.monitoring.status IS
    'ok, flag (threshold passed) or skipped (not enough data; see detail).';
COMMENT ON COLUMN replenish.monitoring.retrain IS
    'True when this check asks the next nightly run to retrain the ensemble.';
COMMENT ON COLUMN replenish.monitoring.detail IS 'What was compared, in words.';
GRANT SELECT ON replenish.monitoring TO replenish_bi;
