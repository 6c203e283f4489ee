"""Which statement timeout holds where (docs/operations.md, "Limits"): the
service's own connections run with STATEMENT_TIMEOUT_MS (10 s), set on each
connection over its login's role default; the login's role default (30 s,
from create_app_user) holds in its other sessions, such as psql
"$(pgfraud db url)". The docs said 10 s for both (fresh-user trial)."""

from __future__ import annotations

import psycopg

from pgfraud.service.database import get_pool


def test_the_service_runs_at_10_s_and_its_login_elsewhere_at_30_s(app, database):
    with app.app_context(), get_pool().connection() as conn:
        assert conn.execute("SHOW statement_timeout").fetchone()[0] == "10s"
        assert conn.execute("SELECT current_user").fetchone()[0] == "pgfraud_service"
    with psycopg.connect(database.app_url) as conn:  # as psql "$(pgfraud db url)"
        assert conn.execute("SHOW statement_timeout").fetchone()[0] == "30s"
