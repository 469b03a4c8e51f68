"""A private, throwaway PostgreSQL server for tests that stop or restart the database.

The shared server on 127.0.0.1:5432 serves every other test running in parallel, so a test
that restarts PostgreSQL (the chaos test, ``/readyz`` going 503) gets a cluster of its own:
``initdb`` into a temporary folder, ``pg_ctl`` on a free port, trust auth on loopback.
Everything runs as the ``postgres`` user when the tests run as root (``initdb`` refuses root).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

from orderguard.api.server import free_port


class ClusterUnavailable(Exception):
    """PostgreSQL's server binaries are not installed, or the cluster would not start."""


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if not found:
        which = shutil.which("pg_ctl")
        if which is None:
            raise ClusterUnavailable("pg_ctl not found (install the postgresql package)")
        return Path(which).parent
    return Path(found[-1]).parent


@dataclass
class PgCluster:
    """One running cluster: ``url`` for a database named ``orderguard`` on it."""

    data: Path
    port: int
    bin: Path
    run_as: str | None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/orderguard"

    def _run(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin / args[0]), *args[1:]]
        if self.run_as:
            command = ["runuser", "-u", self.run_as, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise ClusterUnavailable(f"{' '.join(args)} failed: {done.stderr or done.stdout}")
        return done

    def start(self) -> None:
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.data / "server.log"), "-w",
            "-t", "60", "-o", f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1",
            "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def restart(self) -> None:
        """Stop (fast: connections are cut, as in a real restart) and start again."""
        self.stop("fast")
        self.start()

    def is_up(self) -> bool:
        try:
            with psycopg.connect(self.url, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.OperationalError:
            return False


@contextmanager
def private_cluster() -> Iterator[PgCluster]:
    """A fresh cluster with an ``orderguard`` database, destroyed on exit."""
    run_as = "postgres" if os.geteuid() == 0 else None
    base = Path(tempfile.mkdtemp(prefix="og-pgcluster-"))
    data = base / "data"
    if run_as:
        entry = pwd.getpwnam(run_as)
        os.chown(base, entry.pw_uid, entry.pw_gid)
    cluster = PgCluster(data=data, port=free_port(), bin=_bin_dir(), run_as=run_as)
    try:
        cluster._run(
            "initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
            "--no-sync", timeout=120,
        )  # fmt: skip
        with (data / "postgresql.conf").open("a") as conf:
            conf.write("fsync = off\nfull_page_writes = off\nmax_connections = 200\n")
        cluster.start()
        admin = f"postgresql://postgres@127.0.0.1:{cluster.port}/postgres"
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute("CREATE DATABASE orderguard")
        yield cluster
    finally:
        try:
            if (data / "postmaster.pid").exists():
                cluster.stop("immediate")
        except (ClusterUnavailable, subprocess.TimeoutExpired):
            pass
        time.sleep(0.1)
        shutil.rmtree(base, ignore_errors=True)
