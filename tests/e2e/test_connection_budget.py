"""The PostgreSQL connection budget (``docs/deployment.md``): ``orderguard budget`` sums a
deployment's pools against the server's own limit, and ``serve`` and ``worker`` refuse (in
production) or warn (in development) when this host's pools alone exceed what the server
accepts. Real processes on a real server; the server's limits are read by the test itself."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from tests.e2e.procs import Server, clean_env, run_cli
from tests.e2e.test_start_refusals import SAFE, refused


def accepted(pg_url: str) -> tuple[int, int]:
    """max_connections, and what ordinary roles may open of it, as the server says."""
    with psycopg.connect(pg_url) as conn:
        settings = dict(
            conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN "
                "('max_connections', 'superuser_reserved_connections', 'reserved_connections')"
            ).fetchall()
        )
    limit = int(settings["max_connections"])
    reserved = int(settings["superuser_reserved_connections"])
    reserved += int(settings.get("reserved_connections", 0))
    return limit, limit - reserved


@pytest.mark.postgres
def test_budget_adds_up_the_hosts_pools_against_the_servers_limit(
    pg_url: str, tmp_path: Path
) -> None:
    limit, available = accepted(pg_url)
    hosts = ["--api-hosts", "2", "--processes", "2", "--no-worker", "--worker-hosts", "2"]
    done = run_cli("budget", *hosts, env=clean_env(pg_url), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == (
        "needed: (2 API hosts x 2 pools + 2 worker hosts + 0 relays) x 10 connections "
        "+ 5 spare = 65"
    )
    assert lines[1].startswith(f"available: {limit} max_connections - ")
    assert f"= {available} (the server's settings;" in lines[1]
    assert lines[2] == f"fits, {available - 65} to spare"


@pytest.mark.postgres
def test_budget_says_by_how_much_a_deployment_exceeds_and_exits_1(
    pg_url: str, tmp_path: Path
) -> None:
    _, available = accepted(pg_url)
    pool = available // 4 + 1  # four pools of it are more than the server accepts
    env = clean_env(pg_url, ORDERGUARD_DB_POOL_SIZE=str(pool))
    done = run_cli("budget", "--worker-hosts", "3", "--spare", "0", env=env, cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"= {4 * pool}\n" in done.stdout
    assert f"EXCEEDS by {4 * pool - available}: lower ORDERGUARD_DB_POOL_SIZE" in done.stdout


def test_budget_plans_against_a_given_limit_without_a_database(tmp_path: Path) -> None:
    env = clean_env("postgresql://nobody@127.0.0.1:9/none")
    args = ["--api-hosts", "3", "--processes", "4", "--max-connections", "150"]
    done = run_cli("budget", *args, env=env, cwd=tmp_path)
    # 3 hosts x (4 API + 1 worker) pools x 10 + 5 = 155 > 150 - 3
    assert done.returncode == 1, done.stdout + done.stderr
    assert "= 155\navailable: 150 max_connections - 3 reserved = 147\nEXCEEDS by 8" in done.stdout


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("command", "pools"), [(["serve", "--processes", "2"], 3), (["worker"], 1)]
)
def test_production_refuses_a_host_whose_pools_alone_exceed_the_server(
    command: list[str], pools: int, pg_url: str, tmp_path: Path
) -> None:
    _, available = accepted(pg_url)
    pool = available // pools + 1
    created = run_cli("keys", "create", "shop", env=clean_env(pg_url), cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    env = clean_env(pg_url, **SAFE, ORDERGUARD_DB_POOL_SIZE=str(pool))
    line = refused(command, env, tmp_path)
    assert line.startswith(
        f"orderguard: production: this host's {pools} pools of ORDERGUARD_DB_POOL_SIZE={pool} "
        f"may open {pools * pool} connections, more than the {available} PostgreSQL accepts"
    ), line
    assert line.endswith("raise max_connections (see `orderguard budget`)"), line


@pytest.mark.postgres
def test_development_starts_such_a_host_and_warns(pg_url: str, tmp_path: Path) -> None:
    _, available = accepted(pg_url)
    pool = available // 3 + 1
    env = clean_env(pg_url, ORDERGUARD_DB_POOL_SIZE=str(pool), ORDERGUARD_SANDBOX_DB="sb.db")
    server = Server(env=env, cwd=tmp_path, options=("--processes", "2"))
    server.start()
    try:
        log = server.log()
    finally:
        server.stop()
    assert (
        f"this host's 3 pools of ORDERGUARD_DB_POOL_SIZE={pool} may open {3 * pool} "
        f"connections, more than the {available} PostgreSQL accepts"
    ) in log, log


@pytest.mark.postgres
def test_a_host_within_the_budget_starts_without_a_word_of_it(pg_url: str, tmp_path: Path) -> None:
    env = clean_env(pg_url, ORDERGUARD_DB_POOL_SIZE="2", ORDERGUARD_SANDBOX_DB="sb.db")
    server = Server(env=env, cwd=tmp_path, options=("--processes", "2"))
    server.start()
    try:
        log = server.log()
    finally:
        server.stop()
    assert "PostgreSQL accepts" not in log, log


@pytest.mark.postgres
def test_doctor_shows_the_connections_open_against_what_the_server_accepts(
    pg_url: str, tmp_path: Path
) -> None:
    limit, available = accepted(pg_url)
    done = run_cli("doctor", "--json", env=clean_env(pg_url), cwd=tmp_path)
    checks = {c["name"]: c for c in json.loads(done.stdout)["checks"]}
    found = checks["database connections"]
    assert found["status"] == "pass", found  # a test server is far from full
    assert f" of {available} open (max_connections {limit} - " in found["detail"], found
    assert found["detail"].endswith("each process here opens up to 10"), found


def test_doctor_skips_the_connections_on_sqlite(sqlite_url: str, tmp_path: Path) -> None:
    done = run_cli("doctor", "--json", env=clean_env(sqlite_url), cwd=tmp_path)
    checks = {c["name"]: c for c in json.loads(done.stdout)["checks"]}
    assert checks["database connections"]["status"] == "skip", checks
