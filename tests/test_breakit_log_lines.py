"""Break-it (hardening round): a refused request writes the path it asked
for into the log as it came, so a client without a token forges log lines.

docs/operations.md: refusals are `401` and are logged with the client's
address, the trail an operator reads after an attack. The path is
percent-decoded, so `%0a` starts a new line of the client's choosing:

    curl -s 'http://127.0.0.1:5170/alerts%0a%5B2026-12-04%2019:00:00,000%5D%20WARNING%20in%20auth:%20forged'

wrote to the server's log:

    [2026-12-04 19:03:52,738] WARNING in auth: refused GET /alerts
    [2026-12-04 19:00:00,000] WARNING in auth: forged from 127.0.0.1: the token is not valid …

Each refusal should be one line whatever the path (escape control
characters, as repr does).
"""

from __future__ import annotations

import logging

from pgfraud.service import create_app
from pgfraud.service.database import close_pool


def test_a_refused_path_with_a_newline_stays_on_one_log_line(database, caplog):
    app = create_app({"TESTING": True, "DATABASE_URL": database.app_url, "API_TOKEN": "s3cret"})
    try:
        with caplog.at_level(logging.WARNING):
            response = app.test_client().get("/alerts%0a%5B2026%5D%20WARNING%20forged")
        assert response.status_code == 401
        refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
        assert refusals, "the refusal is logged"
        assert all("\n" not in line and "\r" not in line for line in refusals), refusals
    finally:
        close_pool(app)
