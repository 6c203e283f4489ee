"""Overlap making data with sending it: :func:`read_ahead`.

Used by the bulk paths whose producer is Python (COPY text of a load, the
generator's batches for the API) and whose consumer waits on a socket, so
the two run at once despite the GIL.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def read_ahead(items: Iterable[T], depth: int = 4) -> Iterator[T]:
    """``items``, made by a helper thread up to ``depth`` items ahead, so that
    making the next one (Python: generating, encoding) overlaps sending the
    last one (the server parsing, storing and scoring it). An exception in
    the maker is raised here, in order; the maker stops when the consumer
    stops early."""
    handoff: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def offer(item: object) -> bool:
        """Hand ``item`` over; False once the consumer has stopped."""
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def make() -> None:
        try:
            for item in items:
                if not offer(item):
                    return
            offer(done)
        except BaseException as exc:  # handed to the consumer, raised there
            offer(exc)

    maker = threading.Thread(target=make, name="pgfraud-read-ahead", daemon=True)
    maker.start()
    try:
        while (item := handoff.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        maker.join()
