"""`pgfraud migrate` on a Citus coordinator, then `pgfraud db distribute`."""

from __future__ import annotations

import psycopg

from pgfraud.db.migrate import migrate, pending


def test_migrate_runs_on_the_coordinator(cluster, coordinator):
    with psycopg.connect(cluster.coordinator_url) as conn:
        migrate(conn)
        conn.commit()
        assert not pending(conn)
        # The workers are Citus nodes of this coordinator.
        nodes = conn.execute(
            "SELECT count(*) FROM pg_dist_node WHERE noderole = 'primary'"
        ).fetchone()[0]
        assert nodes == 3
