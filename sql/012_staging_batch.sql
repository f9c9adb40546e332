-- 012_staging_batch: what the staged rows of a date were staged from, so that publish can
-- reuse the rows its audit task staged instead of staging the date a second time.
--
-- jobs/publish.py writes one row per run date in the same transaction as the staged rows:
-- ``inputs`` is a digest of the lake partitions read (file names, sizes, modification
-- times). publish stages again whenever the digest differs (a partition was rewritten after
-- the audit) and always re-runs the audit rules on what it publishes. UNLOGGED like the
-- staging tables, so a crash that empties them empties this too.
CREATE UNLOGGED TABLE IF NOT EXISTS replenish_staging.batch (
    run_date date  PRIMARY KEY,
    inputs   text  NOT NULL,
    staged   jsonb NOT NULL
);
COMMENT ON TABLE replenish_staging.batch IS
    'One row per staged run date: the digest of the lake partitions its staged rows came '
    'from and the rows staged per table (jobs/publish.py). Cleared with the staged rows.';
COMMENT ON COLUMN replenish_staging.batch.run_date IS 'Run date of the staged rows.';
COMMENT ON COLUMN replenish_staging.batch.inputs IS
    'sha256 of the input partitions'' file names, sizes and modification times.';
COMMENT ON COLUMN replenish_staging.batch.staged IS
    'Rows staged per staging table, as [[table, rows], ...] in staging order.';
