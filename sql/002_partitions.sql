-- 002_partitions: monthly partitions for every range-partitioned table in schema replenish.
--
-- Call replenish.ensure_partitions(from, to) BEFORE loading a date (publish does it for
-- its run date; `jobs.warehouse.ensure_partitions` wraps it). Partition names are
-- <table>_pYYYYMM, covering [first of month, first of next month).
--
-- If rows for a month already sit in the table's DEFAULT partition (they were loaded
-- before the month's partition existed), a plain CREATE TABLE ... PARTITION OF fails.
-- ensure_month_partition then creates the partition as a standalone table, moves those
-- rows out of DEFAULT into it and attaches it, all in the caller's transaction, so no
-- row is lost and a failure leaves everything as it was.
--
-- Idempotent: CREATE OR REPLACE; existing partitions are left alone.

CREATE OR REPLACE FUNCTION replenish.ensure_month_partition(parent text, month date)
RETURNS boolean
LANGUAGE plpgsql
AS $fn$
DECLARE
    lo        date := date_trunc('month', month)::date;
    hi        date := (date_trunc('month', month) + interval '1 month')::date;
    part      text := format('%s_p%s', parent, to_char(month, 'YYYYMM'));
    dflt      text;
    keycol    text;
    has_rows  boolean := false;
BEGIN
    IF to_regclass(format('replenish.%I', part)) IS NOT NULL THEN
        RETURN false;
    END IF;

    SELECT a.attname INTO keycol
      FROM pg_partitioned_table p
      JOIN pg_class c ON c.oid = p.partrelid
      JOIN pg_namespace n ON n.oid = c.relnamespace
      JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = p.partattrs[0]
     WHERE n.nspname = 'replenish' AND c.relname = parent AND p.partstrat = 'r';
    IF keycol IS NULL THEN
        RAISE EXCEPTION 'replenish.%: not a range-partitioned table', parent;
    END IF;

    SELECT c.relname INTO dflt
      FROM pg_partitioned_table p
      JOIN pg_class c ON c.oid = p.partdefid
     WHERE p.partrelid = format('replenish.%I', parent)::regclass;

    IF dflt IS NOT NULL THEN
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM replenish.%I WHERE %I >= $1 AND %I < $2)',
                       dflt, keycol, keycol)
           INTO has_rows USING lo, hi;
    END IF;

    IF NOT has_rows THEN
        EXECUTE format('CREATE TABLE IF NOT EXISTS replenish.%I PARTITION OF replenish.%I '
                       'FOR VALUES FROM (%L) TO (%L)', part, parent, lo, hi);
    ELSE
        EXECUTE format('CREATE TABLE replenish.%I (LIKE replenish.%I INCLUDING DEFAULTS '
                       'INCLUDING CONSTRAINTS)', part, parent);
        EXECUTE format('WITH moved AS (DELETE FROM replenish.%I WHERE %I >= $1 AND %I < $2 '
                       'RETURNING *) INSERT INTO replenish.%I SELECT * FROM moved',
                       dflt, keycol, keycol, part) USING lo, hi;
        EXECUTE format('ALTER TABLE replenish.%I ATTACH PARTITION replenish.%I '
                       'FOR VALUES FROM (%L) TO (%L)', parent, part, lo, hi);
        RAISE NOTICE 'replenish.%: moved rows for % from % into the new partition %',
                     parent, to_char(lo, 'YYYY-MM'), dflt, part;
    END IF;
    RETURN true;
END
$fn$;

COMMENT ON FUNCTION replenish.ensure_month_partition(text, date) IS
    'Create the monthly partition replenish.<parent>_pYYYYMM holding the month of the given '
    'date, moving any rows of that month out of the DEFAULT partition. Returns true if it '
    'created the partition, false if it existed.';

CREATE OR REPLACE FUNCTION replenish.ensure_partitions(from_date date, to_date date)
RETURNS integer
LANGUAGE plpgsql
AS $fn$
DECLARE
    t       record;
    m       date;
    created integer := 0;
BEGIN
    IF from_date IS NULL OR to_date IS NULL OR to_date < from_date THEN
        RAISE EXCEPTION 'replenish.ensure_partitions: need from_date <= to_date, got % and %',
                        from_date, to_date;
    END IF;
    -- One caller at a time: two loads preparing the same month must not race.
    PERFORM pg_advisory_xact_lock(hashtext('replenish.ensure_partitions'));
    FOR t IN
        SELECT c.relname
          FROM pg_partitioned_table p
          JOIN pg_class c ON c.oid = p.partrelid
          JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'replenish' AND p.partstrat = 'r' AND NOT c.relispartition
         ORDER BY c.relname
    LOOP
        m := date_trunc('month', from_date)::date;
        WHILE m <= to_date LOOP
            IF replenish.ensure_month_partition(t.relname, m) THEN
                created := created + 1;
            END IF;
            m := (m + interval '1 month')::date;
        END LOOP;
    END LOOP;
    RETURN created;
END
$fn$;

COMMENT ON FUNCTION replenish.ensure_partitions(date, date) IS
    'Create the monthly partitions of every range-partitioned replenish table for all months '
    'from from_date to to_date (inclusive). Idempotent; returns how many it created. Call it '
    'before loading a date.';

-- Only the owner (the migrating role) prepares partitions; BI readers must not.
REVOKE ALL ON FUNCTION replenish.ensure_month_partition(text, date) FROM PUBLIC;
REVOKE ALL ON FUNCTION replenish.ensure_partitions(date, date) FROM PUBLIC;
