-- 003_bi_role: read-only access for BI tools.
--
-- replenish_bi is a NOLOGIN group role: it can read every table (and every partition
-- created later) in schema replenish, and nothing else. No password lives here; an admin
-- gives a person or a BI tool a login of its own and makes it a member:
--
--     CREATE ROLE metabase LOGIN PASSWORD '...' IN ROLE replenish_bi;   -- run by an admin
--
-- Default privileges apply to tables created by the role that runs this file, so run
-- migrations and ensure_partitions() as the same (owning) role.
--
-- Idempotent: the role is created only if missing; GRANT/REVOKE may repeat.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'replenish_bi') THEN
        IF NOT EXISTS (SELECT 1 FROM pg_roles
                        WHERE rolname = current_user AND (rolsuper OR rolcreaterole)) THEN
            RAISE EXCEPTION 'role replenish_bi is missing and % may not create roles',
                            current_user
                USING HINT = 'Ask a database admin to run: CREATE ROLE replenish_bi NOLOGIN;'
                             ' then run `replenish warehouse migrate` again.';
        END IF;
        CREATE ROLE replenish_bi NOLOGIN;
    END IF;
END
$$;

COMMENT ON ROLE replenish_bi IS
    'Read-only group role for BI tools on schema replenish. Grant it to login roles: '
    'CREATE ROLE <name> LOGIN IN ROLE replenish_bi.';

GRANT USAGE ON SCHEMA replenish TO replenish_bi;
REVOKE CREATE ON SCHEMA replenish FROM replenish_bi;
REVOKE CREATE ON SCHEMA replenish FROM PUBLIC;

GRANT SELECT ON ALL TABLES IN SCHEMA replenish TO replenish_bi;
REVOKE INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER
    ON ALL TABLES IN SCHEMA replenish FROM replenish_bi;

-- Tables and partitions created later by this role are readable too.
ALTER DEFAULT PRIVILEGES IN SCHEMA replenish GRANT SELECT ON TABLES TO replenish_bi;
