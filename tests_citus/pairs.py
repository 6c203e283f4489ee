"""Two databases holding the same generated rows, one plain and one with the
Citus layout, for the tests that compare a single node with Citus."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg

from tests_citus.cluster import Cluster

# The generated rows every comparison of a single node with Citus uses.
ROWS = ["--num-transactions", "1500", "--accounts", "12", "--seed", "5", "--mix", "legacy"]


def run_pgfraud(url: str, *args: str) -> subprocess.CompletedProcess:
    """`pgfraud ARGS` against ``url`` (no actor set: the login is the actor)."""
    return subprocess.run(
        [str(Path(sys.executable).parent / "pgfraud"), *args],
        env={**os.environ, "DATABASE_URL": url, "PGFRAUD_ACTOR": ""},
        capture_output=True,
        text=True,
        timeout=900,
    )


def make_pair(cluster: Cluster, labels: Path, prefix: str) -> tuple[str, str]:
    """(single-node URL, distributed URL): two databases ``prefix``_single and
    ``prefix``_distributed on the coordinator's server, each migrated (the
    second also distributed) and holding the same 1,500 generated rows (ROWS)
    with their labels."""
    # The roles are made once per cluster, by a migrate of its own database
    # (which Citus propagates to the workers), as test_migrate_citus does.
    done = run_pgfraud(cluster.coordinator_url, "migrate")
    assert done.returncode == 0, done.stderr
    with psycopg.connect(cluster.url(database="postgres"), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {prefix}_single")
    single = cluster.url(database=f"{prefix}_single")
    distributed = cluster.create_database(f"{prefix}_distributed")
    for url, steps in ((single, [["migrate"]]), (distributed, [["migrate"], ["db", "distribute"]])):
        for step in steps:
            done = run_pgfraud(url, *step)
            assert done.returncode == 0, done.stderr
        done = run_pgfraud(
            url, "generate", "--to", "copy", *ROWS, "--labels", str(labels / "l.csv")
        )
        assert done.returncode == 0, done.stderr
    return single, distributed
