"""The PostGIS catalog as the API server uses it: its role's rights, and the connection limit.

Every check connects as the user the deployed API server is configured with (its ``-dbUser`` and
the password its env resolves to), never as the superuser, and leaves the catalog unchanged.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import psycopg
import pytest

from fixtures.access import APPLICATION_NAME, Database, Storage, connection_sqlstate, transaction
from fixtures.checks import consolidate_async
from fixtures.config import Settings
from fixtures.deployed import AutoscalerConfig, ServerConfig
from fixtures.podwatch import PodWatch
from fixtures.stack import Stack
from geocube_stack.client import GeocubeClient
from suites.database.capacity import component_selectors, need_of, pods_by_address, sample_while
from suites.database.holder import ConnectionHolder
from suites.database.limits import read_limits

pytestmark = pytest.mark.database

TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE")
SEQUENCE_PRIVILEGES = ("USAGE", "SELECT")
# Connections left free when the holder pod fills the server: Geocube's own pools may grow meanwhile.
HEADROOM = 8


def _missing_privileges(cur: psycopg.Cursor[Any], schema: str, relkinds: str, privileges: tuple[str, ...]) -> list[str]:
    """``relation: PRIVILEGE`` for every privilege the current user lacks on relations of ``schema``."""
    checks = ", ".join(f"has_table_privilege(c.oid, '{p}') AS \"{p}\"" for p in privileges)
    if relkinds == "S":
        checks = ", ".join(f"has_sequence_privilege(c.oid, '{p}') AS \"{p}\"" for p in privileges)
    cur.execute(
        f"SELECT c.relname, {checks} FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind = ANY(%s) ORDER BY c.relname",
        (schema, list(relkinds)),
    )
    missing = []
    for row in cur.fetchall():
        missing += [f"{schema}.{row[0]}: {p}" for p, granted in zip(privileges, row[1:], strict=True) if not granted]
    return missing


@pytest.mark.requirement("DB-PRIVILEGES")
def test_server_user_has_the_documented_privileges(
    database: Database, deployed_server: ServerConfig, evidence: Any
) -> None:
    with transaction(database) as cur:
        cur.execute(
            "SELECT has_database_privilege(current_database(), 'CONNECT'), "
            "has_schema_privilege('geocube', 'USAGE'), "
            "(SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            " WHERE n.nspname = 'geocube' AND c.relkind IN ('r', 'p'))"
        )
        can_connect, schema_usage, tables = cur.fetchone() or (False, False, 0)
        missing = [] if can_connect else ["database: CONNECT"]
        missing += [] if schema_usage else ["schema geocube: USAGE"]
        missing += _missing_privileges(cur, "geocube", "rp", TABLE_PRIVILEGES)
        missing += _missing_privileges(cur, "geocube", "S", SEQUENCE_PRIVILEGES)
        if deployed_server.messaging == "pgqueue":
            cur.execute("SELECT to_regclass('pgq_jobs') IS NOT NULL, to_regclass('pgq_jobs_id_seq') IS NOT NULL")
            has_table, has_seq = cur.fetchone() or (False, False)
            assert has_table and has_seq, "pgqueue messaging is configured but pgq_jobs/pgq_jobs_id_seq do not exist"
            cur.execute(
                "SELECT has_table_privilege('pgq_jobs', 'SELECT'), has_table_privilege('pgq_jobs', 'INSERT'), "
                "has_table_privilege('pgq_jobs', 'UPDATE'), has_table_privilege('pgq_jobs', 'DELETE'), "
                "has_sequence_privilege('pgq_jobs_id_seq', 'USAGE')"
            )
            row = cur.fetchone() or ()
            names = [*(f"pgq_jobs: {p}" for p in TABLE_PRIVILEGES), "pgq_jobs_id_seq: USAGE"]
            missing += [name for name, granted in zip(names, row, strict=True) if not granted]
    evidence.add("user", deployed_server.db_user)
    evidence.add("catalog tables checked", tables)
    assert tables > 0, "schema geocube holds no table: Geocube's create.sql was not applied"
    assert not missing, (
        f"database user {deployed_server.db_user!r} lacks {len(missing)} privilege(s) Geocube needs:\n  "
        + "\n  ".join(missing)
        + "\nFix: GRANT them as create.sql's commented-out role section describes."
    )
    _write_round_trip(database)


def _write_round_trip(database: Database) -> None:
    """INSERT, UPDATE, SELECT, DELETE a palette row, then roll back: the rights work, not only exist."""
    name = f"acceptance-probe-{secrets.token_hex(4)}"
    with transaction(database) as cur:
        try:
            cur.execute("INSERT INTO geocube.palette (name, points) VALUES (%s, '{}')", (name,))
            cur.execute("UPDATE geocube.palette SET points = '{}' WHERE name = %s", (name,))
            cur.execute("SELECT count(*) FROM geocube.palette WHERE name = %s", (name,))
            seen = (cur.fetchone() or (0,))[0]
            cur.execute("DELETE FROM geocube.palette WHERE name = %s", (name,))
        except psycopg.Error as err:
            pytest.fail(
                f"a write round-trip on geocube.palette (rolled back) failed: SQLSTATE {err.sqlstate}: "
                f"{str(err).strip()}",
                pytrace=False,
            )
    assert seen == 1, f"the inserted palette row was not visible in its own transaction (count {seen})"


@pytest.mark.requirement("DB-LEAST-PRIVILEGE")
def test_server_user_cannot_run_ddl(database: Database, deployed_server: ServerConfig, evidence: Any) -> None:
    user = deployed_server.db_user
    flags = database.scalar(
        "SELECT json_build_object('superuser', rolsuper, 'createrole', rolcreaterole, 'createdb', rolcreatedb) "
        "FROM pg_roles WHERE rolname = current_user"
    )
    evidence.add("role attributes", flags)
    granted = [name for name, value in flags.items() if value]
    assert not granted, f"database user {user!r} has {', '.join(granted)}: Geocube needs only DML. Fix: ALTER ROLE"
    for statement in (
        "CREATE TABLE geocube.acceptance_ddl_probe (i int)",
        "ALTER TABLE geocube.palette ADD COLUMN acceptance_probe int",
        "DROP TABLE geocube.job_logs",
    ):
        with transaction(database) as cur:
            try:
                cur.execute(statement)
            except psycopg.Error as err:
                assert err.sqlstate == "42501", (
                    f"`{statement}` failed with SQLSTATE {err.sqlstate} ({str(err).strip()}), expected 42501 "
                    "insufficient_privilege"
                )
                continue
        pytest.fail(
            f"database user {user!r} could run `{statement}` (rolled back): it owns or may alter the catalog. "
            "Fix: let the superuser own the schema and GRANT only DML to the server's user.",
            pytrace=False,
        )


@pytest.mark.requirement("DB-AUTH")
def test_wrong_password_is_rejected(database: Database, deployed_server: ServerConfig, evidence: Any) -> None:
    wrong = deployed_server.db_password + "-wrong"
    try:
        conn = database.connect(password=wrong)
    except psycopg.OperationalError as err:
        assert connection_sqlstate(err) == "28P01", (
            f"the connection with a wrong password failed, but not as an authentication failure (28P01): {err}"
        )
        evidence.add("wrong password", f"rejected with SQLSTATE 28P01 (user {deployed_server.db_user})")
        return
    conn.close()
    pytest.fail(
        f"a wrong password for {deployed_server.db_user!r} was accepted: pg_hba.conf trusts these connections "
        "(through a port-forward they arrive from 127.0.0.1, which initdb trusts by default). Fix: scram-sha-256 "
        "(or md5) for every host line, e.g. POSTGRES_INITDB_ARGS='--auth-host=scram-sha-256'.",
        pytrace=False,
    )


@pytest.mark.requirement("DB-CONN-SETTINGS")
def test_connection_settings_give_the_role_1024_connections(database: Database, evidence: Any) -> None:
    """The read-only half of DB-CONN-LIMIT: the settings and limits that decide it, and the headroom now."""
    with database.connect(autocommit=True) as conn:
        limits = read_limits(conn)
    evidence.add("connections", limits.evidence())
    problems = limits.problems()
    assert not problems, "\n".join(problems)


@pytest.mark.slow
@pytest.mark.requirement("DB-CONN-LIMIT")
def test_connection_limit_is_1024_and_enforced(
    database: Database, deployed_stack: Stack, deployed_server: ServerConfig, evidence: Any
) -> None:
    with database.connect(autocommit=True) as conn:
        limits = read_limits(conn)
    evidence.add("limits before filling", limits.evidence())
    problems = limits.problems()
    # Read first: a wrong setting or a role limit is named at once, not after waiting for refused connections.
    assert not problems, "\n".join(problems)
    max_connections, reserved = limits.max_connections, limits.reserved
    opened: list[psycopg.Connection[Any]] = []
    # Opened first: it counts itself, and it can still observe once the server refuses new connections.
    with database.connect(autocommit=True) as observer:
        hold = max_connections - reserved - _client_backends(observer) - HEADROOM
        with ConnectionHolder(deployed_stack, deployed_server, hold) as holder:
            holder.wait_holding(observer, timeout=180)
            refused: psycopg.OperationalError | None = None
            try:
                for _ in range(HEADROOM + 64):  # the headroom, plus whatever Geocube released meanwhile
                    try:
                        opened.append(database.connect(timeout=10))
                    except psycopg.OperationalError as err:
                        refused = err
                        break
                total = _client_backends(observer)
            finally:
                for conn in opened:
                    conn.close()
            holder.release(observer)
    evidence.add("held by the holder pod", hold)
    evidence.add("opened by the runner until refused", len(opened))
    evidence.add("client backends when refused", total)
    assert refused is not None, (
        f"{hold} + {len(opened)} connections were all accepted: max_connections={max_connections} is not "
        "enforced for the server's user"
    )
    assert connection_sqlstate(refused) == "53300", (
        f"connection {hold + len(opened) + 1} failed with SQLSTATE {connection_sqlstate(refused)}, expected 53300 "
        f"too_many_connections: {str(refused).strip()}"
    )
    _assert_released(database)


def _client_backends(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'").fetchone()
    return int(row[0]) if row else 0


def _assert_released(database: Database, timeout: float = 30) -> None:
    """After release a new connection succeeds and no connection of the suite's is left (but this one)."""
    deadline = time.monotonic() + timeout
    left = -1
    while time.monotonic() < deadline:
        try:
            left = int(
                database.scalar(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE %s AND pid <> pg_backend_pid()",
                    f"{APPLICATION_NAME}%",
                )
            )
        except psycopg.OperationalError:
            left = -1  # no observation: the holder's backends may still be exiting
        if left == 0:
            return
        time.sleep(0.5)
    pytest.fail(
        f"{timeout:g} s after release, "
        + ("no new connection succeeded" if left < 0 else f"{left} connection(s) of the suite were still open"),
        pytrace=False,
    )


