"""What the API does while its local PostgreSQL is down: a measurement.

Against a running ``pgfraud run`` (``make run``) on the project's own local
database, this opens STREAMS ``GET /alerts/stream`` readers and sends one
``GET /store_data`` every 0.2 s, stops PostgreSQL (``pgfraud db stop``) for
DOWN seconds, starts it again (``pgfraud db start``), and prints:

- how long each store sent while the database was down took, and its status
  (503 database_unavailable expected);
- each stream's longest silence, in seconds (the stream writes a blank line a
  second, so anything past 1 s is time it waited on the database);
- how long after the start the first store was answered 201 again.

Run from the checkout, with the server up::

    .venv/bin/python -m benchmarks.outage --port 5000 --down 15

Stores go to account 77 with fresh transaction ids (milliseconds of the
clock). Figures in docs/operations.md ("While PostgreSQL is down").
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import click
import requests

PGFRAUD = str(Path(sys.executable).with_name("pgfraud"))


def _stream(base: str, stop: threading.Event, silences: list[float]) -> None:
    """Read /alerts/stream until ``stop``; append its longest gap between lines (s)."""
    longest = 0.0
    with requests.get(f"{base}/alerts/stream", stream=True, timeout=120) as response:
        last = time.monotonic()
        for _line in response.iter_lines():
            now = time.monotonic()
            longest = max(longest, now - last)
            last = now
            if stop.is_set():
                break
    silences.append(longest)


def _store(base: str, stop: threading.Event, stores: list[tuple[float, float, int]]) -> None:
    """One store every 0.2 s until ``stop``; append (sent at, seconds taken, status)."""
    n = 0
    while not stop.is_set():
        n += 1
        params = {
            "account_id": 77,
            "transaction_id": f"{int(time.time() * 1000)}{n % 10}",
            "timestamp": "2024-06-01T12:00:00Z",
            "amount": "1.00",
        }
        sent = time.monotonic()
        status = requests.get(f"{base}/store_data", params=params, timeout=120).status_code
        stores.append((sent, time.monotonic() - sent, status))
        time.sleep(0.2)


@click.command()
@click.option("--port", default=5000, show_default=True, help="The port `pgfraud run` serves.")
@click.option("--down", default=15.0, show_default=True, help="Seconds PostgreSQL stays down.")
@click.option("--streams", default=2, show_default=True, help="Open /alerts/stream readers.")
def main(port: int, down: float, streams: int) -> None:
    """Stop the local PostgreSQL under a running API and print what clients saw."""
    base = f"http://127.0.0.1:{port}"
    stop = threading.Event()
    silences: list[float] = []
    stores: list[tuple[float, float, int]] = []
    threads = [
        threading.Thread(target=_stream, args=(base, stop, silences)) for _ in range(streams)
    ]
    threads.append(threading.Thread(target=_store, args=(base, stop, stores)))
    for thread in threads:
        thread.start()
    time.sleep(3)
    went_down = time.monotonic()
    subprocess.run([PGFRAUD, "db", "stop"], check=True, capture_output=True)
    time.sleep(down)
    subprocess.run([PGFRAUD, "db", "start"], check=True, capture_output=True)
    came_up = time.monotonic()
    time.sleep(6)
    stop.set()
    for thread in threads:
        thread.join(130)
    refused = [(sent, took) for sent, took, status in stores if status == 503]
    click.echo(f"stores while down: {len(refused)} answered 503")
    if refused:
        took = [t for _, t in refused]
        click.echo(
            f"  the first after {took[0]:.2f} s (sent {refused[0][0] - went_down:.2f} s after "
            f"the stop), all within {min(took):.2f}-{max(took):.2f} s"
        )
    click.echo("longest stream silence: " + ", ".join(f"{s:.2f} s" for s in silences))
    stored_again = [sent + took - came_up for sent, took, status in stores if status == 201]
    stored_again = [t for t in stored_again if t > 0]
    if stored_again:
        click.echo(f"first store answered 201 {min(stored_again):.2f} s after the start")


if __name__ == "__main__":
    main()
