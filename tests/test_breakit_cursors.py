"""Break-it (hardening round): feed positions and page cursors that are not
the service's own are accepted, and silently lose data.

- GET /alerts/stream (and /decisions/stream) with a Last-Event-ID ahead of
  the feed (`99999999999-0`: tampered, or saved against another server
  after a restore or a failover) answers 200 and then delivers nothing: its
  position stays there through every heartbeat while alerts are raised
  (checked by hand on a running server). The docs promise 400 for a
  malformed one; a position the feed has not reached should be refused the
  same way (or clamped to now), never followed silently.
- GET /alerts in raise order (the default) takes any `<anything>.<id>` as
  its `before` cursor (`abc.3`, `-5.3`), reading only what follows the dot,
  where a plain `-1` or `abc` is a 400 naming `before`. A well-formed
  time-order cursor (`<epoch ms>.<alert_id>`) stays accepted there, as the
  API document's pattern allows (its alert id is read).
"""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("path", ["/alerts/stream", "/decisions/stream"])
def test_a_feed_position_ahead_of_the_feed_is_refused(client, path):
    response = client.get(path, headers={"Last-Event-ID": "99999999999-0"}, buffered=False)
    try:
        assert response.status_code == 400
        assert response.get_json()["error"]["field"] == "Last-Event-ID"
    finally:
        response.close()


@pytest.mark.parametrize("cursor", ["abc.3", "-5.3", "1.x", "1.5.5"])
def test_a_raise_order_cursor_is_an_alert_id_and_nothing_else(client, cursor):
    response = client.get(f"/alerts?before={cursor}")
    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == "before"