@pytest.mark.slow
@pytest.mark.asyncio
@pytest.mark.requirement("DB-CAPACITY")
async def test_connections_suffice_at_the_autoscalers_max(
    database: Database,
    deployed_stack: Stack,
    deployed_server: ServerConfig,
    deployed_autoscaler: AutoscalerConfig,
    geocube: GeocubeClient,
    stack_storage: Storage,
    geocube_settings: Settings,
    evidence: Any,
) -> None:
    """Workers' connections measured during a real job (pg_stat_activity sampled meanwhile), scaled to -max."""
    kube, namespace = deployed_stack.kube, deployed_stack.namespace
    with database.connect(autocommit=True) as conn:
        limits = read_limits(conn)
    autoscaler = deployed_autoscaler.workload.partition("/")[2]
    selectors = component_selectors(kube, namespace, "apiserver", autoscaler, deployed_autoscaler.rc)
    timeout = geocube_settings.timeouts.wait
    # Every pod of the namespace, kept current by one watch: the sampler reads addresses from memory.
    with PodWatch(kube, namespace, selector="") as watch:
        async with await database.connect_async(autocommit=True) as conn:
            job = asyncio.ensure_future(consolidate_async(geocube, stack_storage, deployed_server, timeout=timeout))
            samples = await sample_while(
                conn,
                lambda: pods_by_address(watch.pods(), selectors),
                job,
                exclude_application=APPLICATION_NAME,
            )
            finished = await job  # a job that failed fails the check here, in its own words
    need = need_of(samples, limits, messaging=deployed_server.messaging, maximum=deployed_autoscaler.maximum)
    evidence.add("job measured", f"{finished.job_id} ({samples.samples} samples of pg_stat_activity)")
    evidence.add("peak connections by pod", samples.peaks)
    evidence.add("capacity", need.evidence())
    workers = sorted(samples.pods.get("worker", set()))
    assert workers, (
        f"no consolidater pod was seen in {samples.samples} samples during job {finished.job_id}: the "
        "workers' connections were not measured. Fix: check that the worker pods carry go-k8s-pod-rc=<the RC> "
        "(made by the autoscaler) or the ReplicationController's selector."
    )
    if deployed_server.messaging == "pgqueue":
        assert need.per_worker > 0, (
            f"no connection of the consolidaters {workers} was seen in {samples.samples} samples during job "
            f"{finished.job_id}, although with pgqueue each worker polls pgq_jobs (addresses of no stack "
            f"pod: {samples.unknown}). Fix: check that the workers reach PostgreSQL directly (no pooler hiding "
            "their addresses)."
        )
    problem = need.problem()
    assert problem is None, problem
