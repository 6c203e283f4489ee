"""The HTTP ceiling of a Flask app on this machine, for `make bench`.

The same route as pgfraud's ``GET /is_fraud/<account_id>``, answering a
constant JSON body without touching a database: what Flask under granian
(with ``pgfraud run``'s workers and threads) can serve at all here. No
pgfraud code runs; the bench compares pgfraud's own rate with this one.
"""

from __future__ import annotations

from flask import Flask, jsonify

app = Flask(__name__)


@app.get("/is_fraud/<int:account_id>")
def is_fraud(account_id: int):
    """``{"account_id": account_id, "alerts": []}``, always 200."""
    return jsonify({"account_id": account_id, "alerts": []})
