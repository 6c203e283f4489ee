"""Fixtures for the Citus tests (`make test-citus`; `make test` does not collect this folder).

One cluster (coordinator plus two workers, tests_citus.cluster) for the
session; the pgfraud schema migrated and distributed once on its coordinator.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from tests_citus.cluster import Cluster, citus_missing


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    missing = citus_missing()
    if missing:
        pytest.exit(missing, returncode=1)
    c = Cluster()
    try:
        c.start()
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="session")
def coordinator(cluster: Cluster) -> Iterator[psycopg.Connection]:
    with psycopg.connect(cluster.coordinator_url, autocommit=True) as conn:
        yield conn
