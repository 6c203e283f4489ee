"""pgfraud: PostgreSQL-native fraud detection.

The fraud rules are SQL functions in the database (``pgfraud.db``); a thin
Flask API (``pgfraud.service``) validates input and forwards calls; a click
generator (``pgfraud.generator``) makes labelled fake transactions.
"""

__version__ = "0.1.0"
