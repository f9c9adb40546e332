"""The warehouse against a real PostgreSQL: lifecycle, migrations, comments, BI role, partitions.

By default one embedded server per module runs under a temporary REPLENISH_HOME on a free
port and is stopped at the end. With REPLENISH_WAREHOUSE_URL set, the tests run against
that server instead (lifecycle tests are skipped; writes are rolled back or deleted).
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from psycopg2 import errors

from jobs import warehouse
from jobs.config import Config

EXTERNAL_URL = os.environ.get("REPLENISH_WAREHOUSE_URL") or None
embedded_only = pytest.mark.skipif(EXTERNAL_URL is not None,
                                   reason="REPLENISH_WAREHOUSE_URL set: server not ours")

#: Tables planners read: the table and every column must carry a comment.
PLANNER_TABLES = ("forecast", "reorder_plan", "kpi_daily", "model_run", "data_quality",
                  "schema_migrations")
PARTITIONED = ("data_quality", "forecast", "kpi_daily", "reorder_plan")
VERSIONS = [version for version, _ in warehouse.migration_files()]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def cfg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Config]:
    home = tmp_path_factory.mktemp("warehouse")
    if EXTERNAL_URL is not None:
        yield Config(home=home, warehouse_url=EXTERNAL_URL)
        return
    config = Config(home=home, pg_port=_free_port())
    warehouse.start(config)
    try:
        yield config
    finally:
        warehouse.stop(config)


@pytest.fixture(scope="module")
def migrated(cfg: Config) -> tuple[list[str], list[str]]:
    """(first, second) result of running migrate twice."""
    return warehouse.migrate(cfg), warehouse.migrate(cfg)


@pytest.fixture
def conn(cfg: Config, migrated: Any) -> Iterator[Any]:
    """A connection whose open transaction is rolled back at the end of the test."""
    connection = warehouse.connect(cfg)
    try:
        yield connection
    finally:
        connection.rollback()
        connection.close()


def _uncommented(cur: Any, tables: tuple[str, ...]) -> list[str]:
    """Tables (missing or without comment) and columns without a comment in schema replenish."""
    cur.execute("""
        SELECT c.relname, NULL::text, coalesce(obj_description(c.oid, 'pg_class'), '')
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'replenish' AND c.relname = ANY(%(t)s)
        UNION ALL
        SELECT c.relname, a.attname, coalesce(col_description(c.oid, a.attnum), '')
          FROM pg_attribute a
          JOIN pg_class c ON c.oid = a.attrelid
          JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'replenish' AND c.relname = ANY(%(t)s)
           AND a.attnum > 0 AND NOT a.attisdropped
    """, {"t": list(tables)})
    rows = cur.fetchall()
    found = {table for table, _, _ in rows}
    missing = [f"{table} (no such table)" for table in tables if table not in found]
    return missing + sorted(table if column is None else f"{table}.{column}"
                            for table, column, text in rows if not text.strip())


def _forecast_row(run_date: date, store_id: int = 1, sku_id: int = 1) -> dict[str, Any]:
    return {"run_date": run_date, "store_id": store_id, "sku_id": sku_id,
            "target_date": run_date, "horizon_days": 0, "model": "test", "mean": 1.5}


def _insert_forecast(cur: Any, row: dict[str, Any]) -> str:
    """Insert one forecast row; return the partition it landed in."""
    cur.execute("""
        INSERT INTO replenish.forecast (run_date, store_id, sku_id, target_date,
                                        horizon_days, model, mean)
        VALUES (%(run_date)s, %(store_id)s, %(sku_id)s, %(target_date)s, %(horizon_days)s,
                %(model)s, %(mean)s)
        RETURNING tableoid::regclass::text
    """, row)
    return cur.fetchone()[0]


def _partition_of(cur: Any, run_date: date) -> list[str]:
    cur.execute("SELECT tableoid::regclass::text FROM replenish.forecast "
                "WHERE run_date = %s AND model = 'test'", (run_date,))
    return [row[0] for row in cur.fetchall()]


# ----------------------------------------------------------------------------- no server


def test_url_never_contains_a_password() -> None:
    for external in ("postgresql://planner:s3cret@db.example:5432/replenish?sslmode=require",
                     "postgresql://planner@db.example/replenish?password=s3cret"):
        shown = warehouse.url(Config(warehouse_url=external))
        assert "s3cret" not in shown
        assert shown.startswith("postgresql://planner@db.example")
    assert warehouse.url(Config(pg_port=5555)) == "postgresql://postgres@127.0.0.1:5555/replenish"


def test_migration_files_are_numbered_and_ordered() -> None:
    assert VERSIONS == sorted(VERSIONS)
    assert VERSIONS[0] == "001_schema"


# ----------------------------------------------------------------------------- lifecycle


@embedded_only
def test_start_is_idempotent_and_status_reports_the_server(cfg: Config) -> None:
    first = warehouse.start(cfg)
    assert warehouse.start(cfg) == first == warehouse.url(cfg)
    info = warehouse.status(cfg)
    assert info["running"] is True and info["embedded"] is True
    assert info["url"] == first and str(cfg.pg_port) in first
    assert info["data_dir"] == str(cfg.pg_dir.resolve() / "data")
    assert str(info["server_version"]).startswith("18")


@embedded_only
def test_server_outlives_its_process_and_keeps_data_across_restart(
        cfg: Config, migrated: Any) -> None:
    with warehouse.connect(cfg) as connection, connection.cursor() as cur:
        cur.execute("INSERT INTO replenish.model_run (run_id, run_date, model_name) "
                    "VALUES ('restart-test', '2030-01-01', 'demand')")
    connection.close()

    warehouse.stop(cfg)
    assert warehouse.status(cfg)["running"] is False
    warehouse.stop(cfg)  # stopping a stopped server is a no-op

    # Start from another process that then exits: the server must keep running.
    env = {**os.environ, "REPLENISH_HOME": str(cfg.home), "REPLENISH_PG_PORT": str(cfg.pg_port)}
    env.pop("REPLENISH_WAREHOUSE_URL", None)
    env.pop("REPLENISH_CONFIG", None)
    code = "from jobs.config import load_config; from jobs import warehouse; " \
           "print(warehouse.start(load_config()))"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == warehouse.url(cfg)

    info = warehouse.status(cfg)
    assert info["running"] is True
    assert info["applied_migrations"] == VERSIONS
    with warehouse.connect(cfg) as connection, connection.cursor() as cur:
        cur.execute("SELECT model_name FROM replenish.model_run WHERE run_id = 'restart-test'")
        assert cur.fetchall() == [("demand",)]
    connection.close()


@embedded_only
def test_a_busy_port_is_named_in_the_error(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen(1)
        port = squatter.getsockname()[1]
        other = Config(home=tmp_path, pg_port=port)
        with pytest.raises(warehouse.WarehouseError, match=rf"port {port}.*REPLENISH_PG_PORT"):
            warehouse.start(other)
    assert not (tmp_path / "pg" / "data" / "PG_VERSION").exists()


def test_external_server_that_does_not_answer_is_reported() -> None:
    dead = Config(warehouse_url=f"postgresql://nobody@127.0.0.1:{_free_port()}/replenish")
    with pytest.raises(warehouse.WarehouseError, match="does not answer"):
        warehouse.start(dead)


# ----------------------------------------------------------------------------- migrations


def test_migrate_twice_applies_once(cfg: Config, migrated: tuple[list[str], list[str]]) -> None:
    first, second = migrated
    assert second == []
    if EXTERNAL_URL is None:
        assert first == VERSIONS
    assert set(VERSIONS) <= set(warehouse.status(cfg)["applied_migrations"])


def test_ddl_files_apply_twice_directly_without_losing_rows(conn: Any) -> None:
    with conn.cursor() as cur:
        _insert_forecast(cur, _forecast_row(date(2099, 1, 1)))
        for _, text in warehouse.migration_files():
            cur.execute(text)
            cur.execute(text)
        assert _partition_of(cur, date(2099, 1, 1)) == ["replenish.forecast_default"]


# ----------------------------------------------------------------------------- comments


def test_every_table_and_column_has_a_comment(conn: Any) -> None:
    with conn.cursor() as cur:
        assert _uncommented(cur, PLANNER_TABLES) == []


def test_comment_check_catches_a_missing_comment(conn: Any) -> None:
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE replenish.zz_uncommented (a int, b int)")
        cur.execute("COMMENT ON COLUMN replenish.zz_uncommented.a IS 'documented'")
        assert _uncommented(cur, ("zz_uncommented", "zz_absent")) == [
            "zz_absent (no such table)", "zz_uncommented", "zz_uncommented.b"]


# ----------------------------------------------------------------------------- BI role

_FORBIDDEN = {
    "insert": "INSERT INTO replenish.model_run (run_id, run_date, model_name) "
              "VALUES ('bi', '2030-01-01', 'm')",
    "insert into a partition": "INSERT INTO replenish.forecast_default (run_date, store_id, "
                               "sku_id, target_date, horizon_days, model, mean) VALUES "
                               "('2099-01-01', 1, 1, '2099-01-01', 0, 'bi', 1)",
    "update": "UPDATE replenish.forecast SET mean = 0",
    "delete": "DELETE FROM replenish.reorder_plan",
    "truncate": "TRUNCATE replenish.kpi_daily",
    "create": "CREATE TABLE replenish.bi_scratch (a int)",
    "prepare partitions": "SELECT replenish.ensure_partitions('2099-01-01', '2099-01-31')",
}


def _as_bi(cur: Any) -> None:
    try:
        cur.execute("SAVEPOINT set_role")
        cur.execute("SET LOCAL ROLE replenish_bi")
    except errors.InsufficientPrivilege:
        cur.execute("ROLLBACK TO SAVEPOINT set_role")
        pytest.skip("the test's database user may not SET ROLE replenish_bi")


@pytest.mark.parametrize("what", sorted(_FORBIDDEN))
def test_bi_role_cannot_write(conn: Any, what: str) -> None:
    with conn.cursor() as cur:
        _as_bi(cur)
        with pytest.raises(errors.InsufficientPrivilege):
            cur.execute(_FORBIDDEN[what])


def test_bi_role_reads_every_table_and_new_partitions(conn: Any) -> None:
    with conn.cursor() as cur:
        cur.execute("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'replenish_bi'")
        assert cur.fetchall() == [(False,)]
        # A partition created after the grants (as the owner) is readable via default privileges.
        cur.execute("SELECT replenish.ensure_partitions('2098-03-01', '2098-03-31')")
        _as_bi(cur)
        for table in PLANNER_TABLES + ("forecast_default", "forecast_p209803"):
            cur.execute(f"SELECT count(*) FROM replenish.{table}")
            assert cur.fetchone()[0] >= 0


# ----------------------------------------------------------------------------- partitions


def _partitioned_tables(cfg: Config) -> list[str]:
    connection = warehouse.connect(cfg)
    try:
        with connection, connection.cursor() as cur:
            cur.execute("""
                SELECT c.relname FROM pg_partitioned_table p
                  JOIN pg_class c ON c.oid = p.partrelid
                 WHERE c.relnamespace = 'replenish'::regnamespace AND NOT c.relispartition
                 ORDER BY 1""")
            return [row[0] for row in cur.fetchall()]
    finally:
        connection.close()


def test_the_daily_tables_are_range_partitioned_with_a_default(cfg: Config,
                                                              migrated: Any) -> None:
    assert set(PARTITIONED) <= set(_partitioned_tables(cfg))
    with warehouse.connect(cfg) as connection, connection.cursor() as cur:
        cur.execute("""
            SELECT c.relname, p.partstrat, d.relname FROM pg_partitioned_table p
              JOIN pg_class c ON c.oid = p.partrelid JOIN pg_class d ON d.oid = p.partdefid
             WHERE c.relname = ANY(%s) AND c.relnamespace = 'replenish'::regnamespace
             ORDER BY 1""", (list(PARTITIONED),))
        assert cur.fetchall() == [(t, "r", f"{t}_default") for t in PARTITIONED]
    connection.close()


def test_ensure_partitions_creates_months_and_routes_rows(cfg: Config, migrated: Any) -> None:
    created = warehouse.ensure_partitions(cfg, date(2031, 1, 15), date(2031, 3, 2))
    if EXTERNAL_URL is None:
        assert created == len(_partitioned_tables(cfg)) * 3
    assert warehouse.ensure_partitions(cfg, date(2031, 1, 1), date(2031, 3, 31)) == 0

    connection = warehouse.connect(cfg)
    try:
        with connection, connection.cursor() as cur:
            cur.execute("""
                SELECT c.relname, pg_get_expr(c.relpartbound, c.oid)
                  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                 WHERE i.inhparent = 'replenish.kpi_daily'::regclass
                   AND c.relname LIKE 'kpi_daily_p2031%'
                 ORDER BY 1""")
            assert cur.fetchall() == [
                ("kpi_daily_p203101", "FOR VALUES FROM ('2031-01-01') TO ('2031-02-01')"),
                ("kpi_daily_p203102", "FOR VALUES FROM ('2031-02-01') TO ('2031-03-01')"),
                ("kpi_daily_p203103", "FOR VALUES FROM ('2031-03-01') TO ('2031-04-01')")]
            assert _insert_forecast(cur, _forecast_row(date(2031, 2, 10))) \
                == "replenish.forecast_p203102"
            assert _insert_forecast(cur, _forecast_row(date(2031, 3, 31))) \
                == "replenish.forecast_p203103"
    finally:
        _delete_test_rows(connection)
        connection.close()


def test_ensure_partitions_moves_rows_out_of_the_default_partition(
        cfg: Config, migrated: Any) -> None:
    connection = warehouse.connect(cfg)
    try:
        with connection, connection.cursor() as cur:
            day = _unpartitioned_day(cur, date(2032, 5, 20))
            partition = f"replenish.forecast_p{day:%Y%m}"
            assert _insert_forecast(cur, _forecast_row(day, sku_id=1)) \
                == "replenish.forecast_default"
            _insert_forecast(cur, _forecast_row(day, sku_id=2))
        assert warehouse.ensure_partitions(cfg, day, day) == len(_partitioned_tables(cfg))
        with connection, connection.cursor() as cur:
            assert _partition_of(cur, day) == [partition] * 2
            cur.execute("SELECT count(*) FROM replenish.forecast_default WHERE run_date = %s",
                        (day,))
            assert cur.fetchone()[0] == 0
    finally:
        _delete_test_rows(connection)
        connection.close()


def test_ensure_partitions_rejects_a_reversed_range(cfg: Config) -> None:
    with pytest.raises(ValueError, match="after"):
        warehouse.ensure_partitions(cfg, date(2031, 2, 1), date(2031, 1, 1))


def _unpartitioned_day(cur: Any, day: date) -> date:
    """``day`` or the same day of a later month whose forecast partition does not exist yet."""
    while True:
        cur.execute("SELECT to_regclass(%s)", (f"replenish.forecast_p{day:%Y%m}",))
        if cur.fetchone()[0] is None:
            return day
        day = date(day.year + (day.month == 12), day.month % 12 + 1, day.day)


def _delete_test_rows(connection: Any) -> None:
    connection.rollback()
    with connection, connection.cursor() as cur:
        cur.execute("DELETE FROM replenish.forecast WHERE model = 'test'")


# ----------------------------------------------------------------------------- psql


def test_psql_runs_against_the_warehouse(cfg: Config, migrated: Any,
                                         capfd: pytest.CaptureFixture[str]) -> None:
    code = warehouse.psql(cfg, ["-X", "-A", "-t", "-c",
                                "SELECT count(*) FROM replenish.schema_migrations"])
    assert code == 0
    assert int(capfd.readouterr().out.strip()) >= len(VERSIONS)
    assert warehouse.psql(cfg, ["-X", "-q", "-c", "SELECT no_such_column"]) != 0

